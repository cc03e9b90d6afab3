"""A call participant in a process of its own: what a browser's call page does, in aiortc.

Run as `python -m tests.call.peer_process`; it is driven by JSON lines. On stdin:

- `{"cmd": "join", "url": ws_url, "room_id": ..., "openid": {...}, "publish": ["camera"],
  "broadcast_id": 7}` (optional, as a broadcast's widget opens the page):
  connect to the call service's WebSocket, sign in with the OpenID token, answer the
  SFU's offer (publishing a generated VP8 camera and/or a silent microphone) and receive
  every slot. Joining again replaces the previous socket and peer connection.
- `{"cmd": "send", "message": {...}}`: a request to the SFU (`raise_hand`, `grant`, ...).
- `{"cmd": "loss", "share": 0.2}`: drop that share of the incoming video RTP datagrams,
  as a lossy network would: before SRTP and aiortc's receiver (which NACKs, asks for
  keyframes, and takes the SFU's retransmissions).
- `{"cmd": "outage", "packets": 600}`: drop the next N incoming video packets.
- `{"cmd": "drop_socket"}`: cut the WebSocket without a closing handshake.
- `{"cmd": "stats"}`, `{"cmd": "quit"}`.

On stdout: `{"event": "ready"}`, `"joined"`, `"refused"` (with the reason, the close
code, and how many peer connections were made: none), `"message"` (everything the SFU
sends but the offer), `"closed"`, `"stats"` (frames decoded, frames its cameras sent, keyframes the
publisher was asked for, packets dropped).

`PeerProcess` is the test's side: it starts one, sends commands and waits for events,
every wait bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aioice
import av
from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.rtp import RtpPacket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from widgets.call.codecs import is_keyframe
from widgets.call.sfu import new_peer_connection

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 30.0


class Noise(VideoStreamTrack):
    """A camera whose every frame differs everywhere, so the encoder spends its bitrate."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.sent = 0  # frames handed to the encoder

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.sent += 1
        picture = av.VideoFrame(width=self.width, height=self.height, format="yuv420p")
        for plane in picture.planes:
            plane.update(os.urandom(plane.buffer_size))
        picture.pts, picture.time_base = pts, time_base
        return picture


class Loss:
    """Which incoming video packets a lossy network would lose: a share, or the next N."""

    def __init__(self) -> None:
        self.share = 0.0
        self.outage = 0
        self.dropped = 0
        self.random = random.Random(7)  # the same losses on every run

    def drops(self) -> bool:
        if self.outage > 0:
            self.outage -= 1
        elif not (self.share and self.random.random() < self.share):
            return False
        self.dropped += 1
        return True


LOSS = Loss()
KEYFRAMES_ASKED = [0]  # how often this process's senders were asked for a keyframe
KEYFRAMES_RECEIVED = [0]  # keyframes that reached this process's receivers


VIDEO_PAYLOAD_TYPES: set[int] = set()  # as negotiated, filled in by each answer


def _is_video_rtp(datagram: bytes) -> bool:
    """An RTP packet of a video payload type; its header is not encrypted (SRTP)."""
    if len(datagram) < 12 or datagram[0] & 0xC0 != 0x80:
        return False
    if 192 <= datagram[1] <= 223:
        return False  # RTCP (RFC 5761 §4)
    return datagram[1] & 0x7F in VIDEO_PAYLOAD_TYPES


def _install_network_hooks() -> None:
    """Only in this child process: the loss sits on the network, before SRTP and aiortc.

    So a packet the SFU resends after a NACK is new to SRTP's replay check, as it would be
    after a real loss, and aiortc's receiver NACKs and asks for keyframes as it would.
    """
    datagram = aioice.Connection.recv
    receive = RTCRtpReceiver._handle_rtp_packet
    keyframe = RTCRtpSender._send_keyframe

    async def lossy(self: aioice.Connection) -> bytes:
        while True:
            data: bytes = await datagram(self)
            if not (_is_video_rtp(data) and LOSS.drops()):
                return data

    async def counting_keyframes(
        self: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int
    ) -> None:
        codec = self._RTCRtpReceiver__codecs.get(packet.payload_type)  # type: ignore[attr-defined]
        video = codec is not None and codec.mimeType.lower().startswith("video/")
        if video and is_keyframe(codec.mimeType, packet.payload):
            KEYFRAMES_RECEIVED[0] += 1  # the first packet of a keyframe came through
        await receive(self, packet, arrival_time_ms)

    def counting(self: RTCRtpSender) -> None:
        KEYFRAMES_ASKED[0] += 1  # a PLI or FIR reached this publisher
        keyframe(self)

    aioice.Connection.recv = lossy  # type: ignore[method-assign]
    RTCRtpReceiver._handle_rtp_packet = counting_keyframes  # type: ignore[method-assign]
    RTCRtpSender._send_keyframe = counting  # type: ignore[method-assign]


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class Page:
    """One participant's page: its socket, its peer connection, what it decoded."""

    def __init__(self) -> None:
        self.socket: ClientConnection | None = None
        self.pc: RTCPeerConnection | None = None
        self.peer_connections = 0
        self.frames: dict[str, int] = {}
        self.cameras: list[Noise] = []  # every camera this page published
        self.tasks: set[asyncio.Task[None]] = set()
        self.reader: asyncio.Task[None] | None = None

    async def join(
        self, url: str, room_id: str, openid: Any, publish: list[str], broadcast_id: int | None
    ) -> None:
        await self.leave()
        socket = await connect(url)
        self.socket = socket
        join = {"type": "join", "room_id": room_id, "openid": openid}
        if broadcast_id is not None:  # a page opened from a broadcast's widget
            join["broadcast_id"] = broadcast_id
        await socket.send(json.dumps(join))
        try:
            async with asyncio.timeout(WAIT_S):
                first = json.loads(await socket.recv())
        except ConnectionClosed:
            emit("refused", reason=None, close_code=socket.close_code, peer_connections=0)
            return
        if first.get("type") != "offer":
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                async with asyncio.timeout(WAIT_S):
                    await socket.recv()  # the SFU closes a refused join
            emit(
                "refused",
                reason=first.get("reason"),
                close_code=socket.close_code,
                peer_connections=self.peer_connections,
            )
            return
        sdp = await self.answer(first["sdp"], publish)
        await socket.send(json.dumps({"type": "answer", "sdp": sdp}))
        emit("joined", you=first["you"])
        self.reader = asyncio.create_task(self.read(socket))

    async def answer(self, offer: str, publish: list[str]) -> str:
        pc = new_peer_connection()
        self.pc = pc
        self.peer_connections += 1

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
            if track.kind == "video":
                task = asyncio.create_task(self.count(transceiver.mid or "", track))
                self.tasks.add(task)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        transceivers = pc.getTransceivers()
        tracks: list[MediaStreamTrack | None] = [
            AudioStreamTrack() if "microphone" in publish else None,
            Noise() if "camera" in publish else None,
            None,
        ]
        self.cameras += [t for t in tracks if isinstance(t, Noise)]
        for transceiver, track in zip(transceivers[:3], tracks, strict=True):
            if track is None:
                transceiver.direction = "inactive"
            else:
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendonly"
        for transceiver in transceivers[3:]:
            transceiver.direction = "recvonly"
        await pc.setLocalDescription(await pc.createAnswer())
        for transceiver in transceivers:
            if transceiver.kind == "video":
                VIDEO_PAYLOAD_TYPES.update(
                    c.payloadType for c in transceiver._codecs if c.payloadType is not None
                )
        return str(pc.localDescription.sdp)

    async def count(self, mid: str, track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):  # the track ends with its connection
            while True:
                await track.recv()
                self.frames[mid] = self.frames.get(mid, 0) + 1

    async def read(self, socket: ClientConnection) -> None:
        try:
            async for raw in socket:
                emit("message", message=json.loads(raw))
        except ConnectionClosed:
            pass
        emit("closed", code=socket.close_code, reason=socket.close_reason)

    def drop_socket(self) -> None:
        if self.socket is not None:
            self.socket.transport.abort()  # no closing handshake: a network gone

    async def leave(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            self.reader = None
        if self.socket is not None:
            with contextlib.suppress(Exception):
                await self.socket.close()
            self.socket = None
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()
        if self.pc is not None:
            await self.pc.close()
            self.pc = None


async def main() -> None:
    _install_network_hooks()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    page = Page()
    emit("ready", pid=os.getpid())
    while line := await reader.readline():
        command = json.loads(line)
        match command["cmd"]:
            case "join":
                await page.join(
                    command["url"], command["room_id"], command["openid"],
                    command.get("publish", []), command.get("broadcast_id"),
                )  # fmt: skip
            case "send":
                if page.socket is not None:
                    await page.socket.send(json.dumps(command["message"]))
            case "loss":
                LOSS.share = float(command["share"])
            case "outage":
                LOSS.outage = int(command["packets"])
            case "drop_socket":
                page.drop_socket()
            case "stats":
                emit(
                    "stats",
                    frames=sum(page.frames.values()),
                    frames_sent=sum(camera.sent for camera in page.cameras),
                    by_slot=page.frames,
                    keyframes_asked=KEYFRAMES_ASKED[0],
                    keyframes_received=KEYFRAMES_RECEIVED[0],
                    dropped=LOSS.dropped,
                    outage_left=LOSS.outage,
                    peer_connections=page.peer_connections,
                )
            case "quit":
                break
    await page.leave()


# --- the test's side --------------------------------------------------------------------


class PeerProcess:
    """A `peer_process` child: commands in, events out, every wait bounded."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.process: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> PeerProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.call.peer_process",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO,
        )  # fmt: skip
        self.events = []
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda e: e["event"] == "ready", "the process to start")
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            async with self._arrived:
                self.events.append(json.loads(line))
                self._arrived.notify_all()
        async with self._arrived:
            self.events.append({"event": "exited"})
            self._arrived.notify_all()

    async def command(self, cmd: str, **fields: Any) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        await self.process.stdin.drain()

    async def wait_for(
        self,
        match: Callable[[dict[str, Any]], object],
        what: str,
        *,
        after: int = 0,
        within_s: float = WAIT_S,
    ) -> dict[str, Any]:
        """The first event from index `after` on that matches; fails after `within_s`."""
        deadline = time.monotonic() + within_s
        async with self._arrived:
            while True:
                for event in self.events[after:]:
                    if match(event):
                        return event
                if any(e["event"] == "exited" for e in self.events[after:]):
                    raise AssertionError(f"{self.name} exited while waiting for {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.name}: timed out after {within_s:.0f} s "
                                         f"waiting for {what}")  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)

    async def join(
        self,
        url: str,
        room_id: str,
        openid: Any,
        publish: tuple[str, ...] = (),
        broadcast_id: int | None = None,
    ) -> dict[str, Any]:
        """Join the call (from a broadcast's widget: `broadcast_id`); `joined` or `refused`."""
        start = len(self.events)
        await self.command("join", url=url, room_id=room_id, openid=openid, publish=publish,
                           broadcast_id=broadcast_id)  # fmt: skip
        return await self.wait_for(
            lambda e: e["event"] in ("joined", "refused"), "the join's answer", after=start
        )

    async def stats(self) -> dict[str, Any]:
        start = len(self.events)
        await self.command("stats")
        return await self.wait_for(lambda e: e["event"] == "stats", "stats", after=start)

    def last_state(self) -> dict[str, Any] | None:
        for event in reversed(self.events):
            if event["event"] == "message" and event["message"].get("type") == "state":
                message: dict[str, Any] = event["message"]
                return message
        return None

    async def state_where(
        self, check: Callable[[dict[str, Any]], object], what: str, within_s: float = WAIT_S
    ) -> dict[str, Any]:
        """The first `state` message from now on (or the latest one) for which `check` holds."""
        latest = self.last_state()
        if latest is not None and check(latest):
            return latest

        def matches(event: dict[str, Any]) -> bool:
            message = event.get("message") or {}
            return message.get("type") == "state" and bool(check(message))

        event = await self.wait_for(matches, what, after=len(self.events), within_s=within_s)
        state: dict[str, Any] = event["message"]
        return state

    def kill(self) -> None:
        """SIGKILL: the process is gone at once, no socket closed politely."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self.command("quit")
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


if __name__ == "__main__":
    asyncio.run(main())
