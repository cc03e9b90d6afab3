"""A change the homeserver refuses for good is shown on the school's page to its administration."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import BrowserContext, expect

from parta.deployment import LocalDeployment
from provisioning.db.base import utcnow
from provisioning.db.models import RefusedAction
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import (
    PASSWORD,
    TeacherSetup,
    db_session,
    region_admin_page,
    sign_in,
    teacher,  # noqa: F401 (a fixture)
)


def test_the_administration_sees_what_matrix_refuses_and_teachers_do_not(
    region: LocalDeployment,
    context: BrowserContext,
    teacher: TeacherSetup,  # noqa: F811 (the fixture)
) -> None:
    base = region.settings.provisioning_url
    with db_session(region) as session:
        # As the reconciler records it (tests/reconciler/test_refusals_live.py makes one).
        now = utcnow()
        session.add(
            RefusedAction(
                action_key=f"Join school-x-5a-chat {teacher.user_id}",
                action={"action": "Join", "alias": "school-x-5a-chat", "user_id": teacher.user_id},
                digest="0" * 64,
                school_id=teacher.own_school,
                alias="school-x-5a-chat",
                user_id=teacher.user_id,
                errcode="M_TOO_LARGE",
                error="413 M_TOO_LARGE: event too large",
                attempts=1,
                first_refused_at=now,
                last_refused_at=now,
                next_attempt_at=now + timedelta(minutes=1),
            )
        )
        session.commit()
    try:
        page = region_admin_page(region, context)
        page.goto(f"{base}/schools/{teacher.own_school}")
        notice = page.locator("#matrix-refusals")
        expect(notice).to_contain_text("Изменения, которые Matrix не принимает")
        expect(notice).to_contain_text("добавить Учитель Тестовый")
        expect(notice).to_contain_text("слишком длинное имя или текст")
        expect(notice).to_contain_text("Следующая попытка")
        screenshot(page, "ru-school-matrix-refusals")

        other = context.browser.new_context(locale="ru-RU") if context.browser else None
        assert other is not None
        teacher_page = other.new_page()
        sign_in(teacher_page, base, teacher.user_id, PASSWORD)
        expect(teacher_page.locator("h2", has_text="Ваши классы")).to_be_visible()
        shown = teacher_page.goto(f"{base}/schools/{teacher.own_school}")
        assert shown is not None and shown.status == 200  # the page itself, not an error page
        expect(teacher_page.locator("h1")).to_be_visible()
        expect(teacher_page.locator("#matrix-refusals")).to_have_count(0)
        other.close()
    finally:
        with db_session(region) as session:
            for record in session.query(RefusedAction).filter_by(school_id=teacher.own_school):
                session.delete(record)
            session.commit()
