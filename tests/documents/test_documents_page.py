"""The documents page in real headless Chromium against the real Synapse and service.

A teacher signs in on the standalone page, uploads a presentation and a PDF at once,
previews both through pdf.js (the presentation as LibreOffice's PDF), turns pages, and
sends the PDF into the class chat; the pupil's Matrix client receives the same file.
A pupil on a phone-sized English page finds it by search and gets a clear error for an
empty file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.documents.conftest import WAIT_MS, School, messages_in, sign_in
from tests.documents.slides import make_presentation
from tests.web.conftest import ARTEFACTS

pytestmark = pytest.mark.timeout(300)
PDF = Path(__file__).parent / "lesson.pdf"


def row(page: Page, name: str) -> object:
    return page.locator("#list tbody tr", has_text=name)


async def test_a_teacher_uploads_previews_and_shares(
    browser: Browser, widgets_url: str, school: School, tmp_path: Path
) -> None:
    deck = make_presentation(tmp_path / "Дроби.pptx", slides=4)
    pdf = tmp_path / "Задачи.pdf"
    pdf.write_bytes(PDF.read_bytes())
    context = await browser.new_context()
    page = await context.new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    try:
        url = f"{widgets_url}/documents/?lang=ru&room_id={school.channel}"
        await sign_in(page, url, school.users["teacher"], school.passwords["teacher"])
        await expect(page.locator("#room-name")).to_have_text("Канал 5А")
        await expect(page.locator("#rooms")).to_contain_text("Мои документы")

        await page.locator("#upload").set_input_files([str(deck), str(pdf)])
        await expect(page.locator("#list tbody tr")).to_have_count(2, timeout=WAIT_MS)

        await page.locator("#list tbody tr", has_text="Задачи.pdf").get_by_text("Открыть").click()
        await expect(page.locator("#stage canvas")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#page")).to_have_text("1 / 1")
        await page.locator("#close").click()

        await page.locator("#list tbody tr", has_text="Дроби.pptx").get_by_text("Открыть").click()
        await expect(page.locator("#page")).to_have_text("1 / 4", timeout=WAIT_MS)
        await page.locator("#next").click()
        await expect(page.locator("#page")).to_have_text("2 / 4")
        await page.keyboard.press("ArrowRight")
        await expect(page.locator("#page")).to_have_text("3 / 4")
        drawn = await page.locator("#stage canvas").evaluate(
            "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let dark = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128) dark++;"
            " return dark; }"
        )
        assert drawn > 100, "the slide's text was not drawn"
        await page.keyboard.press("Escape")

        await page.locator("#list tbody tr", has_text="Задачи.pdf").get_by_text("Отправить").click()
        await page.locator("#share-room").select_option(label="Чат 5А")
        await page.locator("#share-confirm").click()
        await expect(page.locator("#notice")).to_contain_text("Чат 5А")
    except Exception:
        await page.screenshot(path=str(ARTEFACTS / "documents-teacher.png"))
        print("\n".join(messages))
        raise
    finally:
        await context.close()

    pupil = school.clients["pupil"]
    files = await messages_in(pupil, school.chat)
    (shared,) = [c for c in files if c.get("body") == "Задачи.pdf"]
    assert shared["msgtype"] == "m.file"
    download = await pupil.download(shared["url"])
    assert getattr(download, "body", None) == PDF.read_bytes()


async def test_a_pupil_on_a_phone_finds_files_and_sees_clear_errors(
    browser: Browser, widgets_url: str, school: School, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = await context.new_page()
    try:
        url = f"{widgets_url}/documents/?lang=en&room_id={school.chat}"
        await sign_in(page, url, school.users["pupil"], school.passwords["pupil"])
        await expect(page.locator("#upload-label")).to_have_text("Upload")
        await expect(page.locator("#empty")).to_be_visible()

        notes = tmp_path / "Конспект урока.txt"
        notes.write_text("Дроби: числитель и знаменатель", encoding="utf-8")
        empty = tmp_path / "empty.txt"
        empty.write_bytes(b"")
        await page.locator("#upload").set_input_files([str(notes), str(empty)])
        await expect(page.locator("#uploads")).to_contain_text("The file is empty", timeout=WAIT_MS)
        await expect(page.locator("#list tbody tr")).to_have_count(1, timeout=WAIT_MS)
        # A file is a card on a phone: its name, size, date and buttons within the screen.
        width = await page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= 390, f"the list is {width} px wide on a 390 px phone"
        card = page.locator("#list tbody tr").first
        box = await card.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        for button in ("Open", "Download", "Send", "Rename", "Delete"):
            await expect(card.get_by_text(button, exact=True)).to_be_in_viewport()
        await page.screenshot(path=str(ARTEFACTS / "documents-phone-card.png"))

        await page.locator("#search").fill("нет такого")
        await expect(page.locator("#empty")).to_be_visible()
        await page.locator("#search").fill("конспект")
        await expect(page.locator("#list tbody tr")).to_have_count(1)

        # The class channel is read-only for pupils: the page says so, nothing is stored.
        await page.locator("#rooms button", has_text="Канал 5А").click()
        await page.locator("#search").fill("")
        await page.locator("#upload").set_input_files([str(notes)])
        await expect(page.locator("#uploads")).to_contain_text(
            "Only teachers and the administration post", timeout=WAIT_MS
        )
        await expect(page.locator("#empty")).to_be_visible()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, f"the page is {width} px wide on a 390 px phone"
    except Exception:
        await page.screenshot(path=str(ARTEFACTS / "documents-pupil.png"))
        raise
    finally:
        await context.close()
