"""The SFU with aiortc clients in the pages' place: the teacher's decisions are enforced.

Each pupil's client publishes its microphone and camera from the start, as a page that
ignores the teacher would: the SFU still forwards nothing of theirs without the floor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCPeerConnection,
    RTCSessionDescription,
)

from tests.call.conftest import until
from tests.call.pictures import Pattern
from widgets.call.moderation import CallError, CallMode, CallState, Source
from widgets.call.sfu import CallRoom, new_peer_connection

TEACHER, IVAN, MASHA = "@olga:hs", "@ivan:hs", "@masha:hs"


@dataclass
class Client:
    """What the call page does, in aiortc: answer the SFU's offer with its own tracks."""

    user_id: str
    pc: RTCPeerConnection = field(default_factory=new_peer_connection)
    states: list[dict[str, Any]] = field(default_factory=list)
    tracks: dict[str, MediaStreamTrack] = field(default_factory=dict)  # mid -> received
    frames: dict[str, int] = field(default_factory=dict)  # mid -> decoded video frames
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def on_message(self, message: dict[str, Any]) -> None:
        self.states.append(message)

    async def join(self, room: CallRoom) -> None:
        offer = await room.connect(self.user_id, self.on_message)
        await room.accept_answer(self.user_id, await self.answer(offer))

    async def answer(self, offer: RTCSessionDescription) -> str:
        """Answer the SFU's offer, publishing a microphone and a camera."""

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
            mid = transceiver.mid or ""
            self.tracks[mid] = track
            if track.kind == "video":
                self.tasks.append(asyncio.ensure_future(self._count(mid, track)))

        await self.pc.setRemoteDescription(offer)
        transceivers = self.pc.getTransceivers()
        published = (AudioStreamTrack(), Pattern())
        for transceiver, track in zip(transceivers[:2], published, strict=True):
            transceiver.sender.replaceTrack(track)  # published whatever the teacher says
            transceiver.direction = "sendonly"
        for transceiver in transceivers[3:]:
            transceiver.direction = "recvonly"
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def _count(self, mid: str, track: MediaStreamTrack) -> None:
        while True:
            await track.recv()
            self.frames[mid] = self.frames.get(mid, 0) + 1

    async def packets_on(self, mid: str) -> int:
        """RTP packets this client received on one slot (from the receiver's stats)."""
        transceiver = next(t for t in self.pc.getTransceivers() if t.mid == mid)
        stats = await transceiver.receiver.getStats()
        return sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()


def slot_of(room: CallRoom, subscriber: str, stream: tuple[str, Source]) -> str | None:
    view = room.peers[subscriber].slot_view()
    wanted = {"user_id": stream[0], "source": stream[1].value}
    return next((mid for mid, shown in view.items() if shown == wanted), None)


@pytest.fixture
async def lesson() -> AsyncIterator[tuple[CallRoom, dict[str, Client]]]:
    state = CallState("!chat:hs", last_n=2)
    room = CallRoom(state, audio_slots=3)
    clients = {user: Client(user) for user in (TEACHER, IVAN, MASHA)}
    for user, client in clients.items():
        state.join(user, user[1:3], moderator=user == TEACHER, now=time.monotonic())
        await client.join(room)
    try:
        yield room, clients
    finally:
        await room.close()
        await asyncio.gather(*(c.close() for c in clients.values()))


async def test_pupils_see_and_hear_the_teacher_and_not_each_other(
    lesson: tuple[CallRoom, dict[str, Client]],
) -> None:
    room, clients = lesson
    for pupil in (IVAN, MASHA):
        camera = slot_of(room, pupil, (TEACHER, Source.CAMERA))
        voice = slot_of(room, pupil, (TEACHER, Source.AUDIO))
        assert camera is not None and voice is not None
        page = clients[pupil]
        await until(lambda: page.frames.get(camera, 0) >= 15, "the teacher's video")  # noqa: B023
        await until(lambda: page.packets_on(voice), "the teacher's voice")  # noqa: B023
        # Nothing of the other pupil is assigned, whatever their client sends.
        other = MASHA if pupil == IVAN else IVAN
        assert slot_of(room, pupil, (other, Source.AUDIO)) is None
        assert slot_of(room, pupil, (other, Source.CAMERA)) is None
    # The teacher sees nobody's camera yet: pupils start with cameras off.
    assert slot_of(room, TEACHER, (IVAN, Source.CAMERA)) is None


async def test_a_pupil_is_heard_only_while_holding_the_floor(
    lesson: tuple[CallRoom, dict[str, Client]],
) -> None:
    room, clients = lesson
    masha = clients[MASHA]
    forwarded_before = room.forwarded_packets
    await asyncio.sleep(1.0)  # Ivan's client sends all along
    assert slot_of(room, MASHA, (IVAN, Source.AUDIO)) is None
    room.state.raise_hand(IVAN, now=time.monotonic())
    room.state.grant_floor(TEACHER, IVAN)
    room.reassign()
    voice = slot_of(room, MASHA, (IVAN, Source.AUDIO))
    camera = slot_of(room, MASHA, (IVAN, Source.CAMERA))
    assert voice is not None and camera is not None
    await until(lambda: masha.packets_on(voice), "Ivan's voice at Masha's")
    await until(lambda: masha.frames.get(camera, 0) >= 10, "Ivan's camera at Masha's")
    assert room.forwarded_packets > forwarded_before

    room.state.revoke_floor(TEACHER, IVAN)
    room.reassign()
    assert slot_of(room, MASHA, (IVAN, Source.AUDIO)) is None
    await asyncio.sleep(0.5)  # packets in flight arrive
    heard = await masha.packets_on(voice)
    await asyncio.sleep(1.5)
    assert await masha.packets_on(voice) == heard  # silence since the revoke
    # The state each page got says so too.
    await room.broadcast()
    last = masha.states[-1]
    ivan = next(p for p in last["participants"] if p["user_id"] == IVAN)
    assert ivan["audio"] is False and ivan["has_floor"] is False
    assert voice not in last["slots"] or last["slots"][voice]["user_id"] != IVAN


async def test_cameras_allowed_for_all_show_pupils_without_their_voices(
    lesson: tuple[CallRoom, dict[str, Client]],
) -> None:
    room, clients = lesson
    room.state.allow_cameras(TEACHER, True)
    room.reassign()
    camera = slot_of(room, TEACHER, (IVAN, Source.CAMERA))
    assert camera is not None
    await until(lambda: clients[TEACHER].frames.get(camera, 0) >= 10, "Ivan's camera")
    assert slot_of(room, TEACHER, (IVAN, Source.AUDIO)) is None


async def test_a_stream_its_page_does_not_fill_gets_no_slot_and_the_claim_widens_nothing(
    lesson: tuple[CallRoom, dict[str, Client]],
) -> None:
    room, _ = lesson
    assert slot_of(room, IVAN, (TEACHER, Source.CAMERA)) is not None
    # The teacher turns her camera off (her page says so): no black picture at Ivan's.
    room.set_sending(TEACHER, frozenset({Source.AUDIO}))
    room.reassign()
    assert slot_of(room, IVAN, (TEACHER, Source.CAMERA)) is None
    assert slot_of(room, IVAN, (TEACHER, Source.AUDIO)) is not None
    room.set_sending(TEACHER, frozenset({Source.AUDIO, Source.CAMERA, Source.SCREEN}))
    room.reassign()
    assert slot_of(room, IVAN, (TEACHER, Source.CAMERA)) is not None
    # Said, but never negotiated (this client publishes no screen): still no slot.
    assert slot_of(room, IVAN, (TEACHER, Source.SCREEN)) is None
    # A pupil's page claiming to send is still not forwarded without the floor.
    room.set_sending(IVAN, frozenset(Source))
    room.reassign()
    assert slot_of(room, MASHA, (IVAN, Source.AUDIO)) is None


async def silent_on(client: Client, mid: str) -> None:
    """Nothing more arrives on this slot: what was in flight lands, then none for 1.5 s."""
    await asyncio.sleep(0.5)
    heard = await client.packets_on(mid)
    await asyncio.sleep(1.5)
    assert await client.packets_on(mid) == heard


async def test_an_open_meeting_forwards_everyone_and_a_mute_stops_a_voice(
    lesson: tuple[CallRoom, dict[str, Client]],
) -> None:
    room, clients = lesson
    masha = clients[MASHA]
    assert slot_of(room, MASHA, (IVAN, Source.AUDIO)) is None
    room.state.set_mode(TEACHER, CallMode.OPEN)
    room.reassign()
    voice = slot_of(room, MASHA, (IVAN, Source.AUDIO))
    assert voice is not None  # nobody gave Ivan the floor
    assert slot_of(room, TEACHER, (MASHA, Source.AUDIO)) is not None
    await until(lambda: masha.packets_on(voice), "Ivan's voice at Masha's in the meeting")

    room.state.mute(TEACHER, IVAN)
    room.reassign()
    assert slot_of(room, MASHA, (IVAN, Source.AUDIO)) is None
    await silent_on(masha, voice)
    # Ivan's client keeps sending all along; were his stream routed again by mistake, the
    # packets would still stop at `may_forward`.
    assert not room.state.may_forward(IVAN, Source.AUDIO)

    room.state.unmute(TEACHER, IVAN)
    room.reassign()
    voice = slot_of(room, MASHA, (IVAN, Source.AUDIO))
    assert voice is not None
    before = await masha.packets_on(voice)
    await until(
        lambda: _more(masha, voice, before),
        "Ivan's voice again once unmuted",
    )

    room.state.set_mode(TEACHER, CallMode.LESSON)
    room.reassign()
    assert slot_of(room, MASHA, (IVAN, Source.AUDIO)) is None
    await silent_on(masha, voice)
    await room.broadcast()
    last = masha.states[-1]
    ivan = next(p for p in last["participants"] if p["user_id"] == IVAN)
    assert last["mode"] == "lesson" and ivan["audio"] is False


async def _more(client: Client, mid: str, than: int) -> bool:
    return await client.packets_on(mid) > than


async def test_a_broadcast_s_audience_only_receives_until_brought_on_stage(
    lesson: tuple[CallRoom, dict[str, Client]],
) -> None:
    """Ivan is a speaker of the room's broadcast; Masha is the audience. Both clients
    publish from the start; only the stage's reaches anyone, whatever the room allows."""
    room, clients = lesson
    masha, teacher = clients[MASHA], clients[TEACHER]
    room.state.start_broadcast(7, [IVAN])
    room.state.open_floor = True  # a room nobody moderates would open the floor: not here
    room.reassign()
    voice = slot_of(room, MASHA, (IVAN, Source.AUDIO))
    assert voice is not None and slot_of(room, MASHA, (IVAN, Source.CAMERA)) is not None
    await until(lambda: masha.packets_on(voice), "the speaker's voice at a viewer's")
    assert slot_of(room, TEACHER, (MASHA, Source.AUDIO)) is None
    assert slot_of(room, IVAN, (MASHA, Source.CAMERA)) is None
    assert not room.state.may_forward(MASHA, Source.AUDIO)
    with pytest.raises(CallError, match="broadcast_audience_listens"):
        room.state.set_mode(TEACHER, CallMode.OPEN)

    # The moderator brings Masha on stage with the floor, and takes her off again.
    room.state.grant_floor(TEACHER, MASHA)
    room.reassign()
    question = slot_of(room, TEACHER, (MASHA, Source.AUDIO))
    assert question is not None
    await until(lambda: teacher.packets_on(question), "the viewer's question at the teacher's")
    room.state.revoke_floor(TEACHER, MASHA)
    room.reassign()
    assert slot_of(room, TEACHER, (MASHA, Source.AUDIO)) is None
    await silent_on(teacher, question)
    await room.broadcast()
    last = masha.states[-1]
    assert last["broadcast_id"] == 7
    on_stage = {p["user_id"]: p["on_stage"] for p in last["participants"]}
    assert on_stage == {TEACHER: False, IVAN: True, MASHA: False}
