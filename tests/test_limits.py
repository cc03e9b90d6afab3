"""Request bodies are limited at the edge, per route, before they are read (issue 18).

The real services of the test region are probed over raw sockets, as an attacker would:
a body far over the limit is refused with 413 while it is still being sent, and the
service's memory does not grow with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest

from parta.deployment import LocalDeployment
from tests.harness.memory import peak_mb, reset_peak
from tests.test_api import token_for

pytestmark = pytest.mark.timeout(600)
MIB = 1024 * 1024
PIECE = b"x" * MIB


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, str]:
        value: dict[str, str] = json.loads(self.body)
        return value


async def send(
    url: str,
    method: str,
    size: int,
    headers: dict[str, str] | None = None,
    *,
    chunked: bool = False,
    expect: bool = False,
) -> Answer:
    """Send a body of `size` bytes and read the answer, even one sent before the body ended.

    With `expect`, the client first asks `Expect: 100-continue` (as curl does for big
    bodies) and sends the body only if told to continue. Without it, the body is pushed
    while the answer is awaited; a server that answers early and closes may reset the
    connection before the answer is read: that is status 0 (refused, nothing read).
    """
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = {"Host": parts.netloc, "Content-Type": "text/csv", **(headers or {})}
    if chunked:
        head["Transfer-Encoding"] = "chunked"
    else:
        head["Content-Length"] = str(size)
    if expect:
        head["Expect"] = "100-continue"
    writer.write(
        (
            f"{method} {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in head.items())
            + "\r\n"
        ).encode()
    )

    async def body() -> None:
        with contextlib.suppress(ConnectionError):
            left = size
            while left > 0:
                piece = PIECE[: min(left, len(PIECE))]
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
                await writer.drain()
                left -= len(piece)
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()

    async def answer() -> Answer:
        status_line = await asyncio.wait_for(reader.readline(), 300)
        if not status_line:
            return Answer(0, {}, b"")
        answer_headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            answer_headers[name.strip().lower()] = value.strip()
        length = int(answer_headers.get("content-length", "0"))
        return Answer(int(status_line.split()[1]), answer_headers, await reader.readexactly(length))

    sending: asyncio.Task[None] | None = None
    try:
        if not expect:
            sending = asyncio.create_task(body())
        first = await answer()
        if first.status == 100:
            sending = asyncio.create_task(body())
            first = await answer()
        return first
    except ConnectionError:
        return Answer(0, {}, b"")
    finally:
        if sending is not None:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sending
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_unauthenticated_300_mb_imports_are_refused_before_they_are_read(
    region: LocalDeployment,
) -> None:
    pid = region.status()["provisioning"]
    assert pid is not None
    url = f"{region.settings.provisioning_url}/api/v1/schools/1/import"
    before = reset_peak(pid)
    answers = await asyncio.gather(
        *(send(url, "POST", 300 * MIB, expect=True) for _ in range(4)),
        send(url, "POST", 300 * MIB),
        send(url, "POST", 300 * MIB, chunked=True),
    )
    grown = peak_mb(pid) - before
    print(f"provisioning RSS {before:.0f} MB, peak {grown:.0f} MB higher during six 300 MB imports")
    for answer in answers[:4]:
        assert answer.status == 413, answer
        assert answer.json()["errcode"] == "M_TOO_LARGE"
        assert "Sign in first" in answer.json()["error"]
    # Pushed without asking first: answered and closed early (the rest is never read).
    assert {a.status for a in answers[4:]} <= {0, 413}, answers[4:]
    assert grown < 30


async def test_each_route_takes_what_it_needs_and_no_more(region: LocalDeployment) -> None:
    s = region.settings
    admin = await token_for(
        region, s.region_admin_user_id, s.region_admin_password.get_secret_value()
    )
    bearer = {"Authorization": f"Bearer {admin}"}
    api = f"{s.provisioning_url}/api/v1"
    # Any other route: 64 KiB, signed in or not.
    big_json = await send(f"{api}/schools", "POST", 100 * 1024, bearer)
    assert big_json.status == 413 and "at most 64 KB" in big_json.json()["error"]
    async with httpx.AsyncClient(timeout=60) as http:
        small = await http.post(f"{api}/schools", json={"name": ""})
        assert small.status_code == 401  # under the limit: the route itself answers
        # The import, signed in: a file up to 5 MB is read and judged by the roster's rules…
        school = await http.post(f"{api}/schools", json={"name": "Школа лимитов"}, headers=bearer)
        assert school.status_code == 201, school.text
        school_id = school.json()["id"]
        roster = b"name;role;class\n" + b"x" * (4 * MIB)
        judged = await http.post(
            f"{api}/schools/{school_id}/import",
            content=roster,
            headers={**bearer, "Content-Type": "text/csv"},
        )
        assert judged.status_code == 400, judged.text
    # …and a bigger one is refused before it is read.
    too_big = await send(f"{api}/schools/{school_id}/import", "POST", 6 * MIB, bearer)
    assert too_big.status == 413 and "at most 5 MB" in too_big.json()["error"]
    chunked = await send(f"{api}/schools/{school_id}/import", "POST", 6 * MIB, bearer, chunked=True)
    assert chunked.status == 413 and "at most 5 MB" in chunked.json()["error"]
    # A wrong token is not signed in.
    forged = await send(
        f"{api}/schools/{school_id}/import", "POST", MIB, {"Authorization": "Bearer forged"}
    )
    assert forged.status == 413 and "Sign in first" in forged.json()["error"]


async def test_the_bridge_takes_synapses_big_batches_from_synapse_only(
    region: LocalDeployment,
) -> None:
    s = region.settings
    url = f"{s.bridge_url}/_matrix/app/v1/transactions/limits-test"
    events = [{"type": "m.room.message", "content": {"body": "x" * 1000}}] * 1000
    batch = json.dumps({"events": events}).encode()  # about 1 MB, as Synapse may send
    async with httpx.AsyncClient(timeout=60) as http:
        hs = {"Authorization": f"Bearer {s.hs_token.get_secret_value()}"}
        taken = await http.put(
            url, content=batch, headers={**hs, "Content-Type": "application/json"}
        )
        assert taken.status_code == 200, taken.text
    stranger = await send(url, "PUT", 40 * MIB, {"Content-Type": "application/json"}, expect=True)
    assert stranger.status == 413 and "Sign in first" in stranger.json()["error"]
    over = await send(
        url + "2", "PUT", 40 * MIB, {**hs, "Content-Type": "application/json"}, expect=True
    )
    assert over.status == 413 and "at most 32 MB" in over.json()["error"]


async def test_the_widget_service_refuses_big_bodies_before_sign_in(
    region: LocalDeployment,
) -> None:
    pid = region.status()["widgets"]
    assert pid is not None
    url = f"{region.settings.widgets_url}/documents/api/session"
    before = reset_peak(pid)
    answers = await asyncio.gather(
        *(
            send(url, "POST", 200 * MIB, {"Content-Type": "application/json"}, expect=True)
            for _ in range(4)
        )
    )
    grown = peak_mb(pid) - before
    print(f"widgets RSS {before:.0f} MB, peak {grown:.0f} MB higher during four 200 MB sign-ins")
    assert {a.status for a in answers} == {413}
    assert grown < 30
    upload = await send(
        f"{region.settings.widgets_url}/documents/api/rooms/!r:x/files?name=a.pdf",
        "POST",
        200 * MIB,
        {"Content-Type": "application/pdf"},
        expect=True,
    )
    assert upload.status == 413 and "Sign in first" in upload.json()["error"]
