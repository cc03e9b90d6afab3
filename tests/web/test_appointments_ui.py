"""Individual appointments in real Chromium against the running region: a teacher offers
slots, a parent on a 390 px phone books one, a second parent's attempt at the same slot is
refused, the parent cancels and the slot is free again; the private room with its message
and a reminder (the clock driven with a given moment) read by the parent through the real
Synapse; a parent of another school neither sees nor books."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.appointments.clock import AppointmentClock
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.models import AppointmentBooking, AppointmentSlot
from tests.harness.appointments import PASSWORD, AppointmentSchool, make_school
from tests.harness.broadcasts import login_of
from tests.harness.meetings import ParentReader
from tests.harness.region import region_session
from tests.harness.waiting import wait_until
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import run_async_value, sign_in


@pytest.fixture(scope="module")
def school(region: LocalDeployment) -> AppointmentSchool:
    return make_school(region)


def _phone(browser: Browser) -> BrowserContext:
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="ru-RU", is_mobile=True, has_touch=True
    )
    phone.set_default_timeout(20_000)
    return phone


def _signed_in(region: LocalDeployment, context: BrowserContext, user_id: str) -> Page:
    page = context.new_page()
    sign_in(page, region.settings.provisioning_url, login_of(user_id), PASSWORD)
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    return page


def _fits(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} is {width} px wide on a 390 px phone"


def _tick(region: LocalDeployment, moment: datetime) -> list[tuple[int, str]]:
    """The appointments' clock at a given moment, as a second provisioning process would."""

    async def run() -> list[tuple[int, str]]:
        s = region.settings
        engine = make_engine(s.sqlalchemy_url)
        try:
            async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as client:
                clock = AppointmentClock(client, make_session_factory(engine), s)
                return (await clock.tick(moment)).sent
        finally:
            engine.dispose()

    return run_async_value(run())


def test_a_teacher_offers_a_parent_books_on_a_phone_the_room_reminds_and_cancelling_frees(
    region: LocalDeployment, browser: Browser, context: BrowserContext, school: AppointmentSchool
) -> None:
    base = region.settings.provisioning_url
    teacher = _signed_in(region, context, school.teacher)
    teacher.click("#appointments-link a")
    expect(teacher.locator("h1")).to_have_text("Встречи с родителями")
    day = date.today() + timedelta(days=2)
    form = teacher.locator("form.offer-form")
    form.locator("input[name=date]").fill(day.isoformat())
    form.locator("input[name=time_from]").fill("17:00")
    form.locator("input[name=time_to]").fill("16:00")
    form.locator("button[type=submit]").click()
    expect(teacher.locator("#appointment-error")).to_contain_text("конец должен быть позже")
    form.locator("input[name=time_to]").fill("17:30")
    form.locator("input[name=length]").fill("15")
    form.locator("button[type=submit]").click()
    expect(teacher).to_have_url(f"{base}/appointments")
    expect(teacher.locator("#hosted li.hosted-slot[data-state=free]")).to_have_count(2)

    phone = _phone(browser)
    second = _phone(browser)
    try:
        parent = _signed_in(region, phone, school.parent)
        other = _signed_in(region, second, school.second_parent)
        slots = parent.locator("#open-slots li.slot")
        expect(slots).to_have_count(2)
        expect(slots.first).to_contain_text("17:00")
        expect(other.locator("#open-slots li.slot")).to_have_count(2)  # both see the slot
        _fits(parent)
        screenshot(parent, "appointments-open-slots-phone")
        slots.first.get_by_role("button", name="Записаться").click()
        expect(parent.locator("#my-appointments li.booking")).to_have_count(1)
        expect(parent.locator("#my-appointments li.booking")).to_contain_text("17:00")
        # One slot per offer: the other slot of the offer is not offered to her any more.
        expect(parent.locator("#open-slots li.slot")).to_have_count(0)
        _fits(parent)

        # The second parent still has the page from before: the same slot is refused.
        other.locator("#open-slots li.slot").first.get_by_role("button", name="Записаться").click()
        expect(other.locator("#appointment-error")).to_contain_text(
            "Это время только что записал другой родитель"
        )
        expect(other.locator("#open-slots li.slot")).to_have_count(1)  # the 17:15 one
        expect(other.locator("#open-slots li.slot")).to_contain_text("17:15")

        teacher.reload()
        expect(teacher.locator("#hosted li.hosted-slot[data-state=booked]")).to_contain_text(
            school.parent_name
        )

        # The private room, made by the service's own clock at the booking.
        with region_session(region) as session:
            booking_id, slot_id = session.execute(
                select(AppointmentBooking.id, AppointmentBooking.slot_id)
                .join(AppointmentSlot)
                .where(AppointmentSlot.school_id == school.school_id)
            ).one()

        def room() -> str | None:
            with region_session(region) as session:
                return session.scalar(
                    select(AppointmentBooking.room_id).where(AppointmentBooking.id == booking_id)
                )

        room_id = wait_until(room, "the appointment's room", within=90, every=1)
        reader = ParentReader(region, school.parent, room_id)
        zone = ZoneInfo(region.settings.timezone)
        message = reader.wait_for("Встреча:", school.parent_name, school.child_name)
        assert f"{day:%d.%m.%Y}, 17:00–17:15" in message
        assert f"/call/?room_id={room_id.replace('!', '%21').replace(':', '%3A')}" in message
        starts = datetime.combine(day, datetime.strptime("17:00", "%H:%M").time(), zone)
        sent = _tick(region, (starts - timedelta(minutes=10)).astimezone(UTC))
        assert sent == [(booking_id, "remind_15m")]
        reader.wait_for("Через 15 минут: ваша встреча", "17:00")
        assert _tick(region, (starts - timedelta(minutes=5)).astimezone(UTC)) == []  # once

        # The parent cancels: the teacher is told in the room, the slot is free again.
        parent.locator("#my-appointments li.booking").get_by_role(
            "button", name="Отменить запись"
        ).click()
        expect(parent.locator("#my-appointments li.booking")).to_have_count(0)
        expect(parent.locator("#open-slots li.slot")).to_have_count(2)
        reader.wait_for("Родитель отменил встречу", "снова свободно")
        other.goto(base)  # her page is the refused POST's answer: not reloaded (it would post)
        expect(other.locator("#open-slots li.slot")).to_have_count(2)
        _fits(other)
        other.locator("#open-slots li.slot").first.get_by_role("button", name="Записаться").click()
        expect(other.locator("#my-appointments li.booking")).to_contain_text("17:00")
        with region_session(region) as session:
            again = session.scalar(
                select(AppointmentBooking.id).where(AppointmentBooking.holds_slot == slot_id)
            )
        assert again is not None and again != booking_id

        # The teacher cancels the slot: the second parent is told in their own room.
        teacher.reload()
        teacher.locator("#hosted li.hosted-slot[data-state=booked]").get_by_role(
            "button", name="Отменить это время"
        ).click()
        expect(teacher.locator("#hosted li.hosted-slot[data-state=cancelled]")).to_have_count(1)

        def second_room() -> str | None:
            with region_session(region) as session:
                return session.scalar(
                    select(AppointmentBooking.room_id).where(AppointmentBooking.id == again)
                )

        second_reader = ParentReader(
            region, school.second_parent, wait_until(second_room, "the second room", within=90)
        )
        assert second_reader.room_id != room_id  # a room per booking
        second_reader.wait_for("Учитель отменил встречу", "17:00")
        other.goto(base)
        expect(other.locator("#my-appointments li.booking")).to_have_count(0)
        expect(other.locator("#open-slots li.slot")).to_have_count(1)  # 17:15; 17:00 is gone
    finally:
        phone.close()
        second.close()


def test_a_parent_of_another_school_neither_sees_nor_books(
    region: LocalDeployment, context: BrowserContext, school: AppointmentSchool
) -> None:
    with region_session(region) as session:
        slot_id = session.scalar(
            select(AppointmentSlot.id).where(AppointmentSlot.school_id == school.school_id)
        )
        booking_id = session.scalar(
            select(AppointmentBooking.id)
            .join(AppointmentSlot)
            .where(AppointmentSlot.school_id == school.school_id)
        )
    assert slot_id is not None and booking_id is not None, "the first test books"
    page = _signed_in(region, context, school.stranger)
    expect(page.locator("#open-slots")).to_contain_text("нет свободного времени")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    base = region.settings.provisioning_url
    statuses = page.evaluate(
        """async ([base, slot, token, booking]) => {
            const post = async (url) => (await fetch(base + url,
              {method: 'POST', body: new URLSearchParams({csrf_token: token})})).status;
            return [await post(`/appointments/slots/${slot}/book`),
                    await post(`/appointments/slots/${slot}/cancel`),
                    await post(`/appointments/bookings/${booking}/cancel`)];
        }""",
        [base, slot_id, token, booking_id],
    )
    assert statuses == [404, 404, 404]
    # Without the CSRF token the server refuses before looking.
    status = page.evaluate(
        """async (url) => (await fetch(url, {method: 'POST'})).status""",
        f"{base}/appointments/slots/{slot_id}/book",
    )
    assert status in (400, 403)
