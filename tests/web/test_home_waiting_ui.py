"""Home pages say who waits: a teacher sees the requests of their classes, a pupil waiting
for confirmation is told so, and a parent is not asked to confirm a confirmed child."""

from __future__ import annotations

import secrets

from playwright.sync_api import Browser, BrowserContext, expect

from parta.deployment import LocalDeployment
from provisioning.db.models import JoinRequest
from tests.harness.sms_outbox import new_mobile_number
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import db_session, sign_in
from tests.web.test_invites_ui import NEW_PASSWORD, admin_page, new_school_with_class, register
from tests.web.test_requests_ui import add_class_teacher, require_confirmation


def test_home_pages_say_who_waits_for_whom(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    server = region.settings.server_name
    page = admin_page(region, context)
    class_url = new_school_with_class(page, base)
    class_id = int(class_url.rsplit("/", 1)[1])
    require_confirmation(page, base)
    page.goto(class_url)
    page.click("text=Создать ссылку для учеников")
    pupil_name = f"Лена Ждущая {secrets.token_hex(2)}"
    pupil_page = register(browser, page.locator("#invite-url").input_value(), pupil_name,
                          new_mobile_number(), region)  # fmt: skip
    pupil_id = f"@{pupil_page.locator('#user-id').inner_text()}:{server}"

    # The pupil is told they wait, not that their class is ready.
    sign_in(pupil_page, base, pupil_id, NEW_PASSWORD)
    expect(pupil_page.locator("main")).to_contain_text("Вы ждёте подтверждения")
    expect(pupil_page.locator("main")).not_to_contain_text("ждут вас в Element")
    screenshot(pupil_page, "ru-pupil-waits-phone")

    # A knock on the class space, as the bridge records it.
    knocker = f"@knocker-{secrets.token_hex(3)}:{server}"
    with db_session(region) as session:
        session.add(JoinRequest(class_id=class_id, user_id=knocker, display_name="Стучащийся"))
        session.commit()

    teacher_id = add_class_teacher(region, class_id)
    teacher = browser.new_context(locale="ru-RU")
    try:
        teacher_page = teacher.new_page()
        sign_in(teacher_page, base, teacher_id, NEW_PASSWORD)
        waiting = teacher_page.locator("#waiting")
        expect(waiting).to_contain_text(pupil_name)
        expect(waiting).to_contain_text("ждёт подтверждения как ученик")
        expect(waiting).to_contain_text("Стучащийся — класс 5А")
        expect(waiting).to_contain_text(knocker)
        screenshot(teacher_page, "ru-teacher-home-waiting")
        waiting.locator("li", has_text=pupil_name).locator("text=Решить на странице класса").click()
        expect(teacher_page.locator("h1")).to_have_text("Класс 5А")
    finally:
        teacher.close()

    # The administration confirms the pupil; their parent is not asked to confirm again.
    page.goto(class_url)
    row = page.locator("tr", has_text=pupil_name)
    row.locator("text=Подтвердить").click()
    expect(page.locator("tr", has_text=pupil_name)).not_to_contain_text("ждёт подтверждения")
    page.locator("tr", has_text=pupil_name).locator("text=Ссылка для родителей").click()
    parent_page = register(browser, page.locator("#invite-url").input_value(),
                           f"Папа Лены {secrets.token_hex(2)}", new_mobile_number(),
                           region)  # fmt: skip
    parent_id = f"@{parent_page.locator('#user-id').inner_text()}:{server}"
    sign_in(parent_page, base, parent_id, NEW_PASSWORD)
    children = parent_page.locator("main")
    expect(children).to_contain_text(pupil_name)
    expect(children).not_to_contain_text("ждёт вашего подтверждения")
    expect(children).not_to_contain_text("Да, это мой ребёнок")
    parent_page.click("text=Открыть семейный чат с ребёнком")
    expect(children).to_contain_text("Ваш семейный чат с ребёнком — в Element.")
    parent_page.context.close()

    pupil_page.reload()
    expect(pupil_page.locator("main")).not_to_contain_text("Вы ждёте подтверждения")
    expect(pupil_page.locator("main")).to_contain_text("ждут вас в Element")
    pupil_page.context.close()
