"""The SFU's media plane: one call per room, one peer connection per participant.

Each participant's connection has, in this order (the page relies on it):
- three receiving transceivers, for what they may publish: microphone, camera, screen;
- `audio_slots` sending audio transceivers and `video_slots` sending video ones, which
  carry other people's streams. Which stream a slot carries changes with the lesson (a
  new speaker, the floor passing on) without renegotiating: `CallRoom` re-assigns slots
  after every decision, and tells each page which slot shows whom (`slots` in `view`).

Every packet a participant publishes goes only to the slots assigned to its stream, and
only while `CallState.may_forward` says so. That is the whole enforcement: whatever a
pupil's page does, their microphone reaches nobody without the floor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from widgets.call.moderation import CallState, Source
from widgets.call.rtp_forwarding import ForwardingSender, PacketTap

log = logging.getLogger(__name__)

PUBLISHED = (Source.AUDIO, Source.CAMERA, Source.SCREEN)  # the first three transceivers
DEFAULT_AUDIO_SLOTS = 6
KEYFRAME_INTERVAL_S = 0.5  # at most one PLI per publisher's stream this often
SPEAKING_LEVEL = 50  # RFC 6464 audio level, -dBov: below it someone is talking
SPEAKER_RESORT_S = 1.0  # how often a new voice may re-arrange the last-N video

StreamKey = tuple[str, Source]  # whose, and which of their streams
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _codecs(kind: str, names: tuple[str, ...]) -> list[RTCRtpCodecCapability]:
    """The codecs the SFU forwards: it never transcodes, so both ends must use these."""
    available = RTCRtpSender.getCapabilities(kind).codecs
    return [c for name in names for c in available if c.mimeType.lower() == name]


VIDEO_CODECS = ("video/vp8",)
AUDIO_CODECS = ("audio/opus",)


def new_peer_connection() -> RTCPeerConnection:
    """One transport for all of a participant's streams (fewer ports, one DTLS handshake).

    Browsers accept the SFU's BUNDLE as offered; an aiortc client (tests, benchmarks)
    does so only when it asks for max-bundle too, so they use this as well.
    """
    return RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


def _transceiver(pc: RTCPeerConnection, kind: str, direction: str) -> RTCRtpTransceiver:
    transceiver = pc.addTransceiver(kind, direction=direction)
    transceiver.setCodecPreferences(
        _codecs(kind, AUDIO_CODECS if kind == "audio" else VIDEO_CODECS)
    )
    return transceiver


@dataclass(eq=False)
class CallPeer:
    """One participant's connection, what they publish and the slots they receive."""

    user_id: str
    pc: RTCPeerConnection
    send: Send
    taps: dict[Source, PacketTap] = field(default_factory=dict)
    audio_slots: list[tuple[str, ForwardingSender]] = field(default_factory=list)  # (mid, s)
    video_slots: list[tuple[str, ForwardingSender]] = field(default_factory=list)
    assigned: dict[StreamKey, ForwardingSender] = field(default_factory=dict)
    receivers: list[RTCRtpTransceiver] = field(default_factory=list)

    def slot_view(self) -> dict[str, dict[str, str]]:
        """Which slot (by its transceiver's mid) shows whose stream, for the page."""
        by_sender = {id(s): key for key, s in self.assigned.items()}
        view: dict[str, dict[str, str]] = {}
        for mid, sender in [*self.audio_slots, *self.video_slots]:
            key = by_sender.get(id(sender))
            if key is not None and mid:
                view[mid] = {"user_id": key[0], "source": key[1].value}
        return view


@dataclass
class CallRoom:
    """One room's call: its moderation state, its peers, and where each packet goes."""

    state: CallState
    audio_slots: int = DEFAULT_AUDIO_SLOTS
    peers: dict[str, CallPeer] = field(default_factory=dict)
    _routes: dict[StreamKey, list[ForwardingSender]] = field(default_factory=dict)
    _last_keyframe_request: dict[StreamKey, float] = field(default_factory=dict)
    _last_resort: float = 0.0
    forwarded_packets: int = 0

    @property
    def video_slots(self) -> int:
        # The last N speakers, plus the teacher, whoever holds the floor and a screen.
        return self.state.last_n + 3

    # --- connecting -------------------------------------------------------------------

    async def connect(self, user_id: str, send: Send) -> RTCSessionDescription:
        """Make the participant's connection and return the SFU's offer for it."""
        old = self.peers.pop(user_id, None)
        if old is not None:
            await old.pc.close()  # a reconnect replaces the old connection
        pc = new_peer_connection()
        peer = CallPeer(user_id, pc, send)
        for source in PUBLISHED:
            kind = "audio" if source is Source.AUDIO else "video"
            peer.receivers.append(_transceiver(pc, kind, "recvonly"))
        senders: list[tuple[RTCRtpTransceiver, ForwardingSender]] = []
        for kind, count in (("audio", self.audio_slots), ("video", self.video_slots)):
            for _ in range(count):
                transceiver = _transceiver(pc, kind, "sendonly")
                sender = ForwardingSender(transceiver.sender, self._keyframe_for)
                senders.append((transceiver, sender))

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            for source, transceiver in zip(PUBLISHED, peer.receivers, strict=True):
                if transceiver.receiver.track is track:
                    peer.taps[source] = PacketTap(
                        transceiver.receiver, self._forwarder(user_id, source)
                    )

        await pc.setLocalDescription(await pc.createOffer())
        # The mids exist once the offer is made; slots are named by them on the page.
        for transceiver, sender in senders:
            pair = (transceiver.mid or "", sender)
            (peer.audio_slots if transceiver.kind == "audio" else peer.video_slots).append(pair)
        self.peers[user_id] = peer
        return pc.localDescription

    async def accept_answer(self, user_id: str, sdp: str) -> None:
        peer = self.peers.get(user_id)
        if peer is None:
            return
        await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self.reassign()

    async def disconnect(self, user_id: str, peer: CallPeer | None = None) -> None:
        """Close a participant's connection (only `peer`, if given and replaced since)."""
        current = self.peers.get(user_id)
        if peer is not None and peer is not current:
            await peer.pc.close()  # an older connection of someone who came back
            return
        if current is not None:
            del self.peers[user_id]
            await current.pc.close()
        self.reassign()

    async def close(self) -> None:
        peers, self.peers = list(self.peers.values()), {}
        await asyncio.gather(*(p.pc.close() for p in peers), return_exceptions=True)

    # --- routing ----------------------------------------------------------------------

    def reassign(self) -> None:
        """Give each peer's slots the streams the lesson's state says they should receive.

        A stream that keeps its place keeps its slot (no picture restarts); a slot whose
        stream went away is paused and given to a newcomer.
        """
        routes: dict[StreamKey, list[ForwardingSender]] = {}
        for peer in self.peers.values():
            audio = {(user, Source.AUDIO) for user in self.state.audio_for(peer.user_id)}
            video = self.state.video_for(peer.user_id)
            wanted = {key for key in audio | video if self._publishes(*key)}
            kept = {key: s for key, s in peer.assigned.items() if key in wanted}
            for key, sender in peer.assigned.items():
                if key not in kept:
                    sender.pause()
            used = {id(s) for s in kept.values()}
            free_audio = [s for _, s in peer.audio_slots if id(s) not in used]
            free_video = [s for _, s in peer.video_slots if id(s) not in used]
            for key in sorted(wanted - set(kept), key=lambda k: (k[1].value, k[0])):
                pool = free_audio if key[1] is Source.AUDIO else free_video
                if pool:
                    kept[key] = pool.pop(0)
            peer.assigned = kept
            for key, sender in kept.items():
                routes.setdefault(key, []).append(sender)
        self._routes = routes

    def _publishes(self, user_id: str, source: Source) -> bool:
        peer = self.peers.get(user_id)
        return peer is not None and source in peer.taps

    def _forwarder(
        self, user_id: str, source: Source
    ) -> Callable[[RtpPacket, RTCRtpCodecParameters], Awaitable[None]]:
        key = (user_id, source)

        async def forward(packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
            if not self.state.may_forward(user_id, source):
                return  # not allowed to send this: it reaches nobody
            if source is Source.AUDIO:
                self._note_voice(user_id, packet)
            for sender in self._routes.get(key, ()):
                if await sender.forward(packet, codec, key):
                    self.forwarded_packets += 1

        return forward

    def _note_voice(self, user_id: str, packet: RtpPacket) -> None:
        level = packet.extensions.audio_level
        if level is None or level[1] >= SPEAKING_LEVEL:
            return
        now = time.monotonic()
        self.state.note_speaking(user_id, now=now)
        if now - self._last_resort >= SPEAKER_RESORT_S:
            self._last_resort = now
            self.reassign()

    async def _keyframe_for(self, source: object) -> None:
        """A slot switched to this stream, or a subscriber lost pictures: ask its publisher."""
        if not isinstance(source, tuple):
            return
        user_id, kind = source
        peer = self.peers.get(user_id)
        tap = peer.taps.get(kind) if peer is not None else None
        if tap is None:
            return
        now = time.monotonic()
        if now - self._last_keyframe_request.get(source, 0.0) < KEYFRAME_INTERVAL_S:
            return
        self._last_keyframe_request[source] = now
        await tap.request_keyframe()

    # --- what each page sees -----------------------------------------------------------

    async def broadcast(self) -> None:
        """Send every connected page the call's state and its own slots."""
        public = self.state.public()
        for peer in list(self.peers.values()):
            view = {**public, "type": "state", "you": peer.user_id, "slots": peer.slot_view()}
            await peer.send(view)  # a page gone mid-call: its socket's `send` drops it
