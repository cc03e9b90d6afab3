"""What the SFU must know of each codec it forwards: where a decoder can start.

The SFU never decodes; it only needs to find keyframes, so that a subscriber's picture
switches to a new source where that source's decoder can begin. One module per codec,
named after it, each with the RTP payload format's rule.
"""

from __future__ import annotations

from widgets.call.codecs import h264, vp8


def is_keyframe(mime_type: str, payload: bytes) -> bool:
    """Does this RTP payload start a keyframe (where a decoder can begin)?

    Audio packets stand alone, so any of them will do; a video codec the SFU does not
    forward never has one.
    """
    kind, _, name = mime_type.lower().partition("/")
    if kind == "audio":
        return True
    if name == "vp8":
        return vp8.is_keyframe(payload)
    if name == "h264":
        return h264.is_keyframe(payload)
    return False
