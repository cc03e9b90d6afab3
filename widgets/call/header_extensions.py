"""RTP header extensions (RFC 8285) on forwarded packets, in the one-byte form.

Each forwarded packet carries the subscriber's MID, its send time (abs-send-time, for
the subscriber's bandwidth estimate) and, for audio, the source's level (RFC 6464).
aiortc's general writer builds a list and packs byte by byte for each packet; the SFU
writes one block per layout instead. Reads the negotiated IDs from aiortc's private
`HeaderExtensionsMap` (the pinned aiortc: see `rtp_forwarding.check_aiortc_version`).
"""

from __future__ import annotations

import struct
from typing import Any

from aiortc.rtp import HeaderExtensions

ONE_BYTE_PROFILE = 0xBEDE  # RFC 8285 §4.2
MAX_ONE_BYTE_ID = 14  # 15 is reserved
MAX_ONE_BYTE_LENGTH = 16


class ExtensionWriter:
    """Writes a forwarded packet's header extensions in RFC 8285's one-byte form: the
    subscriber's MID, abs-send-time, and the source's audio level when it has one.

    Made once per sender from its negotiated extension IDs.
    """

    def __init__(self, mid: bytes, mid_id: int, send_time_id: int, level_id: int) -> None:
        self.layout = (mid, mid_id, send_time_id, level_id)  # equal layouts, equal blocks
        self._mid = bytes([(mid_id << 4) | (len(mid) - 1)]) + mid if mid_id and mid else b""
        self._send_time_id = send_time_id
        self._send_time = bytes([(send_time_id << 4) | 2]) if send_time_id else b""
        self._level = bytes([level_id << 4]) if level_id else b""
        self._blocks: dict[tuple[bool, int] | None, tuple[bytes, bytes]] = {}

    @classmethod
    def for_map(cls, extensions: Any, mid: str | None) -> ExtensionWriter | None:
        """The writer for a sender's negotiated extensions (aiortc's `HeaderExtensionsMap`);
        None when an ID or the MID does not fit the one-byte form."""
        ids: HeaderExtensions = extensions._HeaderExtensionsMap__ids
        mid_bytes = (mid or "").encode()
        wanted = [x for x in (ids.mid, ids.abs_send_time, ids.audio_level) if x]
        if any(x > MAX_ONE_BYTE_ID for x in wanted) or len(mid_bytes) > MAX_ONE_BYTE_LENGTH:
            return None
        return cls(mid_bytes, ids.mid or 0, ids.abs_send_time or 0, ids.audio_level or 0)

    def block(self, send_time: int, audio_level: tuple[bool, int] | None) -> bytes:
        """The extension header and its elements, padded to 32 bits; b"" for none."""
        parts = self._blocks.get(audio_level)
        if parts is None:
            level = b""
            if self._level and audio_level is not None:
                level = self._level + bytes(
                    [(0x80 if audio_level[0] else 0) | audio_level[1] & 0x7F]
                )
            size = len(self._mid) + (4 if self._send_time else 0) + len(level)
            padding = b"\x00" * (-size % 4)
            head = struct.pack("!HH", ONE_BYTE_PROFILE, (size + len(padding)) // 4) + self._mid
            parts = (head, level + padding) if size else (b"", b"")
            self._blocks[audio_level] = parts
        head, tail = parts
        if not head:
            return b""
        if not self._send_time:
            return head + tail
        return b"".join((head, self._send_time, send_time.to_bytes(3, "big"), tail))
