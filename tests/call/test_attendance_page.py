"""The teacher's attendance buttons on the call page, in headless Chromium, in English.

The notice she posts is read by the whole class: it is in the school's language
(`PARTA_LANGUAGE`, Russian here), whatever her browser's."""

from __future__ import annotations

from urllib.parse import urlencode

from nio import RoomCreateResponse, RoomInviteResponse
from playwright.async_api import Browser, expect

from matrix.client import MatrixClient, path
from parta.deployment import LocalDeployment
from tests.call.conftest import WAIT_S
from tests.call.test_call_page import browser as browser  # the fixture, re-exported
from tests.call.test_call_page import watch
from tests.harness.waiting import eventually
from tests.matrix_users import logged_in, new_person

WAIT_MS = WAIT_S * 1000


async def test_the_teacher_posts_the_attendance_from_her_panel(
    browser: Browser, widgets_url: str, region: LocalDeployment, bot: MatrixClient
) -> None:
    teacher_id, password = await new_person(bot, region, "teacher")
    async with logged_in(region, teacher_id, password) as client:
        created = await client.room_create(name="Lesson")
        assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    page = await context.new_page()
    watch(page)
    await page.goto(f"{widgets_url}/call/?" + urlencode({"room_id": room_id, "lang": "en"}))
    await page.fill("input[name=user]", teacher_id)
    await page.fill("input[name=password]", password)
    await page.click("#login-form button")
    await page.click("#join")
    status = page.locator("#status")
    await expect(status).to_have_text("In the call", timeout=WAIT_MS)
    button = page.locator("#post-attendance")
    await expect(button).to_have_text("Post attendance to the chat", timeout=WAIT_MS)

    await button.click()  # the bot is not in her own room: the page says what to do
    await expect(status).to_have_text(
        "Parta's bot is not in this chat: invite it to post the attendance.", timeout=WAIT_MS
    )
    async with logged_in(region, teacher_id, password) as client:
        invited = await client.room_invite(room_id, region.settings.bot_user_id)
        assert isinstance(invited, RoomInviteResponse), invited
    await bot.request("POST", path("join", room_id), body={})
    await button.click()
    await expect(status).to_have_text("The attendance was posted to the chat.", timeout=WAIT_MS)
    assert region.settings.language == "ru"

    async def attendance_notice() -> str | None:
        """The bot's notice in the room: the bot's greeting may arrive after it, so look at all."""
        recent = await bot.request(
            "GET", path("rooms", room_id, "messages"), query={"dir": "b", "limit": "20"}
        )
        bodies = [
            str(event["content"].get("body", ""))
            for event in recent["chunk"]
            if event.get("sender") == region.settings.bot_user_id
            and event["type"] == "m.room.message"
        ]
        return next((b for b in bodies if b.startswith("Посещаемость звонка, ")), None)

    await eventually(attendance_notice, "the attendance notice, in Russian", within=WAIT_S)

    await page.locator("#attendance").click()
    table = page.locator("#attendance-table")
    await expect(table.locator("th")).to_have_text(
        ["Name", "Joined", "Minutes", "Times rejoined"], timeout=WAIT_MS
    )
    await expect(table.locator("td").nth(3)).to_have_text("0")
    await context.close()
