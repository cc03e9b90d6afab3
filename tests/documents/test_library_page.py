"""The library tab of the documents page in real headless Chromium, against the real
Synapse, the widget service (`create_app`, so its own `ProvisioningLibrary`) and the
running provisioning service.

A teacher filters the region's library by subject and grade, sends an item to the class
chat and saves it to their documents; the pupil's Matrix client receives the file. A
pupil's page has no library tab.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from parta.deployment import LocalDeployment
from tests.documents.conftest import WAIT_MS, School, messages_in, sign_in
from tests.documents.library_items import add_items, item, make_parent, make_staff, upload_as_bot
from tests.web.conftest import ARTEFACTS
from widgets.documents.library import LIBRARY_FIELD

pytestmark = pytest.mark.timeout(300)
PDF = Path(__file__).parent / "lesson.pdf"


async def test_a_teacher_sends_a_library_item_to_the_class_chat(
    browser: Browser, widgets_url: str, school: School, region: LocalDeployment
) -> None:
    make_staff(region, school)
    data = PDF.read_bytes()
    mxc = await upload_as_bot(region, "Дроби.pdf", data, "application/pdf")
    tag = secrets.token_hex(3)
    subject = f"Математика {tag}"
    file_id, _, _ = add_items(
        region,
        item("Дроби: задачи", subject, (5, 6), kind="file", url=mxc, file_name="Дроби.pdf",
             mimetype="application/pdf", size=len(data)),
        item("Уравнения", subject, (7, 9)),
        item("Орфография", f"Русский язык {tag}", (5, 5)),
    )  # fmt: skip
    context = await browser.new_context()
    page = await context.new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    try:
        url = f"{widgets_url}/documents/?lang=ru&room_id={school.chat}"
        await sign_in(page, url, school.users["teacher"], school.passwords["teacher"])
        await expect(page.locator("#tab-library")).to_have_text("Библиотека", timeout=WAIT_MS)
        await page.locator("#tab-library").click()
        await expect(page.locator("#library-panel")).to_be_visible()
        await expect(page.locator("#files-panel")).to_be_hidden()

        await expect(page.locator("#library-subject option", has_text=subject)).to_have_count(1)
        await page.locator("#library-subject").select_option(label=subject)
        await page.locator("#library-grade").select_option("5")
        results = page.locator("#library-list li")
        await expect(results).to_have_count(1, timeout=WAIT_MS)
        found = results.first
        await expect(found).to_have_attribute("data-item", str(file_id))
        await expect(found.locator("h3")).to_have_text("Дроби: задачи")
        await expect(found).to_contain_text(f"{subject} · 5–6 класс")
        await expect(found).to_contain_text("Лицензия: CC BY 4.0 · Источник: РЭШ")
        await expect(found).to_contain_text("Проверил: Методист Иванова")
        ARTEFACTS.mkdir(exist_ok=True)  # a picture for people to look at, not a check
        await page.screenshot(path=str(ARTEFACTS / "documents-library.png"), full_page=True)

        await page.locator("#library-grade").select_option("11")
        await expect(page.locator("#library-empty")).to_be_visible(timeout=WAIT_MS)
        await page.locator("#library-grade").select_option("5")
        await expect(results).to_have_count(1, timeout=WAIT_MS)

        await found.get_by_text("Отправить в чат").click()
        await expect(page.locator("#share-room option", has_text="Мои документы")).to_have_count(0)
        await page.locator("#share-room").select_option(label="Чат 5А")
        await page.locator("#share-confirm").click()
        await expect(page.locator("#notice")).to_contain_text(
            "«Дроби: задачи» отправлено в чат «Чат 5А»", timeout=WAIT_MS
        )
        await expect(page.locator("#library-error")).to_be_hidden()

        await found.get_by_text("Сохранить в мои документы").click()
        await expect(page.locator("#notice")).to_contain_text(
            "сохранено в «Мои документы»", timeout=WAIT_MS
        )
        await page.locator("#rooms button", has_text="Мои документы").click()
        await expect(page.locator("#files-panel")).to_be_visible()
        await expect(page.locator("#list tbody tr", has_text="Дроби.pdf")).to_have_count(
            1, timeout=WAIT_MS
        )
    except Exception:
        await page.screenshot(path=str(ARTEFACTS / "documents-library-teacher.png"))
        print("\n".join(messages))
        raise
    finally:
        await context.close()

    pupil = school.clients["pupil"]
    contents = await messages_in(pupil, school.chat)
    (shared,) = [c for c in contents if c.get("msgtype") == "m.file"]
    assert shared["url"] == mxc and shared["body"] == "Дроби.pdf"
    assert shared[LIBRARY_FIELD]["id"] == file_id
    download = await pupil.download(shared["url"])
    assert getattr(download, "body", None) == data


async def test_a_pupil_finds_the_library_and_a_parents_page_has_none(
    browser: Browser, widgets_url: str, school: School, region: LocalDeployment
) -> None:
    make_staff(region, school)  # the pupil is a pupil of 5А in provisioning
    make_parent(region, school.users["outsider"], of=school.users["pupil"])
    subject = f"Biology {secrets.token_hex(3)}"
    add_items(region, item("Cells", subject, (5, 6)))
    context = await browser.new_context()
    page = await context.new_page()
    try:
        url = f"{widgets_url}/documents/?lang=en&room_id={school.chat}"
        await sign_in(page, url, school.users["pupil"], school.passwords["pupil"])
        await page.locator("#tab-library").click(timeout=WAIT_MS)
        await expect(page.locator("#library-panel")).to_contain_text(
            "Materials for teachers and pupils, checked by the region"
        )
        await page.locator("#library-subject").select_option(label=subject)
        await expect(page.locator("#library-list li", has_text="Cells")).to_have_count(
            1, timeout=WAIT_MS
        )
        await context.clear_cookies()
        await page.evaluate("localStorage.clear(); sessionStorage.clear()")

        await sign_in(page, url, school.users["outsider"], school.passwords["outsider"])
        # The rooms answer (which says whether to show the library) has arrived…
        await expect(page.locator("#rooms")).to_contain_text("My documents", timeout=WAIT_MS)
        # …and a parent has no library to open.
        await expect(page.locator("#tabs")).to_be_hidden()
        await expect(page.locator("#tab-library")).to_be_hidden()
        await expect(page.locator("#library-panel")).to_be_hidden()
        await expect(page.locator("#files-panel")).to_be_visible()
    except Exception:
        await page.screenshot(path=str(ARTEFACTS / "documents-library-pupil.png"))
        raise
    finally:
        await context.close()


async def test_a_teacher_on_a_phone_uses_the_library_in_english(
    browser: Browser, widgets_url: str, school: School, region: LocalDeployment
) -> None:
    make_staff(region, school)
    subject = f"Geometry {secrets.token_hex(3)}"
    add_items(region, item("Triangles and their angles", subject, (7, 8)))
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = await context.new_page()
    try:
        url = f"{widgets_url}/documents/?lang=en&room_id={school.chat}"
        await sign_in(page, url, school.users["teacher"], school.passwords["teacher"])
        await expect(page.locator("#tab-library")).to_have_text("Library", timeout=WAIT_MS)
        await page.locator("#tab-library").click()
        await page.locator("#library-subject").select_option(label=subject)
        await page.locator("#library-grade").select_option("7")
        found = page.locator("#library-list li", has_text="Triangles and their angles")
        await expect(found).to_have_count(1, timeout=WAIT_MS)
        await expect(found.get_by_role("button", name="Send to chat")).to_be_visible()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, f"the library is {width} px wide on a 390 px phone"
    except Exception:
        await page.screenshot(path=str(ARTEFACTS / "documents-library-phone.png"))
        raise
    finally:
        await context.close()
