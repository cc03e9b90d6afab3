"""The bytes in and out: an upload is passed on to Synapse in pieces of about 1 MiB, byte
for byte, checked; a download from Synapse sends the range asked for and closes Synapse's
answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi.responses import StreamingResponse
from hypothesis import given, settings
from hypothesis import strategies as st

from foundation.web import ApiError
from widgets.documents.streams import UPLOAD_PIECE, exactly, from_homeserver


async def arriving(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def passed_on(chunks: list[bytes], length: int) -> list[bytes]:
    return [piece async for piece in exactly(arriving(chunks), length, "video.mp4")]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=300_000), min_size=1, max_size=20))
def test_pieces_hold_the_same_bytes_and_are_big(sizes: list[int]) -> None:
    chunks = [bytes([index % 251]) * size for index, size in enumerate(sizes)]
    pieces = asyncio.run(passed_on(chunks, sum(sizes)))
    assert b"".join(pieces) == b"".join(chunks)
    assert all(len(piece) >= UPLOAD_PIECE for piece in pieces[:-1])
    assert all(len(piece) < UPLOAD_PIECE + 300_000 for piece in pieces)


def test_a_body_longer_or_shorter_than_announced_is_refused() -> None:
    with pytest.raises(ApiError) as longer:
        asyncio.run(passed_on([b"x" * 10, b"y" * 10], 15))
    assert longer.value.errcode == "PARTA_BAD_LENGTH"
    with pytest.raises(ApiError) as shorter:
        asyncio.run(passed_on([b"x" * 10], 15))
    assert shorter.value.errcode == "PARTA_INCOMPLETE"


class Upstream(httpx.AsyncByteStream):
    """Synapse's answer to a media download, in two chunks; remembers being closed."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data[:4]
        yield self.data[4:]

    async def aclose(self) -> None:
        self.closed = True


async def served(data: bytes, range_header: str | None) -> tuple[int, dict[str, str], bytes, bool]:
    upstream = Upstream(data)
    response = httpx.Response(200, headers={"Content-Length": str(len(data))}, stream=upstream)
    answer = await from_homeserver(response, "application/pdf", {}, range_header)
    body = b""
    if isinstance(answer, StreamingResponse):
        body = b"".join([bytes(chunk) async for chunk in answer.body_iterator])
    return answer.status_code, dict(answer.headers), body, upstream.closed


async def test_a_download_from_synapse_sends_the_range_asked_for() -> None:
    status, headers, body, closed = await served(b"0123456789", "bytes=2-5")
    assert (status, body, closed) == (206, b"2345", True)
    assert headers["content-range"] == "bytes 2-5/10"
    assert headers["content-length"] == "4"
    status, headers, body, closed = await served(b"0123456789", None)
    assert (status, body, closed, headers["content-length"]) == (200, b"0123456789", True, "10")


async def test_a_range_past_the_end_is_refused_and_synapses_answer_closed() -> None:
    status, headers, body, closed = await served(b"0123456789", "bytes=20-30")
    assert (status, headers["content-range"], body, closed) == (416, "bytes */10", b"", True)
