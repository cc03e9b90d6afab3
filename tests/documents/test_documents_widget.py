"""The documents page as a widget, inside a Matrix client's widget host, in real Chromium.

The host page is built on matrix-widget-api's `ClientWidgetApi`, as Element embeds
widgets, and answers the page's OpenID request with a real token from the real Synapse.
The page opens on the room the widget was added to (`$matrix_room_id`), as the
reconciler's widget URL asks: a teacher uploads there, a pupil of the class sees and
previews the file in their own widget, and someone outside the room, handed the same
widget URL, lands on their own documents and never sees the room's files.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, Frame, Page, expect

from tests.documents.conftest import WAIT_MS, School
from tests.matrix_users import openid_token
from tests.web.conftest import ARTEFACTS

pytestmark = pytest.mark.timeout(300)
PDF = Path(__file__).parent / "lesson.pdf"


async def open_widget(
    browser: Browser, host: str, widgets_url: str, school: School, who: str, lang: str
) -> tuple[Page, Frame]:
    """The widget as the reconciler's URL opens it in `who`'s client, on the class chat."""
    token = {**await openid_token(school.clients[who]), "user_id": school.users[who]}
    widget = f"{widgets_url}/documents/?" + urlencode({"room_id": school.chat, "lang": lang})
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    page = await context.new_page()
    page.on("pageerror", lambda e: print(f"[{who}] page error: {e}"))
    await page.goto(
        f"{host}/host.html?" + urlencode({"widget": widget, "token": json.dumps(token)})
    )
    inner = page.frame_locator("#widget")
    await expect(inner.locator("#files")).to_be_visible(timeout=WAIT_MS)
    frame = next(f for f in page.frames if f.url.startswith(widgets_url))
    return page, frame


async def test_the_widget_opens_on_its_room_for_members_only(
    browser: Browser, widget_host: str, widgets_url: str, school: School, tmp_path: Path
) -> None:
    pdf = tmp_path / "Домашнее задание.pdf"
    pdf.write_bytes(PDF.read_bytes())
    pages: list[Page] = []
    try:
        teacher_page, teacher = await open_widget(
            browser, widget_host, widgets_url, school, "teacher", "ru"
        )
        pages.append(teacher_page)
        # Signed in through the client's OpenID token: no sign-in form in a widget.
        assert await teacher_page.evaluate("window.openidAsked") >= 1
        await expect(teacher.locator("#login-form")).to_be_hidden()
        await expect(teacher.locator("#room-name")).to_have_text("Чат 5А")
        await teacher.locator("#upload").set_input_files(str(pdf))
        await expect(
            teacher.locator("#list tbody tr", has_text="Домашнее задание.pdf")
        ).to_have_count(1, timeout=WAIT_MS)

        pupil_page, pupil = await open_widget(
            browser, widget_host, widgets_url, school, "pupil", "en"
        )
        pages.append(pupil_page)
        await expect(pupil.locator("#upload-label")).to_have_text("Upload")
        await expect(pupil.locator("#room-name")).to_have_text("Чат 5А")
        shared = pupil.locator("#list tbody tr", has_text="Домашнее задание.pdf")
        await expect(shared).to_have_count(1, timeout=WAIT_MS)
        await shared.get_by_text("Open").click()
        await expect(pupil.locator("#stage canvas")).to_be_visible(timeout=WAIT_MS)
        await expect(pupil.locator("#page")).to_have_text("1 / 1")

        # The same widget URL in the client of someone not in the chat: their own files.
        outsider_page, outsider = await open_widget(
            browser, widget_host, widgets_url, school, "outsider", "ru"
        )
        pages.append(outsider_page)
        await expect(outsider.locator("#room-name")).to_have_text("Мои документы")
        await expect(outsider.locator("#rooms")).not_to_contain_text("Чат 5А")
        await expect(outsider.locator("#list tbody tr", has_text="Домашнее задание")).to_have_count(
            0
        )
    except Exception:
        for number, page in enumerate(pages):
            await page.screenshot(path=str(ARTEFACTS / f"documents-widget-{number}.png"))
        raise
    finally:
        for page in pages:
            await page.context.close()
