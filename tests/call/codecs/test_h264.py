"""H.264 keyframes (RFC 6184) in what aiortc's own H.264 encoder packetises."""

from __future__ import annotations

from aiortc.codecs.h264 import H264Encoder

from tests.call.pictures import frame
from widgets.call.codecs import h264


def test_a_keyframe_is_recognised_and_a_delta_frame_is_not() -> None:
    encoder = H264Encoder()
    key, _ = encoder.encode(frame(0), force_keyframe=True)
    delta, _ = encoder.encode(frame(1))
    assert any(h264.is_keyframe(p) for p in key)
    assert not any(h264.is_keyframe(p) for p in delta)
    assert not h264.is_keyframe(b"")
