"""The room decides during the call too: power levels and membership changed in Matrix.

The widget service asks the room every half second here (`PARTA_CALL_ACCESS_POLL_S`,
15 s by default). A colleague made moderator gets the teacher's controls without
rejoining, loses them when demoted, and a pupil kicked from the room leaves its call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from nio import RoomGetStateEventResponse, RoomKickResponse, RoomPutStateResponse

from matrix.client import MatrixClient, path
from parta.deployment import LocalDeployment
from tests.call.conftest import serving
from tests.call.peer_process import PeerProcess
from tests.call.test_resilience_live import (  # noqa: F401 - a fixture by its name
    Classroom,
    Sfu,
    classroom,
    peer,
    peers_fixture,
    person,
)
from tests.matrix_users import logged_in
from widgets.app import create_app
from widgets.call.room_access import NoAccess, read_room_members


@pytest.fixture
async def watchful_sfu(region: LocalDeployment) -> AsyncIterator[Sfu]:
    app = create_app(region.settings.model_copy(update={"call_access_poll_s": 0.5}))
    async with serving(app) as base:
        yield Sfu(base.replace("http://", "ws://") + "/call/ws", app.state.calls)


async def set_level(region: LocalDeployment, room: Classroom, user_id: str, level: int) -> None:
    """The teacher changes someone's power level in Element, as it were."""
    async with logged_in(region, room.users["teacher"], room.passwords["teacher"]) as client:
        current = await client.room_get_state_event(room.room_id, "m.room.power_levels")
        assert isinstance(current, RoomGetStateEventResponse), current
        content = dict(current.content)
        content["users"] = {**content.get("users", {}), user_id: level}
        answer = await client.room_put_state(room.room_id, "m.room.power_levels", content)
        assert isinstance(answer, RoomPutStateResponse), answer


def error_after(process: PeerProcess, start: int, reason: str) -> Any:
    return process.wait_for(
        lambda e: e.get("message", {}).get("reason") == reason and e["event"] == "message",
        f"the error {reason}",
        after=start,
    )


async def test_a_colleague_promoted_or_demoted_mid_call_and_a_kicked_pupil(
    region: LocalDeployment,
    bot: MatrixClient,
    watchful_sfu: Sfu,
    peers: dict[str, PeerProcess],
) -> None:
    room = await classroom(region, bot, pupils=("colleague", "ivan"))
    colleague_id, ivan_id = room.users["colleague"], room.users["ivan"]
    for name in ("teacher", "colleague", "ivan"):
        joined = await (await peer(peers, name)).join(
            watchful_sfu.url, room.room_id, room.tokens[name]
        )
        assert joined["event"] == "joined", joined
    teacher, colleague, ivan = peers["teacher"], peers["colleague"], peers["ivan"]
    start = len(colleague.events)
    await colleague.command("send", message={"type": "grant", "target": ivan_id})
    await error_after(colleague, start, "not_moderator")

    # Made a moderator in Matrix (the room's kick level, 50): the controls come mid-call.
    await set_level(region, room, colleague_id, 50)
    await colleague.state_where(
        lambda s: (person(s, colleague_id) or {}).get("moderator"), "the colleague's controls"
    )
    await colleague.command("send", message={"type": "grant", "target": ivan_id})
    await teacher.state_where(lambda s: (person(s, ivan_id) or {}).get("audio"), "Ivan's floor")

    # Demoted: the powers end, and the colleague is muted like any pupil.
    await set_level(region, room, colleague_id, 0)
    state = await teacher.state_where(
        lambda s: (person(s, colleague_id) or {}).get("moderator") is False, "the demotion"
    )
    assert person(state, colleague_id)["audio"] is False  # type: ignore[index]
    start = len(colleague.events)
    await colleague.command("send", message={"type": "revoke", "target": ivan_id})
    await error_after(colleague, start, "not_moderator")
    assert (person(teacher.last_state() or {}, ivan_id) or {}).get("audio")  # stands

    # Kicked from the room: out of its call, told why, and refused at the door.
    async with logged_in(region, room.users["teacher"], room.passwords["teacher"]) as client:
        kicked = await client.room_kick(room.room_id, ivan_id, reason="урок окончен")
        assert isinstance(kicked, RoomKickResponse), kicked
    removed = await ivan.wait_for(
        lambda e: e.get("message", {}).get("type") == "removed", "Ivan's removal"
    )
    assert removed["message"]["reason"] == "not_a_member"
    await ivan.wait_for(lambda e: e["event"] == "closed", "Ivan's socket to close")
    await teacher.state_where(lambda s: person(s, ivan_id) is None, "Ivan gone")
    again = await ivan.join(watchful_sfu.url, room.room_id, room.tokens["ivan"])
    assert (again["event"], again["reason"]) == ("refused", "not_a_member")


async def test_the_rooms_members_read_with_or_without_the_bot_in_it(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    room = await classroom(region, bot, pupils=("ivan",), outsiders=("stranger",))
    outside = await read_room_members(bot, room.room_id)  # Synapse's admin API
    assert outside.joined == {room.users["teacher"], room.users["ivan"]}
    assert outside.moderators == {room.users["teacher"]}  # the creator (room version 12)
    async with logged_in(region, room.users["teacher"], room.passwords["teacher"]) as client:
        await client.room_invite(room.room_id, region.settings.bot_user_id)
    await bot.request("POST", path("join", room.room_id), body={})
    inside = await read_room_members(bot, room.room_id)  # as a member: its /state
    assert inside.joined == outside.joined | {region.settings.bot_user_id}
    assert inside.moderators == outside.moderators
    with pytest.raises(NoAccess):
        await read_room_members(bot, "!no-such-room")
