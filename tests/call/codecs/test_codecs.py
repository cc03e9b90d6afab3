"""`widgets.call.codecs.is_keyframe`: each payload goes to its codec's rule, by MIME type."""

from __future__ import annotations

from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from tests.call.pictures import frame
from widgets.call.codecs import is_keyframe


def test_keyframes_are_recognised_in_vp8_and_h264_payloads() -> None:
    vp8 = Vp8Encoder()
    key, _ = vp8.encode(frame(0), force_keyframe=True)
    delta, _ = vp8.encode(frame(1))
    assert is_keyframe("video/VP8", key[0])
    assert not is_keyframe("video/VP8", delta[0])
    assert not any(is_keyframe("video/VP8", p) for p in key[1:])  # only a frame's start
    h264 = H264Encoder()
    key, _ = h264.encode(frame(0), force_keyframe=True)
    delta, _ = h264.encode(frame(1))
    assert any(is_keyframe("video/H264", p) for p in key)
    assert not any(is_keyframe("video/H264", p) for p in delta)
    assert is_keyframe("audio/opus", b"\x78\x01")
    assert not is_keyframe("video/VP8", b"")
    assert not is_keyframe("video/AV1", key[0])  # a codec we do not forward
