"""The roster import page in a real browser: template, errors per row, preview, progress."""

from __future__ import annotations

import secrets

from playwright.sync_api import BrowserContext, expect
from sqlalchemy import func, select

from parta.deployment import LocalDeployment
from provisioning.db.models import Person
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import db_session
from tests.web.test_invites_ui import admin_page, new_school_with_class


def people_count(region: LocalDeployment) -> int:
    with db_session(region) as session:
        return session.scalar(select(func.count()).select_from(Person)) or 0


def test_a_roster_is_checked_previewed_applied_and_placed(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    class_url = new_school_with_class(page, base)
    school_url = base + str(page.locator(".crumbs a").get_attribute("href"))
    page.goto(school_url)
    page.click("text=Импорт списков")
    expect(page.locator("h1")).to_have_text("Импорт списков")

    with page.expect_download() as download:
        page.click("text=Скачать шаблон")
    template = download.value.path().read_bytes()
    assert template.startswith("\ufeffкласс;роль;ФИО".encode())

    bad = (
        "класс;роль;ФИО;родитель ученика\n"
        "5А;ученик;Иван Петров;\n;ученик;Без Класса;\n5А;завуч;Кто-то;\n"
    )
    before = people_count(region)
    page.set_input_files("input[name=file]", files=[
        {"name": "плохой.csv", "mimeType": "text/csv", "buffer": bad.encode()}])  # fmt: skip
    page.click("text=Проверить файл")
    problems = page.locator("#problems")
    expect(problems).to_contain_text("Файл не импортирован, ничего не изменилось")
    expect(problems).to_contain_text("строка 3: у ученика должен быть класс")
    expect(problems).to_contain_text("строка 4: неизвестная роль «завуч»")
    screenshot(page, "ru-import-errors")
    assert people_count(region) == before

    tag = secrets.token_hex(2)
    good = (
        "класс;роль;ФИО;телефон;родитель ученика\n"
        f"5А;ученик;Ученик Первый {tag};;\n5А;ученик;Ученица Вторая {tag};;\n"
        f"6Б;ученик;Ученик Третий {tag};;\n"
        f"5А;родитель;Родитель Первого {tag};+7 900 100-00-01;Ученик Первый {tag}\n"
    )
    upload = {"name": "5a.csv", "mimeType": "text/csv", "buffer": ("\ufeff" + good).encode()}
    page.set_input_files("input[name=file]", files=[upload])
    page.click("text=Проверить файл")
    preview = page.locator("#preview")
    expect(preview).to_contain_text("4 новых человека")
    expect(preview).to_contain_text("Новые классы: 6Б")
    screenshot(page, "ru-import-preview")
    assert people_count(region) == before  # a preview changes nothing

    page.click("text=Применить файл")
    expect(page.locator(".notice").first).to_contain_text("применён")
    expect(page.locator("progress")).to_have_attribute("max", "4")
    expect(page.locator("#import-progress")).to_contain_text(
        "Все на своих местах.", timeout=120_000
    )
    screenshot(page, "ru-import-done")
    assert people_count(region) == before + 4
    page.goto(class_url)
    expect(page.locator("main")).to_contain_text(f"Ученица Вторая {tag}")


def test_an_unreadable_csv_is_explained_on_the_import_page(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    new_school_with_class(page, base)
    school_url = base + str(page.locator(".crumbs a").get_attribute("href"))
    for name, data, said in [
        (
            "mac.csv",
            "класс;роль;ФИО\n5А;ученик;Иван\rПетров\n",
            "строка 3: не указана роль",
        ),
        (
            "long.csv",
            "класс;роль;ФИО\n5А;ученик;Мария Орлова\n5А;ученик;" + "Я" * 131_073 + "\n",
            "строка 3: в ячейке больше 131072 символов; следующие строки не прочитаны",
        ),
    ]:
        page.goto(school_url + "/import")
        page.set_input_files(
            "input[name=file]",
            files=[{"name": name, "mimeType": "text/csv", "buffer": data.encode()}],
        )
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.click("text=Проверить файл")
        assert answer.value.status == 400
        expect(page.locator("#problems")).to_contain_text(said)
