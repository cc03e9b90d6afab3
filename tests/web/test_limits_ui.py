"""The registration form refuses what the roster import and the API refuse, in the same words."""

from __future__ import annotations

from playwright.sync_api import Browser, BrowserContext, expect
from sqlalchemy import func, select

from parta.deployment import LocalDeployment
from provisioning.db.models import Person
from tests.web.test_admin_ui import db_session
from tests.web.test_invites_ui import admin_page, new_school_with_class, register


def test_the_join_form_refuses_a_too_long_name_and_a_short_phone(
    region: LocalDeployment, context: BrowserContext, browser: Browser
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    new_school_with_class(page, base)
    page.click("text=Создать ссылку для учеников")
    link = page.locator("#invite-url").input_value()
    with db_session(region) as session:
        people_before = session.scalar(select(func.count()).select_from(Person))

    # A client that ignores the field's maxlength (as a script would) sends the whole name.
    joined = register(browser, link, None, "12345", region)
    expect(joined.locator(".error").first).to_be_visible()
    joined.evaluate(
        "(name) => { const field = document.querySelector('input[name=display_name]');"
        " field.removeAttribute('maxlength'); field.value = name; }",
        "Я" * 200,  # 70,000 would not reach the form: the body limit answers 413 first
    )
    joined.fill("input[name=password]", "new-password-1")
    joined.fill("input[name=password_again]", "new-password-1")
    joined.check("input[name=confirm]")
    joined.click("button[type=submit] >> nth=-1")
    form = joined.locator("form")
    expect(form).to_contain_text("В имени 200 символов, а можно не больше 120")
    expect(form).to_contain_text("«12345» не похоже на номер телефона")
    with db_session(region) as session:
        assert session.scalar(select(func.count()).select_from(Person)) == people_before
    joined.context.close()
