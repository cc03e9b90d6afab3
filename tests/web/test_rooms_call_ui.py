"""The rooms page's call button, in a real browser, read back from the real Synapse."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import select

from matrix.client import MatrixClient, path
from matrix.errors import NotFound
from parta.deployment import LocalDeployment
from provisioning.db.models import ManagedRoom, Region, Role, RoomKind
from provisioning.reconciler.state import CALL_WIDGET_ID, WIDGETS_EVENT, RoomWidget
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import PASSWORD, db_session, run_async, run_async_value, sign_in


@dataclass(frozen=True)
class CallSchool:
    school_id: int
    slug: str
    director: str  # a school administrator (not the region's)
    teacher: str


async def _set_passwords(region: LocalDeployment, *user_ids: str) -> None:
    s = region.settings
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as client:
        for user_id in user_ids:
            await client.admin_put_user(user_id, {"password": PASSWORD})


def _reconcile(region: LocalDeployment) -> None:
    s = region.settings
    response = httpx.post(
        f"{s.provisioning_url}/internal/reconcile",
        headers={"Authorization": f"Bearer {s.as_token.get_secret_value()}"},
        timeout=10,
    )
    response.raise_for_status()


@pytest.fixture(scope="module")
def call_school(region: LocalDeployment) -> CallSchool:
    """A school with a class, its director and a teacher, placed on Matrix."""
    tag = secrets.token_hex(3)
    with db_session(region) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        school = svc.create_school(session, region_row, f"Школа звонков {tag}", slug=f"c-{tag}",
                                   academic_year=2026)  # fmt: skip
        svc.add_class(session, school, 5, "А")
        allocate = LocalpartAllocator(session, region.settings.server_name)
        people = {}
        for key, name, role in (("director", f"Директор {tag}", Role.SCHOOL_ADMIN),
                                ("teacher", f"Учитель {tag}", Role.TEACHER)):  # fmt: skip
            person = svc.add_person(session, name, matrix_user_id=allocate.user_id(name))
            svc.grant_school_role(session, person, school, role)
            people[key] = str(person.matrix_user_id)
        session.commit()
        setup = CallSchool(school.id, school.slug, people["director"], people["teacher"])
    run_async(_set_passwords(region, setup.director, setup.teacher))
    _reconcile(region)
    deadline = time.monotonic() + 120
    with db_session(region) as session:
        while time.monotonic() < deadline:
            session.rollback()  # see what the service's reconciler committed since
            ids = session.scalars(
                select(ManagedRoom.room_id).where(ManagedRoom.school_id == setup.school_id)
            ).all()
            # The school's space, announcements, materials, events and staff room; the
            # class's four.
            if len(ids) == 9 and all(ids):
                return setup
            time.sleep(1)
    pytest.fail(f"the school's rooms were not created: {ids}")


async def _widget(region: LocalDeployment, room_id: str) -> dict[str, Any] | None:
    s = region.settings
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as bot:
        try:
            return await bot.request(
                "GET", path("rooms", room_id, "state", WIDGETS_EVENT, CALL_WIDGET_ID)
            )
        except NotFound:
            return None


def _wait_for_widget(region: LocalDeployment, room_id: str, want: RoomWidget | None) -> None:
    """Until Synapse holds the widget the reconciler should have put (or taken out)."""
    deadline = time.monotonic() + 60
    content: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        content = run_async_value(_widget(region, room_id))
        if RoomWidget.from_content(content or {}) == want:
            return
        time.sleep(0.5)
    pytest.fail(f"the call widget in {room_id} is {content}, not {want}")


def _login(user_id: str) -> str:
    return user_id[1:].partition(":")[0]


def _page_of(region: LocalDeployment, context: BrowserContext, user_id: str) -> Page:
    page = context.new_page()
    sign_in(page, region.settings.provisioning_url, _login(user_id), PASSWORD)
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    return page


def test_a_school_admin_adds_a_call_to_the_staff_room_and_removes_it(
    region: LocalDeployment, context: BrowserContext, call_school: CallSchool
) -> None:
    s = region.settings
    base = s.provisioning_url
    rooms_url = f"{base}/schools/{call_school.school_id}/rooms"
    staff_alias = f"school-{call_school.slug}-staff"
    with db_session(region) as session:
        staff = session.get(ManagedRoom, staff_alias)
        assert staff is not None and staff.room_id is not None and staff.call_widget is None
        staff_room_id = staff.room_id
        chat_alias = session.scalars(
            select(ManagedRoom.alias).where(
                ManagedRoom.school_id == call_school.school_id,
                ManagedRoom.kind == RoomKind.CLASS_CHAT,
            )
        ).one()
    _wait_for_widget(region, staff_room_id, None)  # the staff room has no call by default

    page = _page_of(region, context, call_school.director)
    page.goto(rooms_url)
    staff_row = page.locator(f"#room-{staff_alias}")
    expect(staff_row.locator(".call")).to_have_text("нет звонка")
    # Class chats have their call already; spaces show no widgets, so they get no button.
    chat_row = page.locator(f"[id='room-{chat_alias}']")
    expect(chat_row.locator(".call")).to_have_text("есть звонок")
    space_row = page.locator(f"[id='room-school-{call_school.slug}']")
    expect(space_row.locator("form[action$='/call']")).to_have_count(0)

    staff_row.locator("text=Добавить звонок").click()
    expect(page.locator(f"#room-{staff_alias} .call")).to_have_text("есть звонок")
    screenshot(page, "ru-rooms-call")
    with db_session(region) as session:
        staff = session.get(ManagedRoom, staff_alias)
        assert staff is not None and staff.call_widget is True
    # The run the change asked for puts the widget into the room on Synapse.
    _wait_for_widget(region, staff_room_id, RoomWidget(s.call_widget_url, "Звонок"))
    page.goto(f"{base}/schools/{call_school.school_id}/audit")
    expect(page.locator("table")).to_contain_text("Добавлен звонок: Учительская")

    page.goto(rooms_url)
    page.locator(f"#room-{staff_alias} >> text=Убрать звонок").click()
    expect(page.locator(f"#room-{staff_alias} .call")).to_have_text("нет звонка")
    _wait_for_widget(region, staff_room_id, None)
    with db_session(region) as session:
        staff = session.get(ManagedRoom, staff_alias)
        assert staff is not None and staff.call_widget is False

    page.click("text=English")
    expect(page.locator(f"#room-{staff_alias}")).to_contain_text("Add a call")
    expect(page.locator(f"#room-{staff_alias} .call")).to_have_text("no call")
    page.goto(f"{base}/schools/{call_school.school_id}/audit")
    expect(page.locator("table")).to_contain_text("Call removed: Staff room")

    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    space = page.request.post(f"{rooms_url}/school-{call_school.slug}/call",
                              form={"call": "yes", "csrf_token": token})  # fmt: skip
    assert space.status == 400
    missing = page.request.post(f"{rooms_url}/school-nowhere-staff/call",
                                form={"call": "yes", "csrf_token": token})  # fmt: skip
    assert missing.status == 404
    forged = page.request.post(f"{rooms_url}/{staff_alias}/call", form={"call": "yes"})
    assert forged.status == 403  # no CSRF token


def test_a_teacher_may_not_add_calls(
    region: LocalDeployment, context: BrowserContext, call_school: CallSchool
) -> None:
    base = region.settings.provisioning_url
    rooms_url = f"{base}/schools/{call_school.school_id}/rooms"
    staff_alias = f"school-{call_school.slug}-staff"
    page = _page_of(region, context, call_school.teacher)
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    assert token
    response = page.goto(rooms_url)
    assert response is not None and response.status == 403
    refused = page.request.post(f"{rooms_url}/{staff_alias}/call",
                                form={"call": "yes", "csrf_token": token})  # fmt: skip
    assert refused.status == 403
    with db_session(region) as session:
        staff = session.get(ManagedRoom, staff_alias)
        assert staff is not None and staff.call_widget is not True
