"""A broadcast through an origin and two edges, with real aiortc peers on loopback.

The speaker publishes to the origin's call; each edge links to it as one subscriber and
forwards to its own viewers. Every viewer's client publishes a microphone and a camera
from the start, as a page that ignores the rules would: nothing of theirs reaches anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from tests.call.conftest import until
from tests.call.test_sfu import Client
from widgets.call.edge import ChannelClosed, EdgeDirectory, EdgeRoom, serve_edge
from widgets.call.moderation import CallState, Source
from widgets.call.sfu import CallRoom

TEACHER, SPEAKER = "@olga:hs", "@lector:hs"
VIEWERS = ("@v1:hs", "@v2:hs", "@v3:hs", "@v4:hs")


class _End:
    """One end of an in-memory link: what one side sends, the other receives."""

    def __init__(self, inbox: asyncio.Queue[Any], outbox: asyncio.Queue[Any]) -> None:
        self._inbox, self._outbox = inbox, outbox

    async def send(self, message: dict[str, Any]) -> None:
        await self._outbox.put(message)

    async def receive(self) -> dict[str, Any]:
        message = await self._inbox.get()
        if message is None:
            raise ChannelClosed("closed")
        return dict(message)

    def close(self) -> None:
        self._outbox.put_nowait(None)
        self._inbox.put_nowait(None)


@dataclass
class Tree:
    origin: CallRoom
    edges: list[EdgeRoom]
    speaker: Client
    viewers: dict[str, Client]
    links: list[asyncio.Task[None]]
    ends: list[_End]


async def join_edge(edge: EdgeRoom, client: Client) -> None:
    offer = await edge.connect(client.user_id, client.user_id[1:3], client.on_message)
    await edge.accept_answer(client.user_id, await client.answer(offer))


@pytest.fixture
async def tree() -> AsyncIterator[Tree]:
    state = CallState("!conference:hs", last_n=2)
    origin = CallRoom(state, audio_slots=2)
    state.start_broadcast(11, [SPEAKER])
    teacher, speaker = Client(TEACHER), Client(SPEAKER)
    state.join(TEACHER, "Ольга", moderator=True, now=time.monotonic())
    state.join(SPEAKER, "Лектор", moderator=False, now=time.monotonic())
    for client in (teacher, speaker):
        await client.join(origin)
    links: list[asyncio.Task[None]] = []
    ends: list[_End] = []
    edges: list[EdgeRoom] = []
    for number in (1, 2):

        @contextlib.asynccontextmanager
        async def connect(number: int = number) -> AsyncIterator[_End]:
            """As a WebSocket to the origin would: a new link each time, served there."""
            up: asyncio.Queue[Any] = asyncio.Queue()
            down: asyncio.Queue[Any] = asyncio.Queue()
            origin_end, edge_end = _End(up, down), _End(down, up)
            ends.append(origin_end)
            links.append(asyncio.create_task(serve_edge(origin, f"edge-{number}", origin_end)))
            try:
                yield edge_end
            finally:
                edge_end.close()

        edge = EdgeRoom(state.room_id, 11, connect)
        edge.start()
        edges.append(edge)
    for edge in edges:
        await asyncio.wait_for(edge.ready.wait(), 30)
    viewers = {user: Client(user) for user in VIEWERS}
    for index, (_, client) in enumerate(viewers.items()):
        await join_edge(edges[index % 2], client)
    try:
        yield Tree(origin, edges, speaker, viewers, links, ends)
    finally:
        for edge in edges:
            await edge.close()
        for link in links:
            link.cancel()
        await asyncio.gather(*links, return_exceptions=True)
        await origin.close()
        await asyncio.gather(
            teacher.close(), speaker.close(), *(c.close() for c in viewers.values())
        )


def shown_mid(client: Client, user_id: str, source: Source) -> str | None:
    """The slot a client's latest state says shows this stream."""
    states = [s for s in client.states if s.get("type") == "state"]
    if not states:
        return None
    wanted = {"user_id": user_id, "source": source.value}
    return next((m for m, shown in states[-1]["slots"].items() if shown == wanted), None)


async def test_viewers_on_two_edges_see_and_hear_the_speaker_and_nobody_hears_them(
    tree: Tree,
) -> None:
    for user, viewer in tree.viewers.items():

        def labelled(viewer: Client = viewer) -> bool:
            return bool(
                shown_mid(viewer, SPEAKER, Source.AUDIO)
                and shown_mid(viewer, SPEAKER, Source.CAMERA)
            )

        await until(labelled, f"{user}'s page told which slots show the speaker")
        voice = shown_mid(viewer, SPEAKER, Source.AUDIO)
        camera = shown_mid(viewer, SPEAKER, Source.CAMERA)
        assert voice is not None and camera is not None
        await until(partial(viewer.packets_on, voice), f"the speaker's voice at {user}")
        await until(partial(_pictures, viewer, camera), f"pictures at {user}")
        last = [s for s in viewer.states if s.get("type") == "state"][-1]
        me = next(p for p in last["participants"] if p["user_id"] == user)
        assert me["audience"] and not me["audio"] and not me["camera"]
        assert last["broadcast_id"] == 11
    # Each edge is one subscriber of the origin, however many viewers it serves.
    assert sorted(p for p in tree.origin.peers if p.startswith("edge:")) == [
        "edge:edge-1",
        "edge:edge-2",
    ]
    # The viewers publish from the start: nothing of theirs reached the speaker's page or
    # another viewer's, and the origin has no stream of theirs to forward.
    await asyncio.sleep(1.0)
    for client in (tree.speaker, *tree.viewers.values()):
        states = [s for s in client.states if s.get("type") == "state"]
        shown = {v["user_id"] for s in states for v in s["slots"].values()}
        assert not shown & set(VIEWERS), f"a viewer's stream was shown at {client.user_id}"
    assert not any((v, s) in tree.origin._routes for v in VIEWERS for s in Source)
    for edge in tree.edges:
        assert edge.forwarded_packets > 0


async def test_a_viewer_who_leaves_frees_the_slots_and_a_relinked_edge_continues(
    tree: Tree,
) -> None:
    edge = tree.edges[0]
    gone, stays = VIEWERS[0], VIEWERS[2]  # both on the first edge
    await until(lambda: shown_mid(tree.viewers[stays], SPEAKER, Source.AUDIO), "a labelled slot")
    await edge.disconnect(gone)
    assert gone not in edge.viewers
    assert all(len(slot.senders) == 1 for slot in edge._slots)
    # The link drops (the origin restarted): the edge links again; its viewer keeps its
    # connection and hears the speaker again.
    viewer = tree.viewers[stays]
    voice = shown_mid(viewer, SPEAKER, Source.AUDIO)
    assert voice is not None
    heard = await viewer.packets_on(voice)
    tree.ends[0].close()  # the first edge's link
    await until(lambda: len(tree.links) == 3, "the edge linking again")
    await until(lambda: edge.ready.is_set(), "the new link up")
    await until(
        lambda: _more(viewer.packets_on(voice), heard + 50), "the speaker again over the new link"
    )
    assert sorted(p for p in tree.origin.peers if p.startswith("edge:")) == [
        "edge:edge-1",
        "edge:edge-2",
    ]


async def settled(count: Any, within_s: float = 30.0) -> int:
    """A count that stopped growing for a second (on a loaded machine, packets in flight
    can land well after the decision): its value; fails if it keeps growing."""
    deadline = time.monotonic() + within_s
    last = await count()
    while True:
        await asyncio.sleep(1.0)
        now = await count()
        if now == last:
            return int(now)
        assert time.monotonic() < deadline, f"still growing after {within_s:.0f} s: {now}"
        last = now


def _pictures(client: Client, mid: str) -> bool:
    return client.frames.get(mid, 0) >= 5


async def _more(count: Any, than: int) -> bool:
    return bool(await count > than)


def test_the_directory_sends_viewers_to_the_least_loaded_edge_and_none_past_capacity() -> None:
    now = [0.0]
    edges = EdgeDirectory(("/call/edge/2/ws", "/call/edge/3/ws"), capacity=3, clock=lambda: now[0])
    chosen = [edges.choose() for _ in range(4)]
    assert chosen == ["/call/edge/2/ws", "/call/edge/3/ws"] * 2
    edges.report("/call/edge/2/ws", 3)  # full: its report counts whoever arrived
    assert edges.choose() == "/call/edge/3/ws"
    assert edges.choose() is None  # 2 sent + 1 sent = 3 on the second edge
    now[0] += 61.0  # tickets not used within their life no longer count
    assert edges.choose() == "/call/edge/3/ws"
    edges.report("/call/edge/9/ws", 0)  # an edge the directory does not know: ignored
    assert "/call/edge/9/ws" not in edges.reported


def lossy(client: Client, share: float) -> None:
    """Lose `share` of the video packets on the way to this client, as a poor network
    would: before aiortc sees them, so its receiver reports tell the edge (RTCP RR)."""
    dtls = client.pc.getTransceivers()[0].receiver.transport
    video = {
        codec.payloadType
        for transceiver in client.pc.getTransceivers()
        if transceiver.kind == "video"
        for codec in transceiver._codecs
    }
    original = dtls._handle_rtp_data
    chance = random.Random(7)

    async def handle(data: bytes, arrival_time_ms: int) -> None:
        if data[1] & 0x7F in video and chance.random() < share:
            return
        await original(data, arrival_time_ms)

    dtls._handle_rtp_data = handle


async def test_a_viewer_on_a_poor_network_keeps_the_sound_and_may_ask_for_video_again(
    tree: Tree,
) -> None:
    edge = tree.edges[0]
    viewer = tree.viewers[VIEWERS[0]]  # on the first edge
    await until(lambda: shown_mid(viewer, SPEAKER, Source.CAMERA), "a labelled camera slot")
    camera = shown_mid(viewer, SPEAKER, Source.CAMERA)
    voice = shown_mid(viewer, SPEAKER, Source.AUDIO)
    assert camera is not None and voice is not None
    await until(partial(viewer.packets_on, camera), "pictures before the network fails")
    lossy(viewer, 0.6)
    await until(
        lambda: {"type": "audio_only", "reason": "poor_network"} in viewer.states,
        "the edge telling the viewer it sends sound only",
    )
    assert not edge.viewers[VIEWERS[0]].video_on
    others = tree.viewers[VIEWERS[2]]  # the same edge, a good network: pictures go on
    assert edge.viewers[VIEWERS[2]].video_on
    pictures = await settled(partial(viewer.packets_on, camera))  # what was in flight
    sound = await viewer.packets_on(voice)
    other_camera = shown_mid(others, SPEAKER, Source.CAMERA)
    assert other_camera is not None
    other_pictures = await others.packets_on(other_camera)
    await asyncio.sleep(2.0)
    assert await viewer.packets_on(camera) == pictures  # no more video for them
    assert await viewer.packets_on(voice) > sound  # the voice goes on
    assert await others.packets_on(other_camera) > other_pictures
    # The viewer asks for the picture again (the page's button): it comes back.
    assert edge.set_video(VIEWERS[0], True)
    await until(
        lambda: _more(viewer.packets_on(camera), pictures + 20), "pictures again on request"
    )
