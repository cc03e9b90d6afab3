"""A person who picks a file over the limit is told so in words, in a real browser."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, expect

from parta.deployment import LocalDeployment
from tests.web.conftest import screenshot
from tests.web.test_invites_ui import admin_page, new_school_with_class

MIB = 1024 * 1024


def test_a_roster_over_5_mb_is_refused_with_a_message(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    new_school_with_class(page, base)
    school_url = base + str(page.locator(".crumbs a").get_attribute("href"))
    page.goto(school_url + "/import")
    too_big = b"\xef\xbb\xbf\xd0\xba\xd0\xbb\xd0\xb0\xd1\x81\xd1\x81;role;name\n" + b"x" * (6 * MIB)
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "вся-школа.csv", "mimeType": "text/csv", "buffer": too_big}],
    )
    with page.expect_response(lambda r: r.request.method == "POST") as sent:
        page.click("text=Проверить файл")
    assert sent.value.status == 413
    expect(page.locator("main")).to_contain_text(
        "Файл слишком большой: сюда можно отправить не больше 5 MB"
    )
    screenshot(page, "ru-import-too-large")
