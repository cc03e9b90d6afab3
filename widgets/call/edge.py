"""Broadcasts to thousands: the origin's call forwards once to each edge, each edge to its
share of the audience.

One process forwards to a few hundred viewers before its core is full (bench/sfu.py), and
a region's conference has thousands. So a broadcast is a tree:

- The **origin** is the call itself, in the process that holds the room
  (`ownership`): speakers and moderators publish there, as in any call.
- An **edge** is a widget process (one per core, on any host of the region) serving
  viewers. For each broadcast it serves it has one *link* to the origin: a WebSocket for
  signalling and one peer connection, through which the origin sends it what an audience
  member receives (`serve_edge`: a subscriber like a page, which never publishes). The
  edge forwards each packet of the link's slots to the same slot of every viewer's
  connection (`EdgeRoom`), without decoding, as the origin does (`rtp_forwarding`).
- The origin sends a viewer to an edge when they join (`EdgeDirectory` picks the least
  loaded): the page reconnects there with a ticket (`tickets`), so the edge admits it
  without asking the homeserver again. The edge's viewers have no way up: their pages'
  publishing transceivers are never read, whatever a client sends. Whoever the
  moderators bring on stage speaks from the origin (their page rejoins it).

Each edge reports how many viewers it serves over its links; the origin counts the
tickets it gave out that have not arrived yet as well, so a crowd joining at once spreads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from widgets.call.messages import USER_ID
from widgets.call.rtp_forwarding import ForwardingSender, PacketTap, drop_bitrate_estimator, fan_out
from widgets.call.sfu import (
    KEYFRAME_INTERVAL_S,
    PUBLISHED,
    CallRoom,
    Send,
    add_transceiver,
    new_peer_connection,
)
from widgets.call.tickets import TICKET_TTL_S

log = logging.getLogger(__name__)

EDGE_PREFIX = "edge:"  # an edge's peer in the origin's call: never a Matrix user ID
# A viewer whose receiver reports say more than POOR_LOSS of a video slot's packets were
# lost, NETWORK_CHECKS checks in a row NETWORK_CHECK_S apart, watches with sound only.
POOR_LOSS = 0.10
NETWORK_CHECKS = 2
NETWORK_CHECK_S = 2.0
MAX_NAME = 255  # a display name, as Synapse bounds it


class ChannelClosed(Exception):
    """The other end of a link went away."""


class Channel(Protocol):
    """A link's signalling: JSON objects both ways (a WebSocket, in the services)."""

    async def send(self, message: dict[str, Any]) -> None: ...

    async def receive(self) -> dict[str, Any]: ...


def edge_peer_id(edge_id: str) -> str:
    return f"{EDGE_PREFIX}{edge_id}"


def is_edge_peer(peer_id: str) -> bool:
    return peer_id.startswith(EDGE_PREFIX)


# --- the origin's side ------------------------------------------------------------------------


@dataclass
class EdgeDirectory:
    """The edges an origin may send viewers to, and how loaded each is.

    `urls` are where a page reaches each edge: a path on the widgets' host
    (`/call/edge/2/ws`) or a `wss://` address on another host; an edge names itself by the
    same string when it links. `capacity` is the most viewers one edge takes.
    """

    urls: tuple[str, ...]
    capacity: int
    clock: Callable[[], float] = time.monotonic
    reported: dict[str, int] = field(default_factory=dict)
    _sent: dict[str, deque[float]] = field(default_factory=dict)

    def report(self, edge_id: str, viewers: int) -> None:
        """An edge says how many viewers it serves now (over a link to this process)."""
        if edge_id in self.urls:
            self.reported[edge_id] = max(0, viewers)
            self._sent.pop(edge_id, None)  # its count includes whoever arrived

    def load(self, url: str) -> int:
        sent = self._sent.get(url)
        now = self.clock()
        while sent and now - sent[0] > TICKET_TTL_S:
            sent.popleft()
        return self.reported.get(url, 0) + (len(sent) if sent else 0)

    def choose(self) -> str | None:
        """The least loaded edge with room for one more viewer; None when all are full."""
        loads = [(self.load(url), index, url) for index, url in enumerate(self.urls)]
        open_ = [entry for entry in loads if entry[0] < self.capacity]
        if not open_:
            return None
        _, _, url = min(open_)
        self._sent.setdefault(url, deque()).append(self.clock())
        return url


@dataclass(frozen=True)
class Hand:
    """A viewer on an edge raised or lowered their hand (or left, hand up)."""

    user_id: str
    display_name: str
    raised: bool


HandCallback = Callable[[str, Hand], Awaitable[None]]  # (edge ID, the hand)


def _hand(message: dict[str, Any]) -> Hand | None:
    user_id, name, raised = (
        message.get("user_id"),
        message.get("display_name"),
        message.get("raised"),
    )
    if not (isinstance(user_id, str) and isinstance(name, str) and isinstance(raised, bool)):
        return None
    if not re.fullmatch(USER_ID, user_id) or len(name) > MAX_NAME:
        return None
    return Hand(user_id, name, raised)


async def serve_edge(
    room: CallRoom,
    edge_id: str,
    channel: Channel,
    on_load: Callable[[str, int], None] | None = None,
    on_hand: HandCallback | None = None,
) -> None:
    """Serve one edge's link to this origin's call until either end closes it.

    The edge is a subscriber with the audience's view (`CallState.audio_for` and
    `video_for` of someone not in the call): the stage, whoever has the floor, the
    moderators. It gets `state` like a page, with its slots, and relays it to its viewers.
    Its viewers' raised hands come up the link (`on_hand`), for the moderators' queue.
    """
    peer_id = edge_peer_id(edge_id)
    offer = await room.connect(peer_id, channel.send)
    peer = room.peers[peer_id]
    await channel.send({"type": "offer", "sdp": offer.sdp, "you": peer_id})
    try:
        while True:
            message = await channel.receive()
            kind = message.get("type")
            if kind == "answer" and isinstance(message.get("sdp"), str):
                await room.accept_answer(peer_id, message["sdp"])
                await room.broadcast()
            elif kind == "load" and isinstance(message.get("viewers"), int) and on_load:
                on_load(edge_id, message["viewers"])
            elif kind == "hand" and on_hand is not None:
                hand = _hand(message)
                if hand is not None:
                    await on_hand(edge_id, hand)
    except ChannelClosed:
        pass
    finally:
        await room.disconnect(peer_id, peer)
        log.info("edge %s unlinked from the call of %s", edge_id, room.state.room_id)


# --- the edge's side --------------------------------------------------------------------------


@dataclass(eq=False)
class _Slot:
    """One of the link's receiving slots, and the same slot of every viewer."""

    kind: str
    index: int
    mid: str
    source: tuple[int, str, int]  # what the viewers' senders forward: new with each link
    tap: PacketTap | None = None
    senders: list[ForwardingSender] = field(default_factory=list)


@dataclass(eq=False)
class Viewer:
    user_id: str
    display_name: str
    pc: RTCPeerConnection
    send: Send
    slots: list[tuple[str, ForwardingSender]] = field(default_factory=list)  # (mid, sender)
    video_on: bool = True  # off: sound only (a poor network, or the viewer's choice)
    lossy_checks: int = 0


Connect = Callable[[], "contextlib.AbstractAsyncContextManager[Channel]"]


class EdgeRoom:
    """One broadcast as an edge serves it: one link up, many viewers down.

    The link's offer says how many audio and video slots the origin gives an audience
    member; every viewer gets as many, and slot i of every viewer carries what slot i of
    the link receives. A new link (the origin restarted, the call moved) continues in
    the same slots: the viewers' pages keep their connections and get a keyframe.
    """

    def __init__(self, room_id: str, broadcast_id: int, connect: Connect) -> None:
        self.room_id = room_id
        self.broadcast_id = broadcast_id
        self._connect = connect
        self.viewers: dict[str, Viewer] = {}
        self.ready = asyncio.Event()  # a link is up: its slots are known
        self.ended = asyncio.Event()  # the origin says the broadcast is not live
        self.forwarded_packets = 0
        self.on_change: Callable[[], None] | None = None  # the viewer count changed
        # A moderator gave a viewer here the floor: their page goes to the origin to speak.
        self.on_stage: Callable[[str], Awaitable[None]] | None = None
        self.hands: dict[str, Hand] = {}  # raised here, told to the origin
        self._kinds: list[str] = []  # the link's slots' kinds, in order (fixed by the first)
        self._slots: list[_Slot] = []
        self._view: dict[str, dict[str, str]] = {}  # the link's mid -> whose stream
        self._public: dict[str, Any] | None = None
        self._pc: RTCPeerConnection | None = None
        self._channel: Channel | None = None
        self._generation = 0
        self._last_keyframe: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._networks: asyncio.Task[None] | None = None

    # --- the link ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._keep_linked(), name=f"edge-link-{self.room_id}")
            self._networks = asyncio.create_task(self._watch_networks(), name="edge-networks")

    async def close(self) -> None:
        self.ended.set()  # whoever waits for the broadcast's end here stops waiting
        tasks, self._task, self._networks = [self._task, self._networks], None, None
        for task in tasks:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        viewers, self.viewers = list(self.viewers.values()), {}
        await asyncio.gather(*(v.pc.close() for v in viewers), return_exceptions=True)
        if self._pc is not None:
            await self._pc.close()

    async def _keep_linked(self) -> None:
        backoff = 0.5
        while not self.ended.is_set():
            started = time.monotonic()
            try:
                async with self._connect() as channel:
                    await self._linked(channel)
            except ChannelClosed:
                pass
            except (OSError, TimeoutError) as exc:
                log.warning("edge link of %s: %s", self.room_id, exc)
            finally:
                self.ready.clear()
                self._channel = None
                if self._pc is not None:
                    await self._pc.close()
                    self._pc = None
            if self.ended.is_set():
                break
            backoff = 0.5 if time.monotonic() - started > 10 else min(5.0, backoff * 2)
            await asyncio.sleep(backoff)

    async def _linked(self, channel: Channel) -> None:
        offer = await channel.receive()
        if offer.get("type") == "error":
            if offer.get("reason") == "no_broadcast":
                self.ended.set()  # the origin's call has no live broadcast: nothing to relay
            raise ChannelClosed(str(offer.get("reason")))
        if offer.get("type") != "offer" or not isinstance(offer.get("sdp"), str):
            raise ChannelClosed("no offer")
        pc = self._pc = new_peer_connection()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        transceivers = pc.getTransceivers()
        for transceiver in transceivers[: len(PUBLISHED)]:
            transceiver.direction = "inactive"  # an edge never publishes
        receiving = transceivers[len(PUBLISHED) :]
        kinds = [t.kind for t in receiving]
        if self._kinds and kinds != self._kinds:
            raise ChannelClosed("the origin's slots changed")  # a reconfigured origin
        self._kinds = kinds
        self._generation += 1
        slots = self._slots or [
            _Slot(kind, index, "", (0, kind, index)) for index, kind in enumerate(kinds)
        ]
        for slot, transceiver in zip(slots, receiving, strict=True):
            transceiver.direction = "recvonly"
            drop_bitrate_estimator(transceiver.receiver)
            slot.mid = transceiver.mid or ""
            slot.source = (self._generation, slot.kind, slot.index)
            slot.tap = PacketTap(transceiver.receiver, self._forwarder(slot))
        self._slots = slots
        await pc.setLocalDescription(await pc.createAnswer())
        await channel.send({"type": "answer", "sdp": pc.localDescription.sdp})
        self._channel = channel
        self.ready.set()
        await self.report_load(len(self.viewers))
        for hand in list(self.hands.values()):  # a new link: the queue is told again
            await self._tell(hand)
        log.info("edge linked to the call of %s", self.room_id)
        while True:
            message = await channel.receive()
            if message.get("type") == "state":
                await self._relay(message)

    async def report_load(self, viewers: int) -> None:
        """Tell the origin how many viewers this edge process serves (all broadcasts)."""
        channel = self._channel
        if channel is not None:
            with contextlib.suppress(ChannelClosed):
                await channel.send({"type": "load", "viewers": viewers})

    async def hand(self, user_id: str, raised: bool) -> None:
        """A viewer here raises or lowers their hand: the origin's moderators see it."""
        viewer = self.viewers.get(user_id)
        if viewer is None or raised == (user_id in self.hands):
            return
        hand = Hand(user_id, viewer.display_name, raised)
        if raised:
            self.hands[user_id] = hand
        else:
            del self.hands[user_id]
        await self._tell(hand)

    async def _tell(self, hand: Hand) -> None:
        channel = self._channel
        if channel is not None:
            message = {"type": "hand", "user_id": hand.user_id,
                       "display_name": hand.display_name, "raised": hand.raised}  # fmt: skip
            with contextlib.suppress(ChannelClosed):
                await channel.send(message)

    def _forwarder(
        self, slot: _Slot
    ) -> Callable[[RtpPacket, RTCRtpCodecParameters], Awaitable[None]]:
        async def forward(packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
            sent, pending = fan_out(slot.senders, packet, codec, slot.source)
            for rest in pending:
                sent += await rest
            self.forwarded_packets += sent

        return forward

    async def _keyframe_for(self, source: object) -> None:
        """A viewer's slot starts, or lost pictures: ask up the link (the origin asks the
        publisher), at most once per slot and interval for all viewers together."""
        if not isinstance(source, tuple) or len(source) != 3:
            return
        index = source[2]
        if not 0 <= index < len(self._slots):
            return
        now = time.monotonic()
        if now - self._last_keyframe.get(index, 0.0) < KEYFRAME_INTERVAL_S:
            return
        self._last_keyframe[index] = now
        tap = self._slots[index].tap
        if tap is not None:
            await tap.request_keyframe()

    # --- the viewers ---------------------------------------------------------------------

    async def connect(self, user_id: str, display_name: str, send: Send) -> RTCSessionDescription:
        """A viewer's connection (the link must be ready): the same layout as the origin's
        pages, so the page needs nothing else; its publishing transceivers lead nowhere."""
        old = self.viewers.pop(user_id, None)
        if old is not None:
            self._drop_senders(old)
            await old.pc.close()
        pc = new_peer_connection()
        viewer = Viewer(user_id, display_name, pc, send)
        for source in PUBLISHED:
            # Offered inactive: the page's answer is too, so its browser uploads nothing
            # here and the edge keeps no receiver (nor its reports) for it.
            add_transceiver(pc, "audio" if source.value == "audio" else "video", "inactive")
        made = []
        for slot in self._slots:
            transceiver = add_transceiver(pc, slot.kind, "sendonly")
            sender = ForwardingSender(transceiver.sender, self._keyframe_for, transceiver)
            made.append((transceiver, sender))
        await pc.setLocalDescription(await pc.createOffer())
        for slot, (transceiver, sender) in zip(self._slots, made, strict=True):
            viewer.slots.append((transceiver.mid or "", sender))
            slot.senders.append(sender)
        self.viewers[user_id] = viewer
        self._changed()
        return pc.localDescription

    async def accept_answer(self, user_id: str, sdp: str) -> None:
        viewer = self.viewers.get(user_id)
        if viewer is not None:
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            await self._send_state(viewer)

    async def disconnect(self, user_id: str, viewer: Viewer | None = None) -> None:
        current = self.viewers.get(user_id)
        gone = viewer or current
        if gone is None:
            return
        if gone is current:
            del self.viewers[user_id]
            self._changed()
            if self.hands.pop(user_id, None) is not None:  # left with the hand up
                await self._tell(Hand(user_id, gone.display_name, False))
        self._drop_senders(gone)
        await gone.pc.close()

    def set_video(self, user_id: str, on: bool) -> bool:
        """Send a viewer video or only sound; True if that changed.

        Off, the viewer's video slots leave their link slots' fan-out (nothing is sent);
        on again, each waits for the next keyframe, which it asks for.
        """
        viewer = self.viewers.get(user_id)
        if viewer is None or viewer.video_on == on:
            return False
        viewer.video_on, viewer.lossy_checks = on, 0
        for slot, (_, sender) in zip(self._slots, viewer.slots, strict=False):
            if slot.kind != "video":
                continue
            if on and sender not in slot.senders:
                slot.senders.append(sender)
            elif not on:
                with contextlib.suppress(ValueError):
                    slot.senders.remove(sender)
                sender.pause()
        return True

    async def _watch_networks(self) -> None:
        """Viewers on a network too poor for the video keep the sound (Opus needs some
        30 kbit/s where the picture needs a megabit): read from their receiver reports."""
        while True:
            await asyncio.sleep(NETWORK_CHECK_S)
            for viewer in list(self.viewers.values()):
                if viewer.video_on and self._lossy(viewer):
                    viewer.lossy_checks += 1
                else:
                    viewer.lossy_checks = 0
                if viewer.lossy_checks >= NETWORK_CHECKS and self.set_video(viewer.user_id, False):
                    log.info("%s watches %s with sound only: video lost on the way",
                             viewer.user_id, self.room_id)  # fmt: skip
                    await viewer.send({"type": "audio_only", "reason": "poor_network"})

    def _lossy(self, viewer: Viewer) -> bool:
        recent = time.monotonic() - 3 * NETWORK_CHECK_S
        return any(
            slot.kind == "video"
            and sender.source is not None
            and sender.reported_at > recent
            and sender.fraction_lost > POOR_LOSS
            for slot, (_, sender) in zip(self._slots, viewer.slots, strict=False)
        )

    def _drop_senders(self, viewer: Viewer) -> None:
        for slot, (_, sender) in zip(self._slots, viewer.slots, strict=False):
            with contextlib.suppress(ValueError):
                slot.senders.remove(sender)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # --- what the viewers' pages show ------------------------------------------------------

    async def _relay(self, message: dict[str, Any]) -> None:
        self._view = message.get("slots") or {}
        self._public = {k: v for k, v in message.items() if k not in ("type", "you", "slots")}
        people = {p.get("user_id"): p for p in self._public.get("participants", [])}
        called = [
            user_id for user_id in self.viewers if (people.get(user_id) or {}).get("has_floor")
        ]
        for user_id in called:
            self.hands.pop(user_id, None)
            if self.on_stage is not None:
                await self.on_stage(user_id)  # their page rejoins the origin to speak
        for user_id in list(self.hands):
            entry = people.get(user_id)
            if entry is not None and not entry.get("hand_raised"):
                await self.hand(user_id, False)  # a moderator lowered it
        await asyncio.gather(*(self._send_state(v) for v in list(self.viewers.values())))

    def slot_view(self, viewer: Viewer) -> dict[str, dict[str, str]]:
        view: dict[str, dict[str, str]] = {}
        for slot, (mid, _) in zip(self._slots, viewer.slots, strict=False):
            shown = self._view.get(slot.mid)
            if shown is not None and mid:
                view[mid] = shown
        return view

    async def send_state(self, user_id: str) -> None:
        viewer = self.viewers.get(user_id)
        if viewer is not None:
            await self._send_state(viewer)

    async def _send_state(self, viewer: Viewer) -> None:
        """The origin's state, with the viewer in it as the audience: the page shows its
        own row and locks its microphone, camera and hand (nothing goes up from here)."""
        public = self._public
        if public is None:
            return
        me = {
            "user_id": viewer.user_id,
            "display_name": viewer.display_name,
            "moderator": False,
            "on_stage": False,
            "audience": True,
            "has_floor": False,
            "muted": False,
            "hand_raised": False,
            "may_share_screen": False,
            "audio": False,
            "camera": False,
        }
        people = [p for p in public.get("participants", []) if p.get("user_id") != viewer.user_id]
        me["hand_raised"] = viewer.user_id in self.hands
        await viewer.send(
            {
                **public,
                "type": "state",
                "participants": [*people, me],
                "you": viewer.user_id,
                "slots": self.slot_view(viewer),
            }
        )
