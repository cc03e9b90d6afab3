"""A lesson survives a restart of the widget service: same floor, same hands in order.

The service runs in this process against the real Synapse; the teacher and pupils are
`peer_process` children. The first service is stopped mid-call, a second one starts on
the same state directory, and everyone reconnects, as the page does by itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from tests.call.conftest import serving, until
from tests.call.peer_process import PeerProcess
from tests.call.test_resilience_live import (  # noqa: F401 - a fixture by its name
    classroom,
    peer,
    peers_fixture,
    person,
)
from widgets.app import create_app


async def test_the_call_state_survives_a_restart_of_the_service(
    region: LocalDeployment, bot: MatrixClient, peers: dict[str, PeerProcess], tmp_path: Path
) -> None:
    settings = region.settings.model_copy(update={"var_dir": tmp_path})
    room = await classroom(region, bot, pupils=("ivan", "masha", "kolya"))
    ids = room.users
    names = ("teacher", "ivan", "masha", "kolya")

    def lesson_state(s: dict[str, Any]) -> bool:
        ivan, kolya = person(s, ids["ivan"]), person(s, ids["kolya"])
        return bool(
            ivan and kolya and ivan["has_floor"] and ivan["audio"]
            and s["hands"] == [ids["kolya"], ids["masha"]]
            and kolya["may_share_screen"] and s["cameras_allowed"]
        )  # fmt: skip

    first = create_app(settings)
    async with serving(first) as base:
        url = base.replace("http://", "ws://") + "/call/ws"
        for name in names:
            joined = await (await peer(peers, name)).join(url, room.room_id, room.tokens[name])
            assert joined["event"] == "joined", joined
        teacher = peers["teacher"]
        await peers["kolya"].command("send", message={"type": "raise_hand"})
        await teacher.state_where(lambda s: s["hands"] == [ids["kolya"]], "Kolya's hand")
        await peers["masha"].command("send", message={"type": "raise_hand"})
        for message in (
            {"type": "grant", "target": ids["ivan"]},
            {"type": "screen", "target": ids["kolya"], "allowed": True},
            {"type": "cameras", "allowed": True},
        ):
            await teacher.command("send", message=message)
        await teacher.state_where(lesson_state, "the lesson's state at the teacher's")
        # Written while the call goes on (debounced), not only when the service stops.
        saved = first.state.calls.store.path_for(room.room_id)

        def saved_floor() -> bool:
            if not saved.exists():
                return False
            data = json.loads(saved.read_text())
            return any(p["has_floor"] for p in data["participants"])

        await until(saved_floor, "the floor on disk", 10)
    for name in names:  # the service is gone: every page's socket closed
        await peers[name].wait_for(lambda e: e["event"] == "closed", "the socket to close")

    second = create_app(settings)
    async with serving(second) as base:
        url = base.replace("http://", "ws://") + "/call/ws"
        assert second.state.calls.rooms == {}  # loaded only when the call is joined
        for name in names:
            joined = await peers[name].join(url, room.room_id, room.tokens[name])
            assert joined["event"] == "joined", joined
        state = await peers["teacher"].state_where(lesson_state, "the same lesson after it")
        assert person(state, ids["masha"])["audio"] is False  # type: ignore[index]
        await peers["kolya"].command("send", message={"type": "grant", "target": ids["kolya"]})
        await peers["kolya"].wait_for(
            lambda e: e.get("message", {}).get("reason") == "not_moderator",
            "a pupil's grant refused after the restart as before it",
        )
        call = second.state.calls.rooms[room.room_id].state
        assert {v.user_id for v in call.visits if v.left_at is not None} == set(ids.values())
        assert len(call.visits) == 8  # each of four came twice
