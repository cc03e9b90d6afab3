"""A call across the widget service's processes in production mode, in real Chromium.

Three widget processes behind nginx with TLS (tests/harness/production.py). The call
pages join standalone (signed in with a password) at https://widgets.localhost; their
WebSocket reaches the one process nginx hashed the room to. That process is killed with
SIGKILL: the pages reconnect by themselves and the call goes on in another process, with
its state. The next `up` starts the killed process again; a newcomer reaches it, and the
whole call moves back to it rather than splitting between two processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from matrix.client import MatrixClient, path
from parta.topology import widget_processes
from tests.harness.postgres import PostgresServer
from tests.harness.production import Production, production_deployment
from tests.matrix_users import new_person
from tests.web.conftest import CHROMIUM

pytestmark = pytest.mark.postgres

WAIT_MS = 60_000


@pytest.fixture(scope="module")
def production(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Production]:
    workdir = tmp_path_factory.mktemp("sfu-processes")
    with production_deployment(postgres, workdir, widget_processes=3) as running:
        yield running


@pytest.fixture
async def browser(production: Production) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--ignore-certificate-errors-spki-list={production.spki_hash()}",
            ],
        )
        yield browser
        await browser.close()


async def _calls_per_process(production: Production) -> dict[str, int]:
    """Each running widget process's calls in memory, by service name (its /healthz)."""
    result: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for process in widget_processes(production.settings):
            try:
                health = (await http.get(f"http://127.0.0.1:{process.port}/healthz")).json()
            except httpx.TransportError:
                continue  # down
            assert health["process"] == process.index
            result[process.name] = health["calls"]
    return result


async def _the_call_runs_in_one(production: Production, within_s: float = 60) -> str:
    """The one process that runs the call (every other has none); its service name."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        calls = await _calls_per_process(production)
        holders = [name for name, count in calls.items() if count]
        if len(holders) == 1 and calls[holders[0]] == 1:
            return holders[0]
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"no single process runs the call: {calls}")
        await asyncio.sleep(0.3)


def _socket_upstreams(production: Production) -> list[str]:
    """Where nginx sent each call WebSocket: its access log's upstream addresses."""
    log = production.settings.log_dir / "nginx.access.log"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    # The line ends with the user agent in quotes, then "A" or, after a failed try, "A, B".
    return [line.rsplit('" ', 1)[-1] for line in lines if '"GET /call/ws' in line]


async def _open_call(browser: Browser, production: Production, room_id: str, who: str,
                     password: str) -> Page:  # fmt: skip
    context = await browser.new_context(viewport={"width": 1000, "height": 700}, locale="ru-RU")
    page = await context.new_page()
    page.on("console", lambda m: print(f"[{who}] console.{m.type}: {m.text}"))
    query = urlencode({"room_id": room_id, "lang": "ru"})
    await page.goto(f"{production.widgets_origin}/call/?{query}")
    await page.fill("input[name=user]", who)
    await page.fill("input[name=password]", password)
    await page.click("#login-form button")
    await page.click("#join", timeout=WAIT_MS)
    await expect(page.locator("#status")).to_have_text("В звонке", timeout=WAIT_MS)
    return page


async def _state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate("call.state")
    return state


async def _until_state(page: Page, check: Any, what: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + WAIT_MS / 1000
    while True:
        state = await _state(page)
        if state and check(state):
            return state
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}; last state: {state}")
        await asyncio.sleep(0.2)


async def _lesson_room(production: Production, ids: dict[str, str]) -> str:
    """The teacher's room with both pupils in it.

    Set up with tokens from Synapse's admin API: production keeps Synapse's login limit
    (5 from one address), and the pages' own three sign-ins come from 127.0.0.1 as well.
    """
    s = production.settings
    async with httpx.AsyncClient(base_url=s.homeserver_url, timeout=30) as http:
        tokens = {}
        for key, user_id in ids.items():
            answer = await http.post(
                path("users", user_id, "login", base="/_synapse/admin/v1"),
                json={},
                headers={"Authorization": f"Bearer {s.as_token.get_secret_value()}"},
            )
            assert answer.status_code == 200, answer.text
            tokens[key] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        created = await http.post(
            "/_matrix/client/v3/createRoom",
            json={"name": "Урок", "invite": [ids["ivan"], ids["masha"]]},
            headers=tokens["teacher"],
        )
        assert created.status_code == 200, created.text
        room_id: str = created.json()["room_id"]
        for pupil in ("ivan", "masha"):
            joined = await http.post(path("join", room_id), json={}, headers=tokens[pupil])
            assert joined.status_code == 200, joined.text
    return room_id


async def test_a_killed_processs_call_resumes_on_another_and_comes_back_whole(
    production: Production, browser: Browser
) -> None:
    region = production.deployment
    s = production.settings
    processes = {p.name: p for p in widget_processes(s)}
    assert len(processes) == 3
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as bot:
        people = {k: await new_person(bot, region, k) for k in ("teacher", "ivan", "masha")}
    ids = {key: user_id for key, (user_id, _) in people.items()}
    room_id = await _lesson_room(production, ids)

    teacher = await _open_call(browser, production, room_id, *people["teacher"])
    ivan = await _open_call(browser, production, room_id, *people["ivan"])
    await ivan.click("#hand")
    await _until_state(teacher, lambda st: st["hands"] == [ids["ivan"]], "Ivan's hand")
    first = await _the_call_runs_in_one(production)
    await asyncio.sleep(1.0)  # the state's debounced write (0.5 s) is on disk

    running = region.supervisor.running(first)
    assert running is not None
    os.kill(running.pid, signal.SIGKILL)
    began = asyncio.get_running_loop().time()
    for page in (teacher, ivan):  # the pages reconnect by themselves
        await expect(page.locator("#status")).to_have_text("Связь потеряна, подключаемся снова…",
                                                           timeout=WAIT_MS)  # fmt: skip
    for page in (teacher, ivan):
        await expect(page.locator("#status")).to_have_text("В звонке", timeout=WAIT_MS)
    resumed_s = asyncio.get_running_loop().time() - began
    substitute = await _the_call_runs_in_one(production)
    assert substitute != first
    # Same lesson: both in it, Ivan's hand still up, and the teacher still its moderator.
    state = await _until_state(
        teacher, lambda st: len(st["participants"]) == 2, "both back in the call"
    )
    assert state["hands"] == [ids["ivan"]]
    assert next(p for p in state["participants"] if p["user_id"] == ids["teacher"])["moderator"]
    print(f"the call resumed on {substitute} {resumed_s:.1f} s after {first} was killed")

    # The next `up` starts the killed process again; nginx routes the room to it once more.
    report = await asyncio.to_thread(region.up)
    assert report.started == [first], report
    masha = await _open_call(browser, production, room_id, *people["masha"])
    assert await _the_call_runs_in_one(production) == first  # the call came back whole
    for page in (teacher, ivan, masha):
        await expect(page.locator("#status")).to_have_text("В звонке", timeout=WAIT_MS)
        state = await _until_state(
            page, lambda st: len(st["participants"]) == 3, "all three in one call"
        )
        assert state["hands"] == [ids["ivan"]]
    assert (await _calls_per_process(production))[substitute] == 0
    # nginx logs a WebSocket when it closes: the first two went to the process its hash
    # chose; their reconnections tried that dead process first, then the next on the ring.
    chosen, next_one = (f"127.0.0.1:{processes[n].port}" for n in (first, substitute))
    upstreams = _socket_upstreams(production)
    assert upstreams.count(chosen) >= 2 and f"{chosen}, {next_one}" in upstreams, upstreams
