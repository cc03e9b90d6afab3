"""An upload is passed on to Synapse in pieces of about 1 MiB, byte for byte, checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foundation.web import ApiError
from widgets.documents.streams import UPLOAD_PIECE, exactly


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
