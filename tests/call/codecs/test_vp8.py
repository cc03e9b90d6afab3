"""VP8 keyframes (RFC 7741) in what aiortc's own VP8 encoder packetises."""

from __future__ import annotations

from aiortc.codecs.vpx import Vp8Encoder

from tests.call.pictures import frame
from widgets.call.codecs import vp8


def test_a_keyframe_is_recognised_at_its_first_packet_only() -> None:
    encoder = Vp8Encoder()
    key, _ = encoder.encode(frame(0), force_keyframe=True)
    delta, _ = encoder.encode(frame(1))
    assert vp8.is_keyframe(key[0])
    assert not vp8.is_keyframe(delta[0])
    assert not any(vp8.is_keyframe(p) for p in key[1:])  # only a frame's start
    assert not vp8.is_keyframe(b"")
