"""Broadcasts through the REST API on the running region, read back from the real Synapse.

A member of the audience chat (the class teacher, through matrix-nio's login) sees the
announcement and the cancellation; reminders and the start are driven by a second
`BroadcastClock` given the time (`tick(now)`), beside the service's own clock, so two
processes are at work and each message still comes once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from nio import AsyncClient, LoginResponse
from sqlalchemy import update

from matrix.client import MatrixClient, path
from matrix.errors import NotFound
from parta.deployment import LocalDeployment
from provisioning.broadcasts.clock import BroadcastClock
from provisioning.broadcasts.notices import widget_id
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.models import Broadcast
from provisioning.reconciler.state import WIDGETS_EVENT
from tests.harness.broadcasts import (
    PASSWORD,
    BroadcastSchool,
    make_school,
    picture,
    set_passwords,
)
from tests.harness.region import region_session
from tests.harness.waiting import eventually
from widgets.call.moderation import CallMode
from widgets.call.starting_mode import CallStart, ProvisioningCallModes


@dataclass
class Callers:
    school: BroadcastSchool
    director: httpx.AsyncClient
    teacher: httpx.AsyncClient
    other_teacher: httpx.AsyncClient
    member: AsyncClient  # the class teacher in Matrix: a member of 5А's chat

    @property
    def url(self) -> str:
        return f"/api/v1/schools/{self.school.school_id}/broadcasts"


async def _login(region: LocalDeployment, user_id: str) -> AsyncClient:
    client = AsyncClient(region.settings.homeserver_url, user_id)
    response = await client.login(PASSWORD, device_name="broadcast-tests")
    assert isinstance(response, LoginResponse), response
    return client


@pytest.fixture(scope="module")
async def callers(region: LocalDeployment) -> AsyncIterator[Callers]:
    school = await asyncio.to_thread(make_school, region)
    await set_passwords(
        region, school.director, school.teacher, school.other_teacher, school.outsider
    )
    nio = {
        key: await _login(region, getattr(school, key))
        for key in ("director", "teacher", "other_teacher")
    }
    base = region.settings.provisioning_url

    def http(key: str) -> httpx.AsyncClient:
        token = nio[key].access_token
        return httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    async with (
        http("director") as director,
        http("teacher") as teacher,
        http("other_teacher") as other,
    ):
        yield Callers(school, director, teacher, other, nio["teacher"])
    for client in nio.values():
        await client.close()


def _form(school: BroadcastSchool, **overrides: Any) -> dict[str, Any]:
    starts = datetime.now(UTC) + timedelta(days=2)
    form: dict[str, Any] = {
        "title": "Гимназия №1 – Live",
        "description": "1 сентября — праздник всех первоклассников",
        "speakers": [school.director, school.teacher],
        "audience_room": school.chat_alias,
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
    }
    form.update(overrides)
    return form


def _cover(data: bytes | None = None, name: str = "cover.jpg") -> dict[str, Any]:
    return {"cover": (name, data if data is not None else picture(1200, 675), "image/jpeg")}


async def _messages(client: AsyncClient, room_id: str) -> list[dict[str, Any]]:
    """The room's latest messages, oldest first, as the member reads them."""
    url = f"{client.homeserver}{path('rooms', room_id, 'messages')}"
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.get(
            url,
            params={"dir": "b", "limit": "100"},
            headers={"Authorization": f"Bearer {client.access_token}"},
        )
    assert answer.status_code == 200, answer.text
    return [e for e in reversed(answer.json()["chunk"]) if e["type"] == "m.room.message"]


async def _bot_says(
    region: LocalDeployment, member: AsyncClient, room_id: str, text: str
) -> list[dict[str, Any]]:
    """Until the bot's messages in the room include one containing `text`; all of them."""

    async def probe() -> list[dict[str, Any]] | None:
        mine = [
            e["content"]
            for e in await _messages(member, room_id)
            if e["sender"] == region.settings.bot_user_id
        ]
        return mine if any(text in c.get("body", "") for c in mine) else None

    return await eventually(probe, f"the bot to say «{text}»", within=90)


async def test_a_director_schedules_a_broadcast_the_chat_hears_of_it_and_its_cancellation(
    region: LocalDeployment, callers: Callers
) -> None:
    school = callers.school
    title = "Открытый урок физики"
    moscow = timezone(timedelta(hours=3))
    starts = (datetime.now(UTC) + timedelta(days=2)).astimezone(moscow)
    form = _form(school, title=title, starts_at=starts.isoformat())
    created = await callers.director.post(callers.url, data=form, files=_cover())
    assert created.status_code == 201, created.text
    broadcast = created.json()
    assert datetime.fromisoformat(broadcast["starts_at"]) == starts  # the same moment
    assert broadcast["state"] == "scheduled"
    assert broadcast["cover"]["width"] == 1200 and broadcast["cover"]["height"] == 675
    assert broadcast["cover"]["mxc"].startswith("mxc://")
    assert broadcast["speakers"] == [school.director, school.teacher]
    assert broadcast["audience_room_id"] == school.chat_room_id

    listed = (await callers.director.get(callers.url)).json()
    assert broadcast["id"] in [row["id"] for row in listed]
    one = await callers.director.get(f"{callers.url}/{broadcast['id']}")
    assert one.status_code == 200 and one.json()["title"] == title

    said = await _bot_says(region, callers.member, school.chat_room_id, title)
    images = [c for c in said if c.get("msgtype") == "m.image"]
    assert any(c["url"] == broadcast["cover"]["mxc"] for c in images), said
    announcement = next(c for c in said if title in c.get("body", ""))
    assert "Спикеры" in announcement["body"] and "Europe/Moscow" in announcement["body"]
    assert f"broadcast_id={broadcast['id']}" in announcement["body"]
    assert "<b>" in announcement["formatted_body"]

    cancelled = await callers.director.post(f"{callers.url}/{broadcast['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    said = await _bot_says(region, callers.member, school.chat_room_id, "отменена")
    assert sum(title in c.get("body", "") and "отменена" in c["body"] for c in said) == 1
    again = await callers.director.post(f"{callers.url}/{broadcast['id']}/cancel")
    assert again.status_code == 422, again.text


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("small", "800×500"),
        ("portrait", "not landscape"),
        ("not_an_image", "JPEG or PNG"),
        ("outsider_speaker", "is not a person of this school"),
        ("foreign_room", "is not one of this school's chats"),
        ("ends_before_start", "must end after it starts"),
        ("no_zone", "time zone"),
        ("past", "in the future"),
    ],
)
async def test_what_the_api_refuses_with_422_naming_the_problem(
    callers: Callers, case: str, expected: str
) -> None:
    school = callers.school
    starts = datetime.now(UTC) + timedelta(days=1)
    form, files = _form(school), _cover()
    match case:
        case "small":
            files = _cover(picture(800, 500))
        case "portrait":
            files = _cover(picture(600, 900))
        case "not_an_image":
            files = _cover(b"%PDF-1.7 not a picture at all", "cover.jpg")
        case "outsider_speaker":
            form["speakers"] = f"{school.director},{school.outsider}"  # comma-separated
        case "foreign_room":
            form["audience_room"] = school.foreign_alias
        case "ends_before_start":
            form["ends_at"] = (starts - timedelta(hours=1)).isoformat()
            form["starts_at"] = starts.isoformat()
        case "no_zone":
            form["starts_at"] = "2031-09-01T10:00"
        case "past":
            form["starts_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
            form["ends_at"] = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    answer = await callers.director.post(callers.url, data=form, files=files)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errcode"] == "M_INVALID_PARAM"
    assert expected in answer.json()["error"], answer.json()
    if case == "small":
        assert "830×540" in answer.json()["error"] and "landscape" in answer.json()["error"]


async def test_a_teacher_schedules_into_their_classs_chat_only(callers: Callers) -> None:
    school = callers.school
    into_other = await callers.other_teacher.post(
        callers.url, data=_form(school, speakers=[school.other_teacher]), files=_cover()
    )
    assert into_other.status_code == 403, into_other.text
    assert "classes you teach" in into_other.json()["error"]
    own = await callers.other_teacher.post(
        callers.url,
        data=_form(school, speakers=[school.other_teacher], audience_room=school.other_chat_alias),
        files=_cover(),
    )
    assert own.status_code == 201, own.text
    # The class teacher of 5А neither sees nor changes 6Б's broadcast.
    listed = (await callers.teacher.get(callers.url)).json()
    assert own.json()["id"] not in [row["id"] for row in listed]
    refused = await callers.teacher.post(f"{callers.url}/{own.json()['id']}/cancel")
    assert refused.status_code == 403, refused.text


async def _widget(bot: MatrixClient, room_id: str, broadcast_id: int) -> dict[str, Any] | None:
    try:
        return await bot.request(
            "GET", path("rooms", room_id, "state", WIDGETS_EVENT, widget_id(broadcast_id))
        )
    except NotFound:
        return None


async def test_reminders_come_once_the_widget_opens_at_the_start_and_goes_at_the_end(
    region: LocalDeployment, callers: Callers, bot: MatrixClient
) -> None:
    school = callers.school
    title = "Региональная конференция"
    created = await callers.director.post(
        callers.url, data=_form(school, title=title), files=_cover()
    )
    assert created.status_code == 201, created.text
    broadcast_id = created.json()["id"]
    starts = datetime.fromisoformat(created.json()["starts_at"])
    ends = datetime.fromisoformat(created.json()["ends_at"])
    await _bot_says(region, callers.member, school.chat_room_id, title)  # the service's clock

    def ours(sent: list[tuple[int, str]]) -> list[str]:
        """What was sent for this broadcast (the module's others are due at times too)."""
        return [kind for sent_for, kind in sent if sent_for == broadcast_id]

    engine = make_engine(region.settings.sqlalchemy_url)
    sessions = make_session_factory(engine)
    # Two clocks, as two provisioning processes would be, given the same moments.
    first, second = (BroadcastClock(bot, sessions, region.settings) for _ in range(2))
    try:
        day_before = starts - timedelta(hours=23)
        sent = (await first.tick(day_before)).sent + (await second.tick(day_before)).sent
        assert ours(sent) == ["remind_day"]
        assert ours((await first.tick(day_before + timedelta(hours=1))).sent) == []
        soon = starts - timedelta(minutes=10)
        sent = (await second.tick(soon)).sent + (await first.tick(soon)).sent
        assert ours(sent) == ["remind_15m"]

        edit = await callers.director.patch(
            f"{callers.url}/{broadcast_id}", data={"description": "Новая программа"}
        )
        assert edit.status_code == 200, edit.text
        await first.tick(soon)  # the service's clock, asked by the edit, may be first
        said = await _bot_says(region, callers.member, school.chat_room_id, "Новая программа")
        assert sum("Новая программа" in c.get("body", "") for c in said) == 1

        # The start, as the clock sees it; the database says so too (the real time has
        # not come, so the service's own clock leaves it alone).
        with region_session(region) as session:
            session.execute(
                update(Broadcast)
                .where(Broadcast.id == broadcast_id)
                .values(starts_at=datetime.now(UTC) - timedelta(minutes=1))
            )
            session.commit()
        late_edit = await callers.director.patch(
            f"{callers.url}/{broadcast_id}", data={"title": "Поздно"}
        )
        assert late_edit.status_code == 422, late_edit.text
        assert "has started" in late_edit.json()["error"]

        started = starts + timedelta(minutes=1)
        await first.tick(started)
        await second.tick(started)

        async def widget() -> dict[str, Any] | None:
            content = await _widget(bot, school.chat_room_id, broadcast_id)
            return content if content and content.get("url") else None

        content = await eventually(widget, "the broadcast's widget in the chat")
        assert f"broadcast_id={broadcast_id}" in content["url"]
        assert content["name"] == title
        said = await _bot_says(region, callers.member, school.chat_room_id, "началась")
        assert sum("началась" in c.get("body", "") and title in c["body"] for c in said) == 1
        bodies = [c.get("body", "") for c in said]
        assert sum(b.startswith("Завтра") and title in b for b in bodies) == 1
        assert sum(b.startswith("Через 15 минут") and title in b for b in bodies) == 1
        assert (await callers.director.get(f"{callers.url}/{broadcast_id}")).json()[
            "state"
        ] == "live"

        await first.tick(ends + timedelta(minutes=1))

        async def gone() -> bool:
            return not (await _widget(bot, school.chat_room_id, broadcast_id) or {}).get("url")

        await eventually(gone, "the widget to be taken out at the end")
        assert (await callers.director.get(f"{callers.url}/{broadcast_id}")).json()[
            "state"
        ] == "ended"
    finally:
        engine.dispose()


async def test_a_call_in_the_audience_chat_knows_the_broadcast_s_stage_while_it_is_open(
    region: LocalDeployment, callers: Callers
) -> None:
    """What the widget service asks when a call opens (`/internal/calls/room`): from a
    quarter of an hour before the start, the broadcast, its speakers, its title (for its
    recordings) and its end (when the stage closes); not once it is cancelled."""
    school = callers.school
    modes = ProvisioningCallModes.from_settings(region.settings)
    try:
        soon = datetime.now(UTC) + timedelta(minutes=10)
        form = _form(school, title="Сцена открыта", starts_at=soon.isoformat(),
                     ends_at=(soon + timedelta(hours=1)).isoformat())  # fmt: skip
        created = await callers.director.post(callers.url, data=form, files=_cover())
        assert created.status_code == 201, created.text
        broadcast = created.json()
        start = await modes.starting(school.chat_room_id)
        assert start == CallStart(
            CallMode.LESSON, broadcast["id"], frozenset({school.director, school.teacher}),
            "Сцена открыта", soon + timedelta(hours=1),
        )  # fmt: skip
        raw = await modes.http.get(
            "/internal/calls/room", params={"room_id": school.chat_room_id},
            headers={"Authorization": f"Bearer {modes.token}"},
        )  # fmt: skip
        ends_at = raw.json()["broadcast"]["ends_at"]
        assert ends_at == (soon + timedelta(hours=1)).astimezone(UTC).isoformat(), ends_at
        cancelled = await callers.director.post(f"{callers.url}/{broadcast['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        after = await modes.starting(school.chat_room_id)
        assert after.broadcast_id != broadcast["id"] and after.mode is CallMode.LESSON
    finally:
        await modes.close()
