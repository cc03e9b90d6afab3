"""Requests that wait for a decision, end to end: a teacher's application approved by the
administration, and knocks on a class decided in the UI or in a Matrix client."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
from nio import RoomInviteResponse, RoomKnockError, RoomKnockResponse, RoomLeaveResponse
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
from sqlalchemy import select

from matrix.client import MatrixClient
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
from tests.harness.sms_outbox import code_for, new_mobile_number
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
        phone = new_mobile_number()
        form.fill("input[name=phone]", phone)
        form.click("#send-code")
        code = code_for(region, phone)
        form.fill("input[name=code]", code)
        form.fill("input[name=password]", NEW_PASSWORD)
        form.fill("input[name=password_again]", NEW_PASSWORD)
        form.check("input[name=confirm]")
        form.click("button[type=submit] >> nth=-1")
        expect(form.locator("form")).to_contain_text("Укажите хотя бы один предмет")
        form.fill("input[name=code]", code)  # not spent: the form was refused before it
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
    return add_person_of_class(region, class_id, EnrolmentRole.CLASS_TEACHER)


def add_person_of_class(region: LocalDeployment, class_id: int, role: EnrolmentRole) -> str:
    """A teacher or pupil of the class recorded in Parta, with a password; then placed."""
    with db_session(region) as session:
        school_class = session.get(SchoolClass, class_id)
        assert school_class is not None
        school = session.get(School, school_class.school_id)
        assert school is not None
        kind = "Ученица" if role is EnrolmentRole.PUPIL else "Классная Руководительница"
        name = f"{kind} {secrets.token_hex(2)}"
        user_id = LocalpartAllocator(session, region.settings.server_name).user_id(name)
        person = svc.add_person(session, name, matrix_user_id=user_id)
        if role is not EnrolmentRole.PUPIL:
            svc.grant_school_role(session, person, school, Role.TEACHER)
        svc.enrol(session, person, school_class, role)
        session.commit()
    run_async(_set_password(region, user_id, name))
    with httpx.Client() as http:  # the service places people after changes made through it
        http.post(
            f"{region.settings.provisioning_url}/internal/reconcile",
            headers={"Authorization": f"Bearer {region.settings.as_token.get_secret_value()}"},
        ).raise_for_status()
    return user_id


def add_class(region: LocalDeployment, beside_class_id: int, label: str) -> int:
    with db_session(region) as session:
        beside = session.get(SchoolClass, beside_class_id)
        assert beside is not None
        school = session.get(School, beside.school_id)
        assert school is not None
        school_class = svc.add_class(session, school, int(label[:-1]), label[-1])
        session.commit()
        return school_class.id


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


async def _knock(
    region: LocalDeployment, user_id: str, room_id: str, reason: str | None = None
) -> RoomKnockResponse | RoomKnockError:
    async with logged_in(region, user_id, NEW_PASSWORD) as client:
        return await client.room_knock(room_id, reason=reason)


async def _leave_and_knock(region: LocalDeployment, user_id: str, room_id: str) -> None:
    """Leave the room, then knock on it; again if the reconciler invited them back between."""
    async with logged_in(region, user_id, NEW_PASSWORD) as client:
        for _ in range(5):
            left = await client.room_leave(room_id)
            assert isinstance(left, RoomLeaveResponse), left
            knocked = await client.room_knock(room_id)
            if isinstance(knocked, RoomKnockResponse):
                return
        pytest.fail(f"{user_id} could not knock: {knocked}")


def knock(region: LocalDeployment, user_id: str, room_id: str, reason: str | None = None) -> None:
    response = run_async_value(_knock(region, user_id, room_id, reason))
    assert isinstance(response, RoomKnockResponse), response


def refused_knock(
    region: LocalDeployment, user_id: str, room_id: str, reason: str | None, words: str
) -> None:
    response = run_async_value(_knock(region, user_id, room_id, reason))
    assert isinstance(response, RoomKnockError), response
    assert response.status_code == "M_FORBIDDEN" and words in response.message, response


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


def test_a_join_request_says_who_knocked_and_makes_no_stranger_a_pupil(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    class_url = new_school_with_class(page, base)
    class_id = int(class_url.rsplit("/", 1)[1])
    other_class_id = add_class(region, class_id, "5Б")
    space = class_rooms(region, class_id)[RoomKind.CLASS_SPACE]
    teacher = add_class_teacher(region, class_id)
    pupil = add_person_of_class(region, class_id, EnrolmentRole.PUPIL)
    other_pupil = add_person_of_class(region, other_class_id, EnrolmentRole.PUPIL)
    wait_until_placed(region, teacher, {space})
    wait_until_placed(region, pupil, {space})

    # Issue 18: a stranger knocked (200) with a text for the class's pupils to read.
    stranger = run_async_value(_new_account(region, "stranger"))
    refused_knock(region, stranger, space, "Напиши мне в telegram", "только человек этой школы")
    refused_knock(region, stranger, space, None, "только человек этой школы")
    # The school's own people knock, without text.
    refused_knock(region, other_pupil, space, "Пустите в 5А", "без текста")
    knock(region, other_pupil, space)
    run_async(_leave_and_knock(region, pupil, space))
    _pending(region, pupil)
    _pending(region, other_pupil)
    # A stranger's request recorded before the policy refused them.
    with db_session(region) as session:
        legacy = JoinRequest(class_id=class_id, user_id=stranger, display_name="Незнакомец",
                             reason="Напиши мне в telegram")  # fmt: skip
        session.add(legacy)
        session.commit()
        legacy_id = legacy.id

    page.goto(class_url)
    requests = page.locator("#requests")

    def row(user_id: str) -> Locator:
        return requests.locator("li", has_text=user_id)

    expect(row(pupil).locator(".knocker")).to_have_text("Ученик этого класса")
    expect(row(other_pupil).locator(".knocker")).to_have_text("Ученик этой школы, класс 5Б")
    expect(row(stranger).locator(".knocker")).to_have_text("Учётная запись, неизвестная Parta")
    expect(row(stranger)).to_contain_text("отправьте ему ссылку-приглашение")
    expect(row(other_pupil)).to_contain_text("Перевести ученика в другой класс")
    for outsider in (stranger, other_pupil):
        expect(row(outsider).locator("button", has_text="Принять")).to_have_count(0)
    screenshot(page, "ru-class-requests")
    # No click makes a stranger a pupil, not even a form posted by hand.
    token = page.locator("#requests input[name=csrf_token]").first.input_value()
    answer = page.request.post(
        f"{class_url}/requests/{legacy_id}/accept", form={"csrf_token": token}
    )
    assert answer.status == 409, answer.status
    assert "не из этой школы" in answer.text()

    row(pupil).locator("text=Принять как ученика").click()
    expect(row(pupil)).to_have_count(0)
    wait_until_placed(region, pupil, {space})

    # In Element the class teacher admits the pupil of 5Б: Parta does not move them.
    async def invite_in_element() -> None:
        async with logged_in(region, teacher, NEW_PASSWORD) as client:
            response = await client.room_invite(space, other_pupil)
            assert isinstance(response, RoomInviteResponse), response

    run_async(invite_in_element())
    # The teacher leaves and knocks too: once the bridge has their knock, it has read the
    # invite sent before it (the homeserver delivers a room's events in order).
    run_async(_leave_and_knock(region, teacher, space))
    _pending(region, teacher)
    assert _pending(region, other_pupil).status is RequestStatus.PENDING
    with db_session(region) as session:
        moved = session.scalar(
            select(Enrolment.class_id)
            .join(Person, Person.id == Enrolment.person_id)
            .where(Person.matrix_user_id == other_pupil)
        )
    assert moved == other_class_id

    page.goto(class_url)
    expect(row(teacher).locator(".knocker")).to_have_text("Учитель этого класса")
    row(teacher).locator("text=Впустить как учителя").click()
    expect(row(teacher)).to_have_count(0)
    wait_until_placed(region, teacher, {space})
    row(stranger).locator("text=Отклонить").click()
    expect(row(stranger)).to_have_count(0)
    assert _pending(region, stranger).status is RequestStatus.DECLINED
    page.goto(f"{class_url.rsplit('/classes', 1)[0]}/audit")
    expect(page.locator("table")).to_contain_text("не принят(а) в класс")

    # The class teacher answers a pupil of the class in Element: recorded the same way.
    first = _pending(region, pupil).id
    run_async(_leave_and_knock(region, pupil, space))

    def latest() -> JoinRequest | None:
        with db_session(region) as session:
            return session.scalar(
                select(JoinRequest)
                .where(JoinRequest.user_id == pupil, JoinRequest.id != first)
                .order_by(JoinRequest.id.desc())
            )

    deadline = time.monotonic() + 60
    while latest() is None:
        assert time.monotonic() < deadline, "the second knock did not become a request"
        time.sleep(0.5)

    async def admit_in_element() -> None:
        async with logged_in(region, teacher, NEW_PASSWORD) as client:
            response = await client.room_invite(space, pupil)
            assert isinstance(response, RoomInviteResponse), response

    run_async(admit_in_element())
    while (found := latest()) is None or found.status is RequestStatus.PENDING:
        assert time.monotonic() < deadline + 60, "the answer given in Element was not recorded"
        time.sleep(0.5)
    assert (found.status, found.decided_in) == (RequestStatus.APPROVED, "matrix")
    wait_until_placed(region, pupil, {space})


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
                      new_mobile_number(), region)  # fmt: skip
    pupil_id = f"@{joined.locator('#user-id').inner_text()}:{region.settings.server_name}"
    joined.context.close()
    page.goto(class_url)
    row = page.locator("tr", has_text=pupil_name)
    expect(row).to_contain_text("ждёт подтверждения")
    rooms = class_rooms(region, class_id)
    assert rooms[RoomKind.CLASS_CHAT] not in joined_rooms_of(region, pupil_id)

    row.locator("text=Ссылка для родителей").click()
    parent_page = register(browser, page.locator("#invite-url").input_value(),
                           f"Мама Ждущего {secrets.token_hex(2)}", new_mobile_number(),
                           region)  # fmt: skip
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
             new_mobile_number(), region).context.close()  # fmt: skip
    page.goto(class_url)
    page.locator("tr", has_text=stranger).locator("text=Отклонить").click()
    expect(page.locator("main")).not_to_contain_text(stranger)
    page.goto(f"{school_url}/audit")
    expect(page.locator("table")).to_contain_text(f"{stranger} не принят(а) как ученик")
