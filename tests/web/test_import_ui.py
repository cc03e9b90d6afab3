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
    # 6Б is not a class of the school: created only when ticked.
    expect(page.locator("#problems")).to_contain_text(
        "строка 4: в школе нет класса 6Б: исправьте строку или создайте класс"
    )
    assert people_count(region) == before
    page.check("#new-classes input[value='6Б']")
    page.click("text=Проверить файл ещё раз")
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

    # A parent of a pupil the school has, without the pupil's row; the class is the child's.
    page.goto(school_url + "/import")
    expect(page.locator("main")).to_contain_text("можно добавить без строки ребёнка")
    parent_only = (
        "класс;роль;ФИО;телефон;родитель ученика\n"
        f"5А;родитель;Мама Второй {tag};+7 900 100-00-02;Ученица Вторая {tag}\n"
    )
    page.set_input_files("input[name=file]", files=[
        {"name": "mama.csv", "mimeType": "text/csv", "buffer": parent_only.encode()}])  # fmt: skip
    page.click("text=Проверить файл")
    expect(page.locator("#preview")).to_contain_text("1 новый человек")
    page.click("text=Применить файл")
    expect(page.locator(".notice").first).to_contain_text("применён")
    assert people_count(region) == before + 5


def test_every_problem_of_a_file_and_near_miss_classes_are_shown_at_once(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = admin_page(region, context)
    new_school_with_class(page, base)
    school_url = base + str(page.locator(".crumbs a").get_attribute("href"))
    page.goto(school_url + "/import")
    roster = (
        "класс;роль;ФИО;телефон;родитель ученика\n"
        "5Я;ученик;Иван Петров;12345;\n"  # a slip for 5А, and a phone that is not one
        "5A;ученик;Мария Орлова;;\n"  # a Latin «A»
        "5А;родитель;Анна Петрова;;Никто Неизвестный\n"
        "7В;ученик;Пётр Зайцев;;\n"  # a new class: fine once ticked
    )
    before = people_count(region)
    page.set_input_files("input[name=file]", files=[
        {"name": "slips.csv", "mimeType": "text/csv", "buffer": roster.encode()}])  # fmt: skip
    page.click("text=Проверить файл")
    items = page.locator("#problems li")
    expect(items).to_have_count(4)
    expect(items.nth(0)).to_contain_text("строка 2: «12345» — это не номер телефона")
    expect(items.nth(0)).to_contain_text("в школе нет класса 5Я")
    expect(items.nth(0)).to_contain_text("может быть, имелся в виду 5А")
    expect(items.nth(1)).to_contain_text("строка 3: «5A» написан латинской буквой; в школе есть 5А")
    expect(items.nth(2)).to_contain_text("строка 4: ребёнка «Никто Неизвестный» нет")
    expect(items.nth(3)).to_contain_text("строка 5: в школе нет класса 7В")
    choices = page.locator("#new-classes")
    expect(choices).to_contain_text("В этой параллели в школе есть 5А.")
    assert choices.locator("input[type=checkbox]").count() == 2  # 5Я and 7В; never 5A
    page.check("#new-classes input[value='7В']")
    page.click("text=Проверить файл ещё раз")
    expect(page.locator("#problems li")).to_have_count(3)  # 7В is no longer a problem
    expect(page.locator("#new-classes input[value='7В']")).to_be_checked()
    screenshot(page, "ru-import-near-miss")
    assert people_count(region) == before


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
