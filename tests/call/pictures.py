"""Pictures for the call tests: single frames for an encoder, and a changing camera."""

from __future__ import annotations

import fractions

import av
from aiortc import VideoStreamTrack


def frame(index: int, width: int = 320, height: int = 240) -> av.VideoFrame:
    picture = av.VideoFrame(width=width, height=height, format="yuv420p")
    for plane in picture.planes:
        plane.update(bytes([(index * 7) % 256]) * plane.buffer_size)
    picture.pts, picture.time_base = index * 3000, fractions.Fraction(1, 90_000)
    return picture


class Pattern(VideoStreamTrack):
    """A camera that shows changing frames at 30 fps (so every frame is encoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        picture = frame(self.index)
        picture.pts, picture.time_base = pts, time_base
        self.index += 1
        return picture
