"""Recording a publisher by remuxing its RTP (widgets/call/recording.py): real encoders make
the packets (aiortc's VP8, H.264 and Opus, as a browser's would arrive), PyAV reads the
file back and decodes every frame of it."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import pytest
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from av import AudioFrame, VideoFrame

from widgets.call.recording import Recording, RecordingError, vp8_size

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)
H264 = RTCRtpCodecParameters(
    mimeType="video/H264", clockRate=90_000, payloadType=102,
    parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
)  # fmt: skip
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48_000, channels=2, payloadType=111)
FPS = 30


class Publisher:
    """A camera and a microphone as the SFU receives them: RTP packets, numbered and
    stamped from near the ends of their ranges, so both counters wrap during the test."""

    def __init__(self, video: RTCRtpCodecParameters, width: int = 640, height: int = 480):
        self.video_codec, self.width, self.height = video, width, height
        self.video = get_encoder(video)
        self.audio = get_encoder(OPUS)
        self.video_seq, self.video_ts = 65_500, (1 << 32) - 90_000
        self.audio_seq, self.audio_ts = 65_000, (1 << 32) - 48_000
        self.sound_time = 1000.0  # the wall clock of the last sound packet sent

    def frame(
        self, index: int, *, keyframe: bool = False
    ) -> list[tuple[RtpPacket, RTCRtpCodecParameters]]:
        picture = VideoFrame(self.width, self.height, "yuv420p")
        for plane in picture.planes:  # noise: every frame spans several packets
            plane.update(os.urandom(plane.buffer_size))
        picture.pts, picture.time_base = index * 3000, Fraction(1, 90_000)
        payloads, _ = self.video.encode(picture, force_keyframe=keyframe)
        packets = []
        for n, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=self.video_codec.payloadType, marker=int(n == len(payloads) - 1),
                sequence_number=self.video_seq, timestamp=self.video_ts, payload=payload,
            )  # fmt: skip
            self.video_seq = (self.video_seq + 1) % 65_536
            packets.append((packet, self.video_codec))
        self.video_ts = (self.video_ts + 90_000 // FPS) % (1 << 32)
        return packets

    def sound(self) -> list[tuple[RtpPacket, RTCRtpCodecParameters]]:
        """20 ms of audio: one Opus packet."""
        samples = AudioFrame(format="s16", layout="stereo", samples=960)
        for plane in samples.planes:
            plane.update(bytes(plane.buffer_size))
        samples.sample_rate, samples.pts = 48_000, self.audio_ts
        samples.time_base = Fraction(1, 48_000)
        payloads, _ = self.audio.encode(samples)
        packets = []
        for payload in payloads:
            packet = RtpPacket(payload_type=OPUS.payloadType, sequence_number=self.audio_seq,
                               timestamp=self.audio_ts, payload=payload)  # fmt: skip
            self.audio_seq = (self.audio_seq + 1) % 65_536
            self.audio_ts = (self.audio_ts + 960) % (1 << 32)
            packets.append((packet, OPUS))
        return packets


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(
    recording: Recording, publisher: Publisher, clock: Clock, seconds: float,
    *, lose: set[int] = frozenset(), keyframes: set[int] = frozenset({0}),
    requested: list[int] | None = None,
) -> None:  # fmt: skip
    """Feed `seconds` of camera and microphone; `lose` names frames that lose one packet."""
    frames = round(seconds * FPS)
    for index in range(frames):
        wanted = index in keyframes or bool(requested)
        if requested:
            requested.clear()  # the SFU asked the publisher; this frame is its answer
        packets = publisher.frame(index, keyframe=wanted)
        if index in lose:
            del packets[len(packets) // 2]
        for packet, codec in packets:
            recording.add(packet, codec)
        # Sound up to the next frame, a packet every 20 ms, each when it would arrive.
        next_frame = 1000.0 + (index + 1) / FPS
        while publisher.sound_time + 0.02 <= next_frame + 1e-9:
            publisher.sound_time += 0.02
            clock.now = publisher.sound_time
            for packet, codec in publisher.sound():
                recording.add(packet, codec)
        clock.now = next_frame


def read_back(path: Path) -> tuple[dict[str, str], int, int, float]:
    with av.open(str(path)) as container:
        kinds = {s.type: s.codec_context.name for s in container.streams}
        duration = (container.duration or 0) / 1_000_000
    with av.open(str(path)) as container:
        video = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        audio = sum(1 for _ in container.decode(audio=0))
    return kinds, video, audio, duration


@pytest.mark.parametrize(("codec", "suffix", "kinds"), [
    (VP8, "webm", {"video": "vp8", "audio": "opus"}),
    (H264, "mp4", {"video": "h264", "audio": "opus"}),
])  # fmt: skip
def test_a_publisher_is_recorded_as_sent_and_every_frame_decodes(
    tmp_path: Path, codec: RTCRtpCodecParameters, suffix: str, kinds: dict[str, str]
) -> None:
    clock = Clock()
    recording = Recording(tmp_path / f"lesson.{suffix}", codec.name, clock=clock)
    publisher = Publisher(codec)
    record(recording, publisher, clock, seconds=3)
    path = recording.close()
    assert path is not None and path.stat().st_size > 10_000
    found, video, audio, duration = read_back(path)
    assert found == kinds
    assert video == recording.frames_written == 90
    assert recording.frames_dropped == 0
    assert audio == recording.audio_packets_written >= 145
    assert 2.9 <= duration <= 3.2
    if codec is VP8:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.width, stream.codec_context.height) == (640, 480)


def test_a_lost_packet_drops_frames_until_the_keyframe_it_asks_for(tmp_path: Path) -> None:
    clock = Clock()
    requested: list[int] = []
    recording = Recording(
        tmp_path / "lesson.webm", "VP8", clock=clock, on_keyframe_needed=lambda: requested.append(1)
    )
    publisher = Publisher(VP8)
    record(recording, publisher, clock, seconds=2, lose={30}, requested=requested)
    path = recording.close()
    assert path is not None
    # Frame 30 lost a packet: dropped, one keyframe asked for, frame 31 is that keyframe.
    assert recording.frames_dropped == 1
    assert recording.frames_written == 59
    _, video, _, _ = read_back(path)
    assert video == 59


def test_a_recording_starts_at_a_keyframe_and_without_one_writes_nothing(tmp_path: Path) -> None:
    clock = Clock()
    publisher = Publisher(VP8)
    recording = Recording(tmp_path / "late.webm", "VP8", clock=clock)
    # The first frames are not keyframes (the recording began mid-stream): nothing yet.
    for index in (0, 1):
        publisher.frame(index, keyframe=True)  # the encoder's own first keyframe, unseen
    for packet, codec in publisher.frame(2) + publisher.sound():
        recording.add(packet, codec)
    assert not recording.started and recording.close() is None
    assert not (tmp_path / "late.webm").exists()
    with pytest.raises(RecordingError, match=r"VP8 or H\.264"):
        Recording(tmp_path / "x.webm", "AV1")
    started = Recording(tmp_path / "mixed.webm", "VP8", clock=clock)
    with pytest.raises(RecordingError, match="not h264"):
        started.add(*Publisher(H264).frame(0, keyframe=True)[0])


def test_the_picture_size_comes_from_a_vp8_keyframe() -> None:
    assert vp8_size(b"\x10\x02\x00\x9d\x01\x2a\x80\x02\xe0\x01") == (640, 480)
    assert vp8_size(b"\x11\x02\x00\x9d\x01\x2a\x80\x02\xe0\x01") is None  # an interframe
    assert vp8_size(b"\x10\x02") is None
