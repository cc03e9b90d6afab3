"""Requests that wait for a decision, end to end: a teacher's application approved by the
administration, and knocks on a class decided in the UI or in a Matrix client."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
from nio import RoomInviteResponse, RoomKnockResponse
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from bridge.matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    JoinRequest,
    ManagedRoom,
    Person,
    RequestStatus,
    Role,
    RoomKind,
    School,
    SchoolClass,
)
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from tests.matrix_users import logged_in
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import db_session, run_async, run_async_value, sign_in
from tests.web.test_invites_ui import (
    NEW_PASSWORD,
    admin_page,
    class_rooms,
    joined_rooms_of,
    new_school_with_class,
    register,
    wait_until_placed,
)


def test_a_teacher_applies_through_a_link_and_is_placed_once_approved(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    class_url = new_school_with_class(page, base)
    class_id = int(class_url.rsplit("/", 1)[1])
    school_url = page.locator(".crumbs a").get_attribute("href")
    page.goto(f"{base}{school_url}")
    page.select_option("#invites select[name=role]", "teacher")
    page.click("text=Создать ссылку")
    link = page.locator("#invite-url").input_value()

    teacher = browser.new_context(locale="ru-RU")
    try:
        form = teacher.new_page()
        form.goto(link)
        expect(form.locator("dl.check")).to_contain_text("Учитель")
        name = f"Мария Учителева {secrets.token_hex(2)}"
        form.fill("input[name=display_name]", name)
        form.fill("input[name=email]", f"maria.{secrets.token_hex(3)}@school.example")
        form.fill("input[name=password]", NEW_PASSWORD)
        form.fill("input[name=password_again]", NEW_PASSWORD)
        form.check("input[name=confirm]")
        form.click("button[type=submit] >> nth=-1")
        expect(form.locator("form")).to_contain_text("Укажите хотя бы один предмет")
        form.fill("input[name=password]", NEW_PASSWORD)
        form.fill("input[name=password_again]", NEW_PASSWORD)
        form.fill("input[name=subjects]", "математика, физика")
        form.check("fieldset.choices >> text=5А")
        form.click("button[type=submit] >> nth=-1")
        expect(form.locator("h1")).to_have_text("Как войти")
        teacher_id = f"@{form.locator('#user-id').inner_text()}:{region.settings.server_name}"
        sign_in(form, base, teacher_id, NEW_PASSWORD)
        expect(form.locator(".notice")).to_contain_text("ждёт подтверждения администрации")
    finally:
        teacher.close()

    page.goto(f"{base}{school_url}")
    applications = page.locator("#applications")
    expect(applications).to_contain_text(name)
    expect(applications).to_contain_text("Математика, Физика")
    screenshot(page, "ru-school-applications")
    applications.locator("text=Подтвердить").click()
    expect(page.locator("#applications")).to_have_count(0)

    rooms = class_rooms(region, class_id)
    wait_until_placed(
        region, teacher_id, {rooms[RoomKind.CLASS_CHAT], rooms[RoomKind.CLASS_CHANNEL]}
    )
    with db_session(region) as session:
        person = session.scalar(select(Person).where(Person.matrix_user_id == teacher_id))
        assert person is not None
        roles = session.scalars(
            select(Enrolment.role).where(Enrolment.person_id == person.id)
        ).all()
        assert sorted(roles) == [EnrolmentRole.SUBJECT_TEACHER] * 2  # two subjects in 5А


def add_class_teacher(region: LocalDeployment, class_id: int) -> str:
    """A class teacher recorded in Parta, with a password; placed by the reconciler."""
    with db_session(region) as session:
        school_class = session.get(SchoolClass, class_id)
        assert school_class is not None
        school = session.get(School, school_class.school_id)
        assert school is not None
        name = f"Классная Руководительница {secrets.token_hex(2)}"
        user_id = LocalpartAllocator(session, region.settings.server_name).user_id(name)
        person = svc.add_person(session, name, matrix_user_id=user_id)
        svc.grant_school_role(session, person, school, Role.TEACHER)
        svc.enrol(session, person, school_class, EnrolmentRole.CLASS_TEACHER)
        session.commit()
    run_async(_set_password(region, user_id, name))
    with httpx.Client() as http:  # the service places people after changes made through it
        http.post(
            f"{region.settings.provisioning_url}/internal/reconcile",
            headers={"Authorization": f"Bearer {region.settings.as_token.get_secret_value()}"},
        ).raise_for_status()
    return user_id


async def _set_password(region: LocalDeployment, user_id: str, name: str) -> None:
    s = region.settings
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as bot:
        await bot.admin_put_user(user_id, {"password": NEW_PASSWORD, "displayname": name})


async def _new_account(region: LocalDeployment, name: str) -> str:
    s = region.settings
    user_id = f"@{name}-{secrets.token_hex(3)}:{s.server_name}"
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as bot:
        await bot.admin_put_user(user_id, {"password": NEW_PASSWORD, "displayname": name})
    return user_id


async def _knock(region: LocalDeployment, user_id: str, room_id: str, reason: str) -> None:
    async with logged_in(region, user_id, NEW_PASSWORD) as client:
        response = await client.room_knock(room_id, reason=reason)
        assert isinstance(response, RoomKnockResponse), response


def _pending(region: LocalDeployment, user_id: str, timeout: float = 60) -> JoinRequest:
    deadline = time.monotonic() + timeout
    with db_session(region) as session:
        while time.monotonic() < deadline:
            session.rollback()  # end the read transaction: see what others committed since
            found = session.scalar(select(JoinRequest).where(JoinRequest.user_id == user_id))
            if found is not None:
                return found
            time.sleep(0.5)
    pytest.fail(f"the knock of {user_id} did not become a join request")


def test_knocks_are_decided_in_the_ui_or_in_a_matrix_client(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    class_url = new_school_with_class(page, base)
    class_id = int(class_url.rsplit("/", 1)[1])
    rooms = class_rooms(region, class_id)
    space = rooms[RoomKind.CLASS_SPACE]

    # Knock 1, accepted in the admin UI: the knocker becomes a pupil and is placed.
    first = run_async_value(_new_account(region, "knocker"))
    run_async(_knock(region, first, space, "Я новенькая в 5А"))
    _pending(region, first)
    page.goto(class_url)
    requests = page.locator("#requests")
    expect(requests).to_contain_text("Я новенькая в 5А")
    screenshot(page, "ru-class-requests")
    requests.locator("text=Принять").click()
    expect(page.locator("#requests")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("knocker")
    wait_until_placed(region, first, {space, rooms[RoomKind.CLASS_CHAT]})

    # Knock 2, accepted in Element by the class teacher: the UI records it the same way.
    teacher_id = add_class_teacher(region, class_id)
    wait_until_placed(region, teacher_id, {space})
    second = run_async_value(_new_account(region, "knocker"))
    run_async(_knock(region, second, space, "Пустите, пожалуйста"))
    _pending(region, second)

    async def accept_in_element() -> None:
        async with logged_in(region, teacher_id, NEW_PASSWORD) as client:
            response = await client.room_invite(space, second)
            assert isinstance(response, RoomInviteResponse), response

    run_async(accept_in_element())
    deadline = time.monotonic() + 60
    while _pending(region, second).status is RequestStatus.PENDING:
        assert time.monotonic() < deadline, "the answer given in Element was not recorded"
        time.sleep(0.5)
    assert _pending(region, second).decided_in == "matrix"
    page.goto(f"{class_url.rsplit('/classes', 1)[0]}/audit")
    expect(page.locator("table")).to_contain_text("(в Element)")
    wait_until_placed(region, second, {space, rooms[RoomKind.CLASS_CHAT]})

    # Knock 3, declined in the UI: the knock is turned away in Matrix too.
    third = run_async_value(_new_account(region, "knocker"))
    run_async(_knock(region, third, space, "Можно?"))
    _pending(region, third)
    page.goto(class_url)
    page.locator("#requests").locator("text=Отклонить").click()
    expect(page.locator("#requests")).to_have_count(0)
    assert _pending(region, third).status is RequestStatus.DECLINED


def test_a_pupil_waits_for_a_parent_who_confirms_and_gets_a_family_room(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    class_url = new_school_with_class(page, base)
    class_id = int(class_url.rsplit("/", 1)[1])
    require_confirmation(page, base)

    page.goto(class_url)
    page.click("text=Создать ссылку для учеников")
    pupil_name = f"Тимур Ждущий {secrets.token_hex(2)}"
    joined = register(browser, page.locator("#invite-url").input_value(), pupil_name,
                      "+7 900 222-00-01")  # fmt: skip
    pupil_id = f"@{joined.locator('#user-id').inner_text()}:{region.settings.server_name}"
    joined.context.close()
    page.goto(class_url)
    row = page.locator("tr", has_text=pupil_name)
    expect(row).to_contain_text("ждёт подтверждения")
    rooms = class_rooms(region, class_id)
    assert rooms[RoomKind.CLASS_CHAT] not in joined_rooms_of(region, pupil_id)

    row.locator("text=Ссылка для родителей").click()
    parent_page = register(browser, page.locator("#invite-url").input_value(),
                           f"Мама Ждущего {secrets.token_hex(2)}", "+7 900 222-00-02")  # fmt: skip
    parent_id = f"@{parent_page.locator('#user-id').inner_text()}:{region.settings.server_name}"
    sign_in(parent_page, base, parent_id, NEW_PASSWORD)
    expect(parent_page.locator(".badge.warn")).to_have_text("ждёт вашего подтверждения")
    screenshot(parent_page, "ru-parent-dashboard-phone")
    parent_page.click("text=Да, это мой ребёнок")
    expect(parent_page.locator("main")).to_contain_text("Ваш семейный чат с ребёнком — в Element.")
    parent_page.context.close()

    with db_session(region) as session:
        parent = session.scalar(select(Person).where(Person.matrix_user_id == parent_id))
        child = session.scalar(select(Person).where(Person.matrix_user_id == pupil_id))
        assert parent is not None and child is not None
        family_alias = f"family-{parent.id}-{child.id}"
    family = family_room_id(region, family_alias)
    wait_until_placed(region, pupil_id, {rooms[RoomKind.CLASS_CHAT], family})
    wait_until_placed(region, parent_id, {rooms[RoomKind.CLASS_PARENTS], family})


def require_confirmation(page: Page, base: str) -> str:
    """On the school page of the class open in `page`: pupils wait for confirmation."""
    school_url = base + str(page.locator(".crumbs a").get_attribute("href"))
    page.goto(school_url)
    page.check("#settings input[name=pupils_need_confirmation]")
    page.click("#settings >> text=Сохранить")
    expect(page.locator("#settings input[name=pupils_need_confirmation]")).to_be_checked()
    return school_url


def family_room_id(region: LocalDeployment, alias: str) -> str:
    deadline = time.monotonic() + 120
    with db_session(region) as session:
        while time.monotonic() < deadline:
            session.rollback()  # end the read transaction: see what others committed since
            record = session.get(ManagedRoom, alias)
            if record is not None and record.room_id:
                return record.room_id
            time.sleep(1)
    pytest.fail(f"the family room {alias} was not created")


def test_a_self_registered_pupil_can_be_turned_away_by_the_class_teacher(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    class_url = new_school_with_class(page, base)
    school_url = require_confirmation(page, base)
    page.goto(class_url)
    page.click("text=Создать ссылку для учеников")
    stranger = f"Непрошеный Гость {secrets.token_hex(2)}"
    register(browser, page.locator("#invite-url").input_value(), stranger,
             "+7 900 333-00-01").context.close()  # fmt: skip
    page.goto(class_url)
    page.locator("tr", has_text=stranger).locator("text=Отклонить").click()
    expect(page.locator("main")).not_to_contain_text(stranger)
    page.goto(f"{school_url}/audit")
    expect(page.locator("table")).to_contain_text(f"{stranger} не принят(а) как ученик")
