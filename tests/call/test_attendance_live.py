"""The teacher posts the call's attendance into the room: a notice from the bot."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from nio import RoomGetEventResponse, RoomInviteResponse

from matrix.client import MatrixClient, path
from parta.deployment import LocalDeployment
from tests.call.peer_process import PeerProcess
from tests.call.test_resilience_live import (  # noqa: F401 - fixtures by their names
    Sfu,
    classroom,
    peer,
    peers_fixture,
    sfu_fixture,
)
from tests.matrix_users import logged_in


async def test_the_attendance_is_posted_into_the_room_as_the_bot(
    region: LocalDeployment, bot: MatrixClient, sfu: Sfu, peers: dict[str, PeerProcess]
) -> None:
    room = await classroom(region, bot, pupils=("ivan", "masha"))
    for name in ("teacher", "ivan", "masha"):
        joined = await (await peer(peers, name)).join(sfu.url, room.room_id, room.tokens[name])
        assert joined["event"] == "joined", joined
    teacher, ivan = peers["teacher"], peers["ivan"]
    await ivan.command("drop_socket")  # Ivan drops out once and comes back
    await teacher.state_where(
        lambda s: room.users["ivan"] not in {p["user_id"] for p in s["participants"]},
        "Ivan gone",
    )
    assert (await ivan.join(sfu.url, room.room_id, room.tokens["ivan"]))["event"] == "joined"

    def reply(process: PeerProcess, start: int, kind: str) -> Awaitable[dict[str, Any]]:
        return process.wait_for(
            lambda e: e["event"] == "message" and e["message"]["type"] in (kind, "error"),
            kind,
            after=start,
        )

    start = len(ivan.events)
    await ivan.command("send", message={"type": "post_attendance"})
    assert (await reply(ivan, start, "attendance_posted"))["message"] == {
        "type": "error", "reason": "not_moderator",
    }  # fmt: skip

    # The teacher's own room: the bot is not in it, and the page is told so.
    start = len(teacher.events)
    await teacher.command("send", message={"type": "post_attendance"})
    answer = (await reply(teacher, start, "attendance_posted"))["message"]
    assert answer == {"type": "error", "reason": "bot_not_in_room"}

    async with logged_in(region, room.users["teacher"], room.passwords["teacher"]) as client:
        invited = await client.room_invite(room.room_id, region.settings.bot_user_id)
        assert isinstance(invited, RoomInviteResponse), invited
        await bot.request("POST", path("join", room.room_id), body={})
        start = len(teacher.events)
        await teacher.command("send", message={"type": "post_attendance"})
        posted = (await reply(teacher, start, "attendance_posted"))["message"]
        assert posted["type"] == "attendance_posted", posted
        event = await client.room_get_event(room.room_id, posted["event_id"])
        assert isinstance(event, RoomGetEventResponse), event
    notice = event.event.source
    assert notice["sender"] == region.settings.bot_user_id
    content = notice["content"]
    assert content["msgtype"] == "m.notice"
    lines = content["body"].splitlines()
    assert lines[0].startswith("Посещаемость звонка, ")
    by_name = {line.split(" · ")[0]: line for line in lines[1:]}
    assert set(by_name) == {"Teacher", "Ivan", "Masha"}
    assert by_name["Ivan"].endswith("переподключений: 1")
    assert by_name["Masha"].endswith("переподключений: 0")
    assert "<table>" in content["formatted_body"] and "<td>Ivan</td>" in content["formatted_body"]
