"""The SFU's media plane: one call per room, one peer connection per participant.

Each participant's connection has, in this order (the page relies on it):
- three receiving transceivers, for what they may publish: microphone, camera, screen;
- `audio_slots` sending audio transceivers and `video_slots` sending video ones, which
  carry other people's streams. Which stream a slot carries changes with the lesson (a
  new speaker, the floor passing on) without renegotiating: `CallRoom` re-assigns slots
  after every decision, and tells each page which slot shows whom (`slots` in `view`).

Every packet a participant publishes goes only to the slots assigned to its stream, and
only while `CallState.may_forward` says so. That is the whole enforcement: whatever a
pupil's page does, their microphone reaches nobody without the floor. A stream gets slots
only while its page says it fills it (`sending`: a screen shared, a camera on), so no
page shows a black tile for an empty stream; that message can only narrow what is sent.

Codecs: the SFU forwards and never transcodes, so a picture reaches only those who can
decode its codec. Every video transceiver offers VP8 and H.264 (packetization mode 1),
VP8 first: browsers that have both (all current ones) use VP8 both ways, a browser that
offers only H.264 publishes and receives H.264, and a slot carries either codec, as its
current source sends it. In a mixed call the SFU prefers a codec all can use: once
someone who can receive only H.264 is in the call, later connections are offered H.264
first for what they publish. A stream that a subscriber still cannot decode (its
publisher connected earlier with VP8) gets no slot there, and that page is told so once
per stream: `{"type": "error", "reason": "codec_unsupported", "user_id", "source"}`.
It clears when the publisher reconnects.
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
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from widgets.call.moderation import CallState, Source
from widgets.call.rtp_forwarding import (
    ForwardingSender,
    PacketTap,
    drop_bitrate_estimator,
    fan_out,
)

log = logging.getLogger(__name__)

PUBLISHED = (Source.AUDIO, Source.CAMERA, Source.SCREEN)  # the first three transceivers
DEFAULT_AUDIO_SLOTS = 6
KEYFRAME_INTERVAL_S = 0.5  # at most one PLI per publisher's stream this often
SPEAKING_LEVEL = 50  # RFC 6464 audio level, -dBov: below it someone is talking
SPEAKER_RESORT_S = 1.0  # how often a new voice may re-arrange the last-N video

StreamKey = tuple[str, Source]  # whose, and which of their streams
Send = Callable[[dict[str, Any]], Awaitable[None]]
# Sees every packet the SFU forwards (a recorder): called at once, it must not block.
StreamListener = Callable[[StreamKey, RtpPacket, RTCRtpCodecParameters], None]


def _codecs(kind: str, names: tuple[str, ...]) -> list[RTCRtpCodecCapability]:
    """The codecs the SFU forwards: it never transcodes, so both ends must use these."""
    available = RTCRtpSender.getCapabilities(kind).codecs
    return [c for name in names for c in available if c.mimeType.lower() == name]


VP8, H264 = "video/vp8", "video/h264"
VIDEO_CODECS = (VP8, H264)  # in order of preference
AUDIO_CODECS = ("audio/opus",)


def new_peer_connection(
    ice_servers: list[RTCIceServer] | None = None, *, relay_only: bool = False
) -> RTCPeerConnection:
    """One transport for all of a participant's streams (fewer ports, one DTLS handshake).

    Browsers accept the SFU's BUNDLE as offered; an aiortc client (tests, benchmarks)
    does so only when it asks for max-bundle too, so they use this as well.

    Args:
        ice_servers: STUN/TURN servers (a client behind NAT uses the region's TURN).
        relay_only: gather only TURN relay candidates (`iceTransportPolicy: relay`).
    """
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCPeerConnection(
        RTCConfiguration(
            iceServers=ice_servers,
            iceTransportPolicy=policy,
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        )
    )


def add_transceiver(
    pc: RTCPeerConnection, kind: str, direction: str, video: tuple[str, ...] = VIDEO_CODECS
) -> RTCRtpTransceiver:
    transceiver = pc.addTransceiver(kind, direction=direction)
    transceiver.setCodecPreferences(_codecs(kind, AUDIO_CODECS if kind == "audio" else video))
    drop_bitrate_estimator(transceiver.receiver)  # a tap makes it again if media comes
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
    published_codecs: dict[Source, str] = field(default_factory=dict)  # lower-case MIME
    # What the page says it fills (`sending`); None: it never said, every stream counts.
    sending: frozenset[Source] | None = None

    def decodes(self, mime_type: str) -> bool:
        """Can this page decode video of this codec? True until its answer says."""
        negotiated = [s.mime_types for _, s in self.video_slots if s.mime_types]
        return not negotiated or mime_type in negotiated[0]

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
    _codec_notices: list[tuple[str, StreamKey]] = field(default_factory=list)
    _codec_told: set[tuple[str, StreamKey]] = field(default_factory=set)
    forwarded_packets: int = 0
    # Given every packet that may be forwarded, whether or not anyone receives it.
    listeners: list[StreamListener] = field(default_factory=list)

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
        publish = self._publish_codecs()
        for source in PUBLISHED:
            kind = "audio" if source is Source.AUDIO else "video"
            peer.receivers.append(add_transceiver(pc, kind, "recvonly", publish))
        senders: list[tuple[RTCRtpTransceiver, ForwardingSender]] = []
        for kind, count in (("audio", self.audio_slots), ("video", self.video_slots)):
            for _ in range(count):
                transceiver = add_transceiver(pc, kind, "sendonly")
                sender = ForwardingSender(transceiver.sender, self._keyframe_for, transceiver)
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
        await self._tell_codec_notices()

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
            for key in [k for k in wanted if not self._decodable(peer, k)]:
                wanted.discard(key)  # it would show nothing there: no transcoding
                if (peer.user_id, key) not in self._codec_told:
                    self._codec_told.add((peer.user_id, key))
                    self._codec_notices.append((peer.user_id, key))
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

    def set_sending(self, user_id: str, sources: frozenset[Source]) -> None:
        """The page fills these of its streams now: only they get slots on other pages."""
        peer = self.peers.get(user_id)
        if peer is not None:
            peer.sending = sources

    def _publishes(self, user_id: str, source: Source) -> bool:
        """A stream negotiated and, as far as its page says, filled: a slot for it would
        otherwise show others a black tile (a screen nobody shares, a camera turned off)."""
        peer = self.peers.get(user_id)
        if peer is None or source not in peer.taps:
            return False
        return peer.sending is None or source in peer.sending

    def _decodable(self, subscriber: CallPeer, key: StreamKey) -> bool:
        publisher = self.peers.get(key[0])
        codec = publisher.published_codecs.get(key[1]) if publisher else None
        return codec is None or key[1] is Source.AUDIO or subscriber.decodes(codec)

    def _publish_codecs(self) -> tuple[str, ...]:
        """What a new connection is asked to publish in: a codec all in the call decode."""
        if any(p.decodes(H264) and not p.decodes(VP8) for p in self.peers.values()):
            return (H264, VP8)
        return VIDEO_CODECS

    def _note_codec(self, user_id: str, source: Source, codec: RTCRtpCodecParameters) -> bool:
        """Remember what a stream is encoded in; True when that changed (routes may too)."""
        peer = self.peers.get(user_id)
        mime = codec.mimeType.lower()
        if peer is None or peer.published_codecs.get(source) == mime:
            return False
        peer.published_codecs[source] = mime
        self._codec_told = {told for told in self._codec_told if told[1] != (user_id, source)}
        return True

    async def _tell_codec_notices(self) -> None:
        notices, self._codec_notices = self._codec_notices, []
        for subscriber, (user_id, source) in notices:
            peer = self.peers.get(subscriber)
            if peer is not None:
                await peer.send(
                    {
                        "type": "error",
                        "reason": "codec_unsupported",
                        "user_id": user_id,
                        "source": source.value,
                    }
                )

    def _forwarder(
        self, user_id: str, source: Source
    ) -> Callable[[RtpPacket, RTCRtpCodecParameters], Awaitable[None]]:
        key = (user_id, source)

        noted: list[RTCRtpCodecParameters] = []  # the codec last seen: a check per change

        async def forward(packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
            if source is not Source.AUDIO and (not noted or noted[0] is not codec):
                noted[:] = [codec]
                if self._note_codec(user_id, source, codec):
                    self.reassign()  # who can decode this stream is known from now on
                    await self._tell_codec_notices()
            if not self.state.may_forward(user_id, source):
                return  # not allowed to send this: it reaches nobody
            if source is Source.AUDIO:
                self._note_voice(user_id, packet)
            for listener in self.listeners:
                listener(key, packet, codec)
            sent, pending = fan_out(self._routes.get(key, ()), packet, codec, key)
            for rest in pending:  # the few that wait for a keyframe or the slow path
                sent += await rest
            self.forwarded_packets += sent

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

    async def request_keyframe(self, key: StreamKey) -> None:
        """Ask a stream's publisher for a keyframe (a recorder starting), rate-limited."""
        await self._keyframe_for(key)

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
        await self._tell_codec_notices()
