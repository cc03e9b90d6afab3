"""HTTP range requests (RFC 9110 §14) over a stream that cannot seek.

Synapse's media repository answers every download whole (element-hq/synapse#4780), but
a browser seeking in a lesson's video, or pdf.js opening a big PDF, asks for a range. The
service reads Synapse's stream, drops the bytes before the range and stops after it. On
loopback that costs little; it is correct for every single-range request, and a request
for several ranges gets the whole file, which the RFC allows.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

_SINGLE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class Unsatisfiable(ValueError):
    """The range lies outside the file: the answer is 416 with the file's size."""


@dataclass(frozen=True)
class ByteRange:
    first: int
    last: int  # inclusive

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.first}-{self.last}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range asked for, or None for the whole file (no header, several, unknown unit).

    Raises:
        Unsatisfiable: a well-formed range that starts past the end of the file.
    """
    if not header:
        return None
    match = _SINGLE.match(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # the last N bytes
        suffix = int(last_text)
        if suffix == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1) if size else _unsatisfiable(header)
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # invalid: ignored, as the RFC says
    if first >= size:
        raise Unsatisfiable(header)
    last = int(last_text) if last_text else size - 1
    return ByteRange(first, min(last, size - 1))


def _unsatisfiable(header: str) -> ByteRange:
    raise Unsatisfiable(header)


async def cut(stream: AsyncIterator[bytes], wanted: ByteRange) -> AsyncIterator[bytes]:
    """The bytes of `wanted` out of a stream of the whole file."""
    position = 0
    async for chunk in stream:
        end = position + len(chunk)
        if end > wanted.first:
            start = max(0, wanted.first - position)
            stop = min(len(chunk), wanted.last + 1 - position)
            if start < stop:
                yield chunk[start:stop]
        position = end
        if position > wanted.last:
            return
