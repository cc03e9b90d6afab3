"""«Это не я» in a real browser: a personal link showing someone else's name is reported,
stops working at once, and reaches the school's administration (only that school's),
who make a new link under the corrected name that works."""

from __future__ import annotations

import secrets

from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from parta.deployment import LocalDeployment
from provisioning.db.invite_reports import InviteReport
from provisioning.db.models import (
    AuditEvent,
    EnrolmentRole,
    InviteLink,
    Person,
    Region,
    Role,
    SchoolClass,
)
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from tests.harness.sms_outbox import new_mobile_number
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import PASSWORD, _set_password, db_session, run_async, sign_in
from tests.web.test_invites_ui import admin_page, new_school_with_class, register
from tests.web.test_phone_layout import MEASURE, PHONE


def phone(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ru-RU")
    context.set_default_timeout(20_000)
    return context.new_page()


def fits(page: Page) -> None:
    found = page.evaluate(MEASURE, PHONE["width"])
    assert found["scroll"] <= found["width"] and not found["wide"], found


def roster_pupil_link(region: LocalDeployment, page: Page, class_url: str, name: str) -> str:
    """A pupil as a roster import leaves them, and their personal link from the sheet."""
    class_id = int(class_url.rsplit("/", 1)[1])
    with db_session(region) as session:
        school_class = session.get(SchoolClass, class_id)
        assert school_class is not None
        pupil = svc.add_person(session, name, matrix_user_id=None)
        svc.enrol(session, pupil, school_class, EnrolmentRole.PUPIL)
        session.commit()
        pupil_id = pupil.id
    page.goto(class_url)
    page.click("text=Распечатать личные ссылки для класса")
    expect(page.locator("article.handout")).to_contain_text(name)
    with db_session(region) as session:
        link = session.scalar(select(InviteLink).where(InviteLink.person_id == pupil_id))
        assert link is not None
        return f"{region.settings.web_url}/join/{link.token}"


def test_this_is_not_me_suspends_the_link_and_the_school_makes_a_new_one(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    admin = admin_page(region, context)
    class_url = new_school_with_class(admin, base)
    wrong = f"Вера Ошибкина {secrets.token_hex(2)}"
    link = roster_pupil_link(region, admin, class_url, wrong)
    school_id = int(class_url.split("/schools/")[1].split("/")[0])

    # The holder sees a name that is not theirs, and says so, with a comment.
    holder = phone(browser)
    holder.goto(link)
    expect(holder.locator("dl.facts")).to_contain_text(wrong)
    holder.click("#not-me-link")
    expect(holder.locator("h1")).to_have_text("Это не я")
    expect(holder.locator("#not-me")).to_contain_text(wrong)
    holder.fill("textarea[name=comment]", "Я Вера Правкина из 5А, лист перепутали")
    fits(holder)
    screenshot(holder, "ru-not-me-confirm-phone")
    holder.click("#not-me-confirm")
    expect(holder.locator("h1")).to_have_text("Ссылка приостановлена")
    expect(holder.locator("#not-me-done")).to_contain_text("новую личную ссылку с вашим именем")
    screenshot(holder, "ru-not-me-done-phone")

    # The link no longer registers anyone, and a second report is refused (one per link).
    for path in ("", "/not-me"):
        response = holder.goto(link + path)
        assert response is not None and response.status == 410
        expect(holder.locator("main")).to_contain_text("Ссылка приостановлена: кто-то сообщил")
    with db_session(region) as session:
        reports = session.scalars(select(InviteReport).where(InviteReport.school_id == school_id))
        assert [r.comment for r in reports] == ["Я Вера Правкина из 5А, лист перепутали"]
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "invite.not_me"))
    # Printing the class's sheet again makes no new link under the wrong name.
    admin.goto(class_url)
    admin.click("text=Распечатать личные ссылки для класса")
    expect(admin.locator("article.handout")).to_have_count(0)
    holder.context.close()

    # Another school's administrator sees nothing of it and cannot act on it.
    other_admin, own_school = _another_schools_admin(region, browser)
    other_admin.goto(f"{base}/")
    expect(other_admin.locator("main")).not_to_contain_text(wrong)
    response = other_admin.goto(f"{base}/schools/{school_id}")
    assert response is not None and response.status in (403, 404)
    other_admin.goto(f"{base}/schools/{own_school}")
    expect(other_admin.locator("h1")).to_be_visible()
    expect(other_admin.locator("#not-me")).to_have_count(0)
    with db_session(region) as session:
        report_id = session.scalar(
            select(InviteReport.id).where(InviteReport.school_id == school_id)
        )
    refused = other_admin.evaluate(
        """async ([url]) => {
            const token = document.querySelector('input[name=csrf_token]').value;
            const body = new URLSearchParams({csrf_token: token, display_name: 'Чужая Рука'});
            return (await fetch(url, {method: 'POST', body})).status;
        }""",
        [f"{base}/schools/{school_id}/not-me/{report_id}/reissue"],
    )
    assert refused == 403
    other_admin.context.close()

    # The school's administration sees the flagged request and re-issues under the right name.
    admin.goto(f"{base}/schools/{school_id}")
    flagged = admin.locator("#not-me")
    expect(flagged).to_contain_text(wrong)
    expect(flagged).to_contain_text("лист перепутали")
    admin.set_viewport_size({"width": 390, "height": 844})  # the administration, on a phone
    fits(admin)
    screenshot(admin, "ru-not-me-school-phone")
    flagged.locator("input[name=display_name]").fill("Вера Правкина")
    flagged.locator("text=Сделать новую ссылку").click()
    expect(admin.locator("h1")).to_have_text("Ссылка-приглашение")
    new_link = admin.locator("#invite-url").input_value()
    assert new_link != link
    admin.goto(f"{base}/schools/{school_id}")
    expect(admin.locator("#not-me")).to_have_count(0)

    # The new link names the right person and works.
    joined = register(browser, new_link, None, new_mobile_number(), region)
    expect(joined.locator("h1")).to_have_text("Как войти")
    joined.context.close()
    with db_session(region) as session:
        assert session.scalar(select(Person).where(Person.display_name == "Вера Правкина"))
        assert session.scalar(
            select(AuditEvent).where(AuditEvent.action == "invite.not_me_reissued")
        )


def _another_schools_admin(region: LocalDeployment, browser: Browser) -> tuple[Page, int]:
    """The administrator of a school of their own, signed in on their own phone."""
    tag = secrets.token_hex(3)
    with db_session(region) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        school = svc.create_school(
            session, region_row, f"Чужая школа {tag}", slug=f"other-{tag}", academic_year=2026
        )
        allocator = LocalpartAllocator(session, region.settings.server_name)
        director = svc.add_person(session, f"Директор {tag}", allocator.user_id(f"dir {tag}"))
        svc.grant_school_role(session, director, school, Role.SCHOOL_ADMIN)
        session.commit()
        user_id, own_school = str(director.matrix_user_id), school.id
    run_async(_set_password(region, user_id, f"Директор {tag}"))
    page = phone(browser)
    sign_in(page, region.settings.provisioning_url, user_id[1:].split(":")[0], PASSWORD)
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    return page, own_school
