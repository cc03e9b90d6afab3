"""A lesson in real headless Chromium: the call page as a widget and standalone.

The teacher and one pupil open the call as a widget inside a widget host built on
matrix-widget-api's `ClientWidgetApi` (as Element embeds it), which hands out real OpenID
tokens from the real Synapse. A second pupil uses the standalone page on a phone-sized
screen and signs in with their password. Chromium's fake camera and microphone publish.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from nio import RoomCreateResponse
from playwright.async_api import Browser, Frame, Page, async_playwright, expect

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from tests.call.conftest import WAIT_S, until
from tests.documents.slides import make_presentation
from tests.matrix_users import logged_in, new_person, openid_token
from tests.web.conftest import ARTEFACTS, CHROMIUM


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--auto-select-desktop-capture-source=Entire screen",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield browser
        await browser.close()


@dataclass
class Lesson:
    room_id: str
    users: dict[str, str]
    passwords: dict[str, str]
    tokens: dict[str, dict[str, Any]]


@pytest.fixture
async def lesson(region: LocalDeployment, bot: MatrixClient) -> Lesson:
    keys = ("teacher", "ivan", "masha")
    accounts = {key: await new_person(bot, region, key) for key in keys}
    tokens: dict[str, dict[str, Any]] = {}
    room_id = ""
    for key, (user_id, password) in accounts.items():
        async with logged_in(region, user_id, password) as client:
            if key == "teacher":
                invite = [accounts["ivan"][0], accounts["masha"][0]]
                created = await client.room_create(name="Урок математики", invite=invite)
                assert isinstance(created, RoomCreateResponse), created
                room_id = created.room_id
            else:
                await client.join(room_id)
            tokens[key] = {**await openid_token(client), "user_id": user_id}
    return Lesson(
        room_id,
        {key: user for key, (user, _) in accounts.items()},
        {key: password for key, (_, password) in accounts.items()},
        tokens,
    )


def watch(page: Page) -> None:
    """Print what the page's scripts report: a failing test then shows why."""
    page.on("console", lambda m: print(f"[{page.url[:40]}] console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: print(f"[{page.url[:40]}] page error: {e}"))


async def open_widget(
    browser: Browser, host: str, widgets_url: str, lesson: Lesson, key: str
) -> tuple[Page, Frame]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="ru-RU")
    page = await context.new_page()
    watch(page)
    widget = f"{widgets_url}/call/?" + urlencode({"room_id": lesson.room_id, "lang": "ru"})
    await page.goto(f"{host}/host.html?" + urlencode({
        "widget": widget, "token": json.dumps(lesson.tokens[key]),
    }))  # fmt: skip
    frame = page.frame_locator("#widget")
    await frame.locator("#join").click(timeout=WAIT_S * 1000)
    await expect(frame.locator("#status")).to_have_text("В звонке", timeout=WAIT_S * 1000)
    inner = next(f for f in page.frames if f.url.startswith(widgets_url))
    return page, inner


async def video_frames(frame: Frame, user_id: str) -> int:
    """Frames the page decoded of this person's camera (WebRTC stats of its slot)."""
    result: int = await frame.evaluate(
        """async (user) => {
            if (!call.pc || !call.state) return 0;
            const stats = await call.pc.getStats();
            let frames = 0;
            stats.forEach((r) => {
                if (r.type !== "inbound-rtp" || r.kind !== "video") return;
                const shown = call.state.slots[r.mid];
                if (shown && shown.user_id === user && shown.source === "camera") {
                    frames += r.framesDecoded || 0;
                }
            });
            return frames;
        }""",
        user_id,
    )
    return result


async def audio_packets(frame: Frame, user_id: str) -> int:
    """Audio packets this page received of one person, on whichever slot carries them."""
    result: int = await frame.evaluate(
        """async (user) => {
            if (!call.pc || !call.state) return 0;
            window.heard = window.heard || {};
            const stats = await call.pc.getStats();
            stats.forEach((r) => {
                if (r.type !== "inbound-rtp" || r.kind !== "audio") return;
                const shown = call.state.slots[r.mid];
                const key = r.mid;
                window.heard[key] = window.heard[key] || {};
                const last = window.heard[key].packets || 0;
                if (shown && shown.user_id === user && r.packetsReceived > last) {
                    window.heard[user] = (window.heard[user] || 0) + r.packetsReceived - last;
                }
                window.heard[key].packets = r.packetsReceived;
            });
            return window.heard[user] || 0;
        }""",
        user_id,
    )
    return result


async def test_a_lesson_in_the_browser_with_the_teacher_in_control(
    browser: Browser, widget_host: str, widgets_url: str, lesson: Lesson
) -> None:
    teacher_id, ivan_id = lesson.users["teacher"], lesson.users["ivan"]
    teacher_page, teacher = await open_widget(browser, widget_host, widgets_url, lesson, "teacher")
    ivan_page, ivan = await open_widget(browser, widget_host, widgets_url, lesson, "ivan")
    assert await ivan_page.evaluate("window.openidAsked") == 1  # through the Widget API

    # The pupil sees the teacher's camera; the teacher sees the pupil as a name only.
    await until(lambda: video_frames(ivan, teacher_id), "the teacher's video at Ivan's")
    assert await teacher.locator(f'.tile[data-user="{ivan_id}"] .avatar').count() == 1
    await screenshot_frame(ivan_page, "call-pupil")

    # Ivan's page forces its microphone on: still nothing reaches the teacher.
    await ivan.evaluate("call.local.audio.enabled = true")
    await asyncio.sleep(2)
    assert await audio_packets(teacher, ivan_id) == 0
    assert await ivan.locator("#mic").is_disabled()

    # Raise hand → the teacher's queue → the floor → Ivan is heard.
    await ivan.locator("#hand").click()
    hands = teacher.locator("#hands li")
    await expect(hands).to_contain_text("Ivan", timeout=WAIT_S * 1000)
    await teacher.locator("#hands button").click()
    await expect(ivan.locator("#mic")).to_be_enabled(timeout=WAIT_S * 1000)
    await until(lambda: audio_packets(teacher, ivan_id), "Ivan's voice at the teacher's")
    await screenshot_frame(teacher_page, "call-teacher")

    # The floor taken back: silence again.
    await teacher.locator("#people button", has_text="Забрать слово").click()
    await expect(ivan.locator("#mic")).to_be_disabled(timeout=WAIT_S * 1000)
    await asyncio.sleep(1.0)
    heard = await audio_packets(teacher, ivan_id)
    await asyncio.sleep(2.0)
    assert await audio_packets(teacher, ivan_id) == heard

    # The teacher shares her screen; the pupil receives it.
    await teacher.locator("#screen").click()
    screen = ivan.locator(f'.tile.screen[data-user="{teacher_id}"] video')
    await expect(screen).to_have_count(1, timeout=WAIT_S * 1000)

    # Attendance, in the teacher's panel.
    await teacher.locator("#attendance").click()
    await expect(teacher.locator("#attendance-table")).to_contain_text("Ivan")


async def screenshot_frame(page: Page, name: str) -> None:
    """A picture of the page for people to look at (test-artefacts/, not committed)."""
    ARTEFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


async def test_the_standalone_page_on_a_phone(
    browser: Browser, widgets_url: str, lesson: Lesson, region: LocalDeployment
) -> None:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, locale="ru-RU"
    )
    page = await context.new_page()
    await page.goto(f"{widgets_url}/call/?" + urlencode({"room_id": lesson.room_id}))
    await expect(page.locator("#login h1")).to_have_text("Вход в звонок")
    await page.fill("input[name=user]", lesson.users["masha"])
    await page.fill("input[name=password]", "not-the-password")
    await page.click("#login-form button")
    await expect(page.locator("#login-error")).to_have_text("Неверное имя пользователя или пароль.")
    await page.fill("input[name=password]", lesson.passwords["masha"])
    await page.click("#login-form button")
    await page.click("#join")
    await expect(page.locator("#status")).to_have_text("В звонке", timeout=WAIT_S * 1000)
    await expect(page.locator(".tile")).to_have_count(1, timeout=WAIT_S * 1000)  # only herself
    # No tooltip on a phone: why her microphone is locked, and what to do, in words.
    note = page.locator("#mic-note")
    await expect(note).to_have_text(
        "Ваш микрофон выключен: говорить можно, когда учитель даст вам слово. "
        "Чтобы попросить слово, поднимите руку."
    )
    await page.click("#hand")
    await expect(note).to_contain_text("Вы подняли руку", timeout=WAIT_S * 1000)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone
    await screenshot_frame(page, "call-phone")
    await context.close()


async def test_the_teacher_presents_a_document_and_pupils_follow_its_pages(
    browser: Browser, widget_host: str, widgets_url: str, lesson: Lesson, tmp_path: Path
) -> None:
    # The teacher keeps a presentation in her «Мои документы» (through the documents API).
    deck = make_presentation(tmp_path / "Дроби.pptx", slides=3).read_bytes()
    async with httpx.AsyncClient(base_url=widgets_url, timeout=120) as http:
        signed = await http.post(
            "/documents/api/session", json={"openid": lesson.tokens["teacher"]}
        )
        headers = {"Authorization": f"Bearer {signed.json()['token']}"}
        mine = (await http.get("/documents/api/rooms", headers=headers)).json()["mine"]
        stored = await http.post(
            f"/documents/api/rooms/{mine}/files",
            params={"name": "Дроби.pptx"},
            content=deck,
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        assert stored.status_code == 201, stored.text

    teacher_page, teacher = await open_widget(browser, widget_host, widgets_url, lesson, "teacher")
    ivan_page, ivan = await open_widget(browser, widget_host, widgets_url, lesson, "ivan")
    await expect(ivan.locator("#present")).to_be_hidden()  # pupils present only if allowed

    await teacher.locator("#present").click()
    await teacher.locator("#present-file").select_option(label="Мои документы: Дроби.pptx")
    await teacher.locator("#present-confirm").click()
    for frame in (teacher, ivan):
        await expect(frame.locator("#present-page")).to_have_text("1 / 3", timeout=WAIT_S * 1000)
    await expect(ivan.locator("#presentation-name")).to_contain_text("Дроби.pptx")
    await expect(ivan.locator("#present-next")).to_be_hidden()  # only the presenter steers

    await teacher.locator("#present-next").click()
    await expect(ivan.locator("#present-page")).to_have_text("2 / 3", timeout=WAIT_S * 1000)
    drawn = await ivan.locator("#present-stage canvas").evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let dark = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128) dark++;"
        " return dark; }"
    )
    assert drawn > 100, "the pupil's page shows no slide"
    # A pupil's page asking to turn the page is refused by the SFU.
    await ivan.evaluate("send({type: 'present_page', page: 3})")
    await expect(ivan.locator("#present-page")).to_have_text("2 / 3")

    # A late joiner lands on the current page.
    masha_page, masha = await open_widget(browser, widget_host, widgets_url, lesson, "masha")
    await expect(masha.locator("#present-page")).to_have_text("2 / 3", timeout=WAIT_S * 1000)

    await teacher.locator("#present-stop").click()
    await expect(ivan.locator("#presentation")).to_be_hidden(timeout=WAIT_S * 1000)
    for page in (teacher_page, ivan_page, masha_page):
        await page.context.close()
