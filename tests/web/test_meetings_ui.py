"""Parent meetings in real Chromium against the running region: the class teacher
schedules one from the class page, the parent of a pupil reads the invitation, a reminder
(the clock driven with a given moment), the cancellation and the minutes in the parents
chat through the real Synapse; bad forms and the wrong teachers are refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select, update

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.models import ParentMeeting
from provisioning.meetings.clock import MeetingClock
from tests.harness.broadcasts import login_of
from tests.harness.meetings import PASSWORD, MeetingSchool, ParentReader, make_school
from tests.harness.region import region_session
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import run_async_value, sign_in


@pytest.fixture(scope="module")
def school(region: LocalDeployment) -> MeetingSchool:
    return make_school(region)


@pytest.fixture(scope="module")
def parent(region: LocalDeployment, school: MeetingSchool) -> ParentReader:
    return ParentReader(region, school.parent, school.parents_room_id)


def _signed_in(region: LocalDeployment, context: BrowserContext, user_id: str) -> Page:
    page = context.new_page()
    sign_in(page, region.settings.provisioning_url, login_of(user_id), PASSWORD)
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    return page


def _class_url(region: LocalDeployment, school: MeetingSchool) -> str:
    return (
        f"{region.settings.provisioning_url}/schools/{school.school_id}/classes/{school.class_id}"
    )


def _fill(page: Page, day: date, time_from: str, time_to: str, agenda: str, mode: str) -> None:
    page.fill("input[name=date]", day.isoformat())
    page.fill("input[name=time_from]", time_from)
    page.fill("input[name=time_to]", time_to)
    page.check(f"input[name=mode][value={mode}]")
    page.fill("textarea[name=agenda]", agenda)
    page.click("form.meeting-form button[type=submit]")


def _tick(region: LocalDeployment, moment: datetime) -> list[tuple[int, str]]:
    """The meetings' clock at a given moment, as a second provisioning process would run it."""

    async def run() -> list[tuple[int, str]]:
        s = region.settings
        engine = make_engine(s.sqlalchemy_url)
        try:
            async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as client:
                clock = MeetingClock(client, make_session_factory(engine), s)
                return (await clock.tick(moment)).sent
        finally:
            engine.dispose()

    return run_async_value(run())


def _latest_meeting(region: LocalDeployment, school: MeetingSchool) -> int:
    with region_session(region) as session:
        found = session.scalar(
            select(ParentMeeting.id)
            .where(ParentMeeting.class_id == school.class_id)
            .order_by(ParentMeeting.id.desc())
        )
        assert found is not None
        return found


def test_a_class_teacher_schedules_edits_and_cancels_and_the_parents_read_it(
    region: LocalDeployment, context: BrowserContext, school: MeetingSchool, parent: ParentReader
) -> None:
    page = _signed_in(region, context, school.class_teacher)
    page.goto(_class_url(region, school))
    section = page.locator("#meetings")
    expect(section.locator("h2")).to_have_text("Родительские собрания")
    section.locator("text=Назначить родительское собрание").click()
    expect(page.locator("h1")).to_have_text("Новое родительское собрание")

    soon = date.today() + timedelta(days=3)
    agenda = "Итоги четверти. Экскурсия в музей. Разное."
    error = page.locator("#meeting-error")
    _fill(page, soon, "19:00", "18:00", agenda, "hybrid")
    expect(error).to_contain_text("собрание должно закончиться позже, чем начнётся")
    expect(page.locator("textarea[name=agenda]")).to_have_value(agenda)  # kept
    _fill(page, date.today() - timedelta(days=1), "18:00", "19:00", agenda, "hybrid")
    expect(error).to_contain_text("начало должно быть в будущем")
    # Past the browser's own limit: the server counts and says how much is too much.
    page.evaluate("document.querySelector('textarea[name=agenda]').removeAttribute('maxlength')")
    _fill(page, soon, "18:00", "19:00", "а" * 2001, "hybrid")
    expect(error).to_contain_text("Повестка: 2001 символов; можно не больше 2000")
    screenshot(page, "meeting-agenda-too-long")

    _fill(page, soon, "18:00", "19:00", agenda, "hybrid")
    expect(page).to_have_url(f"{_class_url(region, school)}#meetings")
    row = page.locator("#meetings li.meeting")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("запланировано")
    expect(row).to_contain_text("18:00")
    expect(row).to_contain_text("смешанное")
    screenshot(page, "meeting-listed")

    # The invitation, posted by the service's own clock at once, as the parent reads it.
    invitation = parent.wait_for("Родительское собрание 5А класса", "Итоги четверти")
    assert "Europe/Moscow" in invitation and f"{soon:%d.%m.%Y}, 18:00–19:00" in invitation
    assert "смешанный" in invitation and "как один участник" in invitation
    assert f"/call/?room_id={school.parents_room_id.replace('!', '%21').replace(':', '%3A')}" in (
        invitation
    )

    # Its page: the classroom computer's link, then an edit of the time.
    row.locator("a").click()
    expect(page.locator("input[name=time_from]")).to_have_value("18:00")
    expect(page.locator("#classroom a.classroom-link")).to_contain_text("/call/?room_id=")
    page.fill("input[name=time_from]", "17:30")
    page.click("form.meeting-form button[type=submit]")
    expect(page.locator("#meetings li.meeting")).to_contain_text("17:30")
    changed = parent.wait_for("изменено", "17:30–19:00")
    assert "Итоги четверти" in changed

    # Cancelling asks for the confirmation first; the parents are told once.
    page.locator("#meetings li.meeting a").click()
    page.locator("#cancel button").click()  # the box is required: the browser stops it
    expect(page.locator("#cancel input[name=confirm]")).not_to_be_checked()
    page.check("#cancel input[name=confirm]")
    page.locator("#cancel button").click()
    expect(page.locator("#meetings li.meeting")).to_contain_text("отменено")
    parent.wait_for("отменено", f"{soon:%d.%m.%Y}, 17:30")
    assert parent.count("отменено", f"{soon:%d.%m.%Y}, 17:30") == 1


def test_a_reminder_the_start_and_the_minutes_reach_the_parents(
    region: LocalDeployment, context: BrowserContext, school: MeetingSchool, parent: ParentReader
) -> None:
    page = _signed_in(region, context, school.director)  # the administration may, too
    page.goto(f"{_class_url(region, school)}/meetings/new")
    day = date.today() + timedelta(days=2)
    _fill(page, day, "18:00", "19:00", "Выпускной вечер: бюджет", "remote")
    expect(page).to_have_url(f"{_class_url(region, school)}#meetings")
    meeting_id = _latest_meeting(region, school)
    parent.wait_for("Выпускной вечер: бюджет", "дистанционно")
    starts = datetime.combine(day, datetime.min.time().replace(hour=18), ZoneInfo("Europe/Moscow"))

    # A day before, by the clock given the moment: once, however often it ticks.
    sent = _tick(region, starts - timedelta(hours=23)) + _tick(region, starts - timedelta(hours=22))
    assert [kind for mid, kind in sent if mid == meeting_id] == ["remind_day"]
    parent.wait_for("Завтра: родительское собрание 5А класса", f"{day:%d.%m.%Y}, 18:00")

    # The minutes are refused before the meeting has begun.
    page.goto(f"{_class_url(region, school)}/meetings/{meeting_id}")
    expect(page.locator("#minutes")).to_have_count(0)

    # The meeting began a few minutes ago (as far as the database knows).
    with region_session(region) as session:
        session.execute(
            update(ParentMeeting)
            .where(ParentMeeting.id == meeting_id)
            .values(starts_at=datetime.now(UTC) - timedelta(minutes=5))
        )
        session.commit()
    # The service's own clock may be first to see the start: either way, one message.
    sent = [k for mid, k in _tick(region, datetime.now(UTC)) if mid == meeting_id]
    assert sent in (["start"], [])
    started = parent.wait_for("5А класса начинается")
    assert parent.count("5А класса начинается") == 1
    assert "/call/?room_id=" in started

    page.reload()
    expect(page.locator("#cancel")).to_have_count(0)  # under way: no cancelling
    minutes = "Решили: выпускной в кафе «Ромашка».\nОтветственная — Мама."
    page.fill("#minutes textarea[name=minutes]", minutes)
    page.click("#minutes button[type=submit]")
    expect(page.locator("#minutes-posted")).to_be_visible()
    posted = parent.wait_for("Протокол родительского собрания 5А класса", "«Ромашка»")
    assert "Ответственная — Мама." in posted
    page.fill("#minutes textarea[name=minutes]", minutes.replace("«Ромашка»", "«Василёк»"))
    page.click("#minutes button[type=submit]")
    parent.wait_for("Исправление: протокол", "«Василёк»")
    assert parent.count("Протокол родительского собрания 5А класса", "«Ромашка»") == 1
    screenshot(page, "meeting-minutes")


@pytest.mark.parametrize("who", ["subject_teacher", "other_teacher"])
def test_a_subject_teacher_or_another_classs_teacher_is_refused(
    region: LocalDeployment, context: BrowserContext, school: MeetingSchool, who: str
) -> None:
    page = _signed_in(region, context, getattr(school, who))
    answer = page.goto(f"{_class_url(region, school)}/meetings/new")
    assert answer is not None and answer.status == 403
    expect(page.locator("body")).to_contain_text("классный руководитель и администрация")
    # A hand-made request with a valid CSRF token is refused by the server as well.
    page.goto(region.settings.provisioning_url)
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    status = page.evaluate(
        """async ([url, token]) => {
            const body = new URLSearchParams({csrf_token: token, date: '2031-09-01',
              time_from: '18:00', time_to: '19:00', mode: 'remote', agenda: 'x'});
            return (await fetch(url, {method: 'POST', body})).status;
        }""",
        [f"{_class_url(region, school)}/meetings", token],
    )
    assert status == 403
    page.goto(_class_url(region, school))
    expect(page.locator("#meetings")).to_have_count(0)


def test_the_pages_fit_a_phone(
    region: LocalDeployment, browser: Browser, school: MeetingSchool
) -> None:
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="ru-RU", is_mobile=True, has_touch=True
    )
    phone.set_default_timeout(20_000)
    try:
        page = _signed_in(region, phone, school.class_teacher)
        for url in (
            _class_url(region, school),
            f"{_class_url(region, school)}/meetings/new",
            f"{_class_url(region, school)}/meetings/{_latest_meeting(region, school)}",
        ):
            page.goto(url)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{url} is {width} px wide on a 390 px phone"
        screenshot(page, "meeting-phone")
    finally:
        phone.close()
