"""Invite links in a real browser: made by an admin, used by a new pupil and a parent in
their own browsers, and the result seen from matrix-nio as those people."""

from __future__ import annotations

import re
import secrets
import time

import pytest
from nio import JoinedRoomsResponse
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from parta.deployment import LocalDeployment
from provisioning.db.models import (
    EnrolmentRole,
    InviteLink,
    ManagedRoom,
    ParentLink,
    Person,
    RoomKind,
)
from provisioning.services import limits
from provisioning.services import schools as svc
from tests.harness.sms_outbox import code_for, new_mobile_number, texts_to
from tests.matrix_users import logged_in
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import db_session, run_async, sign_in

NEW_PASSWORD = "pupil-password-1"


def admin_page(region: LocalDeployment, context: BrowserContext) -> Page:
    s = region.settings
    page = context.new_page()
    sign_in(
        page,
        s.provisioning_url,
        s.region_admin_localpart,
        s.region_admin_password.get_secret_value(),
    )
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    return page


def new_school_with_class(page: Page, base: str) -> str:
    """Create a school and its class 5А through the UI; return the class page's URL."""
    tag = secrets.token_hex(3)
    page.goto(f"{base}/schools")
    page.fill("input[name=name]", f"Лицей {tag}")
    page.fill("input[name=slug]", f"lic-{tag}")
    page.click("text=Добавить школу >> nth=-1")
    page.fill("input[name=label]", "5А")
    page.click("text=Добавить класс")
    page.click("#classes >> text=5А")
    expect(page.locator("h1")).to_have_text("Класс 5А")
    return page.url


def register(
    browser: Browser, url: str, name: str | None, phone: str, region: LocalDeployment
) -> Page:
    """A newcomer opens the link in their own phone-sized browser, asks for the SMS code,
    reads it (the console gateway's outbox) and registers; returns their page."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ru-RU")  # a phone
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(url)
    if name is not None:
        page.fill("input[name=display_name]", name)
    page.fill("input[name=phone]", phone)
    page.check("input[name=confirm]")
    sent_before = len(texts_to(region, phone)) if _is_mobile(phone) else 0
    page.click("#send-code")
    expect(page.locator("#code-sent, p.error").first).to_be_visible()
    if page.locator("#code-sent").count():
        page.fill("input[name=code]", code_for(region, phone, after=sent_before))
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=password_again]", NEW_PASSWORD)
    page.click("button[type=submit] >> nth=-1")
    return page


def _is_mobile(phone: str) -> bool:
    try:
        limits.mobile_number(phone)
    except limits.FieldRefused:
        return False
    return True


def joined_rooms_of(region: LocalDeployment, user_id: str) -> set[str]:
    async def rooms() -> set[str]:
        async with logged_in(region, user_id, NEW_PASSWORD) as client:
            response = await client.joined_rooms()
            assert isinstance(response, JoinedRoomsResponse), response
            found.update(response.rooms)

    found: set[str] = set()
    run_async(rooms())
    return found


def wait_until_placed(region: LocalDeployment, user_id: str, room_ids: set[str]) -> None:
    """The reconciler places people a moment after they register (bounded: 120 s)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if room_ids <= joined_rooms_of(region, user_id):
            return
        time.sleep(2)
    pytest.fail(f"{user_id} was not placed in {room_ids} within 120 s")


def class_rooms(region: LocalDeployment, class_id: int) -> dict[RoomKind, str]:
    with db_session(region) as session:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            session.rollback()  # end the read transaction: see what others committed since
            rooms = {r.kind: r.room_id for r in session.scalars(
                select(ManagedRoom).where(ManagedRoom.class_id == class_id))}  # fmt: skip
            if len(rooms) == 4 and all(rooms.values()):
                return {kind: str(room_id) for kind, room_id in rooms.items()}
            time.sleep(1)
    pytest.fail("the class's rooms were not created")


def test_a_pupil_and_a_parent_join_through_links(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    class_url = new_school_with_class(page, base)
    class_id = int(class_url.rsplit("/", 1)[1])

    page.click("text=Создать ссылку для учеников")
    expect(page.locator("h1")).to_have_text("Ссылка-приглашение")
    link = page.locator("#invite-url").input_value()
    assert re.fullmatch(rf"{re.escape(region.settings.web_url)}/join/[\w-]{{20,}}", link)
    png = page.request.get(page.url + "/qr.png")
    assert png.headers["content-type"] == "image/png" and png.body()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = page.request.get(page.url + "/qr.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.body()
    screenshot(page, "ru-invite")
    invite_url = page.url

    # The newcomer checks what the link is for, and gets clear errors for a bad form.
    pupil_page = register(browser, link, "", "not a phone", region)
    expect(pupil_page.locator("dl.check")).to_contain_text("Ученик")
    expect(pupil_page.locator("dl.check")).to_contain_text("5А")
    expect(pupil_page.locator(".error").first).to_be_visible()
    expect(pupil_page.locator("form")).to_contain_text(
        "Имя не указано или слишком короткое: напишите имя и фамилию"
    )
    expect(pupil_page.locator("form")).to_contain_text(
        "«not a phone» не похоже на номер телефона: проверьте цифры"
    )
    screenshot(pupil_page, "ru-join-errors")
    pupil_page.context.close()

    name = f"Тимур Новиков {secrets.token_hex(2)}"
    pupil_page = register(browser, link, name, new_mobile_number(), region)
    expect(pupil_page.locator("h1")).to_have_text("Как войти")
    expect(pupil_page.locator(".notice")).to_have_text("Ваша учётная запись готова.")
    localpart = pupil_page.locator("#user-id").inner_text()
    assert localpart.startswith("timur.novikov")
    screenshot(pupil_page, "ru-welcome-phone")
    pupil_page.context.close()
    pupil_id = f"@{localpart}:{region.settings.server_name}"

    rooms = class_rooms(region, class_id)
    wait_until_placed(
        region, pupil_id, {rooms[RoomKind.CLASS_SPACE], rooms[RoomKind.CLASS_CHAT],
                           rooms[RoomKind.CLASS_CHANNEL]},
    )  # fmt: skip
    assert rooms[RoomKind.CLASS_PARENTS] not in joined_rooms_of(region, pupil_id)

    page.goto(invite_url)
    expect(page.locator("main")).to_contain_text(name)  # who used the link

    # A link for the pupil's parents, bound to the child.
    page.goto(class_url)
    page.locator("tr", has_text=name).locator("text=Ссылка для родителей").click()
    expect(page.locator("dl.facts")).to_contain_text(name)
    parent_link = page.locator("#invite-url").input_value()
    parent_name = f"Ольга Новикова {secrets.token_hex(2)}"
    parent_page = register(browser, parent_link, parent_name, new_mobile_number(), region)
    expect(parent_page.locator("h1")).to_have_text("Как войти")
    parent_id = f"@{parent_page.locator('#user-id').inner_text()}:{region.settings.server_name}"
    parent_page.context.close()
    with db_session(region) as session:
        parent = session.scalar(select(Person).where(Person.matrix_user_id == parent_id))
        child = session.scalar(select(Person).where(Person.matrix_user_id == pupil_id))
        assert parent is not None and child is not None
        assert session.scalar(
            select(ParentLink).where(
                ParentLink.parent_id == parent.id, ParentLink.child_id == child.id
            )
        )
    wait_until_placed(
        region, parent_id, {rooms[RoomKind.CLASS_PARENTS], rooms[RoomKind.CLASS_CHANNEL]}
    )
    assert rooms[RoomKind.CLASS_CHAT] not in joined_rooms_of(region, parent_id)


def test_used_up_revoked_and_unknown_links_say_why(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    new_school_with_class(page, base)
    page.fill("#invites input[name=max_uses]", "1")
    page.click("text=Создать ссылку для учеников")
    single_use = page.locator("#invite-url").input_value()
    register(
        browser, single_use, f"Первый Ученик {secrets.token_hex(2)}", new_mobile_number(), region
    ).context.close()

    late = browser.new_context()
    try:
        visit = late.new_page()
        response = visit.goto(single_use)
        assert response is not None and response.status == 410
        expect(visit.locator(".error")).to_contain_text("воспользовались столько раз")
    finally:
        late.close()

    page.go_back()
    page.click("text=Создать ссылку для учеников")
    withdrawn = page.locator("#invite-url").input_value()
    page.click("text=Отозвать ссылку")
    expect(page.locator("dd.state-revoked")).to_have_text("отозвана")
    visitor = browser.new_context()
    try:
        visit = visitor.new_page()
        response = visit.goto(withdrawn)
        assert response is not None and response.status == 410
        expect(visit.locator(".error")).to_contain_text("Эту ссылку отозвали")
        response = visit.goto(f"{base}/join/not-a-real-token")
        assert response is not None and response.status == 410
        expect(visit.locator(".error")).to_contain_text("недействительна")
        visit.click("text=English")
        expect(visit.locator(".error")).to_contain_text("This link is not valid")
    finally:
        visitor.close()


def test_a_class_teacher_prints_personal_links_for_the_class(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    class_url = new_school_with_class(page, base)
    class_id = int(class_url.rsplit("/", 1)[1])
    with db_session(region) as session:
        from provisioning.db.models import SchoolClass

        school_class = session.get(SchoolClass, class_id)
        assert school_class is not None
        pupil = svc.add_person(session, "Вера Импортова", matrix_user_id=None)
        svc.enrol(session, pupil, school_class, EnrolmentRole.PUPIL)
        mother = svc.add_person(session, "Нина Импортова", matrix_user_id=None)
        svc.link_parent(session, mother, pupil)
        session.commit()
    page.goto(class_url)
    page.click("text=Распечатать личные ссылки для класса")
    expect(page.locator("h1")).to_have_text("Личные ссылки для 5А класса")
    cards = page.locator("article.handout")
    expect(cards).to_have_count(2)
    expect(cards.nth(0)).to_contain_text("Вера Импортова")
    expect(cards.nth(1)).to_contain_text("Нина Импортова")
    screenshot(page, "ru-class-sheet")
    # Printing again makes no second link for the same people.
    page.goto(class_url)
    page.click("text=Распечатать личные ссылки для класса")
    expect(page.locator("article.handout")).to_have_count(2)
    with db_session(region) as session:
        personal = session.scalars(
            select(InviteLink).where(
                InviteLink.class_id == class_id, InviteLink.person_id.is_not(None)
            )
        ).all()
        assert len(personal) == 2 and all(link.max_uses == 1 for link in personal)


def test_a_forgotten_password_is_reset_with_a_one_time_link(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    new_school_with_class(page, base)
    page.click("text=Создать ссылку для учеников")
    joined = register(browser, page.locator("#invite-url").input_value(),
                      f"Забывчивый Ученик {secrets.token_hex(2)}", new_mobile_number(),
                      region)  # fmt: skip
    pupil_id = f"@{joined.locator('#user-id').inner_text()}:{region.settings.server_name}"
    joined.context.close()
    with db_session(region) as session:
        pupil = session.scalar(select(Person).where(Person.matrix_user_id == pupil_id))
        assert pupil is not None
        person_url = f"{base}/people/{pupil.id}"
    page.goto(person_url)
    page.click("text=Сбросить пароль")
    expect(page.locator("h1")).to_have_text("Ссылка-приглашение")
    reset_link = page.locator("#invite-url").input_value()

    fresh = browser.new_context(locale="ru-RU")
    try:
        form = fresh.new_page()
        form.goto(reset_link)  # the staff-made link, for people without a phone: none asked
        form.fill("input[name=password]", "a-brand-new-password")
        form.fill("input[name=password_again]", "a-brand-new-password")
        form.check("input[name=confirm]")
        form.click("text=Задать пароль")
        expect(form.locator("h1")).to_have_text("Как войти")
        sign_in(form, base, pupil_id, "a-brand-new-password")
        expect(form.locator("h1")).to_contain_text("Здравствуйте")
        response = form.goto(reset_link)  # a reset link works once
        assert response is not None and response.status == 410
    finally:
        fresh.close()
