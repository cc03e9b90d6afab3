"""Calls for every device, in real headless Chromium: no camera, no microphone, no screen.

A teacher at a school desktop whose camera is refused still teaches with her voice; a
pupil on a computer with no microphone and no camera still watches and listens. The
page says in words what it uses. Chromium refuses what a context was not granted (the
camera), and a Chromium without fake devices has none at all.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, BrowserContext, Frame, Page, async_playwright, expect

from tests.call.conftest import WAIT_S, until
from tests.call.test_call_page import (
    Lesson,
    audio_packets,
    open_widget,
    screenshot_frame,
    video_frames,
    watch,
)
from tests.call.test_call_page import lesson as lesson  # the fixture, re-exported
from tests.web.conftest import CHROMIUM

BASE_ARGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture
async def browsers() -> AsyncIterator[dict[str, Browser]]:
    """`devices`: fake microphone and camera, each used only once a context grants it;
    `granted`: the same, every permission granted (a pupil who allowed everything);
    `bare`: no devices at all."""
    async with async_playwright() as playwright:
        fake = [*BASE_ARGS, "--use-fake-device-for-media-stream"]
        launched = {
            "devices": await playwright.chromium.launch(executable_path=str(CHROMIUM), args=fake),
            "granted": await playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=[
                    *fake,
                    "--use-fake-ui-for-media-stream",
                    "--auto-select-desktop-capture-source=Entire screen",
                ],
            ),
            "bare": await playwright.chromium.launch(executable_path=str(CHROMIUM), args=BASE_ARGS),
        }
        yield launched
        for browser in launched.values():
            await browser.close()


async def open_in(
    context: BrowserContext, host: str, widgets_url: str, lesson: Lesson, key: str
) -> tuple[Page, Frame]:
    """The call as a widget in its host page, in a context set up by the test; joined."""
    page = await context.new_page()
    watch(page)
    widget = f"{widgets_url}/call/?" + urlencode({"room_id": lesson.room_id, "lang": "ru"})
    await page.goto(f"{host}/host.html?" + urlencode({
        "widget": widget, "token": json.dumps(lesson.tokens[key]),
    }))  # fmt: skip
    frame = page.frame_locator("#widget")
    await expect(frame.locator("#media-note")).not_to_be_empty(timeout=WAIT_S * 1000)
    await frame.locator("#join").click(timeout=WAIT_S * 1000)
    await expect(frame.locator("#status")).to_have_text("В звонке", timeout=WAIT_S * 1000)
    inner = next(f for f in page.frames if f.url.startswith(widgets_url))
    return page, inner


async def test_a_teacher_without_a_camera_speaks_and_a_pupil_without_devices_listens(
    browsers: dict[str, Browser], widget_host: str, widgets_url: str, lesson: Lesson
) -> None:
    teacher_id = lesson.users["teacher"]
    # The teacher allowed her microphone and refused the camera.
    teacher_context = await browsers["devices"].new_context(
        viewport={"width": 1280, "height": 800}, locale="ru-RU"
    )
    await teacher_context.grant_permissions(["microphone"])
    teacher_page, teacher = await open_in(
        teacher_context, widget_host, widgets_url, lesson, "teacher"
    )
    note = teacher.locator("#call-media-note")
    await expect(note).to_be_visible()
    await expect(note).to_contain_text("только со звуком")
    assert await teacher.evaluate("Boolean(call.local.audio) && !call.local.video")
    await expect(teacher.locator("#cam")).to_be_disabled()
    await screenshot_frame(teacher_page, "call-teacher-audio-only")

    # A pupil who allowed everything hears her.
    ivan_page, ivan = await open_widget(
        browsers["granted"], widget_host, widgets_url, lesson, "ivan"
    )
    await until(lambda: audio_packets(ivan, teacher_id), "the teacher's voice at Ivan's")

    # A pupil whose computer has neither microphone nor camera: receive-only, said in words.
    masha_context = await browsers["bare"].new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, locale="ru-RU"
    )
    masha_page, masha = await open_in(masha_context, widget_host, widgets_url, lesson, "masha")
    await expect(masha.locator("#call-media-note")).to_contain_text("только смотреть и слушать")
    await expect(masha.locator("#mic")).to_be_disabled()
    await until(lambda: audio_packets(masha, teacher_id), "the teacher's voice at Masha's")
    await screenshot_frame(masha_page, "call-pupil-receive-only")
    for page in (teacher_page, ivan_page, masha_page):
        await page.context.close()


async def slot_sources(frame: Frame, user_id: str) -> list[str]:
    """Which of this person's streams the page's slots carry now, as the SFU told it."""
    sources: list[str] = await frame.evaluate(
        "(user) => call.state ? Object.values(call.state.slots)"
        ".filter((s) => s.user_id === user).map((s) => s.source).sort() : []",
        user_id,
    )
    return sources


async def test_a_screen_tile_only_while_the_teacher_shares_and_no_picture_of_a_camera_off(
    browsers: dict[str, Browser], widget_host: str, widgets_url: str, lesson: Lesson
) -> None:
    teacher_id = lesson.users["teacher"]
    teacher_page, teacher = await open_widget(
        browsers["granted"], widget_host, widgets_url, lesson, "teacher"
    )
    ivan_page, ivan = await open_widget(
        browsers["granted"], widget_host, widgets_url, lesson, "ivan"
    )
    await until(lambda: video_frames(ivan, teacher_id), "the teacher's camera at Ivan's")
    # Her camera arrives, and her screen, which she does not share, has no slot and no tile.
    assert await slot_sources(ivan, teacher_id) == ["audio", "camera"]
    assert await ivan.locator(".tile.screen").count() == 0

    await teacher.locator("#screen").click()
    shared = ivan.locator(f'.tile.screen[data-user="{teacher_id}"] video')
    await expect(shared).to_have_count(1, timeout=WAIT_S * 1000)
    await screenshot_frame(ivan_page, "call-pupil-sees-screen")

    await teacher.locator("#screen").click()  # she stops sharing: the tile goes
    await expect(ivan.locator(".tile.screen")).to_have_count(0, timeout=WAIT_S * 1000)

    # She turns her camera off: a name instead of a black picture.
    await teacher.locator("#cam").click()
    camera = ivan.locator(f'.tile.camera[data-user="{teacher_id}"]')
    await expect(camera.locator(".avatar")).to_have_count(1, timeout=WAIT_S * 1000)
    await expect(camera.locator("video")).to_have_count(0)
    for page in (teacher_page, ivan_page):
        await page.context.close()


async def test_a_refused_microphone_leaves_the_camera_and_says_so(
    browsers: dict[str, Browser], widget_host: str, widgets_url: str, lesson: Lesson
) -> None:
    context = await browsers["devices"].new_context(locale="ru-RU")
    await context.grant_permissions(["camera"])  # the microphone refused, the camera allowed
    page = await context.new_page()
    widget = f"{widgets_url}/call/?" + urlencode({"room_id": lesson.room_id, "lang": "ru"})
    await page.goto(f"{widget_host}/host.html?" + urlencode({
        "widget": widget, "token": json.dumps(lesson.tokens["masha"]),
    }))  # fmt: skip
    note = page.frame_locator("#widget").locator("#media-note")
    await expect(note).to_have_text(
        "Микрофона нет или доступ к нему запрещён: вас видно, но не слышно.",
        timeout=WAIT_S * 1000,
    )
    await expect(page.frame_locator("#widget").locator("#preview")).to_be_visible()
    await context.close()
