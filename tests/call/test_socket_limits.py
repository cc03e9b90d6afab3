"""The call socket takes a few KiB before `join` and 128 KiB at most after (issue 18).

Probed on the real widget service of the test region (started as `parta serve widgets`,
as `./deploy.sh` starts it), over raw WebSockets, as an attacker would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from urllib.parse import urlencode

import pytest
from playwright.async_api import WebSocketRoute, async_playwright, expect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from tests.harness.memory import peak_mb, reset_peak
from tests.matrix_users import new_person
from tests.web.conftest import CHROMIUM

pytestmark = pytest.mark.timeout(300)
MIB = 1024 * 1024


def socket_url(region: LocalDeployment) -> str:
    return region.settings.widgets_url.replace("http://", "ws://") + "/call/ws"


async def closed_after(url: str, payload: str | bytes | None) -> tuple[int | None, str, list[str]]:
    """Send one message (or nothing) and wait for the service to close: code, reason, texts."""
    texts: list[str] = []
    async with connect(url, max_size=None, open_timeout=60, close_timeout=5) as socket:
        with contextlib.suppress(ConnectionClosed):
            if payload is not None:
                await socket.send(payload)
            async with asyncio.timeout(60):
                async for text in socket:
                    texts.append(str(text))
    return socket.close_code, socket.close_reason or "", texts


async def test_forty_15_mib_frames_before_join_cost_nothing(region: LocalDeployment) -> None:
    pid = region.status()["widgets"]
    assert pid is not None
    before = reset_peak(pid)
    frame = b"{" + b" " * (15 * MIB)

    async def push() -> int | None:
        try:
            code, _, _ = await closed_after(socket_url(region), frame)
        except (ConnectionClosed, OSError):
            return None  # closed while the frame was still going out
        return code

    codes = await asyncio.gather(*(push() for _ in range(40)))
    grown = peak_mb(pid) - before
    print(f"widgets RSS {before:.0f} MB, peak {grown:.0f} MB higher during forty 15 MiB frames")
    assert set(codes) <= {1009, None}, codes
    # None is a socket closed while its frame was still going out; most see the close code.
    assert codes.count(1009) >= 20, codes
    assert grown < 40


async def test_a_join_over_4_kib_is_closed_with_a_reason(region: LocalDeployment) -> None:
    join = {"type": "join", "room_id": "!x:y", "openid": {"access_token": "a" * 5000}}
    code, reason, texts = await closed_after(socket_url(region), json.dumps(join))
    assert (code, reason) == (1009, "join_too_large")
    assert json.loads(texts[-1]) == {"type": "error", "reason": "join_too_large"}


async def test_a_page_that_never_joins_is_closed_after_15_s(region: LocalDeployment) -> None:
    started = time.monotonic()
    code, reason, _ = await closed_after(socket_url(region), None)
    assert (code, reason) == (1008, "join_timeout")
    assert 14 < time.monotonic() - started < 45


@pytest.mark.parametrize(
    ("padding", "words"),
    [
        (5 * 1024, "Сервер не принял запрос на вход: он слишком большой."),
        (200 * 1024, "страница отправила слишком большое сообщение"),
    ],
)
async def test_the_call_page_says_in_words_why_the_service_closed_it(
    region: LocalDeployment, bot: MatrixClient, padding: int, words: str
) -> None:
    """The page's join, padded on its way to the real service, is refused; the page says why.

    A join over 4 KiB gets an error message, then the close; a frame over 128 KiB gets only
    the transport's close (1009), which the page must explain by itself.
    """
    user, password = await new_person(bot, region, "caller")
    url = region.settings.widgets_url
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream"],
        )  # fmt: skip
        try:
            page = await browser.new_page(locale="ru-RU")

            async def pad(socket: WebSocketRoute) -> None:
                server = socket.connect_to_server()
                socket.on_message(lambda text: server.send(str(text) + " " * padding))

            # The page's socket names its room: /call/ws?room_id=... (routed by nginx).
            await page.route_web_socket(re.compile(r"/call/ws(\?|$)"), pad)
            await page.goto(f"{url}/call/?" + urlencode({"room_id": "!nowhere:localhost"}))
            await page.fill("input[name=user]", user)
            await page.fill("input[name=password]", password)
            await page.click("#login-form button")
            await page.click("#join")
            await expect(page.locator("#ended-text")).to_contain_text(words, timeout=60_000)
        finally:
            await browser.close()
