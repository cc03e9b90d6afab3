"""Forward RTP packets between aiortc peer connections without decoding them.

aiortc's receivers reassemble frames and decode them, and its senders encode frames and
packetise them; its stock `MediaRelay` does both for every subscriber. An SFU needs
neither. This module is where the SFU reaches into aiortc's private parts to skip them
(`header_extensions` reads one more: the negotiated IDs), so it checks the aiortc
version it was written against (`AIORTC_VERSION`):

- `PacketTap` takes over what a receiver does after RTP statistics, bandwidth estimate
  (REMB), NACKs and RTX unwrapping, all of which aiortc keeps doing for the publisher:
  instead of its jitter buffer, each packet goes to a callback. No frame is assembled,
  and the receiver's decoder thread never gets work.
- `ForwardingSender` replaces a sender's encode-and-packetise loop. Each forwarded packet
  keeps its payload and marker bit, gets the sender's SSRC, the payload type the
  subscriber negotiated for the packet's codec (a slot carries VP8 or H.264, whichever
  its current source sends, if the subscriber accepted both), and sequence numbers and
  timestamps that run on without a jump when the source changes (a new speaker in a
  slot) or pauses (a pupil whose floor was revoked). A change of source waits for a
  keyframe (`codecs.is_keyframe`), which it asks the new source for. aiortc's own NACK
  handling retransmits from the history this sender fills; a subscriber's PLI or FIR
  goes to a callback, which the SFU passes to the publisher (rate-limited there). Its
  sender reports go out only while it forwards: an idle slot sends none.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import aiortc
from aioice.ice import StunProtocol
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import is_rtx
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTP_HISTORY_SIZE,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    wrap_rtx,
)
from aiortc.utils import random16, random32, uint16_add

from widgets.call.codecs import is_keyframe
from widgets.call.header_extensions import ExtensionWriter

AIORTC_VERSION = "1.16.0"

PacketCallback = Callable[[RtpPacket, RTCRtpCodecParameters], Awaitable[None]]


def check_aiortc_version(version: str = aiortc.__version__) -> None:
    """The hooks below read private attributes of this exact aiortc release.

    Raises:
        RuntimeError: another aiortc is installed; pin aiortc==AIORTC_VERSION in pyproject.
    """
    if version != AIORTC_VERSION:
        raise RuntimeError(
            f"the call SFU's packet forwarding is written for aiortc {AIORTC_VERSION}, but "
            f"aiortc {version} is installed; install aiortc=={AIORTC_VERSION} "
            "(pinned in pyproject.toml) or port widgets/call/rtp_forwarding.py"
        )


# --- the publisher's side -------------------------------------------------------------------


class _Handoff:
    """Stands in for a receiver's jitter buffer: keeps packets for the tap to forward."""

    def __init__(self) -> None:
        self.packets: deque[RtpPacket] = deque()

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        self.packets.append(packet)
        return False, None  # no picture loss to report, and never a frame to decode


class PacketTap:
    """Sends a receiver's incoming RTP packets to `on_packet`, in order, undecoded."""

    def __init__(self, receiver: RTCRtpReceiver, on_packet: PacketCallback) -> None:
        check_aiortc_version()
        self.receiver = receiver
        self._on_packet = on_packet
        self._handoff = _Handoff()
        self._original: Callable[..., Awaitable[None]] = receiver._handle_rtp_packet
        self.last_ssrc: int | None = None
        # The receiver's codec table by payload type: filled when negotiation ends, one dict.
        self._codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
        receiver._RTCRtpReceiver__jitter_buffer = self._handoff  # type: ignore[attr-defined]
        receiver._handle_rtp_packet = self._handle  # type: ignore[method-assign]
        # Most participants never publish (pupils without the floor): their video
        # receivers get the bitrate estimator (REMB to the publisher) with their first
        # packet, not before; see `drop_bitrate_estimator`.
        self._estimates = receiver._RTCRtpReceiver__kind == "video"  # type: ignore[attr-defined]
        drop_bitrate_estimator(receiver)

    async def _handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        if self._estimates:
            self._estimates = False
            self.receiver._RTCRtpReceiver__remote_bitrate_estimator = RemoteBitrateEstimator()  # type: ignore[attr-defined]
        # aiortc does statistics, REMB, NACKs and RTX, then hands the packet to _Handoff.
        await self._original(packet, arrival_time_ms=arrival_time_ms)
        packets = self._handoff.packets
        while packets:
            forwarded = packets.popleft()
            codec = self._codecs.get(forwarded.payload_type)
            if codec is not None:
                self.last_ssrc = forwarded.ssrc
                await self._on_packet(forwarded, codec)

    async def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (an RTCP PLI, RFC 4585 §6.3.1)."""
        if self.last_ssrc is not None:
            await self.receiver._send_rtcp_pli(self.last_ssrc)


# --- the subscriber's side ------------------------------------------------------------------


class ForwardingSender:
    """Drives one aiortc sender from forwarded packets instead of an encoder.

    Install it right after the transceiver is made, before negotiation starts the
    sender. `forward` is awaited by the publisher's tap, once per packet.
    """

    def __init__(
        self,
        sender: RTCRtpSender,
        on_keyframe_request: Callable[[object], Awaitable[None]],
        transceiver: RTCRtpTransceiver | None = None,
    ) -> None:
        """`transceiver` (the sender's) tells `mime_types` as soon as the answer is
        applied; without it they are known once the sender starts (after DTLS)."""
        check_aiortc_version()
        self.sender = sender
        self._transceiver = transceiver
        self._on_keyframe_request = on_keyframe_request
        self._codec: RTCRtpCodecParameters | None = None  # set once the sender starts
        self._negotiated: list[RTCRtpCodecParameters] = []  # what the subscriber accepted
        self._codec_cache: dict[
            int, tuple[RTCRtpCodecParameters, RTCRtpCodecParameters | None]
        ] = {}
        self._route: _Route | None = None  # where protected packets go, while it holds
        self._mid: str | None = None
        self._history: dict[int, bytes] = {}  # sent packets (before SRTP), for NACKs
        self._extensions: Any = None
        self._writer: ExtensionWriter | None = None
        self._source: object | None = None  # whose packets this sender sends now
        self._seq_offset = 0
        self._ts_offset = 0
        self._last_seq = random16()  # a random start, as RFC 3550 asks
        self._last_ts = random32()
        self._original_rtcp: Callable[..., Awaitable[None]] = sender._handle_rtcp_packet
        self._original_send: Callable[[RTCRtpSendParameters], Awaitable[None]] = sender.send
        self.forwarded = 0
        # The subscriber's latest receiver report: the share of this slot's packets lost
        # on the way (0–1), and when it came (monotonic). A network too poor for video.
        self.fraction_lost = 0.0
        self.reported_at = 0.0
        sender.send = self._send  # type: ignore[method-assign]
        sender._run_rtp = self._run_rtp  # type: ignore[method-assign]
        sender._run_rtcp = self._run_rtcp  # type: ignore[method-assign]
        sender._handle_rtcp_packet = self._handle_rtcp_packet  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign]
        if transceiver is not None:  # it only sends: its receiver never sees a packet
            drop_bitrate_estimator(transceiver.receiver)

    def _private(self, name: str) -> Any:
        return getattr(self.sender, f"_RTCRtpSender__{name}")

    async def _send(self, parameters: RTCRtpSendParameters) -> None:
        """Negotiation starts the sender: note every codec the subscriber accepted."""
        if not self._negotiated:
            self._negotiated = [c for c in parameters.codecs if not is_rtx(c)]
        await self._original_send(parameters)

    @property
    def mime_types(self) -> frozenset[str]:
        """The codecs (lower-case MIME types) the subscriber can decode on this slot.

        Empty until negotiation is done.
        """
        negotiated = self._negotiated
        if not negotiated and self._transceiver is not None:
            # Set by setRemoteDescription, before the sender starts.
            negotiated = self._transceiver._codecs
        return frozenset(c.mimeType.lower() for c in negotiated if not is_rtx(c))

    def accepts(self, mime_type: str) -> bool:
        return mime_type.lower() in self.mime_types

    def _codec_for(self, codec: RTCRtpCodecParameters) -> RTCRtpCodecParameters | None:
        """The subscriber's codec for a packet of `codec`: the same parameters, else the
        same MIME type (H.264 baseline and constrained baseline decode alike).

        Asked for every packet, so the answer is kept per source codec object (a
        receiver's codec table lives as long as its connection).
        """
        cached = self._codec_cache.get(id(codec))
        if cached is not None and cached[0] is codec:
            return cached[1]
        same = [c for c in self._negotiated if c.mimeType.lower() == codec.mimeType.lower()]
        exact = [c for c in same if c.parameters == codec.parameters]
        candidates = exact or same
        found = candidates[0] if candidates else None
        if self._negotiated:  # before negotiation the answer is not final
            self._codec_cache[id(codec)] = (codec, found)
        return found

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        """Replaces the encoder loop: nothing to do but be startable and stoppable.

        `send()` has configured the sender by now: what each forwarded packet needs of its
        private state is looked up here once, not per packet.
        """
        self._mid = self._private("mid")
        self._extensions = self._private("rtp_header_extensions_map")
        self._writer = ExtensionWriter.for_map(self._extensions, self._mid)
        self._codec = codec
        self._private("rtp_started").set()
        try:
            await asyncio.get_running_loop().create_future()  # until stop() cancels us
        finally:
            self._codec = None
            self._private("rtp_exited").set()

    async def _run_rtcp(self) -> None:
        """Replaces the sender's RTCP loop: a sender report (and SDES) as aiortc sends
        one, every 0.5–1.5 s, but only after packets went out since the last one.

        Most slots are idle most of the time (a lesson's unused video slots, a broadcast's
        viewers' spare slots); aiortc's loop reported each of them every second all the
        same: a fifth of an edge's time with 100 viewers (bench/broadcast.py). An idle
        sender is, for RFC 3550 §6.4, no sender: its subscriber expects no report.
        """
        self._private("rtcp_started").set()
        reported = -1
        try:
            while True:
                await asyncio.sleep(0.5 + random.random())
                if self.forwarded == reported:
                    continue
                reported = self.forwarded
                await self._send_sender_report()
        except asyncio.CancelledError:
            pass
        try:
            with contextlib.suppress(ConnectionError):
                await self.sender._send_rtcp([RtcpByePacket(sources=[self.sender._ssrc])])
        finally:
            self._private("rtcp_exited").set()  # what the sender's stop() waits for

    async def _send_sender_report(self) -> None:
        sender = self.sender
        ntp_timestamp = self._private("ntp_timestamp")
        packets: list[Any] = [
            RtcpSrPacket(
                ssrc=sender._ssrc,
                sender_info=RtcpSenderInfo(
                    ntp_timestamp=ntp_timestamp,
                    rtp_timestamp=self._private("rtp_timestamp"),
                    packet_count=self._private("packet_count") & 0xFFFFFFFF,
                    octet_count=self._private("octet_count") & 0xFFFFFFFF,
                ),
            )
        ]
        # What the sender needs to work out the round trip from the subscriber's report.
        sender._RTCRtpSender__lsr = (ntp_timestamp >> 16) & 0xFFFFFFFF  # type: ignore[attr-defined]
        sender._RTCRtpSender__lsr_time = time.time()  # type: ignore[attr-defined]
        cname = self._private("cname")
        if cname is not None:
            item = RtcpSourceInfo(ssrc=sender._ssrc, items=[(1, cname.encode("utf8"))])
            packets.append(RtcpSdesPacket(chunks=[item]))
        await sender._send_rtcp(packets)

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == self.sender._ssrc:
                    self.fraction_lost = report.fraction_lost / 256
                    self.reported_at = time.monotonic()
        keyframe_request = (RTCP_PSFB_PLI, RTCP_PSFB_FIR)
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in keyframe_request and self._source:
            await self._on_keyframe_request(self._source)
        await self._original_rtcp(packet)  # receiver reports, NACKs (from our history)

    @property
    def source(self) -> object | None:
        return self._source

    def pause(self) -> None:
        """The source stops (floor revoked, speaker gone): the next packet starts afresh."""
        self._source = None

    async def forward(
        self, packet: RtpPacket, codec: RTCRtpCodecParameters, source: object
    ) -> bool:
        """Send one packet of `source`; returns False when it was not sent."""
        outcome = self.forward_now(packet, codec, source)
        return outcome if isinstance(outcome, bool) else await outcome

    def forward_now(
        self,
        packet: RtpPacket,
        codec: RTCRtpCodecParameters,
        source: object,
        outgoing: Outgoing | None = None,
    ) -> bool | Coroutine[Any, Any, bool]:
        """Send one packet of `source` now if it can be: True sent, False not sent; or
        the coroutine that finishes the job (a keyframe request, the slow send path).

        Plain, not `async`: a fan-out to 100 subscribers then makes no coroutine per
        subscriber, which costs time and, through the collector, pauses (bench/sfu.py).
        `outgoing` holds what every subscriber's copy shares (see `fan_out`).

        A packet is not sent before negotiation is done, when the subscriber did not
        accept its codec (there is no transcoding), or when it would switch sources in
        the middle of a picture: then the new source is asked for a keyframe.
        """
        if self._codec is None:
            return False
        mine = self._codec_for(codec)
        if mine is None or mine.payloadType is None:
            return False
        if source is not self._source:
            if not is_keyframe(codec.mimeType, packet.payload):
                return self._ask_for_keyframe(source)
            gap = 1 if mine.clockRate != 90_000 else 3_000  # one frame apart, about
            self._seq_offset = (self._last_seq + 1 - packet.sequence_number) & 0xFFFF
            self._ts_offset = (self._last_ts + gap - packet.timestamp) & 0xFFFFFFFF
            self._source = source
        if outgoing is None:
            outgoing = Outgoing(packet)
        sequence_number = (packet.sequence_number + self._seq_offset) & 0xFFFF
        timestamp = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        if self._writer is not None:
            first, tail = outgoing.tail(self._writer)
            header = _RTP_HEADER.pack(
                first,
                (packet.marker << 7) | mine.payloadType,
                sequence_number,
                timestamp,
                self.sender._ssrc,
            )
            data = header + tail
        else:  # extensions a one-byte header cannot carry: aiortc writes them
            out = RtpPacket(
                payload_type=mine.payloadType,
                marker=packet.marker,
                sequence_number=sequence_number,
                timestamp=timestamp,
                ssrc=self.sender._ssrc,
                payload=packet.payload,
            )
            out.extensions.abs_send_time = outgoing.send_time
            out.extensions.mid = self._mid
            out.extensions.audio_level = packet.extensions.audio_level
            data = out.serialize(self._extensions)
        self._last_seq, self._last_ts = sequence_number, timestamp
        self._history[sequence_number % RTP_HISTORY_SIZE] = data
        if self._send_now(data):
            self._count(outgoing.now, timestamp, len(packet.payload))
            return True
        return self._send_slowly(data, outgoing.now, timestamp, len(packet.payload))

    async def _ask_for_keyframe(self, source: object) -> bool:
        await self._on_keyframe_request(source)
        return False

    async def _send_slowly(self, data: bytes, now: int, timestamp: int, size: int) -> bool:
        try:
            await self.sender.transport._send_rtp(data)
        except ConnectionError:
            return False
        self._count(now, timestamp, size)
        return True

    def _count(self, now: int, timestamp: int, payload_size: int) -> None:
        """What aiortc's sender reports (RTCP sender reports) counts our packets too."""
        sender = self.sender
        sender._RTCRtpSender__ntp_timestamp = now  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += payload_size  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += 1  # type: ignore[attr-defined]
        self.forwarded += 1

    def _send_now(self, data: bytes) -> bool:
        """Protect and send `data` at once, the way `RTCDtlsTransport._send_rtp` and aioice
        would, without their four nested coroutines: per packet and subscriber, those
        cost more than the encryption. False when only the slow path can send it (not
        connected yet, or a TURN relay of the SFU's own in between)."""
        dtls = self.sender.transport
        if dtls._state is not DtlsState.CONNECTED:
            return False
        route = self._route
        if route is None or not route.holds(dtls):
            route = self._route = _Route.of(dtls)
            if route is None:
                return False
        protected = route.protect(data)
        route.sendto(protected, route.address)
        dtls._RTCDtlsTransport__tx_bytes += len(protected)  # type: ignore[attr-defined]
        dtls._RTCDtlsTransport__tx_packets += 1  # type: ignore[attr-defined]
        return True

    async def _retransmit(self, sequence_number: int) -> None:
        """Replaces the sender's: a subscriber's NACK resends from our history, wrapped
        in RTX when the subscriber negotiated it (RFC 4588)."""
        data = self._history.get(sequence_number % RTP_HISTORY_SIZE)
        if data is None or int.from_bytes(data[2:4], "big") != sequence_number:
            return
        rtx_payload_type = self._private("rtx_payload_type")
        if rtx_payload_type is not None:
            rtx_sequence_number = self._private("rtx_sequence_number")
            packet = wrap_rtx(
                RtpPacket.parse(data, self._extensions),
                payload_type=rtx_payload_type,
                sequence_number=rtx_sequence_number,
                ssrc=self.sender._rtx_ssrc,
            )
            self.sender._RTCRtpSender__rtx_sequence_number = uint16_add(  # type: ignore[attr-defined]
                rtx_sequence_number, 1
            )
            data = packet.serialize(self._extensions)
        with contextlib.suppress(ConnectionError):  # the subscriber is gone meanwhile
            await self.sender.transport._send_rtp(data)


_RTP_HEADER = struct.Struct("!BBHLL")
_NTP_EPOCH_OFFSET_S = 2_208_988_800  # from 1900 (NTP) to 1970 (Unix)


def drop_bitrate_estimator(receiver: RTCRtpReceiver) -> None:
    """Free a receiver of its bitrate estimator until it has packets to estimate from.

    aiortc gives every video receiver a `RemoteBitrateEstimator` holding 1,000 objects
    (one per millisecond of its window), even on a transceiver that only sends. With
    100 subscribers of 11 video slots each, those were 1.1 million of the SFU's 1.4
    million objects, and each full pass of Python's cyclic collector stopped the whole
    event loop for 100–240 ms. The receiver skips the estimator when it has none, as
    it does for audio.
    """
    receiver._RTCRtpReceiver__remote_bitrate_estimator = None  # type: ignore[attr-defined]


def fan_out(
    senders: Iterable[ForwardingSender],
    packet: RtpPacket,
    codec: RTCRtpCodecParameters,
    source: object,
) -> tuple[int, list[Coroutine[Any, Any, bool]]]:
    """Send one packet of `source` to each of `senders` at once: how many copies went,
    and the coroutines that finish the others (await them, in order).

    What the copies share (the send time, the header extensions and the payload) is made
    once for the packet, so that each subscriber costs only its header, its SRTP and a
    `sendto`: in a lesson of 100, that loop is where the SFU spends its time.
    """
    outgoing = Outgoing(packet)
    sent = 0
    pending: list[Coroutine[Any, Any, bool]] = []
    for sender in senders:
        outcome = sender.forward_now(packet, codec, source, outgoing)
        if outcome is True:
            sent += 1
        elif outcome is not False:
            pending.append(outcome)
    return sent, pending


class Outgoing:
    """One incoming packet as all its forwarded copies share it."""

    __slots__ = ("_tails", "now", "packet", "send_time")

    def __init__(self, packet: RtpPacket) -> None:
        self.packet = packet
        self.now = ntp_now()
        self.send_time = (self.now >> 14) & 0x00FFFFFF  # abs-send-time: 6.18 fixed point
        self._tails: dict[tuple[bytes, int, int, int], tuple[int, bytes]] = {}

    def tail(self, writer: ExtensionWriter) -> tuple[int, bytes]:
        """The RTP header's first byte and what follows the fixed header (extensions and
        payload) for subscribers whose extensions are laid out as `writer`'s."""
        found = self._tails.get(writer.layout)
        if found is None:
            extensions = writer.block(self.send_time, self.packet.extensions.audio_level)
            found = (0x90 if extensions else 0x80, extensions + self.packet.payload)
            self._tails[writer.layout] = found
        return found


class _Route:
    """Where a subscriber's packets go: the SRTP session and the socket of the nominated
    ICE pair, found once and checked per packet (it holds for the connection's life)."""

    __slots__ = ("_pair", "_transport", "address", "protect", "sendto")

    def __init__(self, pair: Any, transport: asyncio.DatagramTransport, protect: Any) -> None:
        self._pair = pair
        self._transport = transport
        self.address = pair.remote_addr
        self.protect: Callable[[bytes], bytes] = protect
        self.sendto = transport.sendto

    @classmethod
    def of(cls, dtls: Any) -> _Route | None:
        """None when there is no direct path: no nominated pair yet, or a TURN relay."""
        pair = dtls.transport._connection._nominated.get(1)  # RTP's ICE component
        if pair is None or type(pair.protocol) is not StunProtocol:
            return None
        transport = pair.protocol.transport
        if transport is None or transport.is_closing():
            return None
        return cls(pair, transport, dtls._tx_srtp.protect)

    def holds(self, dtls: Any) -> bool:
        return (
            dtls.transport._connection._nominated.get(1) is self._pair
            and not self._transport.is_closing()
        )


def ntp_now() -> int:
    """The 64-bit NTP time now (aiortc's `clock.current_ntp_time`, without datetime)."""
    return int((time.time() + _NTP_EPOCH_OFFSET_S) * (1 << 32))
