"""The documents tests' rooms and people, the browser, and the call tests' widget fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from nio import AsyncClient, RoomCreateResponse, RoomMessagesResponse
from playwright.async_api import Browser, Page, async_playwright, expect

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from tests.call.conftest import widget_host as widget_host
from tests.call.conftest import widgets_url as widgets_url
from tests.matrix_users import logged_in, new_person
from tests.web.conftest import CHROMIUM

WAIT_MS = 60_000  # a page's step: uploads and LibreOffice conversions included


@dataclass
class School:
    channel: str  # the class channel: the teacher posts, pupils read
    chat: str  # the class chat: everyone posts
    other: str  # another class's channel
    users: dict[str, str]
    clients: dict[str, AsyncClient]
    passwords: dict[str, str]


@pytest.fixture
async def school(region: LocalDeployment, bot: MatrixClient) -> AsyncIterator[School]:
    """A teacher's class channel and class chat with a pupil; another class's channel."""
    names = ("teacher", "pupil", "outsider")
    accounts = {name: await new_person(bot, region, name) for name in names}
    users = {name: user for name, (user, _) in accounts.items()}
    passwords = {name: password for name, (_, password) in accounts.items()}
    clients: dict[str, AsyncClient] = {}
    async with (
        logged_in(region, *accounts["teacher"]) as teacher,
        logged_in(region, *accounts["pupil"]) as pupil,
        logged_in(region, *accounts["outsider"]) as outsider,
    ):
        clients.update(teacher=teacher, pupil=pupil, outsider=outsider)
        rooms: list[str] = []
        for name, invite in (
            ("Канал 5А", [users["pupil"]]),
            ("Чат 5А", [users["pupil"]]),
            ("Канал 6Б", [users["outsider"]]),
        ):
            created = await teacher.room_create(
                name=name,
                invite=invite,
                power_level_override={"events_default": 50 if "Канал" in name else 0},
            )
            assert isinstance(created, RoomCreateResponse), created
            rooms.append(created.room_id)
        for room in rooms[:2]:
            await pupil.join(room)
        await outsider.join(rooms[2])
        yield School(rooms[0], rooms[1], rooms[2], users, clients, passwords)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        await browser.close()


async def sign_in(page: Page, url: str, user_id: str, password: str) -> None:
    """The standalone page's Matrix sign-in, as on a phone without widgets."""
    await page.goto(url)
    await page.locator("#login-form input[name=user]").fill(user_id)
    await page.locator("#login-form input[name=password]").fill(password)
    await page.locator("#login-form button[type=submit]").click()
    await expect(page.locator("#files")).to_be_visible(timeout=WAIT_MS)


async def messages_in(client: AsyncClient, room_id: str) -> list[dict[str, object]]:
    """The contents of the room's last 20 messages, as the client sees them."""
    answer = await client.room_messages(room_id, limit=20)
    assert isinstance(answer, RoomMessagesResponse), answer
    return [e.source["content"] for e in answer.chunk if e.source["type"] == "m.room.message"]
