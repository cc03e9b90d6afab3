"""The media repository: streamed uploads and downloads as a person, and Synapse's admin
media calls (a file's record, its deletion, a person's usage).

Uploads and downloads go through a plain `httpx.AsyncClient` with the person's token,
streamed both ways (a 100 MB video never sits in memory) and never retried: a second
upload would store a second copy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx

from matrix.client import JsonDict, MatrixClient, checked_answer, json_answer, path
from matrix.errors import HomeserverUnavailable, error_from_response

_ADMIN = "/_synapse/admin/v1"
UPLOAD_PATH = "/_matrix/media/v3/upload"


def split_mxc(mxc: str) -> tuple[str, str]:
    """`mxc://server/media_id` as (server, media_id)."""
    server, _, media_id = mxc.removeprefix("mxc://").partition("/")
    return server, media_id


async def upload(
    client: MatrixClient, name: str, mimetype: str, data: bytes, *, read_timeout: float = 300.0
) -> str:
    """Upload a file to the media repository as the client's user (the bot); its mxc URI.

    Not retried after a lost answer: a second upload would store a second copy.

    Args:
        name: the file name people see when they download it.
        read_timeout: seconds each read or write of the upload may take; the client's
            own timeout is meant for API calls.

    Raises:
        MatrixError: the homeserver refused it (`M_TOO_LARGE` above its size limit).
        HomeserverUnavailable: no answer in time, or the answer holds no `mxc://` URI.
    """
    answer = await client.request(
        "POST",
        UPLOAD_PATH,
        query={"filename": name},
        content=data,
        content_type=mimetype or "application/octet-stream",
        idempotent=False,
        read_timeout=read_timeout,
    )
    return _content_uri(answer)


def _content_uri(answer: JsonDict) -> str:
    uri = answer.get("content_uri")
    if not isinstance(uri, str) or not uri.startswith("mxc://"):
        raise HomeserverUnavailable(
            0, "PARTA_HOMESERVER_UNAVAILABLE", f"the upload answer has no mxc URI: {answer}"
        )
    return uri


async def upload_stream(
    http: httpx.AsyncClient,
    access_token: str,
    name: str,
    mimetype: str,
    size: int,
    body: AsyncIterator[bytes],
) -> str:
    """Stream a file into the media repository as the token's owner; its `mxc://` URI.

    Raises:
        MatrixError: refused (`M_TOO_LARGE` above the homeserver's limit).
        HomeserverUnavailable: the answer holds no `mxc://` URI.
    """
    headers = {
        "Authorization": f"Bearer {access_token}",
        "Content-Type": mimetype,
        "Content-Length": str(size),
    }
    response = await http.post(
        UPLOAD_PATH, params={"filename": name}, headers=headers, content=body
    )
    return _content_uri(checked_answer(response))


async def open_download(
    http: httpx.AsyncClient, access_token: str, mxc: str, *, range_header: str | None = None
) -> httpx.Response:
    """Start an authenticated download (the caller streams and closes the response).

    Raises:
        MatrixError: refused (`M_NOT_FOUND`, a quarantined file); the response is closed.
    """
    server, media_id = split_mxc(mxc)
    headers = {"Authorization": f"Bearer {access_token}"}
    if range_header:
        headers["Range"] = range_header
    request = http.build_request(
        "GET",
        f"/_matrix/client/v1/media/download/{quote(server, safe='')}/{quote(media_id, safe='')}",
        headers=headers,
        timeout=httpx.Timeout(60.0, read=300.0),
    )
    response = await http.send(request, stream=True)
    if response.status_code >= 400:
        await response.aread()
        await response.aclose()
        raise error_from_response(response.status_code, json_answer(response))
    return response


async def admin_media_info(client: MatrixClient, server: str, media_id: str) -> JsonDict:
    """Synapse's record of one file (`media_info`: its size, who quarantined it).

    Raises:
        NotFound: no such file (deleted).
    """
    return await client.request("GET", path("media", server, media_id, base=_ADMIN))


async def admin_delete_media(client: MatrixClient, mxc: str) -> None:
    """Delete a local file from the media repository (deleting it twice is refused)."""
    server, media_id = split_mxc(mxc)
    await client.request("DELETE", path("media", server, media_id, base=_ADMIN))


async def admin_media_bytes(client: MatrixClient, user_id: str) -> int:
    """Bytes of media a local user uploaded, summed over Synapse's pages of 100."""
    total, start = 0, 0
    for _ in range(1000):  # bounded: 100,000 files
        page = await client.request(
            "GET",
            path("users", user_id, "media", base=_ADMIN),
            query={"from": str(start), "limit": "100"},
        )
        media = page.get("media") or []
        total += sum(m.get("media_length") or 0 for m in media if isinstance(m, dict))
        next_token = page.get("next_token")
        if not media or next_token is None:
            break
        start = int(next_token)
    return total


def _media_path(kind: str, mxc: str) -> str:
    server, media_id = split_mxc(mxc)
    return path(kind, server, media_id, base="/_matrix/client/v1/media")


async def open_thumbnail(
    client: MatrixClient, mxc: str, *, width: int, height: int
) -> httpx.Response:
    """Start streaming the homeserver's thumbnail of an image (scaled, never cropped).

    Raises:
        MatrixError: no such file, or not one the homeserver thumbnails.
    """
    query = {"width": str(width), "height": str(height), "method": "scale", "animated": "false"}
    return await client.open_stream(_media_path("thumbnail", mxc), query=query)


async def open_file(
    client: MatrixClient, mxc: str, *, range_header: str | None = None
) -> httpx.Response:
    """Start streaming a whole file, or the `Range` a video player asks for.

    Raises:
        MatrixError: no such file (or a quarantined one).
    """
    headers = {"Range": range_header} if range_header else None
    return await client.open_stream(_media_path("download", mxc), headers=headers)
