"""Two widget processes, one call: the process nginx routes a call to takes it from the
one that ran it meanwhile, with its state, and nobody is left behind on the other.

Both services run in this process against the real Synapse, each with its own locks on
one state directory (flock locks belong to an open file, so they conflict as two
processes' do); the participants are `peer_process` children. Which process a page
reaches is nginx's choice in production (tests/test_widget_processes.py); here each page
is sent by hand where nginx would send it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
from widgets.call.service import CallService

SERVICE_RESTART = 1012


def _socket(base: str, room_id: str) -> str:
    return base.replace("http://", "ws://") + "/call/ws?room_id=" + quote(room_id, safe="!~*'()")


async def test_a_call_moves_to_the_process_nginx_routes_it_to_whole(
    region: LocalDeployment, bot: MatrixClient, peers: dict[str, PeerProcess], tmp_path: Path
) -> None:
    settings = region.settings.model_copy(update={"var_dir": tmp_path})
    room = await classroom(region, bot, pupils=("ivan", "masha"))
    ids = room.users
    substitute = create_app(settings, process=2, processes=2)
    chosen = create_app(settings, process=1, processes=2)
    async with serving(substitute) as sub_base, serving(chosen) as chosen_base:
        sub_calls: CallService = substitute.state.calls
        chosen_calls: CallService = chosen.state.calls
        # The chosen process was down: the teacher and Ivan landed on the next one.
        for name in ("teacher", "ivan"):
            joined = await (await peer(peers, name)).join(
                _socket(sub_base, room.room_id), room.room_id, room.tokens[name]
            )
            assert joined["event"] == "joined", joined
        await peers["ivan"].command("send", message={"type": "raise_hand"})
        await peers["teacher"].state_where(lambda s: s["hands"] == [ids["ivan"]], "Ivan's hand")
        # The teacher makes it an open meeting and mutes Ivan: both go with the call.
        await peers["teacher"].command("send", message={"type": "mode", "mode": "open"})
        await peers["teacher"].command("send", message={"type": "mute", "target": ids["ivan"]})
        saved = sub_calls.store.path_for(room.room_id)  # type: ignore[union-attr]

        def hand_on_disk() -> bool:
            if not saved.exists():
                return False
            data = json.loads(saved.read_text())
            return data["mode"] == "open" and any(
                p["hand_raised_at"] and p["muted"] for p in data["participants"]
            )

        await until(hand_on_disk, "Ivan's hand, his mute and the open meeting on disk", 10)

        # The chosen process is back, and nginx sends Masha there: the call follows her.
        joined = await (await peer(peers, "masha")).join(
            _socket(chosen_base, room.room_id), room.room_id, room.tokens["masha"]
        )
        assert joined["event"] == "joined", joined
        assert room.room_id in chosen_calls.rooms and sub_calls.rooms == {}
        for name in ("teacher", "ivan"):  # told to reconnect, not sent away
            closed = await peers[name].wait_for(lambda e: e["event"] == "closed", "a close")
            assert closed["code"] == SERVICE_RESTART, closed
            # The page reconnects through nginx, which sends it to the chosen process now.
            joined = await peers[name].join(
                _socket(chosen_base, room.room_id), room.room_id, room.tokens[name]
            )
            assert joined["event"] == "joined", joined

        def whole(s: dict[str, Any]) -> bool:  # only who is connected is listed
            present = {p["user_id"] for p in s["participants"]}
            ivan, masha = person(s, ids["ivan"]), person(s, ids["masha"])
            meeting = s["mode"] == "open" and bool(masha and masha["audio"])
            muted = bool(ivan and ivan["muted"] and not ivan["audio"])
            everyone = present == set(ids.values())
            return s["hands"] == [ids["ivan"]] and everyone and meeting and muted

        await peers["masha"].state_where(
            whole, "all three in one open meeting, Ivan's hand still up and his mute kept"
        )
        # The substitute keeps no part of the call and no longer writes its file.
        assert sub_calls.rooms == {}
        assert chosen_calls.locks is not None and chosen_calls.locks.holds(room.room_id)

        # With several processes the URL names the call's room, as the page spells it.
        wrong = {
            "another room": _socket(chosen_base, "!elsewhere:" + settings.server_name),
            "no room": chosen_base.replace("http://", "ws://") + "/call/ws",
            "another spelling": _socket(chosen_base, room.room_id).replace("!", "%21"),
        }
        stranger = await peer(peers, "stranger")
        for what, url in wrong.items():
            refused = await stranger.join(url, room.room_id, room.tokens["masha"])
            assert refused["event"] == "refused" and refused["reason"] == "bad_join", what
