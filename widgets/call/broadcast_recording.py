"""Record a broadcast's stage and post the recordings into its audience chat (issue 21).

While a call is a live broadcast's stage, a `StageRecorder` listens to every packet the
SFU may forward (`CallRoom.listeners`) and keeps, for each speaker, one recording of
their camera with their microphone and, if they share their screen, one of the screen
with the same microphone (a talk over slides is watched with its voice). Only the
broadcast's speakers are recorded, as provisioning names them: a viewer a moderator
brings on the stage with the floor, or a moderator who is no speaker, agreed to speak to
the audience, not to be kept in the chat's history.

Nothing is decoded (`recording.Recording` remuxes RTP into WebM or MP4). Each stream is
written in parts, so that what waits on disk and each upload stay bounded: a part ends
at `RecordingLimits.max_bytes` or `max_seconds`, when the speaker reconnects (a new
SSRC: their RTP clock starts again) or changes codec; the next part starts at the next
keyframe, which the recorder asks for. A stream stops being recorded after `max_parts`.
Files live in a private directory (0700, files 0600) under the call state directory.

When the stage closes (the broadcast's end, the call forgotten or given back, the
service stopping) `BroadcastRecordings.close` finishes the files and the bot uploads
each one with video in it (`matrix.media.upload_stream`) and posts it into the room as
an `m.video` with a caption in the deployment's language; the file is deleted after,
posted or not. A failed upload is tried `UPLOAD_ATTEMPTS` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from foundation.settings import Settings
from matrix.client import MatrixClient
from matrix.errors import MatrixError
from matrix.media import upload_stream
from matrix.rooms import send_message
from widgets.call.attendance import Language
from widgets.call.moderation import Source
from widgets.call.recording import CONTAINERS, Recording
from widgets.call.sfu import CallRoom, StreamKey

log = logging.getLogger(__name__)

# What a muxer adds per packet (a WebM block header, an MP4 sample's table entries) and
# once per file (headers, cues, the MP4 index), kept free under the size limit.
PACKET_OVERHEAD_BYTES = 32
FILE_HEADROOM_BYTES = 64 * 1024
# One video frame's packets are held until its last one: a publisher that never ends a
# frame is cut off here (the frame is dropped) instead of growing memory.
MAX_FRAME_BYTES = 4 * 1024 * 1024
MAX_PARTS = 24  # per speaker's stream and broadcast: reconnections and long broadcasts
KEYFRAME_RETRY_S = 1.0  # a part waiting for its first keyframe asks again this often
UPLOAD_ATTEMPTS = 3
UPLOAD_RETRY_S = 5.0  # times the attempt number
UPLOAD_TIMEOUT = httpx.Timeout(60.0, read=600.0, write=600.0)
UPLOADS_AT_ONCE = 2
# At the service's stop, uploads still running get this long: within the 20 s the
# supervisor gives a stopping service before SIGKILL (systemd gives 90 s).
STOP_WAIT_S = 15.0
CHUNK_BYTES = 256 * 1024
_MIMETYPES = {"webm": "video/webm", "mp4": "video/mp4"}
_VIDEO = (Source.CAMERA, Source.SCREEN)


@dataclass(frozen=True)
class RecordingLimits:
    """Bounds of one part of a speaker's recording."""

    max_bytes: int
    max_seconds: float
    max_parts: int = MAX_PARTS

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordingLimits:
        return cls(settings.call_recording_max_bytes, settings.call_recording_max_s)


@dataclass(frozen=True)
class StageBroadcast:
    """The broadcast whose stage a call is: what names its recordings, and where they go."""

    room_id: str
    broadcast_id: int
    title: str
    language: Language


@dataclass(frozen=True)
class FinishedRecording:
    """One part of one speaker's stream, closed, with at least one video frame in it."""

    broadcast: StageBroadcast
    path: Path
    user_id: str
    speaker: str  # their display name when the part started
    source: Source
    part: int  # 1, 2, … among the stream's posted parts; 0: the stream has one
    frames: int


@dataclass(frozen=True)
class VideoInfo:
    mimetype: str
    size: int
    duration_ms: int
    width: int
    height: int


def probe(path: Path) -> VideoInfo:
    """What an `m.video`'s `info` says, read back from the finished file's headers."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        duration = container.duration or 0  # microseconds (av.time_base)
        width, height = video.codec_context.width, video.codec_context.height
        kind = "mp4" if "mp4" in container.format.name else "webm"
    return VideoInfo(_MIMETYPES[kind], path.stat().st_size, duration // 1000, width, height)


def caption(recording: FinishedRecording) -> str:
    """«Запись трансляции «<title>» — <speaker>», in the deployment's language."""
    title, name = recording.broadcast.title, recording.speaker
    screen = recording.source is Source.SCREEN
    if recording.broadcast.language == "ru":
        text = f"Запись трансляции «{title}» — {name}" if title else f"Запись трансляции — {name}"
        text += " (экран)" if screen else ""
        return text + (f", часть {recording.part}" if recording.part else "")
    text = f"Recording of the broadcast “{title}” — {name}" if title else f"Recording — {name}"
    text += " (screen)" if screen else ""
    return text + (f", part {recording.part}" if recording.part else "")


def file_name(recording: FinishedRecording, extension: str) -> str:
    """A download's name: the caption without characters a file system refuses."""
    name = re.sub(r'[\x00-\x1f/\\:*?"<>|]+', "_", caption(recording)).strip(" ._")
    return f"{name[:120] or 'recording'}.{extension}"


@dataclass
class _Part:
    """The part of one stream being written now."""

    recording: Recording
    number: int
    speaker: str
    started_at: float
    video_ssrc: int | None = None
    audio_ssrc: int | None = None
    bytes_in: int = 0  # what the file will hold at most, for the size limit
    frame_timestamp: int | None = None
    frame_bytes: int = 0
    keyframe_asked_at: float = 0.0


class StageRecorder:
    """One call's stage: a recording per speaker's camera and screen, while it is live."""

    def __init__(
        self,
        room: CallRoom,
        broadcast: StageBroadcast,
        directory: Path,
        limits: RecordingLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.room = room
        self.broadcast = broadcast
        self.directory = directory
        self.limits = limits
        self._clock = clock
        self._parts: dict[StreamKey, _Part] = {}
        self._finished: list[tuple[StreamKey, _Part]] = []
        self._parts_started: dict[StreamKey, int] = {}
        self._given_up: set[StreamKey] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        room.listeners.append(self.on_packet)

    # --- packets in (called by the SFU for each packet: never raises, never blocks) -------

    def on_packet(self, key: StreamKey, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        user_id, source = key
        state = self.room.state
        if user_id not in state.stage or state.broadcast_id != self.broadcast.broadcast_id:
            return  # the audience, or a stage no longer this broadcast's
        try:
            if source is Source.AUDIO:
                for video in _VIDEO:
                    part = self._parts.get((user_id, video))
                    if part is not None:
                        self._add_audio((user_id, video), part, packet, codec)
            else:
                self._add_video(key, packet, codec)
        except Exception:  # a recorder's fault must never stop the call's forwarding
            log.exception("recording %s of call %s failed; it stops", key, state.room_id)
            for video in (source,) if source is not Source.AUDIO else _VIDEO:
                self._give_up((user_id, video))

    def _add_audio(
        self, key: StreamKey, part: _Part, packet: RtpPacket, codec: RTCRtpCodecParameters
    ) -> None:
        if part.audio_ssrc is None and part.recording.started:
            part.audio_ssrc = packet.ssrc  # the voice of this connection from now on
        if packet.ssrc != part.audio_ssrc or not self._fits(part, packet):
            return  # an older connection's voice, or a full part (the video rolls it)
        part.bytes_in += len(packet.payload) + PACKET_OVERHEAD_BYTES
        part.recording.add(packet, codec)

    def _add_video(self, key: StreamKey, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        if key in self._given_up:
            return
        name = codec.mimeType.lower().partition("/")[2]
        if name not in CONTAINERS:
            return  # neither VP8 nor H.264: nothing a file here can hold
        part = self._parts.get(key)
        if part is not None and self._must_roll(part, packet, name):
            self._end_part(key)
            part = None
        if part is None:
            part = self._new_part(key, name)
            if part is None:
                return
        if part.video_ssrc is None:
            part.video_ssrc = packet.ssrc
        if packet.timestamp != part.frame_timestamp:
            part.frame_timestamp, part.frame_bytes = packet.timestamp, 0
        part.frame_bytes += len(packet.payload)
        if part.frame_bytes > MAX_FRAME_BYTES:
            return  # the frame is dropped: the recording sees a packet missing
        part.recording.add(packet, codec)
        if part.recording.started:  # before its first keyframe, the file holds nothing
            part.bytes_in += len(packet.payload) + PACKET_OVERHEAD_BYTES
        else:
            now = self._clock()
            if now - part.keyframe_asked_at >= KEYFRAME_RETRY_S:
                part.keyframe_asked_at = now
                self._ask_keyframe(key)

    def _must_roll(self, part: _Part, packet: RtpPacket, codec_name: str) -> bool:
        """A new part: the speaker reconnected or changed codec, or this one is full."""
        if part.video_ssrc is not None and packet.ssrc != part.video_ssrc:
            return True
        if codec_name != part.recording.video_codec:
            return True
        if not part.recording.started:
            return False
        return (
            not self._fits(part, packet)
            or self._clock() - part.started_at >= self.limits.max_seconds
        )

    def _fits(self, part: _Part, packet: RtpPacket) -> bool:
        room_left = self.limits.max_bytes - FILE_HEADROOM_BYTES - part.bytes_in
        return len(packet.payload) + PACKET_OVERHEAD_BYTES <= room_left

    def _new_part(self, key: StreamKey, codec_name: str) -> _Part | None:
        number = self._parts_started.get(key, 0) + 1
        if number > self.limits.max_parts:
            log.warning(
                "call %s: %s's %s recorded in %d parts already; no more",
                self.room.state.room_id,
                key[0],
                key[1],
                self.limits.max_parts,
            )
            self._given_up.add(key)
            return None
        self._parts_started[key] = number
        extension = CONTAINERS[codec_name][0]
        path = self.directory / f"{secrets.token_hex(8)}.{extension}"
        # Made private before the muxer opens it (it keeps the mode when it truncates).
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        participant = self.room.state.participants.get(key[0])
        recording = Recording(path, codec_name, on_keyframe_needed=lambda: self._ask_keyframe(key))
        part = _Part(
            recording, number, participant.display_name if participant else key[0], self._clock()
        )
        self._parts[key] = part
        part.keyframe_asked_at = part.started_at
        self._ask_keyframe(key)  # a file starts at a keyframe: ask for one now
        return part

    def _ask_keyframe(self, key: StreamKey) -> None:
        task = asyncio.get_running_loop().create_task(self.room.request_keyframe(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _end_part(self, key: StreamKey) -> None:
        part = self._parts.pop(key, None)
        if part is None:
            return
        try:
            part.recording.close()
        except Exception:
            log.exception("could not finish the recording %s", part.recording.path)
            part.recording.frames_written = 0  # not posted
        if part.recording.frames_written > 0:
            self._finished.append((key, part))
        else:
            part.recording.path.unlink(missing_ok=True)  # no picture: nothing to post

    def _give_up(self, key: StreamKey) -> None:
        self._given_up.add(key)
        self._end_part(key)

    # --- the end --------------------------------------------------------------------------

    def finish(self) -> list[FinishedRecording]:
        """Stop listening, close every file; those with pictures, numbered per stream.

        Files without a video frame are deleted here.
        """
        with contextlib.suppress(ValueError):
            self.room.listeners.remove(self.on_packet)
        for task in self._tasks:
            task.cancel()
        for key in list(self._parts):
            self._end_part(key)
        kept, self._finished = self._finished, []
        finished = []
        for key, part in kept:
            count = sum(1 for k, _ in kept if k == key)
            number = sum(1 for k, p in kept if k == key and p.number <= part.number)
            finished.append(
                FinishedRecording(
                    self.broadcast,
                    part.recording.path,
                    key[0],
                    part.speaker,
                    key[1],
                    number if count > 1 else 0,
                    part.recording.frames_written,
                )
            )
        return sorted(finished, key=lambda f: (f.speaker, f.user_id, f.source.value, f.part))


@dataclass
class RecordingPoster:
    """Uploads a finished recording as the bot and posts it into its call's room."""

    matrix: MatrixClient  # the bot's: the message
    http: httpx.AsyncClient  # base_url = the homeserver: the upload's stream
    token: str  # the bot's (the appservice token)
    attempts: int = UPLOAD_ATTEMPTS
    retry_s: float = UPLOAD_RETRY_S

    @classmethod
    def from_settings(cls, matrix: MatrixClient, settings: Settings) -> RecordingPoster:
        http = httpx.AsyncClient(base_url=settings.homeserver_url, timeout=UPLOAD_TIMEOUT)
        return cls(matrix, http, settings.as_token.get_secret_value())

    async def close(self) -> None:
        await self.http.aclose()

    async def post(self, recording: FinishedRecording) -> str | None:
        """The `m.video` event's ID; None when it could not be posted (logged). The file
        is deleted either way: a recording that failed is not kept on the SFU's disk."""
        where = f"broadcast {recording.broadcast.broadcast_id} in {recording.broadcast.room_id}"
        try:
            info = await asyncio.to_thread(probe, recording.path)
            extension = "mp4" if info.mimetype == "video/mp4" else "webm"
            name = file_name(recording, extension)
            mxc = await self._upload(recording.path, name, info, where)
            if mxc is None:
                return None
            content: dict[str, Any] = {
                "msgtype": "m.video",
                "body": caption(recording),
                "filename": name,
                "url": mxc,
                "info": {
                    "mimetype": info.mimetype,
                    "size": info.size,
                    "duration": info.duration_ms,
                    "w": info.width,
                    "h": info.height,
                },
            }
            # The same transaction ID on a retried send: one event.
            txn = f"parta-recording-{recording.broadcast.broadcast_id}-{recording.path.stem}"
            event_id = await send_message(
                self.matrix, recording.broadcast.room_id, content, transaction_id=txn
            )
            log.info("recording of %s posted: %s, %d bytes", where, event_id, info.size)
            return event_id
        except MatrixError as exc:
            log.error("recording of %s not posted: %s %s", where, exc.status, exc.errcode)
            return None
        except (OSError, av.FFmpegError, IndexError) as exc:
            log.error("recording of %s not readable: %s", where, type(exc).__name__)
            return None
        finally:
            recording.path.unlink(missing_ok=True)

    async def _upload(self, path: Path, name: str, info: VideoInfo, where: str) -> str | None:
        for attempt in range(1, self.attempts + 1):
            try:
                return await upload_stream(
                    self.http, self.token, name, info.mimetype, info.size, _chunks(path)
                )
            except MatrixError as exc:
                # A refusal (`M_TOO_LARGE`, `M_FORBIDDEN`) stays one; no answer may not.
                permanent = 400 <= exc.status < 500 and exc.status != 429
                reason = f"{exc.status} {exc.errcode}"
            except httpx.HTTPError as exc:
                permanent, reason = False, type(exc).__name__
            if permanent or attempt == self.attempts:
                log.error(
                    "recording of %s not uploaded (attempt %d of %d): %s",
                    where,
                    attempt,
                    self.attempts,
                    reason,
                )
                return None
            log.warning(
                "recording of %s: upload attempt %d failed (%s); trying again",
                where,
                attempt,
                reason,
            )
            await asyncio.sleep(self.retry_s * attempt)
        return None


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            yield chunk


@dataclass
class BroadcastRecordings:
    """Every stage this widget process records, and the uploads after them (a `Service`)."""

    directory: Path  # private: the call state directory's `recordings`
    limits: RecordingLimits
    poster: RecordingPoster
    stop_wait_s: float = STOP_WAIT_S
    recorders: dict[str, StageRecorder] = field(default_factory=dict)  # by room ID
    _posting: set[asyncio.Task[None]] = field(default_factory=set)
    _uploads: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(UPLOADS_AT_ONCE))

    @classmethod
    def from_settings(
        cls, matrix: MatrixClient, settings: Settings, *, process: int = 1
    ) -> BroadcastRecordings:
        """Each widget process keeps its own directory: its start clears only its own."""
        return cls(
            settings.call_state_dir / "recordings" / f"process-{process}",
            RecordingLimits.from_settings(settings),
            RecordingPoster.from_settings(matrix, settings),
        )

    async def start(self) -> None:
        """Make the private directory; what a crashed process left there goes (its files
        were never finished, and nothing says whose they are)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for directory in (self.directory.parent, self.directory):
            directory.chmod(0o700)
        for left in self.directory.iterdir():
            log.warning("deleting a recording left by an earlier process: %s", left.name)
            if left.is_dir():
                shutil.rmtree(left, ignore_errors=True)
            else:
                left.unlink(missing_ok=True)

    async def stop(self) -> None:
        """Finish every stage's recordings and post them, waiting at most `stop_wait_s`."""
        for room_id in list(self.recorders):
            self.close(room_id)
        if self._posting:
            _, pending = await asyncio.wait(set(self._posting), timeout=self.stop_wait_s)
            for task in pending:
                log.error("a recording's upload did not end before the stop; abandoned")
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.poster.close()
        shutil.rmtree(self.directory, ignore_errors=True)  # what was not posted in time

    def open(self, room: CallRoom, broadcast: StageBroadcast) -> None:
        """Record the room's stage from now on (a stage already recorded keeps going; one
        of another broadcast is finished and posted first)."""
        current = self.recorders.get(broadcast.room_id)
        if current is not None and current.room is room and current.broadcast == broadcast:
            return
        self.close(broadcast.room_id)
        try:
            self.recorders[broadcast.room_id] = StageRecorder(
                room, broadcast, self.directory / secrets.token_hex(8), self.limits
            )
        except OSError as exc:  # the call goes on unrecorded rather than refusing its pages
            log.error("the stage of %s cannot be recorded: %s", broadcast.room_id, exc)
            return
        log.info(
            "recording the stage of broadcast %s in %s", broadcast.broadcast_id, broadcast.room_id
        )

    def close(self, room_id: str) -> None:
        """The stage closed: finish its files now, upload and post them in the background."""
        recorder = self.recorders.pop(room_id, None)
        if recorder is None:
            return
        finished = recorder.finish()
        log.info("the stage of %s closed: %d recordings to post", room_id, len(finished))
        task = asyncio.get_running_loop().create_task(self._post_all(recorder, finished))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def _post_all(self, recorder: StageRecorder, finished: list[FinishedRecording]) -> None:
        try:
            for recording in finished:
                async with self._uploads:
                    await self.poster.post(recording)
        finally:
            for recording in finished:
                recording.path.unlink(missing_ok=True)
            shutil.rmtree(recorder.directory, ignore_errors=True)

    async def wait_posted(self) -> None:
        """Until every upload started so far has ended (tests; the stop waits itself)."""
        while self._posting:
            await asyncio.wait(set(self._posting))
