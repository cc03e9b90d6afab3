"""Record what a publisher sends, without decoding or encoding it (issue 21, recordings).

The SFU forwards RTP as it comes (`rtp_forwarding.PacketTap` hands each packet to a
callback). A `Recording` takes the same packets of one publisher's camera and microphone,
puts each video frame back together from its RTP packets (aiortc's depayloaders, per
codec), and has PyAV mux the frames as they are into a file: VP8 with Opus into WebM,
H.264 with Opus into MP4. Nothing is transcoded, so a recording costs the SFU about what
copying the bytes costs.

Frames are rebuilt in the order packets arrive. A frame with a missing packet (lost, or
too late) is dropped, and so is every frame after it until the next keyframe, so the file
never holds a picture a player cannot decode; `on_keyframe_needed` asks the publisher
for one (the SFU rate-limits those requests). Each stream's timestamps start where its
first packet arrived, in the wall clock of the recording, so sound and picture stay in
step when one starts later than the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc.codecs import depayload
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from widgets.call.codecs import is_keyframe

# The container each video codec is remuxed into, and PyAV's name for the stream's codec.
CONTAINERS = {"vp8": ("webm", "libvpx"), "h264": ("mp4", "libx264")}
_AUDIO_CODEC = "libopus"
_SEQUENCE_SPAN = 1 << 16
_TIMESTAMP_SPAN = 1 << 32


class RecordingError(ValueError):
    """This recording cannot take that stream (another codec than it was started with)."""


def _unwrap(value: int, last: int | None, span: int) -> int:
    """The extended value of a counter that wraps at `span`, given the last extended one."""
    if last is None:
        return value
    base = last - (last % span)
    candidate = base + value
    if candidate - last > span // 2:
        candidate -= span
    elif last - candidate > span // 2:
        candidate += span
    return candidate


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe's header (RFC 6386, 9.1), or None."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    return int.from_bytes(frame[6:8], "little") & 0x3FFF, int.from_bytes(
        frame[8:10], "little"
    ) & 0x3FFF


@dataclass
class _Track:
    """One stream of the file: its RTP clock, and the frame being put together."""

    stream: Any  # av.stream.Stream
    clock_rate: int
    offset: int  # the stream's first timestamp, in its clock, from the recording's start
    first_timestamp: int | None = None
    last_timestamp: int | None = None
    last_sequence: int | None = None
    frame_timestamp: int | None = None
    parts: list[bytes] = field(default_factory=list)
    broken: bool = False  # a packet of this frame is missing
    waiting_for_keyframe: bool = True
    last_pts: int = -1


class Recording:
    """One publisher's camera and microphone, into one file while they send."""

    def __init__(
        self,
        path: Path,
        video_codec: str,
        *,
        on_keyframe_needed: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        name = video_codec.lower()
        if name not in CONTAINERS:
            raise RecordingError(f"recordings take VP8 or H.264 video, not {video_codec}")
        self.path = path
        self.video_codec = name
        self._container_format, self._video_stream_codec = CONTAINERS[name]
        self._container: Any = None
        self._video: _Track | None = None
        self._audio: _Track | None = None
        self._on_keyframe_needed = on_keyframe_needed
        self._clock = clock
        self._started = clock()
        self.frames_written = 0
        self.frames_dropped = 0
        self.audio_packets_written = 0

    # --- packets in -------------------------------------------------------------------

    def add(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        """Take one forwarded packet (audio or video) of this publisher."""
        kind, _, name = codec.mimeType.lower().partition("/")
        if kind == "audio":
            if name == "opus":
                self._add_audio(packet, codec)
            return
        if name != self.video_codec:
            raise RecordingError(f"this recording is {self.video_codec}, not {name}")
        self._add_video(packet, codec)

    def _open(self, width: int, height: int) -> None:
        """The file is opened at the first keyframe, when the picture's size is known."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w", format=self._container_format)
        stream = self._container.add_stream(self._video_stream_codec, rate=30)
        stream.width, stream.height = width, height
        stream.time_base = Fraction(1, 90_000)
        self._video = _Track(stream, 90_000, self._offset(90_000))
        audio = self._container.add_stream(_AUDIO_CODEC, rate=48_000)
        audio.time_base = Fraction(1, 48_000)
        self._audio = _Track(audio, 48_000, 0)  # its offset is set at its first packet

    def _offset(self, clock_rate: int) -> int:
        return round((self._clock() - self._started) * clock_rate)

    def _add_video(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        keyframe = is_keyframe(codec.mimeType, packet.payload)
        payload = depayload(codec, packet.payload)
        track = self._video
        if track is None:
            if not keyframe:
                return  # nothing to write until a picture can start
            size = vp8_size(payload) if self.video_codec == "vp8" else None
            self._open(*(size or (640, 480)))
            track = self._video
            assert track is not None
        sequence = _unwrap(packet.sequence_number, track.last_sequence, _SEQUENCE_SPAN)
        gap = False
        if track.last_sequence is not None:
            if sequence <= track.last_sequence:
                return  # a duplicate, or a packet too late for its frame
            gap = sequence != track.last_sequence + 1
        track.last_sequence = sequence
        if track.frame_timestamp is not None and packet.timestamp != track.frame_timestamp:
            self._drop_frame(track)  # a new frame began before the last one ended
        if track.frame_timestamp is None:
            # Packets lost just before a frame's first one may have been its start.
            track.frame_timestamp, track.broken = packet.timestamp, gap
            if track.waiting_for_keyframe and keyframe:
                track.waiting_for_keyframe = False
        elif gap:
            track.broken = True
        track.parts.append(payload)
        if packet.marker:
            self._end_frame(track)

    def _drop_frame(self, track: _Track) -> None:
        self.frames_dropped += 1
        track.parts, track.frame_timestamp, track.broken = [], None, False
        if not track.waiting_for_keyframe:
            track.waiting_for_keyframe = True
            self._on_keyframe_needed()

    def _end_frame(self, track: _Track) -> None:
        if track.broken or track.waiting_for_keyframe:
            self._drop_frame(track)
            return
        assert track.frame_timestamp is not None
        self._write(track, track.frame_timestamp, b"".join(track.parts))
        self.frames_written += 1
        track.parts, track.frame_timestamp = [], None

    def _add_audio(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        track = self._audio
        if track is None:
            return  # the file opens at the first keyframe; sound before it has no picture
        if track.first_timestamp is None:
            track.offset = self._offset(track.clock_rate)
        self._write(track, packet.timestamp, depayload(codec, packet.payload))
        self.audio_packets_written += 1

    def _write(self, track: _Track, rtp_timestamp: int, data: bytes) -> None:
        extended = _unwrap(rtp_timestamp, track.last_timestamp, _TIMESTAMP_SPAN)
        if track.first_timestamp is None:
            track.first_timestamp = extended
        track.last_timestamp = extended
        pts = track.offset + extended - track.first_timestamp
        if pts <= track.last_pts:
            return  # a muxer refuses time going backwards (a publisher's clock jumped)
        track.last_pts = pts
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = Fraction(1, track.clock_rate)  # the muxer rescales to its own
        packet.stream = track.stream
        self._container.mux(packet)

    # --- the end --------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether anything was written: the file exists once the first keyframe came."""
        return self._container is not None

    def close(self) -> Path | None:
        """Finish the file; its path, or None when no picture ever came (nothing written)."""
        if self._container is None:
            return None
        self._container.close()
        self._container = None
        return self.path
