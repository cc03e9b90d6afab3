"""From the admin UI to a lesson, a parents' meeting and documents, for each role.

A class teacher, a pupil and a parent sign in to the admin UI in Chromium, find their
links on their home page, follow one and are in the call (the region's widget service,
standalone, signed in with the same password; this Chromium has no microphone or camera,
so each listens). The class page gives the same links, and the call page opened without
a room says what is missing.
"""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.models import ManagedRoom, Person
from provisioning.services import schools as svc
from tests.harness.api import created, sync_now
from tests.harness.waiting import eventually
from tests.test_api import token_for
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import sign_in

PASSWORD = "call-links-password"
WAIT_MS = 60_000


@dataclass(frozen=True)
class Family:
    school_id: int
    class_id: int
    users: dict[str, str]  # "teacher", "pupil", "parent" -> Matrix ID
    rooms: dict[str, str]  # "lesson", "meeting", "family" -> room ID


async def _placed(
    region: LocalDeployment, rooms: dict[str, tuple[str, set[str]]]
) -> dict[str, str]:
    """Wait for the reconciler to make each room (key -> alias, the people it must hold)
    and place its people there; their room IDs."""
    engine = make_engine(region.settings.sqlalchemy_url)

    async def made() -> dict[str, str] | None:
        found: dict[str, str] = {}
        with make_session_factory(engine)() as session:
            for key, (alias, people) in rooms.items():
                record = session.get(ManagedRoom, alias)
                if record is None or not record.room_id:
                    return None
                if not people <= set(record.applied.get("members", [])):
                    return None
                found[key] = record.room_id
        return found

    try:
        return await eventually(made, "the rooms made with their people", within=180)
    finally:
        engine.dispose()


async def _family(region: LocalDeployment) -> Family:
    settings = region.settings
    admin = await token_for(
        region, settings.region_admin_user_id, settings.region_admin_password.get_secret_value()
    )
    headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(
        base_url=settings.provisioning_url, headers=headers, timeout=120
    ) as api:
        tag = secrets.token_hex(3)
        slug = f"links-{tag}"
        school = await created(
            api, "/api/v1/schools", {"name": f"Школа {tag}", "slug": slug, "academic_year": 2026}
        )
        sid = school["id"]
        school_class = await created(api, f"/api/v1/schools/{sid}/classes", {"label": "4В"})
        people = f"/api/v1/schools/{sid}/people"
        teacher = await created(
            api,
            people,
            {"display_name": "Анна Учителева", "role": "class_teacher", "class_label": "4В"},
        )
        pupil = await created(
            api, people, {"display_name": "Вова Ученик", "role": "pupil", "class_label": "4В"}
        )
        parent = await created(
            api, people, {"display_name": "Папа Вовы", "role": "parent", "children": [pupil["id"]]}
        )
        engine = make_engine(settings.sqlalchemy_url)
        try:
            with make_session_factory(engine)() as session:  # the parent's confirmation
                child, father = session.get(Person, pupil["id"]), session.get(Person, parent["id"])
                assert child is not None and father is not None
                svc.confirm_pupil(session, child, parent=father)
                session.commit()
        finally:
            engine.dispose()
        await sync_now(api)
    users = {
        "teacher": str(teacher["matrix_user_id"]),
        "pupil": str(pupil["matrix_user_id"]),
        "parent": str(parent["matrix_user_id"]),
    }
    space = f"school-{slug}-{2026 + 1 + 11 - 4}v"
    rooms = await _placed(
        region,
        {
            "lesson": (f"{space}-chat", {users["teacher"], users["pupil"]}),
            "meeting": (f"{space}-parents", {users["teacher"], users["parent"]}),
            "family": (f"family-{parent['id']}-{pupil['id']}", {users["parent"], users["pupil"]}),
        },
    )
    async with MatrixClient(settings.homeserver_url, settings.as_token.get_secret_value()) as bot:
        for user_id in users.values():
            await bot.admin_put_user(user_id, {"password": PASSWORD})
    return Family(sid, int(school_class["id"]), users, rooms)


@pytest.fixture(scope="module")
def family(region: LocalDeployment) -> Family:
    with ThreadPoolExecutor(max_workers=1) as pool:  # Playwright's sync API owns this loop
        return pool.submit(asyncio.run, _family(region)).result(timeout=300)


def call_href(region: LocalDeployment, room_id: str) -> str:
    base = region.settings.widgets_base_url
    return f"{base.rstrip('/')}/call/?room_id={quote(room_id, safe='')}"


def join_by_link(home: Page, link_text: str, user_id: str) -> Page:
    """Follow a call link of the home page (a new tab), sign in to the call, join."""
    with home.context.expect_page() as opened:
        home.get_by_role("link", name=link_text).click()
    call = opened.value
    expect(call.locator("#login h1")).to_have_text("Вход в звонок", timeout=WAIT_MS)
    call.fill("input[name=user]", user_id)
    call.fill("input[name=password]", PASSWORD)
    call.click("#login-form button")
    expect(call.locator("#call-media-note")).to_be_hidden()  # not in the call yet
    call.click("#join")
    expect(call.locator("#status")).to_have_text("В звонке", timeout=WAIT_MS)
    expect(call.locator("#call-media-note")).to_contain_text("только смотреть и слушать")
    return call


def home_of(context: BrowserContext, region: LocalDeployment, user_id: str) -> Page:
    page = context.new_page()
    sign_in(page, region.settings.provisioning_url, user_id, PASSWORD)
    expect(page.locator("h1")).to_contain_text("Здравствуйте", timeout=WAIT_MS)
    return page


def test_a_class_teacher_finds_her_lesson_meeting_and_documents(
    region: LocalDeployment, context: BrowserContext, family: Family
) -> None:
    home = home_of(context, region, family.users["teacher"])
    lesson = home.get_by_role("link", name="Урок (звонок)")
    expect(lesson).to_have_attribute("href", call_href(region, family.rooms["lesson"]))
    meeting = home.get_by_role("link", name="Родительское собрание (звонок)")
    expect(meeting).to_have_attribute("href", call_href(region, family.rooms["meeting"]))
    expect(home.get_by_role("link", name="Документы класса")).to_have_count(1)
    expect(home.get_by_role("link", name="Мои документы")).to_have_count(1)
    screenshot(home, "ru-teacher-home-call-links")

    base = region.settings.provisioning_url
    home.goto(f"{base}/schools/{family.school_id}/classes/{family.class_id}")
    calls = home.locator("#calls")
    expect(calls.get_by_role("link", name="Урок (звонок)")).to_have_count(1)
    expect(calls.get_by_role("link", name="Родительское собрание (звонок)")).to_have_count(1)
    home.goto(f"{base}/")
    join_by_link(home, "Урок (звонок)", family.users["teacher"])


def test_a_pupil_joins_the_lesson_from_her_home_page(
    region: LocalDeployment, context: BrowserContext, family: Family
) -> None:
    home = home_of(context, region, family.users["pupil"])
    expect(home.get_by_role("link", name="Родительское собрание (звонок)")).to_have_count(0)
    expect(home.get_by_role("link", name="Мои документы")).to_have_count(1)
    call = join_by_link(home, "Урок (звонок)", family.users["pupil"])
    expect(call.locator("#mic-note")).to_be_hidden()  # no microphone: nothing to unlock


def test_a_parent_joins_the_parents_meeting_and_may_call_the_child(
    region: LocalDeployment, browser: Browser, family: Family
) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, locale="ru-RU"
    )
    try:
        home = home_of(context, region, family.users["parent"])
        expect(home.get_by_role("link", name="Урок (звонок)")).to_have_count(0)
        child_call = home.get_by_role("link", name="Звонок с ребёнком")
        expect(child_call).to_have_attribute("href", call_href(region, family.rooms["family"]))
        screenshot(home, "ru-parent-home-call-links-phone")
        join_by_link(home, "Родительское собрание (звонок)", family.users["parent"])
    finally:
        context.close()


def test_the_call_page_without_a_room_says_what_is_missing(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.widgets_base_url
    page = context.new_page()
    for address in (f"{base}/call/", f"{base}/call/?room_id=урок"):
        page.goto(address)
        expect(page.locator("#no-room h1")).to_have_text("Какой звонок открыть?")
        expect(page.locator("#no-room")).to_contain_text("room_id")
        expect(page.locator("#no-room-link")).to_have_attribute("href", region.settings.web_url)
        expect(page.locator("#login")).to_be_hidden()
