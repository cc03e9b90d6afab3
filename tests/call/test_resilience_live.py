"""Calls without a browser, each participant an aiortc client in a process of its own.

Against the test region's real Synapse (OpenID tokens it issued, rooms it keeps) and the
widget service in this process. The participants are `tests.call.peer_process` children,
so a lossy network, a killed page and a dropped socket are real to the SFU: packets go
over loopback UDP, sockets over TCP, and nothing is shared but what a browser shares.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from nio import RoomCreateResponse

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from tests.call.conftest import serving
from tests.call.peer_process import PeerProcess
from tests.matrix_users import logged_in, new_person, openid_token
from widgets.app import create_app
from widgets.call.moderation import Source
from widgets.call.rtp_forwarding import ForwardingSender, PacketTap
from widgets.call.service import CallService


@dataclass
class Classroom:
    """A teacher's room (she created it: power 100) with pupils; outsiders besides."""

    room_id: str
    users: dict[str, str]  # "teacher", "ivan", ... -> user ID
    tokens: dict[str, dict[str, Any]]  # -> a fresh OpenID token
    passwords: dict[str, str]


async def classroom(
    region: LocalDeployment,
    bot: MatrixClient,
    pupils: tuple[str, ...] = ("ivan", "masha"),
    outsiders: tuple[str, ...] = (),
) -> Classroom:
    accounts = {key: await new_person(bot, region, key) for key in ("teacher", *pupils, *outsiders)}
    tokens: dict[str, dict[str, Any]] = {}
    room_id = ""
    for key, (user_id, password) in accounts.items():
        async with logged_in(region, user_id, password) as client:
            if key == "teacher":
                created = await client.room_create(
                    name="Урок", invite=[accounts[p][0] for p in pupils]
                )
                assert isinstance(created, RoomCreateResponse), created
                room_id = created.room_id
            elif key in pupils:
                await client.join(room_id)
            tokens[key] = await openid_token(client)
    return Classroom(
        room_id,
        {key: user for key, (user, _) in accounts.items()},
        tokens,
        {key: password for key, (_, password) in accounts.items()},
    )


@dataclass
class Sfu:
    url: str  # the call WebSocket
    calls: CallService


@pytest.fixture(name="sfu")
async def sfu_fixture(region: LocalDeployment) -> AsyncIterator[Sfu]:
    """The widget service in this process; its call WebSocket and its call service."""
    app = create_app(region.settings)
    async with serving(app) as base:
        yield Sfu(base.replace("http://", "ws://") + "/call/ws", app.state.calls)


@pytest.fixture(name="peers")
async def peers_fixture() -> AsyncIterator[dict[str, PeerProcess]]:
    """Peer processes by name, started on first use; every one stopped at the end."""
    started: dict[str, PeerProcess] = {}
    try:
        yield started
    finally:
        await asyncio.gather(*(p.stop() for p in started.values()), return_exceptions=True)


async def peer(peers: dict[str, PeerProcess], name: str) -> PeerProcess:
    old = peers.get(name)
    if old is not None:
        await old.stop()
    peers[name] = await PeerProcess(name).start()
    return peers[name]


def person(state: dict[str, Any], user_id: str) -> dict[str, Any] | None:
    return next((p for p in state["participants"] if p["user_id"] == user_id), None)


async def frames_reach(process: PeerProcess, count: int, what: str, within_s: float) -> int:
    deadline = time.monotonic() + within_s
    while True:
        frames = int((await process.stats())["frames"])
        if frames >= count:
            return frames
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: {frames} of {count} frames within {within_s:.0f} s")
        await asyncio.sleep(0.2)


@pytest.fixture
def sfu_counters(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """In this process (the SFU's): PLIs it sent publishers, NACKed packets it resent."""
    counts = {"keyframe_requests": 0, "retransmissions": 0}
    request_keyframe, retransmit = PacketTap.request_keyframe, ForwardingSender._retransmit

    async def counting_request(self: PacketTap) -> None:
        counts["keyframe_requests"] += 1
        await request_keyframe(self)

    async def counting_retransmit(self: ForwardingSender, sequence_number: int) -> None:
        counts["retransmissions"] += 1
        await retransmit(self, sequence_number)

    monkeypatch.setattr(PacketTap, "request_keyframe", counting_request)
    monkeypatch.setattr(ForwardingSender, "_retransmit", counting_retransmit)
    return counts


async def test_a_lossy_subscriber_recovers_through_nacks_and_keyframes(
    region: LocalDeployment,
    bot: MatrixClient,
    sfu: Sfu,
    peers: dict[str, PeerProcess],
    sfu_counters: dict[str, int],
) -> None:
    room = await classroom(region, bot, pupils=("ivan",))
    teacher, ivan = await peer(peers, "teacher"), await peer(peers, "ivan")
    joined = await teacher.join(sfu.url, room.room_id, room.tokens["teacher"], ("camera",))
    assert joined["event"] == "joined", joined
    assert (await ivan.join(sfu.url, room.room_id, room.tokens["ivan"]))["event"] == "joined"
    frames = await frames_reach(ivan, 30, "the teacher's camera at Ivan's", 30)

    # A fifth of the packets lost: Ivan's NACKs reach the SFU, which resends from its
    # history, and the picture goes on.
    resent = sfu_counters["retransmissions"]
    await ivan.command("loss", share=0.2)
    frames = await frames_reach(ivan, frames + 60, "the picture under 20 % loss", 30)
    await ivan.command("loss", share=0.0)
    assert sfu_counters["retransmissions"] > resent, "no NACK was answered by the SFU"

    # An outage longer than anything NACKs can mend (the SFU keeps the last 128 packets,
    # aiortc's receiver waits 512): Ivan's receiver asks for a picture (PLI), the SFU asks
    # the teacher's page (its keyframe rate limit lets one through), and a keyframe comes.
    before = await teacher.stats()
    asked_by_sfu = sfu_counters["keyframe_requests"]
    await ivan.command("outage", packets=700)
    deadline = time.monotonic() + 40
    while (lost := await ivan.stats())["outage_left"] > 0:
        assert time.monotonic() < deadline, "the outage did not end within 40 s"
        await asyncio.sleep(0.2)
    await frames_reach(ivan, int(lost["frames"]) + 45, "the picture after the outage", 30)
    assert sfu_counters["keyframe_requests"] > asked_by_sfu, "the SFU passed on no PLI"
    after = await teacher.stats()
    assert after["keyframes_asked"] > before["keyframes_asked"], "no PLI reached the teacher"
    assert (await ivan.stats())["keyframes_received"] > lost["keyframes_received"]


async def test_pupils_cut_off_rejoin_into_the_same_floor_hand_and_mute(
    region: LocalDeployment, bot: MatrixClient, sfu: Sfu, peers: dict[str, PeerProcess]
) -> None:
    room = await classroom(region, bot, pupils=("ivan", "masha"))
    ivan_id, masha_id = room.users["ivan"], room.users["masha"]
    for name in ("teacher", "ivan", "masha"):
        process = await peer(peers, name)
        assert (await process.join(sfu.url, room.room_id, room.tokens[name]))["event"] == "joined"
    teacher, ivan, masha = peers["teacher"], peers["ivan"], peers["masha"]

    async def teacher_sees(check: Any, what: str) -> dict[str, Any]:
        return await teacher.state_where(check, what)

    # Masha speaks, then the teacher mutes everyone; Masha raises her hand again; Ivan is
    # given the floor.
    await masha.command("send", message={"type": "raise_hand"})
    await teacher_sees(lambda s: s["hands"] == [masha_id], "Masha's hand")
    await teacher.command("send", message={"type": "grant", "target": masha_id})
    await teacher_sees(lambda s: (person(s, masha_id) or {}).get("audio"), "Masha's floor")
    await teacher.command("send", message={"type": "mute_all"})
    await teacher_sees(lambda s: not (person(s, masha_id) or {}).get("audio", True), "mute")
    await masha.command("send", message={"type": "raise_hand"})
    await teacher_sees(lambda s: s["hands"] == [masha_id], "Masha's hand again")
    await ivan.command("send", message={"type": "raise_hand"})  # after hers: queued second
    await teacher_sees(lambda s: s["hands"] == [masha_id, ivan_id], "both hands")
    await teacher.command("send", message={"type": "grant", "target": ivan_id})

    def lesson_state(s: dict[str, Any]) -> bool:
        ivan_now, masha_now = person(s, ivan_id), person(s, masha_id)
        return bool(
            ivan_now and masha_now and ivan_now["has_floor"] and ivan_now["audio"]
            and masha_now["hand_raised"] and not masha_now["audio"]
            and s["hands"] == [masha_id]
        )  # fmt: skip

    await teacher_sees(lesson_state, "Ivan's floor and Masha's hand")

    # Ivan's page dies (SIGKILL) and Masha's network drops the socket.
    ivan.kill()
    await masha.command("drop_socket")
    await teacher_sees(
        lambda s: person(s, ivan_id) is None and person(s, masha_id) is None,
        "both pupils gone from the teacher's view",
    )
    assert not sfu.calls.rooms[room.room_id].state.may_forward(ivan_id, Source.AUDIO)

    # A new process for Ivan, a new socket and peer connection for Masha: same state.
    ivan = await peer(peers, "ivan")
    assert (await ivan.join(sfu.url, room.room_id, room.tokens["ivan"]))["event"] == "joined"
    assert (await masha.join(sfu.url, room.room_id, room.tokens["masha"]))["event"] == "joined"
    state = await teacher_sees(lesson_state, "Ivan and Masha back in the same state")
    assert not person(state, masha_id)["may_share_screen"]  # type: ignore[index]
    assert (await masha.stats())["peer_connections"] == 2
    visits = [v for v in sfu.calls.rooms[room.room_id].state.visits if v.user_id == ivan_id]
    assert len(visits) == 2 and visits[0].left_at is not None


def expire_openid_token(region: LocalDeployment, access_token: str) -> None:
    """Make Synapse see the token as it will an hour after issuing it: expired."""
    database = region.settings.synapse_dir / "homeserver.db"
    with sqlite3.connect(database, timeout=30) as db:
        changed = db.execute(
            "UPDATE open_id_tokens SET ts_valid_until_ms = 0 WHERE token = ?", (access_token,)
        ).rowcount
    assert changed == 1


async def test_a_bad_or_expired_token_is_refused_before_any_peer_connection(
    region: LocalDeployment, bot: MatrixClient, sfu: Sfu, peers: dict[str, PeerProcess]
) -> None:
    if region.settings.synapse_database != "sqlite":
        pytest.skip("expiring a token reaches into Synapse's SQLite database")
    room = await classroom(region, bot, pupils=("ivan",), outsiders=("stranger",))
    ivan = await peer(peers, "ivan")
    forged = {**room.tokens["ivan"], "access_token": "made-up-by-a-page"}
    expired = room.tokens["ivan"]
    expire_openid_token(region, str(expired["access_token"]))
    cases = [
        (forged, "invalid_token"),
        (expired, "invalid_token"),
        ({**expired, "matrix_server_name": "not a server"}, "bad_server_name"),
        (room.tokens["stranger"], "not_a_member"),
    ]
    for token, reason in cases:
        answer = await ivan.join(sfu.url, room.room_id, token, ("camera",))
        assert answer["event"] == "refused", answer
        assert (answer["reason"], answer["close_code"]) == (reason, 1008), answer
        assert answer["peer_connections"] == 0
    call = sfu.calls.rooms.get(room.room_id)
    assert call is None or not call.peers  # the SFU made no connection either
