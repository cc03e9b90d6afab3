"""VP8 in RTP (RFC 7741): the payload descriptor, and whether a packet starts a keyframe."""

from __future__ import annotations


def is_keyframe(payload: bytes) -> bool:
    """Does this VP8 payload start a keyframe?

    RFC 7741 §4.3: skip the payload descriptor, then read the frame's inverse key bit.
    Only the first packet of a frame (start bit, partition 0) carries the frame header.
    """
    if not payload:
        return False
    first = payload[0]
    start, partition = first & 0x10, first & 0x0F
    if not start or partition != 0:
        return False  # only the first packet of a frame carries the frame header
    offset = 1
    if first & 0x80:  # X: an extension byte follows
        if len(payload) < 2:
            return False
        extension = payload[1]
        offset = 2
        if extension & 0x80:  # I: a picture ID, of 7 or 15 bits
            if len(payload) <= offset:
                return False
            offset += 2 if payload[offset] & 0x80 else 1
        if extension & 0x40:  # L: TL0PICIDX
            offset += 1
        if extension & 0x30:  # T or K: TID/Y/KEYIDX
            offset += 1
    return len(payload) > offset and not payload[offset] & 0x01  # P = 0: a key frame
