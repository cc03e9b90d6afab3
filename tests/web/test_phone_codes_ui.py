"""Registration with an SMS code and sign-in by phone, in a phone-sized Chromium.

The console gateway is the phone: its outbox file (var/sms-outbox.log) holds the texts.
Then the checked number signs in, in Element's way (`m.id.phone` on Synapse's `/login`)
and in the admin UI's sign-in form.
"""

from __future__ import annotations

import re
import secrets
import stat
from datetime import timedelta

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import func, select

from parta.deployment import LocalDeployment
from provisioning.db.base import as_utc
from provisioning.db.models import AuditEvent, Person
from provisioning.db.phone_codes import PhoneCode
from tests.harness.sms_outbox import code_for, e164, new_mobile_number, texts_to
from tests.harness.waiting import wait_until
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import db_session, sign_in
from tests.web.test_invites_ui import NEW_PASSWORD, admin_page, new_school_with_class, register


def phone_page(browser: Browser, locale: str = "ru-RU") -> Page:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale=locale)
    context.set_default_timeout(20_000)
    return context.new_page()


def pupil_link(region: LocalDeployment, context: BrowserContext) -> str:
    page = admin_page(region, context)
    new_school_with_class(page, region.settings.provisioning_url)
    page.click("text=Создать ссылку для учеников")
    return page.locator("#invite-url").input_value()


def people_named(region: LocalDeployment, name: str) -> int:
    with db_session(region) as session:
        return int(session.scalar(select(func.count()).where(Person.display_name == name)) or 0)


def matrix_login(
    region: LocalDeployment, identifier: dict[str, str], password: str = NEW_PASSWORD
) -> httpx.Response:
    return httpx.post(
        f"{region.settings.homeserver_url}/_matrix/client/v3/login",
        json={"type": "m.login.password", "identifier": identifier, "password": password},
        timeout=30,
    )


def test_a_parent_registers_with_an_sms_code_and_signs_in_with_the_phone(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    link = pupil_link(region, context)
    phone = new_mobile_number()
    name = f"Ульяна Кодова {secrets.token_hex(2)}"
    page = phone_page(browser)
    page.goto(link)
    page.fill("input[name=display_name]", name)
    page.fill("input[name=phone]", phone.replace("+7 ", "8 "))  # written the Russian way
    page.check("input[name=confirm]")
    page.click("#send-code")
    expect(page.locator("#code-sent")).to_contain_text(f"Мы отправили код на номер {phone}")
    # The countdown runs in the page, and the button waits for it.
    countdown = page.locator("#code-countdown")
    expect(countdown).to_contain_text("Новый код — через")
    expect(page.locator("#send-code")).to_be_disabled()
    expect(page.locator("#send-code")).to_have_text("Отправить код ещё раз")
    first = int(countdown.inner_text().split()[-2])
    expect(countdown).not_to_contain_text(f" {first} с", timeout=5_000)
    screenshot(page, "ru-join-code-sent-phone")
    code = code_for(region, phone)
    outbox = region.settings.sms_outbox_path
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o600

    # Asking again before the countdown ends (a script can enable the button) is refused.
    page.evaluate("document.getElementById('send-code').disabled = false")
    page.click("#send-code")
    expect(page.locator("p.error[role=alert]")).to_contain_text(
        "Код только что отправлен. Новый можно запросить через"
    )
    assert len(texts_to(region, phone)) == 1

    # A wrong code creates nothing and says how many tries are left.
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    page.fill("input[name=code]", wrong)
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=password_again]", NEW_PASSWORD)
    page.click("button.primary")
    expect(page.locator("form")).to_contain_text("Код неверный. Проверьте SMS")
    expect(page.locator("form")).to_contain_text("осталось попыток: 4")
    assert people_named(region, name) == 0
    screenshot(page, "ru-join-wrong-code-phone")

    # The right code: the account exists, with the number as its msisdn.
    page.fill("input[name=code]", code)
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=password_again]", NEW_PASSWORD)
    page.click("button.primary")
    expect(page.locator("h1")).to_have_text("Как войти")
    user_id = f"@{page.locator('#user-id').inner_text()}:{region.settings.server_name}"
    assert people_named(region, name) == 1
    with db_session(region) as session:
        person = session.scalar(select(Person).where(Person.display_name == name))
        assert person is not None and person.phone == e164(phone)
    page.context.close()

    # Element's phone sign-in: the country and the number as typed, under both `phone`
    # (the spec's key) and `number` (Synapse reads `number` whenever it is there: an
    # identifier with `phone` alone gets "Missing JSON keys"), as Element Web sends them.
    for typed in (e164(phone).removeprefix("+7"), phone.replace("+7 ", "8 ")):
        element = {"type": "m.id.phone", "country": "RU", "phone": typed, "number": typed}
        answer = matrix_login(region, element)
        assert answer.status_code == 200, answer.text
        assert answer.json()["user_id"] == user_id
    nobody = "9169999999"
    stranger = {"type": "m.id.phone", "country": "RU", "phone": nobody, "number": nobody}
    assert matrix_login(region, stranger).status_code == 403

    # The admin UI's sign-in takes the phone number in the user name field.
    signed = phone_page(browser)
    sign_in(signed, region.settings.provisioning_url, phone, NEW_PASSWORD)
    expect(signed.locator("h1")).to_contain_text("Здравствуйте")
    signed.context.close()

    # The code never reached a log line.
    for log in region.settings.log_dir.glob("*.log"):
        assert code not in log.read_text(errors="replace"), log.name


def test_the_code_page_speaks_english_and_refuses_a_landline(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    link = pupil_link(region, context)
    page = phone_page(browser, "en-GB")
    page.goto(link)
    page.click("text=English")
    page.fill("input[name=phone]", "+7 495 123-45-67")
    page.click("#send-code")
    expect(page.locator("form")).to_contain_text("is not a mobile number: codes come by SMS")
    page.fill("input[name=phone]", "+7 916 123-45")
    page.click("#send-code")
    expect(page.locator("form")).to_contain_text("A Russian mobile number has 11 digits")
    # No code, no account: the form asks for the code before anything else happens.
    page.fill("input[name=display_name]", "Nobody Without Code")
    page.fill("input[name=phone]", new_mobile_number())
    page.check("input[name=confirm]")
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=password_again]", NEW_PASSWORD)
    page.click("button.primary")
    expect(page.locator("form")).to_contain_text("Enter the code from the SMS")
    assert people_named(region, "Nobody Without Code") == 0
    page.context.close()


def test_a_forgotten_password_is_reset_by_sms_and_other_sessions_end(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    phone = new_mobile_number()
    name = f"Вера Забывчивая {secrets.token_hex(2)}"
    joined = register(browser, pupil_link(region, context), name, phone, region)
    user_id = f"@{joined.locator('#user-id').inner_text()}:{region.settings.server_name}"
    joined.context.close()
    # Signed in elsewhere: a Matrix client and the admin UI in another browser.
    device = matrix_login(region, {"type": "m.id.user", "user": user_id})
    assert device.status_code == 200, device.text
    old_token = device.json()["access_token"]
    elsewhere = phone_page(browser)
    sign_in(elsewhere, base, phone, NEW_PASSWORD)
    expect(elsewhere.locator("h1")).to_contain_text("Здравствуйте")

    page = phone_page(browser)
    page.goto(f"{base}/login")
    page.click("#forgot-password")
    expect(page.locator("h1")).to_have_text("Новый пароль")
    page.fill("input[name=phone]", phone)
    page.click("#send-code")
    expect(page.locator("#code-sent")).to_be_visible()
    code = code_for(region, phone, after=1)  # the first was the registration's
    assert "смены пароля" in texts_to(region, phone)[1]
    page.fill("input[name=code]", code)
    page.fill("input[name=password]", "qwerty123")
    page.fill("input[name=password_again]", "qwerty123")
    page.click("button.primary")
    expect(page.locator("form")).to_contain_text("злоумышленники пробуют одним из первых")
    screenshot(page, "ru-forgot-password-phone")
    new_password = "лодка плывёт по реке"
    page.fill("input[name=code]", code)  # a refused password spent no try of the code
    page.fill("input[name=password]", new_password)
    page.fill("input[name=password_again]", new_password)
    page.click("button.primary")
    expect(page.locator(".notice")).to_have_text("Пароль изменён. Войдите с новым паролем.")
    sign_in(page, base, phone, new_password)
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    page.context.close()

    # Every other session ended: the Matrix device, the other browser, the old password.
    whoami = httpx.get(
        f"{region.settings.homeserver_url}/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {old_token}"},
        timeout=30,
    )
    assert whoami.status_code == 401
    elsewhere.goto(f"{base}/")
    expect(elsewhere).to_have_url(re.compile(r"/login\?next="))
    elsewhere.context.close()
    assert matrix_login(region, {"type": "m.id.user", "user": user_id}).status_code == 403
    with db_session(region) as session:
        event = session.scalar(
            select(AuditEvent).where(
                AuditEvent.action == "account.password_reset", AuditEvent.subject == user_id
            )
        )
        assert event is not None and code not in str(event.details)


def test_forgot_password_does_not_tell_whether_a_number_has_an_account(
    region: LocalDeployment, browser: Browser
) -> None:
    page = phone_page(browser)
    page.goto(f"{region.settings.provisioning_url}/password/forgot")
    nobody = new_mobile_number()
    page.fill("input[name=phone]", nobody)
    page.click("#send-code")
    expect(page.locator("#code-sent")).to_contain_text("Мы отправили код")
    expect(page.locator("#send-code")).to_be_disabled()  # the countdown runs all the same
    assert texts_to(region, nobody) == []
    page.fill("input[name=code]", "123456")
    page.fill("input[name=password]", "лодка плывёт по реке")
    page.fill("input[name=password_again]", "лодка плывёт по реке")
    page.click("button.primary")
    expect(page.locator("form")).to_contain_text("Код неверный")
    page.context.close()


def test_a_gateway_that_fails_starts_no_countdown_and_says_try_again(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    link = pupil_link(region, context)
    outbox = region.settings.sms_outbox_path
    aside = outbox.with_suffix(".aside")
    if outbox.exists():
        outbox.rename(aside)
    outbox.mkdir()  # the console gateway cannot write its file: a real failure
    try:
        page = phone_page(browser)
        page.goto(link)
        phone = new_mobile_number()
        page.fill("input[name=phone]", phone)
        page.click("#send-code")
        expect(page.locator("p.error[role=alert]")).to_have_text(
            "Сейчас не удалось отправить SMS. Попробуйте через минуту."
        )
        expect(page.locator("#send-code")).to_be_enabled()  # the failed code is forgotten
        expect(page.locator("#code-sent")).to_have_count(0)
        masked = e164(phone)[:5] + "*****" + e164(phone)[-2:]
        log = region.settings.log_dir / "provisioning.log"
        wait_until(
            lambda: f"code to {masked} was not sent" in log.read_text(errors="replace"),
            "the gateway's failure in the provisioning log",
        )
        page.context.close()
    finally:
        outbox.rmdir()
        if aside.exists():
            aside.rename(outbox)


def test_send_again_works_when_the_countdown_ends(
    region: LocalDeployment, browser: Browser, context: BrowserContext
) -> None:
    link = pupil_link(region, context)
    phone = new_mobile_number()
    page = phone_page(browser)
    page.goto(link)
    page.fill("input[name=phone]", phone)
    page.click("#send-code")
    expect(page.locator("#send-code")).to_be_disabled()
    first = code_for(region, phone)
    # Let 57 of the 60 seconds pass (in the database), then come back to the form.
    with db_session(region) as session:
        row = session.scalar(select(PhoneCode).where(PhoneCode.phone == e164(phone)))
        assert row is not None
        row.created_at = as_utc(row.created_at) - timedelta(seconds=57)
        session.commit()
    page.fill("input[name=password]", "short")
    page.click("button.primary")
    expect(page.locator("#code-countdown")).to_be_visible()
    expect(page.locator("#send-code")).to_be_enabled(timeout=8_000)
    expect(page.locator("#code-countdown")).to_be_hidden()
    page.click("#send-code")
    expect(page.locator("#code-sent")).to_be_visible()
    second = code_for(region, phone, after=1)
    assert len(texts_to(region, phone)) == 2
    if second != first:  # only the newest code counts
        page.fill("input[name=display_name]", "Ирина Повторная")
        page.check("input[name=confirm]")
        page.fill("input[name=code]", first)
        page.fill("input[name=password]", NEW_PASSWORD)
        page.fill("input[name=password_again]", NEW_PASSWORD)
        page.click("button.primary")
        expect(page.locator("form")).to_contain_text("Код неверный")
    page.context.close()
