"""The bytes of documents, in and out: an upload checked against its announced size, and
downloads with range requests, from the media store's disk or from Synapse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
from fastapi.responses import Response, StreamingResponse

from foundation.web import ApiError
from widgets.documents.local_media import LocalFile
from widgets.documents.ranges import Unsatisfiable, cut, parse_range

DISK_CHUNK = 1024 * 1024  # one worker-thread hop per MiB read
UPLOAD_PIECE = 1024 * 1024  # what an upload is passed on to Synapse in (see `exactly`)


async def exactly(body: AsyncIterator[bytes], length: int, name: str) -> AsyncIterator[bytes]:
    """The body in pieces of about `UPLOAD_PIECE`, refused if it ends before or runs past
    the size it announced.

    The server hands a request body on in the pieces the socket gave (64–256 KiB), and
    each piece costs the client to Synapse a fixed toll (its write path looks up the
    running event loop and task for every write): for 100 MB that toll was about as
    long as Synapse's own upload. Joining pieces costs one copy, about 20 ms per 100 MB.
    """
    received = 0
    pending: list[bytes] = []
    pending_size = 0
    async for chunk in body:
        received += len(chunk)
        if received > length:
            raise ApiError(400, "PARTA_BAD_LENGTH", f"{name} is longer than announced.")
        pending.append(chunk)
        pending_size += len(chunk)
        if pending_size >= UPLOAD_PIECE:
            yield b"".join(pending)
            pending.clear()
            pending_size = 0
    if received != length:
        raise ApiError(400, "PARTA_INCOMPLETE", f"{name} arrived incomplete; send it again.")
    if pending:
        yield b"".join(pending)


def from_disk(
    local: LocalFile, mimetype: str, headers: dict[str, str], range_header: str | None
) -> Response:
    """A local file's bytes, only those of the range asked for."""
    try:
        wanted = parse_range(range_header, local.size)
    except Unsatisfiable:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{local.size}"})
    first, length, status = 0, local.size, 200
    if wanted is not None:
        first, length, status = wanted.first, wanted.length, 206
        headers["Content-Range"] = wanted.content_range(local.size)
    headers["Content-Length"] = str(length)
    return StreamingResponse(
        read_file(local.path, first, length),
        status_code=status,
        media_type=mimetype,
        headers=headers,
    )


async def from_homeserver(
    upstream: httpx.Response, mimetype: str, headers: dict[str, str], range_header: str | None
) -> Response:
    """A file Synapse is sending (`upstream`, opened streaming), only the range asked for;
    `upstream` is closed when the answer has been sent or refused."""
    size = int_header(upstream.headers.get("Content-Length"))
    try:
        wanted = parse_range(range_header, size) if size is not None else None
    except Unsatisfiable:
        await upstream.aclose()
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    body: AsyncIterator[bytes] = upstream.aiter_raw()
    status = 200
    if wanted is not None and size is not None:
        body = cut(body, wanted)
        headers["Content-Range"] = wanted.content_range(size)
        headers["Content-Length"] = str(wanted.length)
        status = 206
    elif size is not None:
        headers["Content-Length"] = str(size)

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for chunk in body:
                yield chunk
        finally:
            await upstream.aclose()

    return StreamingResponse(stream(), status_code=status, media_type=mimetype, headers=headers)


async def read_file(path: Path, first: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
    """`length` bytes of a file from `first` (to its end by default)."""
    left = length
    async with await anyio.open_file(path, "rb") as file:
        if first:
            await file.seek(first)
        while left is None or left > 0:
            chunk = await file.read(DISK_CHUNK if left is None else min(DISK_CHUNK, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def int_header(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
