"""A call in a room nobody moderates: a parent and child's family room, as Parta makes it.

Provisioning creates the family room once a parent confirms their child: the bot has
all the power, the parent and the child none. Nobody could ever give the floor there, so
the SFU opens it to all (`moderation.floor_is_open`), read from the room's power levels.
A class's lesson, where the teacher holds the kick level, stays moderated
(checked here in a real class chat, and in `test_call_page.py`).
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from playwright.async_api import Browser, expect
from sqlalchemy import select

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.models import ManagedRoom, Person, RoomKind
from provisioning.services import schools as svc
from tests.call.conftest import until
from tests.call.test_call_page import Lesson, audio_packets, open_widget, screenshot_frame
from tests.call.test_call_page import browser as browser  # the fixture, re-exported
from tests.harness.api import created, sync_now
from tests.matrix_users import logged_in, openid_token
from tests.test_api import token_for
from widgets.call.room_access import read_room_members

PASSWORD = "family-call-password"


async def family_room(region: LocalDeployment, bot: MatrixClient) -> tuple[Lesson, str]:
    """A school's pupil and her parent, confirmed by the parent: their family room; and
    the room ID of the pupil's class chat, where a class teacher moderates."""
    settings = region.settings
    admin = await token_for(
        region, settings.region_admin_user_id, settings.region_admin_password.get_secret_value()
    )
    headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(
        base_url=settings.provisioning_url, headers=headers, timeout=120
    ) as api:
        tag = secrets.token_hex(3)
        school = await created(
            api,
            "/api/v1/schools",
            {"name": f"Школа {tag}", "slug": f"family-{tag}", "academic_year": 2026},
        )
        people = f"/api/v1/schools/{school['id']}/people"
        school_class = await created(
            api, f"/api/v1/schools/{school['id']}/classes", {"label": "3Б"}
        )
        teacher = await created(
            api,
            people,
            {"display_name": "Ирина Петровна", "role": "class_teacher", "class_label": "3Б"},
        )
        child = await created(
            api, people, {"display_name": "Петя Семейный", "role": "pupil", "class_label": "3Б"}
        )
        parent = await created(
            api, people, {"display_name": "Мама Пети", "role": "parent", "children": [child["id"]]}
        )
        engine = make_engine(settings.sqlalchemy_url)
        try:
            with make_session_factory(engine)() as session:  # the parent's «Да, это мой ребёнок»
                pupil, mother = session.get(Person, child["id"]), session.get(Person, parent["id"])
                assert pupil is not None and mother is not None
                svc.confirm_pupil(session, pupil, parent=mother)
                session.commit()
            await sync_now(api)
            alias = f"family-{parent['id']}-{child['id']}"
            members = {child["matrix_user_id"], parent["matrix_user_id"]}
            in_class = {child["matrix_user_id"], teacher["matrix_user_id"]}
            room_id = chat_id = ""

            def placed() -> bool:
                nonlocal room_id, chat_id
                with make_session_factory(engine)() as session:
                    record = session.get(ManagedRoom, alias)
                    chat = session.scalar(
                        select(ManagedRoom).where(
                            ManagedRoom.class_id == school_class["id"],
                            ManagedRoom.kind == RoomKind.CLASS_CHAT,
                        )
                    )
                    if not (record and record.room_id and chat and chat.room_id):
                        return False
                    room_id, chat_id = record.room_id, chat.room_id
                    return members <= set(record.applied.get("members", [])) and in_class <= set(
                        chat.applied.get("members", [])
                    )

            await until(placed, "the family room and the class chat with their people", 120)
        finally:
            engine.dispose()
    users = {"parent": str(parent["matrix_user_id"]), "child": str(child["matrix_user_id"])}
    tokens: dict[str, dict[str, Any]] = {}
    for key, user_id in users.items():
        await bot.admin_put_user(user_id, {"password": PASSWORD})
        async with logged_in(region, user_id, PASSWORD) as client:
            joined = await client.joined_rooms()  # provisioning joined them
            assert room_id in getattr(joined, "rooms", []), joined
            tokens[key] = {**await openid_token(client), "user_id": user_id}
    return Lesson(room_id, users, dict.fromkeys(users, PASSWORD), tokens), chat_id


async def test_parent_and_child_talk_freely_in_their_family_room_a_lesson_stays_moderated(
    browser: Browser, widget_host: str, widgets_url: str, region: LocalDeployment, bot: MatrixClient
) -> None:
    family, class_chat = await family_room(region, bot)
    bot_user_id = region.settings.bot_user_id
    assert (await read_room_members(bot, family.room_id, bot_user_id=bot_user_id)).open_floor
    lesson = await read_room_members(bot, class_chat, bot_user_id=bot_user_id)
    assert not lesson.open_floor  # the class teacher holds the kick level there
    parent_id, child_id = family.users["parent"], family.users["child"]
    parent_page, parent = await open_widget(browser, widget_host, widgets_url, family, "parent")
    child_page, child = await open_widget(browser, widget_host, widgets_url, family, "child")
    await until(lambda: audio_packets(parent, child_id), "the child's voice at the parent's")
    await until(lambda: audio_packets(child, parent_id), "the parent's voice at the child's")
    for frame in (parent, child):
        await expect(frame.locator("#mic")).to_be_enabled()
        await expect(frame.locator("#hand")).to_be_hidden()  # nobody to raise a hand to
    await screenshot_frame(child_page, "call-family-room")

    # The same child in her class's lesson (a real class chat, its teacher not in the
    # call yet): muted until given the floor, and told so in words.
    in_class = Lesson(class_chat, family.users, family.passwords, family.tokens)
    lesson_page, lesson_frame = await open_widget(
        browser, widget_host, widgets_url, in_class, "child"
    )
    await expect(lesson_frame.locator("#mic")).to_be_disabled()
    await expect(lesson_frame.locator("#mic-note")).to_contain_text("Ваш микрофон выключен")
    await expect(lesson_frame.locator("#hand")).to_be_visible()
    await lesson_page.context.close()
    for page in (parent_page, child_page):
        await page.context.close()
