"""The call tests' shared parts: the widget service running against the test region."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from nio import RoomCreateResponse
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from tests.harness.ports import free_ports
from tests.matrix_users import logged_in, new_person, openid_token
from widgets.app import CALL_STATIC, create_app

WAIT_S = 30.0
HOST = Path(__file__).resolve().parent / "host"  # the widget host page (a Matrix client)


async def until(condition: Callable[[], Any], what: str, within_s: float = WAIT_S) -> None:
    """Wait for a condition (or an awaitable one) to hold, polling; fail after `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """Run an ASGI app in this process's loop on a free loopback port; its base URL."""
    (port,) = free_ports(1)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            pytest.fail("the test's web server did not start")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_S)


@pytest.fixture
async def widgets_url(region: LocalDeployment) -> AsyncIterator[str]:
    """The widget service of the test region, in this process on a free port."""
    async with serving(create_app(region.settings)) as url:
        yield url


@pytest.fixture
async def widget_host() -> AsyncIterator[str]:
    """Another origin than the widget's, as a Matrix client's is: the host page."""
    app = Starlette(
        routes=[
            Mount("/vendor", StaticFiles(directory=CALL_STATIC / "vendor")),
            Mount("/", StaticFiles(directory=HOST)),
        ]
    )
    async with serving(app) as url:
        yield url


@pytest.fixture
def widgets(widgets_url: str) -> str:
    """The call service's WebSocket."""
    return widgets_url.replace("http://", "ws://") + "/call/ws"


@dataclass
class Lesson:
    room_id: str
    tokens: dict[str, dict[str, Any]]  # "teacher", "pupil", "outsider" -> OpenID token
    users: dict[str, str]


@pytest.fixture
async def lesson(region: LocalDeployment, bot: MatrixClient) -> Lesson:
    """A teacher's room (she created it: power 100) with a pupil; an outsider besides."""
    accounts = {key: await new_person(bot, region, key) for key in ("teacher", "pupil", "outsider")}
    tokens: dict[str, dict[str, Any]] = {}
    room_id = ""
    for key, (user_id, password) in accounts.items():
        async with logged_in(region, user_id, password) as client:
            if key == "teacher":
                created = await client.room_create(name="Урок", invite=[accounts["pupil"][0]])
                assert isinstance(created, RoomCreateResponse), created
                room_id = created.room_id
            elif key == "pupil":
                await client.join(room_id)
            tokens[key] = await openid_token(client)
    return Lesson(room_id, tokens, {key: user for key, (user, _) in accounts.items()})
