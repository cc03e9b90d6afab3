"""Meeting mode in real headless Chromium: the teacher opens the call to everyone, mutes,
and makes it a lesson again; a class's parents chat starts as an open meeting.

The pages are the call widget in the widget host (`test_call_page.open_widget`), with
Chromium's fake microphone, against the real Synapse and the real provisioning service.
What reaches a page is read from its WebRTC statistics, not from what the SFU says.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from playwright.async_api import Browser, Frame, expect
from sqlalchemy import select

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.db.models import ManagedRoom, RoomKind
from tests.call.conftest import WAIT_S, until
from tests.call.test_call_page import (
    Lesson,
    audio_packets,
    open_widget,
    screenshot_frame,
)
from tests.call.test_call_page import browser as browser  # the fixture, re-exported
from tests.call.test_call_page import lesson as lesson  # the fixture, re-exported
from tests.harness.api import created, sync_now
from tests.harness.region import region_session
from tests.matrix_users import logged_in, openid_token
from tests.test_api import token_for
from widgets.call.room_access import read_room_members

TIMEOUT_MS = WAIT_S * 1000
PASSWORD = "meeting-mode-password"


async def audio_not_from(frame: Frame, user_id: str) -> int:
    """Audio packets this page received on every slot but the one showing `user_id`: any
    other voice, labelled or not, counts, so a stream forwarded by mistake shows here."""
    result: int = await frame.evaluate(
        """async (user) => {
            if (!call.pc || !call.state) return 0;
            const stats = await call.pc.getStats();
            let packets = 0;
            stats.forEach((r) => {
                if (r.type !== "inbound-rtp" || r.kind !== "audio") return;
                const shown = call.state.slots[r.mid];
                if (!(shown && shown.user_id === user)) packets += r.packetsReceived || 0;
            });
            return packets;
        }""",
        user_id,
    )
    return result


async def stays_silent(frame: Frame, but: str) -> None:
    """Nothing but `but`'s voice reaches the page: what was in flight lands, then no more.

    On a loaded machine the page's statistics may lag the SFU by more than a second, so
    first the count must settle (a second without a new packet, within `WAIT_S`); then it
    must stay so for two seconds more.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    heard = await audio_not_from(frame, but)
    while True:
        await asyncio.sleep(1.0)
        now_heard = await audio_not_from(frame, but)
        if now_heard == heard:
            break
        assert loop.time() < deadline, f"other voices kept reaching the page: {now_heard}"
        heard = now_heard
    await asyncio.sleep(2.0)
    assert await audio_not_from(frame, but) == heard


async def test_the_teacher_opens_the_call_mutes_and_makes_it_a_lesson_again(
    browser: Browser, widget_host: str, widgets_url: str, lesson: Lesson
) -> None:
    teacher_id, ivan_id = lesson.users["teacher"], lesson.users["ivan"]
    teacher_page, teacher = await open_widget(browser, widget_host, widgets_url, lesson, "teacher")
    ivan_page, ivan = await open_widget(browser, widget_host, widgets_url, lesson, "ivan")
    masha_page, masha = await open_widget(browser, widget_host, widgets_url, lesson, "masha")
    # A room that is no parents chat: the call starts as a lesson, and says so.
    await expect(masha.locator("#mode-note")).to_have_text(
        "Урок: говорит учитель и те, кому он дал слово."
    )
    await expect(teacher.locator("#mode-lesson")).to_be_checked()
    await expect(ivan.locator("#mode")).to_be_hidden()  # the control is the teacher's
    await expect(ivan.locator("#mic")).to_be_disabled()

    # Ivan's page forges the switch: refused in words, and nothing changes for anyone.
    await ivan.evaluate("send({type: 'mode', mode: 'open'})")
    await expect(ivan.locator("#status")).to_have_text(
        "Режим звонка переключает только учитель.", timeout=TIMEOUT_MS
    )
    await expect(teacher.locator("#mode-lesson")).to_be_checked()
    await ivan.evaluate("call.local.audio.enabled = true")  # and forces his microphone on
    await stays_silent(masha, but=teacher_id)

    # The teacher opens the meeting: Ivan, without the floor, is heard at Masha's.
    await teacher.locator("#mode-open").check()
    for frame in (ivan, masha):
        await expect(frame.locator("#mode-note")).to_have_text(
            "Открытое собрание: говорить и включать камеру могут все.", timeout=TIMEOUT_MS
        )
    await expect(teacher.locator("#mode-note")).to_contain_text("Вы можете выключить участнику")
    await expect(ivan.locator("#mic")).to_be_enabled(timeout=TIMEOUT_MS)
    await until(lambda: audio_packets(masha, ivan_id), "Ivan's voice at Masha's in the meeting")
    await screenshot_frame(teacher_page, "call-meeting-teacher")

    # The teacher mutes Ivan: his voice stops reaching Masha, whatever his page does.
    ivan_row = teacher.locator(f'#people li[data-user="{ivan_id}"]')
    await ivan_row.locator('button[data-action="mute"]').click()
    await expect(ivan.locator("#mic")).to_be_disabled(timeout=TIMEOUT_MS)
    await expect(ivan.locator("#mic-note")).to_contain_text("Учитель выключил вам микрофон")
    await ivan.evaluate("call.local.audio.enabled = true")
    await ivan.evaluate("send({type: 'unmute', target: call.you})")  # not his to lift
    await expect(ivan.locator("#status")).to_have_text(
        "Это может сделать только учитель.", timeout=TIMEOUT_MS
    )
    await stays_silent(masha, but=teacher_id)
    await screenshot_frame(ivan_page, "call-meeting-muted")

    # Unmuted, he is heard again; back in a lesson, without the floor, he is not.
    await ivan_row.locator('button[data-action="unmute"]').click()
    await expect(ivan.locator("#mic")).to_be_enabled(timeout=TIMEOUT_MS)
    heard = await audio_packets(masha, ivan_id)
    await until(
        lambda: _more(audio_packets(masha, ivan_id), heard), "Ivan's voice again once unmuted"
    )
    await teacher.locator("#mode-lesson").check()
    await expect(ivan.locator("#mode-note")).to_have_text(
        "Урок: говорит учитель и те, кому он дал слово.", timeout=TIMEOUT_MS
    )
    await expect(ivan.locator("#mic")).to_be_disabled()
    await ivan.evaluate("call.local.audio.enabled = true")
    await stays_silent(masha, but=teacher_id)
    # The teacher's own voice still reaches Masha: only the others' stopped.
    heard = await audio_packets(masha, teacher_id)
    await until(lambda: _more(audio_packets(masha, teacher_id), heard), "the teacher's voice")
    for page in (teacher_page, ivan_page, masha_page):
        await page.context.close()


async def _more(count: Any, than: int) -> bool:
    return bool(await count > than)


@dataclass
class ClassRooms:
    parents: Lesson  # the parents chat, with two parents and the class teacher
    chat_id: str  # the class chat: a lesson
    teacher: str


async def class_with_parents(region: LocalDeployment, bot: MatrixClient) -> ClassRooms:
    """A school's class with its class teacher, two pupils and a parent of each, as
    provisioning makes them: its parents chat and its class chat."""
    settings = region.settings
    admin = await token_for(
        region, settings.region_admin_user_id, settings.region_admin_password.get_secret_value()
    )
    async with httpx.AsyncClient(
        base_url=settings.provisioning_url,
        headers={"Authorization": f"Bearer {admin}"},
        timeout=120,
    ) as api:
        tag = secrets.token_hex(3)
        school = await created(
            api,
            "/api/v1/schools",
            {"name": f"Школа {tag}", "slug": f"meeting-{tag}", "academic_year": 2026},
        )
        people = f"/api/v1/schools/{school['id']}/people"
        school_class = await created(
            api, f"/api/v1/schools/{school['id']}/classes", {"label": "4А"}
        )
        teacher = await created(
            api,
            people,
            {"display_name": "Анна Ивановна", "role": "class_teacher", "class_label": "4А"},
        )
        parents: dict[str, str] = {}
        for key, child_name, parent_name in (
            ("anna", "Коля Собранный", "Анна Колина"),
            ("boris", "Оля Собранная", "Борис Олин"),
        ):
            child = await created(
                api, people, {"display_name": child_name, "role": "pupil", "class_label": "4А"}
            )
            parent = await created(
                api,
                people,
                {"display_name": parent_name, "role": "parent", "children": [child["id"]]},
            )
            parents[key] = str(parent["matrix_user_id"])
        await sync_now(api)
    wanted = {*parents.values(), str(teacher["matrix_user_id"])}
    rooms: dict[RoomKind, str] = {}

    def placed() -> bool:
        with region_session(region) as session:
            found = session.scalars(
                select(ManagedRoom).where(ManagedRoom.class_id == school_class["id"])
            ).all()
            for room in found:
                if room.room_id:
                    rooms[room.kind] = room.room_id
            chat = next((r for r in found if r.kind is RoomKind.CLASS_PARENTS), None)
            return bool(
                chat and chat.room_id and wanted <= set(chat.applied.get("members", []))
            ) and (RoomKind.CLASS_CHAT in rooms)

    await until(placed, "the class's parents chat with its parents and teacher", 120)
    tokens: dict[str, dict[str, Any]] = {}
    for key, user_id in parents.items():
        await bot.admin_put_user(user_id, {"password": PASSWORD})
        async with logged_in(region, user_id, PASSWORD) as client:
            tokens[key] = {**await openid_token(client), "user_id": user_id}
    passwords = dict.fromkeys(parents, PASSWORD)
    meeting = Lesson(rooms[RoomKind.CLASS_PARENTS], parents, passwords, tokens)
    return ClassRooms(meeting, rooms[RoomKind.CLASS_CHAT], str(teacher["matrix_user_id"]))


async def test_a_call_in_a_class_parents_chat_starts_as_an_open_meeting(
    browser: Browser, widget_host: str, widgets_url: str, region: LocalDeployment, bot: MatrixClient
) -> None:
    rooms = await class_with_parents(region, bot)
    meeting = rooms.parents
    # The class teacher moderates the parents chat: its floor is not open by itself.
    members = await read_room_members(bot, meeting.room_id, bot_user_id=region.settings.bot_user_id)
    assert rooms.teacher in members.moderators and not members.open_floor

    # The provisioning service tells the widget service how each room's call starts.
    settings = region.settings
    service = {"Authorization": f"Bearer {settings.as_token.get_secret_value()}"}
    async with httpx.AsyncClient(base_url=settings.provisioning_url, timeout=30) as http:
        asked = {
            room_id: (
                await http.get("/internal/calls/room", params={"room_id": room_id}, headers=service)
            ).json()
            for room_id in (meeting.room_id, rooms.chat_id, "!not-parta's:" + settings.server_name)
        }
        parents_chat = {
            "room_id": meeting.room_id, "kind": "class_parents", "mode": "open", "broadcast": None,
        }  # fmt: skip
        assert asked[meeting.room_id] == parents_chat
        assert asked[rooms.chat_id]["kind"] == "class_chat"
        assert asked[rooms.chat_id]["mode"] == "lesson"
        assert [a["mode"] for a in asked.values()].count("lesson") == 2  # unmanaged: a lesson
        anyone = await http.get("/internal/calls/room", params={"room_id": meeting.room_id})
        assert anyone.status_code == 403  # only Parta's own services ask
        bad = await http.get("/internal/calls/room", params={"room_id": "#alias"}, headers=service)
        assert bad.status_code == 400 and "room_id" in bad.json()["error"]  # not a room ID

    # Two parents, no teacher in the call yet: each hears the other without any floor.
    anna_page, anna = await open_widget(browser, widget_host, widgets_url, meeting, "anna")
    boris_page, boris = await open_widget(browser, widget_host, widgets_url, meeting, "boris")
    for frame in (anna, boris):
        await expect(frame.locator("#mode-note")).to_have_text(
            "Открытое собрание: говорить и включать камеру могут все."
        )
        await expect(frame.locator("#mic")).to_be_enabled()
    await until(lambda: audio_packets(boris, meeting.users["anna"]), "Anna's voice at Boris's")
    await until(lambda: audio_packets(anna, meeting.users["boris"]), "Boris's voice at Anna's")
    await screenshot_frame(anna_page, "call-parent-meeting")
    for page in (anna_page, boris_page):
        await page.context.close()
