"""Benchmark: the call SFU's packet forwarding against aiortc's stock MediaRelay.

Prints one JSON object. One publisher (640×480 VP8 camera and Opus) and N subscribers,
for each N of --subscribers (default 1, 10, 30, 100), each part in its own processes on
loopback: the SFU, the publisher, and the subscribers (up to --per-process in one). For
each N, over --seconds of steady state (from the moment every connection is up: the SFU
and each subscriber process wait for it, so no handshake falls in the window):
  - sfu_cpu_pct: the SFU process's CPU (% of one core, from /proc);
  - forwarded_pps: RTP packets the SFU sent on, per second;
  - latency_p50_ms / latency_p99_ms: inside the SFU, from a packet's arrival at its
    receiver to the last subscriber's send;
  - gc_ms_per_s / gc_max_pause_ms: time the SFU spent in Python's cyclic garbage
    collector, and its longest pause (the whole event loop stops for it); the SFU process
    freezes its start-up objects first, as the widget service does;
  - fps_per_subscriber: video frames each subscriber received per second (mean);
  - relay_cpu_pct: the same N through aiortc's MediaRelay (decode once, encode per
    subscriber), measured in the same run up to --relay-max subscribers (above it the
    relay cannot keep up on this machine: the run says so).
The publisher and subscribers are load generators: they run at a lower priority
(--client-nice, default 10), so that on a small machine the process under test, SFU or
relay alike, is not preempted by them in the middle of a packet's fan-out, as it would
not be on a host of its own. The CPU figures do not depend on it; the latency does.
Niceness only weighs the scheduler's shares: a woken subscriber can still take the core
for a while. --realtime runs the process under test in the SCHED_FIFO class instead
(root or CAP_SYS_NICE), which no load generator preempts; the JSON says which it was.
Then cpu_ratio_at_10 (relay ÷ SFU at N = 10) and streams_per_core (forwarded streams a
whole core would carry: N × 2 streams ÷ the SFU's share of a core, at the largest N whose
subscribers still got 90% of the frames; a saturated machine drops frames instead).

Usage: .venv/bin/python bench/sfu.py [--subscribers 1,10,30,100] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiortc import (  # noqa: E402
    AudioStreamTrack,
    MediaStreamTrack,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.contrib.media import MediaRelay  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import ServerConnection, serve  # noqa: E402

from bench.harness import cpu_seconds, free_ports  # noqa: E402
from foundation.memory import freeze_startup_objects  # noqa: E402
from widgets.call import rtp_forwarding  # noqa: E402
from widgets.call.moderation import CallState  # noqa: E402
from widgets.call.sfu import CallRoom, new_peer_connection  # noqa: E402

TARGETS = {"cpu_ratio_at_10": 10.0, "streams_per_core": 300.0, "latency_p99_ms": 5.0}
WARM_UP_S = 6.0
FULL_FPS = 27.0  # 90% of the camera's 30 fps
PATCH = 96  # the moving patch's side, in pixels: sets the camera's bitrate
TIMEOUT_S = 60.0


class Camera(VideoStreamTrack):
    """640×480 at 30 fps: a still background with a moving, changing patch, as a face in
    front of a classroom wall; VP8 makes about 1 Mbps of it, as of a real camera."""

    def __init__(self) -> None:
        super().__init__()
        self.index = 0

    async def recv(self) -> Any:
        import av

        pts, time_base = await self.next_timestamp()
        if not hasattr(self, "_frames"):
            self._frames = []
            for index in range(32):
                luma = bytearray(b"\x70" * (640 * 480))
                left, top = 64 + index * 12, 120 + (index % 8) * 10
                for row in range(top, top + PATCH):
                    start = row * 640 + left
                    luma[start : start + PATCH] = os.urandom(PATCH)
                picture = av.VideoFrame(width=640, height=480, format="yuv420p")
                picture.planes[0].update(bytes(luma))
                for plane in picture.planes[1:]:
                    plane.update(b"\x80" * plane.buffer_size)
                self._frames.append(picture)
        picture = self._frames[self.index % len(self._frames)]
        self.index += 1
        picture.pts, picture.time_base = pts, time_base
        return picture


# --- the SFU process -------------------------------------------------------------------------


async def serve_sfu(port: int, mode: str) -> None:
    """Forwarding (our CallRoom) or relaying (MediaRelay): one publisher, N subscribers."""
    state = CallState("!bench:localhost", last_n=6)
    room = CallRoom(state, audio_slots=2)
    latencies: list[float] = []
    gc_pauses: list[float] = []  # the collector's pauses (ms): a stop of the whole loop
    gc_started = 0.0

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        nonlocal gc_started
        if phase == "start":
            gc_started = time.perf_counter()
        else:
            gc_pauses.append((time.perf_counter() - gc_started) * 1000)

    gc.callbacks.append(on_gc)

    relay = MediaRelay()
    published: dict[str, MediaStreamTrack] = {}
    got_tracks = asyncio.Event()
    relay_peers: list[RTCPeerConnection] = []
    if mode == "forward":
        original = rtp_forwarding.PacketTap._handle

        async def timed(self: rtp_forwarding.PacketTap, packet: Any, arrival_time_ms: int) -> None:
            started = time.perf_counter()
            await original(self, packet, arrival_time_ms)
            latencies.append((time.perf_counter() - started) * 1000)

        rtp_forwarding.PacketTap._handle = timed  # type: ignore[method-assign]

    async def session(socket: ServerConnection) -> None:
        hello = json.loads(await socket.recv())
        if hello.get("stats"):
            samples, pauses = list(latencies), list(gc_pauses)
            latencies.clear()
            gc_pauses.clear()
            pcs = [peer.pc for peer in room.peers.values()] if mode == "forward" else relay_peers
            connected = sum(1 for pc in pcs if pc.connectionState == "connected")
            await socket.send(json.dumps({
                "forwarded": room.forwarded_packets, "latency": samples, "gc": pauses,
                "connected": connected,
            }))  # fmt: skip
            return
        user = hello["user"]
        if mode == "forward":
            state.join(user, user, moderator=hello["role"] == "publisher", now=time.time())
            offer = await room.connect(user, _ignore)
            await socket.send(json.dumps({"sdp": offer.sdp}))
            answer = json.loads(await socket.recv())
            await room.accept_answer(user, answer["sdp"])
        elif hello["role"] == "publisher":
            pc = new_peer_connection()
            relay_peers.append(pc)

            @pc.on("track")
            def _on_track(track: MediaStreamTrack) -> None:
                published[track.kind] = track
                if len(published) == 2:
                    got_tracks.set()

            pc.addTransceiver("audio", direction="recvonly")
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            await socket.send(json.dumps({"sdp": pc.localDescription.sdp}))
            answer = json.loads(await socket.recv())
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        else:
            await asyncio.wait_for(got_tracks.wait(), TIMEOUT_S)
            pc = new_peer_connection()
            relay_peers.append(pc)
            pc.addTrack(relay.subscribe(published["audio"]))
            pc.addTrack(relay.subscribe(published["video"]))
            await pc.setLocalDescription(await pc.createOffer())
            await socket.send(json.dumps({"sdp": pc.localDescription.sdp}))
            answer = json.loads(await socket.recv())
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await socket.wait_closed()

    async with serve(session, "127.0.0.1", port):
        print("ready", flush=True)
        await asyncio.get_running_loop().create_future()


async def _ignore(message: dict[str, Any]) -> None:
    """The bench's pages need no call state."""


# --- the publisher and the subscribers -------------------------------------------------------


async def negotiate(url: str, user: str, role: str, pc: RTCPeerConnection, publish: bool) -> None:
    async with connect(url) as socket:
        await socket.send(json.dumps({"user": user, "role": role}))
        offer = json.loads(await socket.recv())
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        transceivers = pc.getTransceivers()
        for index, transceiver in enumerate(transceivers):
            if publish and index < 2:
                track = AudioStreamTrack() if index == 0 else Camera()
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendonly"
            elif publish:
                transceiver.direction = "inactive"
            else:
                transceiver.direction = "recvonly"
        await pc.setLocalDescription(await pc.createAnswer())
        await socket.send(json.dumps({"sdp": pc.localDescription.sdp}))
        await asyncio.sleep(3600)  # the SFU keeps the session while the socket is open


async def run_publisher(url: str) -> None:
    pc = new_peer_connection()
    await negotiate(url, "@teacher:localhost", "publisher", pc, publish=True)


async def until_connected(peers: list[RTCPeerConnection]) -> None:
    """Steady state starts when every connection is up (bounded: TIMEOUT_S)."""
    deadline = time.monotonic() + TIMEOUT_S
    while any(pc.connectionState != "connected" for pc in peers):
        if time.monotonic() > deadline:
            raise TimeoutError("the subscribers did not all connect")
        await asyncio.sleep(0.1)


async def run_subscribers(url: str, first: int, count: int, seconds: float) -> None:
    """Count the video frames each subscriber receives (marker bits: no decoding here)."""
    frames = [0] * count
    peers = []

    def counter(index: int) -> Any:
        async def on_packet(packet: Any, codec: Any) -> None:
            if codec.mimeType.lower().startswith("video/") and packet.marker:
                frames[index] += 1

        return on_packet

    tasks = []
    for index in range(count):
        pc = new_peer_connection()
        peers.append(pc)

        @pc.on("track")
        def _on_track(track: MediaStreamTrack, pc: RTCPeerConnection = pc, i: int = index) -> None:
            receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
            rtp_forwarding.PacketTap(receiver, counter(i))

        user = f"@pupil{first + index}:localhost"
        tasks.append(asyncio.ensure_future(negotiate(url, user, "subscriber", pc, publish=False)))
    await asyncio.sleep(WARM_UP_S)
    await until_connected(peers)
    start = list(frames)
    await asyncio.sleep(seconds)
    fps = [(frames[i] - start[i]) / seconds for i in range(count)]
    print(json.dumps({"fps": fps}), flush=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)


# --- one measurement -------------------------------------------------------------------------


def spawn(*args: str, nice: int = 0, realtime: bool = False) -> subprocess.Popen[str]:
    def prepare() -> None:
        if nice:
            os.nice(nice)
        if realtime:  # its threads (the relay's codecs) inherit the class
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))

    return subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=prepare,
    )  # fmt: skip


async def stats(url: str) -> dict[str, Any]:
    async with connect(url) as socket:
        await socket.send(json.dumps({"stats": True}))
        answer: dict[str, Any] = json.loads(await socket.recv())
        return answer


def measure(
    mode: str, n: int, seconds: float, per_process: int, client_nice: int, realtime: bool
) -> dict[str, Any]:
    (port,) = free_ports(1)
    url = f"ws://127.0.0.1:{port}"
    sfu = spawn("--role", "sfu", "--port", str(port), "--mode", mode, realtime=realtime)
    children = [sfu]
    try:
        assert sfu.stdout is not None and sfu.stdout.readline().strip() == "ready"
        children.append(spawn("--role", "publisher", "--url", url, nice=client_nice))
        time.sleep(2.0)
        groups = [(first, min(per_process, n - first)) for first in range(0, n, per_process)]
        subscribers = [
            spawn("--role", "subscribers", "--url", url, "--first", str(first),
                  "--count", str(count), "--seconds", str(seconds), nice=client_nice)
            for first, count in groups
        ]  # fmt: skip
        children.extend(subscribers)
        time.sleep(WARM_UP_S)
        before = asyncio.run(stats(url))
        deadline = time.monotonic() + TIMEOUT_S
        while before["connected"] < n + 1:  # the publisher and every subscriber
            if time.monotonic() > deadline:
                raise TimeoutError(f"{before['connected']} of {n + 1} connected to the SFU")
            time.sleep(0.2)
            before = asyncio.run(stats(url))
        cpu_before, wall_before = cpu_seconds(sfu.pid), time.monotonic()
        time.sleep(seconds)
        cpu_after, wall_after = cpu_seconds(sfu.pid), time.monotonic()
        after = asyncio.run(stats(url))
        fps: list[float] = []
        for child in subscribers:
            out, _ = child.communicate(timeout=TIMEOUT_S + seconds)
            fps.extend(json.loads(out.strip().splitlines()[-1])["fps"])
        wall = wall_after - wall_before
        latency = sorted(after["latency"])
        result: dict[str, Any] = {
            "cpu_pct": round(100 * (cpu_after - cpu_before) / wall, 1),
            "fps_per_subscriber": round(statistics.mean(fps), 1) if fps else 0.0,
        }
        if mode == "forward":
            result["forwarded_pps"] = round((after["forwarded"] - before["forwarded"]) / wall)
            if latency:
                result["latency_p50_ms"] = round(latency[len(latency) // 2], 3)
                result["latency_p99_ms"] = round(latency[int(len(latency) * 0.99)], 3)
            result["gc_ms_per_s"] = round(sum(after["gc"]) / wall, 3)
            result["gc_max_pause_ms"] = round(max(after["gc"], default=0.0), 3)
        return result
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait(timeout=TIMEOUT_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="1,10,30,100")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--per-process", type=int, default=10)
    parser.add_argument("--relay-max", type=int, default=10)
    parser.add_argument("--client-nice", type=int, default=10, choices=range(20))
    parser.add_argument("--realtime", action="store_true", help="SFU/relay in SCHED_FIFO")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "sfu":
        freeze_startup_objects()  # as `parta serve widgets` does
        return asyncio.run(serve_sfu(args.port, args.mode))
    if args.role == "publisher":
        return asyncio.run(run_publisher(args.url))
    if args.role == "subscribers":
        return asyncio.run(run_subscribers(args.url, args.first, args.count, args.seconds))

    if args.realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except PermissionError:
            sys.exit("--realtime needs root or CAP_SYS_NICE (the SCHED_FIFO class); run without it")
    runs: list[dict[str, Any]] = []
    relay_note = None
    options = (args.seconds, args.per_process, args.client_nice, args.realtime)
    for n in [int(x) for x in args.subscribers.split(",")]:
        forward = measure("forward", n, *options)
        run: dict[str, Any] = {"n": n, "sfu_cpu_pct": forward.pop("cpu_pct"), **forward}
        if n <= args.relay_max:
            relay = measure("relay", n, *options)
            run["relay_cpu_pct"] = relay["cpu_pct"]
            run["relay_fps_per_subscriber"] = relay["fps_per_subscriber"]
        else:
            run["relay_cpu_pct"] = None
            relay_note = (
                f"MediaRelay was not run above {args.relay_max} subscribers: it decodes once and "
                "encodes per subscriber, and cannot keep up with more on this machine"
            )
        runs.append(run)
        print(json.dumps(run), file=sys.stderr, flush=True)
    result: dict[str, Any] = {
        "runs": runs,
        "client_nice": args.client_nice,
        "scheduling": "SCHED_FIFO" if args.realtime else "SCHED_OTHER",
    }
    at_10 = next((r for r in runs if r["n"] == 10 and r["relay_cpu_pct"]), None)
    if at_10 and at_10["sfu_cpu_pct"]:
        result["cpu_ratio_at_10"] = round(at_10["relay_cpu_pct"] / at_10["sfu_cpu_pct"], 1)
    # Only runs where every subscriber got (nearly) every frame count: a saturated machine
    # drops frames and would flatter the figure.
    full = [r for r in runs if r["fps_per_subscriber"] >= FULL_FPS and r["sfu_cpu_pct"]]
    if full:
        best = max(full, key=lambda r: r["n"])
        result["streams_per_core"] = round(best["n"] * 2 / (best["sfu_cpu_pct"] / 100))
        result["streams_per_core_at_n"] = best["n"]
    if relay_note:
        result["relay_note"] = relay_note
    p99 = max((r.get("latency_p99_ms", 0.0) for r in runs), default=0.0)
    result["targets_met"] = {
        "cpu_ratio_at_10>=10": result.get("cpu_ratio_at_10", 0) >= TARGETS["cpu_ratio_at_10"],
        "streams_per_core>=300": result.get("streams_per_core", 0) >= TARGETS["streams_per_core"],
        "latency_p99_ms<5": p99 < TARGETS["latency_p99_ms"],
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
