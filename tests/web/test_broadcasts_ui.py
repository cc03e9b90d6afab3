"""The broadcast form («Новая трансляция») in real Chromium against the running region:
the cover's checks say what is wrong, a good form lands in the school page's list."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from parta.deployment import LocalDeployment
from tests.harness.broadcasts import (
    PASSWORD,
    BroadcastSchool,
    login_of,
    make_school,
    picture,
    set_passwords,
)
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import run_async, sign_in


@pytest.fixture(scope="module")
def school(region: LocalDeployment) -> BroadcastSchool:
    made = make_school(region)
    run_async(set_passwords(region, made.director, made.teacher, made.other_teacher))
    return made


def _fill(page: Page, school: BroadcastSchool, title: str, cover: Path) -> None:
    page.fill("input[name=title]", title)
    page.check(f"input[name=speakers][value='{school.director}']")
    page.select_option("select[name=audience_room]", school.chat_alias)
    page.fill("input[name=date]", (date.today() + timedelta(days=2)).isoformat())
    page.fill("input[name=time_from]", "10:00")
    page.fill("input[name=time_to]", "12:00")
    page.set_input_files("input[name=cover]", str(cover))
    page.fill("textarea[name=description]", "1 сентября — праздник всех первоклассников")
    page.click("form.broadcast-form button[type=submit]")


def test_the_form_refuses_small_and_portrait_covers_and_lists_a_good_broadcast(
    region: LocalDeployment, context: BrowserContext, school: BroadcastSchool, tmp_path: Path
) -> None:
    base = region.settings.provisioning_url
    small, portrait, good = (tmp_path / f"{n}.jpg" for n in ("small", "portrait", "good"))
    small.write_bytes(picture(800, 500))
    portrait.write_bytes(picture(600, 900))
    good.write_bytes(picture(1200, 675))

    page = context.new_page()
    sign_in(page, base, login_of(school.director), PASSWORD)
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    page.goto(f"{base}/schools/{school.school_id}")
    section = page.locator("#broadcasts")
    expect(section.locator("h2")).to_have_text("Трансляции")
    section.locator("text=Новая трансляция").click()
    expect(page.locator("h1")).to_have_text("Новая трансляция")
    expect(page.locator(".hint").first).to_contain_text("не менее 830x540 px")

    _fill(page, school, "Гимназия №1 – Live", small)
    error = page.locator("#broadcast-error")
    expect(error).to_contain_text("800×500 px")
    expect(error).to_contain_text("не менее 830x540 px")
    expect(page.locator("input[name=title]")).to_have_value("Гимназия №1 – Live")  # kept
    screenshot(page, "broadcast-cover-too-small")

    _fill(page, school, "Гимназия №1 – Live", portrait)
    expect(error).to_contain_text("600×900 px и не горизонтальная")

    _fill(page, school, "Гимназия №1 – Live", good)
    expect(page).to_have_url(f"{base}/schools/{school.school_id}#broadcasts")
    row = page.locator("#broadcasts li.broadcast", has_text="Гимназия №1 – Live")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("запланирована")
    expect(row).to_contain_text("10:00")
    screenshot(page, "broadcast-listed")

    # Its page: the form filled in, and cancelling asks for the confirmation first.
    row.locator("a").click()
    expect(page.locator("input[name=title]")).to_have_value("Гимназия №1 – Live")
    expect(page.locator("input[name=time_from]")).to_have_value("10:00")
    page.locator("#cancel button").click()  # the box is required: the browser stops it
    expect(page.locator("#cancel input[name=confirm]")).not_to_be_checked()
    page.check("#cancel input[name=confirm]")
    page.locator("#cancel button").click()
    row = page.locator("#broadcasts li.broadcast", has_text="Гимназия №1 – Live")
    expect(row).to_contain_text("отменена")


def _fits(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} is {width} px wide on a 390 px phone"


def test_a_teacher_schedules_into_their_classs_chat_on_a_phone(
    region: LocalDeployment,
    browser_phone: BrowserContext,
    school: BroadcastSchool,
    tmp_path: Path,
) -> None:
    base = region.settings.provisioning_url
    page = browser_phone.new_page()
    sign_in(page, base, login_of(school.other_teacher), PASSWORD)
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    page.goto(f"{base}/schools/{school.school_id}/broadcasts/new")
    options = page.locator("select[name=audience_room] option")
    expect(options).to_have_count(3)  # 6Б's chat, channel and parents chat; nothing of 5А
    values = [options.nth(i).get_attribute("value") or "" for i in range(3)]
    class_prefix = school.other_chat_alias.removesuffix("chat")
    assert school.other_chat_alias in values, values
    assert all(value.startswith(class_prefix) for value in values), values
    _fits(page)
    screenshot(page, "broadcast-form-phone")

    cover = tmp_path / "cover.png"
    cover.write_bytes(picture(1280, 720, "PNG"))
    page.fill("input[name=title]", "Родительское собрание 6Б: итоги четверти")
    page.check(f"input[name=speakers][value='{school.other_teacher}']")
    page.select_option("select[name=audience_room]", school.other_chat_alias)
    page.fill("input[name=date]", (date.today() + timedelta(days=3)).isoformat())
    page.fill("input[name=time_from]", "18:00")
    page.fill("input[name=time_to]", "19:00")
    page.set_input_files("input[name=cover]", str(cover))
    page.click("form.broadcast-form button[type=submit]")
    expect(page).to_have_url(f"{base}/schools/{school.school_id}#broadcasts")
    row = page.locator("#broadcasts li.broadcast", has_text="Родительское собрание 6Б")
    expect(row).to_contain_text("18:00")
    _fits(page)
    row.locator("a").click()
    expect(page.locator("#cancel")).to_be_visible()
    _fits(page)
    screenshot(page, "broadcast-page-phone")


@pytest.fixture
def browser_phone(browser: Browser) -> Iterator[BrowserContext]:
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="ru-RU", is_mobile=True, has_touch=True
    )
    phone.set_default_timeout(20_000)
    yield phone
    phone.close()
