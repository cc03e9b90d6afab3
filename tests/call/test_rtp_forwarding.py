"""RTP forwarding between real aiortc peer connections on loopback: nothing is decoded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import av
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpSender,
)
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, is_rtcp, unwrap_rtx

from tests.call.conftest import until
from tests.call.pictures import Pattern
from tests.call.test_header_extensions import LEVEL, MID, SEND_TIME
from widgets.call.header_extensions import ExtensionWriter
from widgets.call.rtp_forwarding import (
    ForwardingSender,
    Outgoing,
    PacketTap,
    check_aiortc_version,
)


def test_another_aiortc_is_refused_with_what_to_do() -> None:
    with pytest.raises(RuntimeError, match=r"install aiortc==1\.16\.0"):
        check_aiortc_version("1.17.0")
    check_aiortc_version()


def test_copies_of_a_packet_share_a_tail_only_where_their_extensions_match() -> None:
    """`fan_out` joins extensions and payload once per layout: a subscriber whose slot
    has another MID must still read its own MID, not the first subscriber's."""
    negotiated = [
        RTCRtpHeaderExtensionParameters(id=1, uri=MID),
        RTCRtpHeaderExtensionParameters(id=2, uri=SEND_TIME),
        RTCRtpHeaderExtensionParameters(id=3, uri=LEVEL),
    ]
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=negotiated))
    writers = [ExtensionWriter.for_map(extensions, mid) for mid in ("3", "7", "3")]
    packet = RtpPacket(payload_type=111, sequence_number=1, timestamp=2, payload=b"opus")
    packet.extensions.audio_level = (True, 30)
    outgoing = Outgoing(packet)
    tails = [outgoing.tail(writer) for writer in writers if writer is not None]
    assert tails[0] is tails[2] and tails[0] != tails[1]
    for (first, tail), mid in zip(tails, ("3", "7", "3"), strict=True):
        header = bytes([first, 111, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
        parsed = RtpPacket.parse(header + tail, extensions)
        assert (parsed.extensions.mid, parsed.payload) == (mid, b"opus")
        assert parsed.extensions.abs_send_time == outgoing.send_time
        assert parsed.extensions.audio_level == (True, 30)


async def connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


@dataclass(eq=False)
class Publisher:
    pc: RTCPeerConnection
    sender: RTCRtpSender
    keyframes_asked: int = 0


class Router:
    """Where tapped packets go in a test: to every forwarding sender, from one source."""

    def __init__(self) -> None:
        self.senders: list[ForwardingSender] = []
        self.source: Publisher | None = None
        self.taps: dict[Publisher, PacketTap] = {}
        self.connections: list[RTCPeerConnection] = []
        self.tasks: list[asyncio.Task[None]] = []

    def peer(self) -> RTCPeerConnection:
        pc = RTCPeerConnection()
        self.connections.append(pc)
        return pc

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(pc.close() for pc in self.connections), return_exceptions=True)

    async def forward(
        self, packet: RtpPacket, codec: RTCRtpCodecParameters, publisher: Publisher
    ) -> None:
        if publisher is self.source:
            for sender in self.senders:
                await sender.forward(packet, codec, publisher)

    async def keyframe(self, source: object) -> None:
        if isinstance(source, Publisher) and source in self.taps:
            await self.taps[source].request_keyframe()


async def publisher_into(router: Router) -> Publisher:
    """A client sending a VP8 camera into an SFU connection, whose receiver is tapped."""
    sfu, pc = router.peer(), router.peer()
    publisher = Publisher(pc, pc.addTrack(Pattern()))
    original = publisher.sender._send_keyframe

    def counting() -> None:
        publisher.keyframes_asked += 1
        original()

    publisher.sender._send_keyframe = counting  # type: ignore[method-assign]

    async def forward(packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        await router.forward(packet, codec, publisher)

    @sfu.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        receiver = next(r for r in sfu.getReceivers() if r.track is track)
        router.taps[publisher] = PacketTap(receiver, forward)

    await connect(pc, sfu)
    return publisher


@dataclass
class Subscriber:
    pc: RTCPeerConnection
    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)


async def subscriber_of(
    router: Router, *, rtx: bool = False
) -> tuple[Subscriber, ForwardingSender]:
    sfu = router.peer()
    transceiver = sfu.addTransceiver("video", direction="sendonly")
    wanted = ("video/VP8", "video/rtx") if rtx else ("video/VP8",)
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in wanted]
    transceiver.setCodecPreferences(vp8)
    forwarding = ForwardingSender(transceiver.sender, router.keyframe, transceiver)
    router.senders.append(forwarding)
    subscriber = Subscriber(router.peer())

    @subscriber.pc.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        async def consume() -> None:
            while True:
                picture = await track.recv()
                assert isinstance(picture, av.VideoFrame)
                subscriber.frames += 1
                subscriber.sizes.add((picture.width, picture.height))

        router.tasks.append(asyncio.ensure_future(consume()))

    await connect(sfu, subscriber.pc)
    return subscriber, forwarding


@pytest.fixture
async def router() -> AsyncIterator[Router]:
    router = Router()
    yield router
    await router.close()


async def test_a_subscriber_decodes_what_the_sfu_forwards_undecoded(router: Router) -> None:
    publisher = router.source = await publisher_into(router)
    subscribers = [await subscriber_of(router) for _ in range(2)]
    await until(lambda: all(s.frames >= 30 for s, _ in subscribers), "30 decoded frames each")
    for subscriber, forwarding in subscribers:
        assert subscriber.sizes == {(320, 240)}
        assert forwarding.forwarded > 30
        # The subscriber receives the SFU's own SSRC, not the publisher's.
        stats = await subscriber.pc.getReceivers()[0].getStats()
        inbound = [s for s in stats.values() if s.type == "inbound-rtp"]
        assert [s.ssrc for s in inbound] == [forwarding.sender._ssrc]
    # The SFU never assembled or decoded a frame: nothing ever reached its receiver's
    # track, where aiortc puts each decoded frame (nobody reads it in the SFU).
    tap = router.taps[publisher]
    assert tap.receiver.track._queue.qsize() == 0  # type: ignore[attr-defined]


async def test_only_a_receiver_with_packets_keeps_a_bitrate_estimator(router: Router) -> None:
    """1,000 objects each: the SFU's send-only transceivers never get one; a publisher's
    receiver gets it with the first packet, and its estimate (REMB) reaches the
    publisher's encoder."""
    publisher = router.source = await publisher_into(router)
    subscriber, forwarding = await subscriber_of(router)
    assert forwarding._transceiver is not None
    estimator = "_RTCRtpReceiver__remote_bitrate_estimator"
    assert getattr(forwarding._transceiver.receiver, estimator) is None

    def encoder() -> Any:
        return publisher.sender._RTCRtpSender__encoder  # type: ignore[attr-defined]

    await until(lambda: encoder() is not None, "the publisher's encoder")
    started_at = encoder().target_bitrate
    await until(lambda: subscriber.frames >= 30, "30 decoded frames")
    assert getattr(router.taps[publisher].receiver, estimator) is not None
    # The estimate differs from the encoder's start within seconds: REMB arrived.
    await until(lambda: encoder().target_bitrate != started_at, "a REMB at the publisher")


async def test_a_new_source_waits_for_its_keyframe_and_the_picture_goes_on(
    router: Router,
) -> None:
    first, second = await publisher_into(router), await publisher_into(router)
    router.source = first
    subscriber, forwarding = await subscriber_of(router)
    await until(lambda: subscriber.frames >= 20, "frames of the first publisher")
    asked_before = second.keyframes_asked
    router.source = second  # the floor goes to someone else: same slot, another source
    await until(lambda: forwarding.source is second, "the switch to the second publisher")
    assert second.keyframes_asked > asked_before  # the SFU asked for a keyframe to start on
    frames_at_switch = subscriber.frames
    await until(lambda: subscriber.frames >= frames_at_switch + 20, "frames after the switch")
    # Paused and resumed (a floor revoked, then granted again): again from a keyframe.
    forwarding.pause()
    asked = second.keyframes_asked
    await until(lambda: forwarding.source is second, "the resumed source")
    assert second.keyframes_asked > asked


async def test_a_subscribers_picture_loss_report_reaches_the_publisher(router: Router) -> None:
    publisher = router.source = await publisher_into(router)
    subscriber, forwarding = await subscriber_of(router)
    await until(lambda: subscriber.frames >= 10, "the first frames")
    before = publisher.keyframes_asked
    receiver = subscriber.pc.getReceivers()[0]
    await receiver._send_rtcp_pli(forwarding.sender._ssrc)  # what a decoder does on loss
    await until(lambda: publisher.keyframes_asked > before, "the PLI at the publisher", 10)


@pytest.mark.parametrize("rtx", [True, False], ids=["rtx", "plain"])
async def test_a_subscribers_nack_is_answered_from_the_forwarders_history(
    router: Router, rtx: bool
) -> None:
    """Forwarded packets leave by the direct path; a lost one is resent from the
    forwarder's history, in RTX when the subscriber negotiated it (RFC 4588)."""
    router.source = await publisher_into(router)
    subscriber, forwarding = await subscriber_of(router, rtx=rtx)
    await until(lambda: subscriber.frames >= 10, "the first frames")
    dtls = forwarding.sender.transport
    resent: list[bytes] = []
    original = dtls._send_rtp

    async def recording(data: bytes) -> None:
        resent.append(data)
        await original(data)

    dtls._send_rtp = recording  # type: ignore[method-assign]
    sent_before = dtls._RTCDtlsTransport__tx_packets  # type: ignore[attr-defined]
    forwarded_before = forwarding.forwarded
    await until(lambda: forwarding.forwarded >= forwarded_before + 10, "more packets")
    sent = dtls._RTCDtlsTransport__tx_packets - sent_before  # type: ignore[attr-defined]
    assert sent >= forwarding.forwarded - forwarded_before  # counted as aiortc would
    assert [d for d in resent if not is_rtcp(d)] == []  # only RTCP takes aiortc's path
    lost = forwarding._last_seq
    receiver = subscriber.pc.getReceivers()[0]
    await receiver._send_rtcp_nack(forwarding.sender._ssrc, [lost])
    await until(lambda: any(not is_rtcp(d) for d in resent), "the retransmission", 10)
    packet = RtpPacket.parse(next(d for d in resent if not is_rtcp(d)))
    rtx_type = forwarding.sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
    if rtx:
        assert rtx_type is not None and packet.payload_type == rtx_type
        assert packet.ssrc == forwarding.sender._rtx_ssrc
        packet = unwrap_rtx(packet, payload_type=0, ssrc=forwarding.sender._ssrc)
    else:
        assert rtx_type is None
        assert packet.ssrc == forwarding.sender._ssrc
    assert packet.sequence_number == lost
