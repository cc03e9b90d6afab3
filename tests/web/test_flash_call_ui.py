"""Registration with a flash call, in a phone-sized Chromium: the console gateway
simulates the call («Звонок с номера +7 900 000-12-34» in the outbox) and the page asks
for the last 4 digits; SMS is the fallback after the countdown.

A provisioning service of its own (`parta serve provisioning`, as ./deploy.sh runs it)
with `PARTA_SMS_FLASH_CALL=true`, on the region's database and Synapse: the region's
own service keeps sending SMS for the other tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from parta.deployment import LocalDeployment
from provisioning.db.base import as_utc
from provisioning.db.models import Person
from provisioning.db.phone_codes import PhoneCode
from tests.harness.sms_outbox import code_for, e164, flash_call_code_for, new_mobile_number
from tests.test_trusted_proxies import provisioning_service
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import db_session
from tests.web.test_invites_ui import NEW_PASSWORD
from tests.web.test_phone_codes_ui import phone_page, pupil_link


@pytest.fixture
def calling_service(
    region: LocalDeployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch.setenv("PARTA_SMS_FLASH_CALL", "true")
    with provisioning_service(region, tmp_path / "provisioning.log", None) as base:
        yield base


def start(page: Page, link: str, name: str, phone: str) -> None:
    page.goto(link)
    expect(page.locator("#send-code")).to_have_text("Получить код звонком")
    expect(page.locator("#flash-call-hint")).to_contain_text("отвечать не нужно")
    page.fill("input[name=display_name]", name)
    page.fill("input[name=phone]", phone)
    page.check("input[name=confirm]")
    page.click("#send-code")
    expect(page.locator("#code-sent")).to_contain_text(f"Звоним на номер {phone}")
    expect(page.locator("form")).to_contain_text(
        "Введите последние 4 цифры номера, с которого вам позвонили"
    )
    expect(page.locator("#send-code")).to_have_text("Получить код по SMS")
    expect(page.locator("#send-code")).to_be_disabled()  # until the countdown ends


def finish(page: Page, code: str) -> None:
    page.fill("input[name=code]", code)
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=password_again]", NEW_PASSWORD)
    page.click("button.primary")


def test_a_parent_registers_with_the_last_digits_of_a_flash_call(
    region: LocalDeployment, browser: Browser, context: BrowserContext, calling_service: str
) -> None:
    link = pupil_link(region, context)
    token = link.rsplit("/join/", 1)[1]
    phone = new_mobile_number()
    name = f"Зоя Звонкова {secrets.token_hex(2)}"
    page = phone_page(browser)
    start(page, f"{calling_service}/join/{token}", name, phone)
    screenshot(page, "ru-join-flash-call-phone")
    code = flash_call_code_for(region, phone)
    with db_session(region) as session:
        row = session.scalar(select(PhoneCode).where(PhoneCode.phone == e164(phone)))
        assert row is not None and row.channel == "flash_call" and code not in row.digest

    # Six digits (an SMS's length) are refused, uncounted; wrong last digits are counted.
    finish(page, "123456")
    expect(page.locator("form")).to_contain_text(
        "Введите последние 4 цифры номера, с которого вам позвонили."
    )
    finish(page, f"{(int(code) + 1) % 10**4:04d}")
    expect(page.locator("form")).to_contain_text("осталось попыток: 4")
    finish(page, code)
    expect(page.locator("h1")).to_have_text("Как войти")
    with db_session(region) as session:
        person = session.scalar(select(Person).where(Person.display_name == name))
        assert person is not None and person.phone == e164(phone)
    page.context.close()
    for log in region.settings.log_dir.glob("*.log"):
        assert f"000-{code[:2]}-{code[2:]}" not in log.read_text(errors="replace"), log.name


def test_an_sms_is_the_fallback_after_the_countdown(
    region: LocalDeployment, browser: Browser, context: BrowserContext, calling_service: str
) -> None:
    link = pupil_link(region, context)
    token = link.rsplit("/join/", 1)[1]
    phone = new_mobile_number()
    name = f"Фёдор Запасной {secrets.token_hex(2)}"
    page = phone_page(browser)
    start(page, f"{calling_service}/join/{token}", name, phone)
    called = flash_call_code_for(region, phone)
    # The countdown's minute passes (the test moves the code's clock, not the page's).
    with db_session(region) as session:
        for row in session.scalars(select(PhoneCode).where(PhoneCode.phone == e164(phone))):
            row.created_at = as_utc(row.created_at) - timedelta(seconds=61)
        session.commit()
    page.evaluate("document.getElementById('send-code').disabled = false")
    page.click("#send-code")
    expect(page.locator("#code-sent")).to_contain_text(f"Мы отправили код на номер {phone}")
    expect(page.locator("form")).to_contain_text("Код из SMS")
    sms_code = code_for(region, phone, after=1)  # after the call
    finish(page, called)  # the call's digits count no more: the SMS is the newest code
    expect(page.locator("form")).to_contain_text("Введите 6 цифр кода из SMS")
    finish(page, sms_code)
    expect(page.locator("h1")).to_have_text("Как войти")
    page.context.close()
