"""RFC 8285 one-byte header extensions as the forwarder writes them, read back by aiortc."""

from __future__ import annotations

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import given
from hypothesis import strategies as st

from widgets.call.header_extensions import ExtensionWriter

MID, SEND_TIME, LEVEL = (
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
)


@given(
    ids=st.lists(st.integers(1, 14), min_size=3, max_size=3, unique=True),
    present=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    mid=st.text("0123456789abc", min_size=1, max_size=16),
    send_time=st.integers(0, 0xFFFFFF),
    level=st.none() | st.tuples(st.booleans(), st.integers(0, 127)),
)
def test_the_extension_writer_writes_what_aiortc_reads(
    ids: list[int],
    present: tuple[bool, bool, bool],
    mid: str,
    send_time: int,
    level: tuple[bool, int] | None,
) -> None:
    """The forwarder's own one-byte header writer against aiortc's parser: a subscriber
    must read the same MID, send time and audio level as from aiortc's own writer."""
    negotiated = [
        RTCRtpHeaderExtensionParameters(id=x, uri=uri)
        for x, uri, on in zip(ids, (MID, SEND_TIME, LEVEL), present, strict=True)
        if on
    ]
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=negotiated))
    writer = ExtensionWriter.for_map(extensions, mid)
    assert writer is not None
    block = writer.block(send_time, level)
    assert len(block) % 4 == 0
    header = bytes([0x90 if block else 0x80, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
    parsed = RtpPacket.parse(header + block + b"payload", extensions)
    assert parsed.payload == b"payload"
    assert parsed.extensions.mid == (mid if present[0] else None)
    assert parsed.extensions.abs_send_time == (send_time if present[1] else None)
    assert parsed.extensions.audio_level == (level if present[2] else None)
