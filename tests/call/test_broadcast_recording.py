"""Recording a broadcast's stage (widgets/call/broadcast_recording.py) on the real SFU with
aiortc clients in the pages' place: only the speakers are recorded, in parts within the
limits, and each part decodes with PyAV. The whole way into the audience chat, through
the real Synapse, is in `test_broadcast_recording_live.py`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
from aiortc import AudioStreamTrack, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from tests.call.conftest import until
from tests.call.pictures import Pattern
from tests.call.test_sfu import IVAN, MASHA, TEACHER, Client
from widgets.call.broadcast_recording import (
    FinishedRecording,
    RecordingLimits,
    StageBroadcast,
    StageRecorder,
    caption,
    file_name,
    probe,
)
from widgets.call.moderation import CallState, Source
from widgets.call.sfu import CallRoom

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)
BROADCAST = StageBroadcast("!chat:hs", 7, "Открытый урок", "ru")


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


async def test_only_the_speakers_are_recorded_in_parts_within_the_size_limit(
    tmp_path: Path,
) -> None:
    """Ivan speaks; the teacher (a moderator, forwarded without the floor) and Masha (the
    audience, given the floor for a question) publish camera and microphone all along."""
    state = CallState("!chat:hs", last_n=2)
    room = CallRoom(state, audio_slots=3)
    clients = {user: Client(user) for user in (TEACHER, IVAN, MASHA)}
    for user, client in clients.items():
        state.join(user, f"Имя {user[1:3]}", moderator=user == TEACHER, now=time.monotonic())
        await client.join(room)
    state.start_broadcast(BROADCAST.broadcast_id, [IVAN])
    state.grant_floor(TEACHER, MASHA)
    room.reassign()
    limits = RecordingLimits(max_bytes=120_000, max_seconds=3600)
    recorder = StageRecorder(room, BROADCAST, tmp_path / "stage", limits)
    seen: set[tuple[str, Source]] = set()
    room.listeners.append(lambda key, packet, codec: seen.add(key))
    try:
        assert (tmp_path / "stage").stat().st_mode & 0o777 == 0o700
        await until(lambda: recorder._parts_started.get((IVAN, Source.CAMERA), 0) >= 3,
                    "three parts of the speaker's camera", within_s=60)  # fmt: skip
        # The audience's packets did reach the SFU's listeners: the recorder left them.
        assert {(TEACHER, Source.CAMERA), (MASHA, Source.AUDIO)} <= seen
        private = list((tmp_path / "stage").iterdir())
        assert private and all(p.stat().st_mode & 0o777 == 0o600 for p in private)
        finished = recorder.finish()
        sent = next(t.sender.track for t in clients[IVAN].pc.getTransceivers() if t.kind == "video")
        assert isinstance(sent, Pattern)
    finally:
        await room.close()
        await asyncio.gather(*(c.close() for c in clients.values()))
    assert {(f.user_id, f.source) for f in finished} == {(IVAN, Source.CAMERA)}
    assert [f.part for f in finished] == list(range(1, len(finished) + 1))
    assert len(finished) >= 2  # the third has only begun
    total = 0
    for recording in finished:
        info = probe(recording.path)
        assert info.size <= limits.max_bytes, (recording.part, info.size)
        assert (info.mimetype, info.width, info.height) == ("video/webm", 320, 240)
        frames = decoded_frames(recording.path)
        assert frames == recording.frames
        total += frames
    # Each new part waits for the keyframe it asks for; little is lost in between.
    assert total >= 0.8 * sent.index - 30, (total, sent.index)
    assert all(" — Имя iv" in caption(f) for f in finished)
    assert caption(finished[1]) == "Запись трансляции «Открытый урок» — Имя iv, часть 2"


async def test_a_speaker_who_reconnects_is_recorded_in_a_new_part(tmp_path: Path) -> None:
    """Their new connection's RTP starts from other numbers: a part of its own, which
    starts at the keyframe the recorder asks for."""
    state = CallState("!chat:hs")
    state.join(IVAN, "Иван", moderator=False, now=time.monotonic())
    state.start_broadcast(BROADCAST.broadcast_id, [IVAN])
    room = CallRoom(state)
    recorder = StageRecorder(room, BROADCAST, tmp_path / "stage", RecordingLimits(10**7, 600))
    first, second = Client(IVAN), Client(IVAN)
    try:
        await first.join(room)
        await until(lambda: any(p.recording.frames_written > 15 for p in recorder._parts.values()),
                    "the first connection recorded")  # fmt: skip
        await second.join(room)  # a reload: the newest connection replaces the first
        await until(lambda: recorder._parts_started.get((IVAN, Source.CAMERA)) == 2
                    and recorder._parts[(IVAN, Source.CAMERA)].recording.frames_written > 15,
                    "the second connection recorded")  # fmt: skip
        finished = recorder.finish()
    finally:
        await room.close()
        await asyncio.gather(first.close(), second.close())
    assert [f.part for f in finished] == [1, 2]
    for recording in finished:
        assert decoded_frames(recording.path) == recording.frames
        with av.open(str(recording.path)) as container:
            assert sum(1 for _ in container.decode(audio=0)) > 0, "the voice is in each part"


class Presenter(Client):
    """A speaker's page sharing a screen besides its camera and microphone."""

    async def answer(self, offer: RTCSessionDescription) -> str:
        await self.pc.setRemoteDescription(offer)
        transceivers = self.pc.getTransceivers()
        for transceiver, track in zip(
            transceivers[:3], (AudioStreamTrack(), Pattern(), Pattern()), strict=True
        ):
            transceiver.sender.replaceTrack(track)
            transceiver.direction = "sendonly"
        for transceiver in transceivers[3:]:
            transceiver.direction = "inactive"
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)


async def test_a_shared_screen_is_a_recording_of_its_own_with_the_speaker_s_voice(
    tmp_path: Path,
) -> None:
    state = CallState("!chat:hs")
    state.join(IVAN, "Иван", moderator=False, now=time.monotonic())
    state.start_broadcast(BROADCAST.broadcast_id, [IVAN])
    room = CallRoom(state)
    recorder = StageRecorder(room, BROADCAST, tmp_path / "stage", RecordingLimits(10**7, 600))
    presenter = Presenter(IVAN)
    try:
        await presenter.join(room)
        await until(lambda: len(recorder._parts) == 2 and all(
            p.recording.frames_written > 15 for p in recorder._parts.values()),
            "the camera and the screen recorded")  # fmt: skip
        finished = recorder.finish()
    finally:
        await room.close()
        await presenter.close()
    assert [(f.source, f.part) for f in finished] == [(Source.CAMERA, 0), (Source.SCREEN, 0)]
    assert caption(finished[1]) == "Запись трансляции «Открытый урок» — Иван (экран)"
    for recording in finished:
        assert decoded_frames(recording.path) == recording.frames
        with av.open(str(recording.path)) as container:
            assert sum(1 for _ in container.decode(audio=0)) > 0, "the voice is in each file"


def test_a_stream_without_a_picture_leaves_no_file(tmp_path: Path) -> None:
    """A stage that closes before the speaker's first keyframe: nothing to post, and
    nothing left on disk (the part's file was made when its first packet came)."""
    state = CallState("!chat:hs")
    state.join(IVAN, "Иван", moderator=False, now=time.monotonic())
    state.start_broadcast(BROADCAST.broadcast_id, [IVAN])
    room = CallRoom(state)
    recorder = StageRecorder(room, BROADCAST, tmp_path / "stage", RecordingLimits(10**6, 60))

    async def packets() -> None:
        for sequence in range(30):  # VP8 interframes only (RFC 7741: S bit, P bit set)
            packet = RtpPacket(payload_type=96, sequence_number=sequence, timestamp=sequence,
                               ssrc=1, payload=b"\x10\x01\x00\x00" + bytes(100))  # fmt: skip
            packet.marker = 1
            for listener in room.listeners:
                listener((IVAN, Source.CAMERA), packet, VP8)

    asyncio.run(packets())
    assert len(list((tmp_path / "stage").iterdir())) == 1
    assert recorder.finish() == []
    assert list((tmp_path / "stage").iterdir()) == []
    assert room.listeners == []


def test_captions_and_file_names_in_both_languages(tmp_path: Path) -> None:
    english = StageBroadcast("!chat:hs", 7, 'Open day / "A"', "en")
    recording = FinishedRecording(english, tmp_path / "x.webm", IVAN, "Ivan", Source.SCREEN, 0, 1)
    assert caption(recording) == 'Recording of the broadcast “Open day / "A"” — Ivan (screen)'
    assert (
        file_name(recording, "webm")
        == "Recording of the broadcast “Open day _ _A_” — Ivan (screen).webm"
    )
