"""H.264 in RTP (RFC 6184): the NAL unit types, and whether a packet starts a keyframe."""

from __future__ import annotations

IDR, SPS, STAP_A, FU_A = 5, 7, 24, 28  # NAL unit types (RFC 6184 §5.2, H.264 Table 7-1)


def is_keyframe(payload: bytes) -> bool:
    """Does this H.264 payload start a keyframe?

    An IDR slice or an SPS, alone (single NAL unit), in a STAP-A aggregate, or as the
    first fragment of an FU-A.
    """
    if not payload:
        return False
    nal = payload[0] & 0x1F
    if nal in (IDR, SPS):
        return True
    if nal == STAP_A:
        offset = 1
        while offset + 2 < len(payload):
            size = int.from_bytes(payload[offset : offset + 2], "big")
            if payload[offset + 2] & 0x1F in (IDR, SPS):
                return True
            offset += 2 + size
        return False
    if nal == FU_A and len(payload) > 1:
        return bool(payload[1] & 0x80) and payload[1] & 0x1F == IDR
    return False
