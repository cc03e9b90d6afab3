"""`!call` against the real Synapse: a teacher's own room, the bot invited, the widget put.

People are matrix-nio clients; what the bot said and did is read back from Synapse.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
from nio import AsyncClient, RoomCreateResponse, RoomGetStateEventResponse, RoomSendResponse
from sqlalchemy import select

from matrix.client import MatrixClient, path
from matrix.errors import Forbidden, NotFound
from parta.deployment import LocalDeployment
from provisioning.appservice.replies import standalone_call_link
from provisioning.db.models import AuditEvent, ManagedRoom, Region, Role
from provisioning.reconciler.state import CALL_WIDGET_ID, WIDGETS_EVENT, RoomWidget
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from tests.harness.region import region_session
from tests.harness.waiting import eventually
from tests.matrix_users import logged_in, new_person

T = TypeVar("T")


async def bot_notices(bot: MatrixClient, room_id: str, bot_id: str) -> list[dict[str, Any]]:
    answer = await bot.request(
        "GET", path("rooms", room_id, "messages"), query={"dir": "b", "limit": "100"}
    )
    return [
        e["content"]
        for e in reversed(answer["chunk"])
        if e["type"] == "m.room.message"
        and e["sender"] == bot_id
        and e["content"].get("msgtype") == "m.notice"
    ]


def replies_to(notices: list[dict[str, Any]], event_id: str) -> list[str]:
    return [
        n["body"]
        for n in notices
        if n.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == event_id
    ]


async def wait_until_member(bot: MatrixClient, room_id: str, user_id: str) -> None:
    """Until `user_id` (the bot, or someone the bot can see) is a member of the room."""

    async def joined() -> bool | None:
        try:
            members = await bot.request("GET", path("rooms", room_id, "joined_members"))
        except Forbidden:
            return None  # the bot is not in the room yet
        return True if user_id in members["joined"] else None

    await eventually(joined, f"{user_id} to join {room_id}", within=120)


async def open_room_with_the_bot(
    bot: MatrixClient, region: LocalDeployment, teacher: AsyncClient, name: str
) -> str:
    """The teacher creates a room of their own and invites the bot, which joins."""
    bot_id = region.settings.bot_user_id
    created = await teacher.room_create(name=name)
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    await teacher.room_invite(room_id, bot_id)
    await wait_until_member(bot, room_id, bot_id)
    notices = await eventually(
        lambda: _nonempty(bot_notices(bot, room_id, bot_id)), "the bot's greeting"
    )
    assert "!call" in notices[0]["body"]
    return room_id


async def _nonempty(listing: Awaitable[list[T]]) -> list[T] | None:
    return (await listing) or None


async def say(client: AsyncClient, room_id: str, body: str) -> str:
    sent = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
    assert isinstance(sent, RoomSendResponse), sent
    return sent.event_id


async def answer_to(bot: MatrixClient, region: LocalDeployment, room_id: str, event_id: str) -> str:
    async def probe() -> str | None:
        found = replies_to(await bot_notices(bot, room_id, region.settings.bot_user_id), event_id)
        return found[0] if found else None

    return await eventually(probe, f"the bot's answer to {event_id}")


async def call_widget(bot: MatrixClient, room_id: str) -> dict[str, Any] | None:
    try:
        return await bot.request(
            "GET", path("rooms", room_id, "state", WIDGETS_EVENT, CALL_WIDGET_ID)
        )
    except NotFound:
        return None


async def grant_the_bot(teacher: AsyncClient, room_id: str, bot_id: str, level: int) -> None:
    levels = await teacher.room_get_state_event(room_id, "m.room.power_levels")
    assert isinstance(levels, RoomGetStateEventResponse), levels
    content = dict(levels.content)
    content["users"] = {**content.get("users", {}), bot_id: level}
    await teacher.room_put_state(room_id, "m.room.power_levels", content)


async def test_call_in_a_teachers_own_room(bot: MatrixClient, region: LocalDeployment) -> None:
    s = region.settings
    teacher_id, teacher_password = await new_person(bot, region, "teacher")
    colleague_id, colleague_password = await new_person(bot, region, "colleague")
    async with (
        logged_in(region, teacher_id, teacher_password) as teacher,
        logged_in(region, colleague_id, colleague_password) as colleague,
    ):
        room_id = await open_room_with_the_bot(bot, region, teacher, "Кружок физики")
        link = standalone_call_link(s.call_widget_url, room_id)
        assert parse_qs(urlsplit(link).query) == {"room_id": [room_id]}

        # The bot has no power yet: it says what it needs, and gives the link for phones.
        asked = await say(teacher, room_id, "!call")
        answer = await answer_to(bot, region, room_id, asked)
        assert "права модератора" in answer and "moderator power" in answer
        assert answer.count(link) == 2 and "$matrix" not in answer
        assert await call_widget(bot, room_id) is None

        # Someone without the power to change widgets is told so, whatever the bot's power.
        await teacher.room_invite(room_id, colleague_id)
        await colleague.join(room_id)
        asked = await say(colleague, room_id, "!звонок")
        answer = await answer_to(bot, region, room_id, asked)
        assert "у вас 0" in answer and "yours is 0" in answer and link in answer
        assert await call_widget(bot, room_id) is None

        # With moderator power the bot puts the widget, as the reconciler does in class chats.
        await grant_the_bot(teacher, room_id, s.bot_user_id, 50)
        asked = await say(teacher, room_id, "!call Кружок")
        answer = await answer_to(bot, region, room_id, asked)
        assert "«Кружок»" in answer and "is in this room" in answer and link in answer
        widget = await call_widget(bot, room_id)
        assert widget == RoomWidget(s.call_widget_url, "Кружок").content(s.bot_user_id)


def _commands_handled(region: LocalDeployment) -> int:
    health = httpx.get(f"{region.settings.bridge_url}/healthz", timeout=5).json()
    return int(health["commands_handled"])


async def test_a_redelivered_transaction_is_answered_once(
    bot: MatrixClient, region: LocalDeployment
) -> None:
    s = region.settings
    teacher_id, teacher_password = await new_person(bot, region, "teacher")
    async with logged_in(region, teacher_id, teacher_password) as teacher:
        room_id = await open_room_with_the_bot(bot, region, teacher, "Продлёнка")
        await grant_the_bot(teacher, room_id, s.bot_user_id, 50)

    async def settled() -> int | None:
        # Nothing of this room left in the bot's queue: the count stops moving.
        before = _commands_handled(region)
        await asyncio.sleep(1.5)
        return before if _commands_handled(region) == before else None

    handled_before = await eventually(settled, "the bridge to be idle")
    event_id = f"$redelivered-{secrets.token_hex(6)}"
    event = {
        "event_id": event_id,
        "room_id": room_id,
        "type": "m.room.message",
        "sender": teacher_id,
        "origin_server_ts": int(time.time() * 1000),
        "content": {"msgtype": "m.text", "body": "!call Повтор"},
    }
    txn_id = f"test-call-{secrets.token_hex(4)}"
    headers = {"Authorization": f"Bearer {s.hs_token.get_secret_value()}"}
    async with httpx.AsyncClient(base_url=s.bridge_url, headers=headers, timeout=10) as http:
        for _ in range(3):  # Synapse retries a transaction until it gets its 200
            response = await http.put(
                f"/_matrix/app/v1/transactions/{txn_id}", json={"events": [event]}
            )
            assert response.status_code == 200

    answer = await answer_to(bot, region, room_id, event_id)
    assert "«Повтор»" in answer
    await asyncio.sleep(2)
    notices = await bot_notices(bot, room_id, s.bot_user_id)
    assert len(replies_to(notices, event_id)) == 1
    # Handled once: not three times with Synapse's send de-duplication hiding two answers.
    assert _commands_handled(region) - handled_before == 1
    assert (await call_widget(bot, room_id) or {}).get("name") == "Повтор"


async def test_an_invitation_from_another_server_is_declined(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    """Synapse cannot be asked to deliver a remote invite here; the bridge gets one as the
    homeserver would, for a room of its own server, and leaves it with a reason."""
    s = region.settings
    teacher_id, teacher_password = await new_person(bot, region, "teacher")
    async with logged_in(region, teacher_id, teacher_password) as teacher:
        created = await teacher.room_create(name="Чужое приглашение", invite=[s.bot_user_id])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        # The real, local invitation is accepted; this test then asks the bot to answer a
        # second one as if it came from elsewhere, which must make it leave.
        await wait_until_member(bot, room_id, s.bot_user_id)
        invite = {
            "event_id": f"$remote-invite-{secrets.token_hex(6)}",
            "room_id": room_id,
            "type": "m.room.member",
            "state_key": s.bot_user_id,
            "sender": "@mallory:elsewhere.test",
            "origin_server_ts": int(time.time() * 1000),
            "content": {"membership": "invite"},
        }
        headers = {"Authorization": f"Bearer {s.hs_token.get_secret_value()}"}
        async with httpx.AsyncClient(base_url=s.bridge_url, headers=headers, timeout=10) as http:
            response = await http.put(
                f"/_matrix/app/v1/transactions/test-remote-{secrets.token_hex(4)}",
                json={"events": [invite]},
            )
            assert response.status_code == 200

        async def left() -> dict[str, Any] | None:
            member = await teacher.room_get_state_event(room_id, "m.room.member", s.bot_user_id)
            assert isinstance(member, RoomGetStateEventResponse), member
            return member.content if member.content.get("membership") == "leave" else None

        content = await eventually(left, "the bot to leave")
        assert content.get("reason") == "Parta's bot serves this region's schools only"


async def test_call_in_a_managed_room_becomes_the_schools_choice(
    bot: MatrixClient, region: LocalDeployment
) -> None:
    """The reconciler keeps what `!call` put into a school's room instead of taking it out."""
    s = region.settings
    tag = secrets.token_hex(3)
    password = secrets.token_urlsafe(12)
    with region_session(region) as session:
        school = svc.create_school(
            session, session.scalars(select(Region)).one(), f"Школа {tag}", slug=f"k-{tag}",
            academic_year=2026,
        )  # fmt: skip
        name = f"Директор {tag}"
        user_id = LocalpartAllocator(session, s.server_name).user_id(name)
        director = svc.add_person(session, name, matrix_user_id=user_id)
        svc.grant_school_role(session, director, school, Role.SCHOOL_ADMIN)
        session.commit()
        staff_alias = f"school-{school.slug}-staff"
    await bot.admin_put_user(user_id, {"password": password})
    await _reconcile(region)

    def staff_room() -> ManagedRoom | None:
        with region_session(region) as session:
            room = session.get(ManagedRoom, staff_alias)
            if room is not None:
                session.expunge(room)
            return room

    async def created() -> str | None:
        room = staff_room()
        return room.room_id if room is not None else None

    room_id = await eventually(created, "the staff room", within=120)
    await wait_until_member(bot, room_id, user_id)  # the reconciler places the director
    async with logged_in(region, user_id, password) as person:
        asked = await say(person, room_id, "!call Педсовет")
        answer = await answer_to(bot, region, room_id, asked)
    assert "«Педсовет»" in answer and standalone_call_link(s.call_widget_url, room_id) in answer
    state = {(e["type"], e["state_key"]): e for e in await _state(bot, room_id)}
    widget = state[(WIDGETS_EVENT, CALL_WIDGET_ID)]
    assert widget["content"] == RoomWidget(s.call_widget_url, "Педсовет").content(s.bot_user_id)
    room = staff_room()
    assert room is not None
    assert (room.call_widget, room.call_widget_name, room.dirty) == (True, "Педсовет", True)
    with region_session(region) as session:
        audit = session.scalars(
            select(AuditEvent).where(AuditEvent.subject == staff_alias,
                                     AuditEvent.action == "room.call_added")
        ).one()  # fmt: skip
        assert (audit.actor, audit.details["via"]) == (user_id, "matrix")

    # The next run reads the room (it is dirty), finds the widget it wants, and leaves it.
    await _reconcile(region)
    await eventually(lambda: _clean(staff_room()), "the reconciler to read the staff room")
    state = {(e["type"], e["state_key"]): e for e in await _state(bot, room_id)}
    assert state[(WIDGETS_EVENT, CALL_WIDGET_ID)]["event_id"] == widget["event_id"]


async def _clean(room: ManagedRoom | None) -> bool | None:
    return True if room is not None and not room.dirty else None


async def _state(bot: MatrixClient, room_id: str) -> list[dict[str, Any]]:
    answer = await bot.request("GET", path("rooms", room_id, "state"))
    return list(answer["value"])


async def _reconcile(region: LocalDeployment) -> None:
    s = region.settings
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{s.provisioning_url}/internal/reconcile",
            headers={"Authorization": f"Bearer {s.as_token.get_secret_value()}"},
        )
        response.raise_for_status()
