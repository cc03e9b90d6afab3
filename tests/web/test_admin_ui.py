"""The admin UI in a real browser (Debian's Chromium) against the running region.

Each test signs in through the login form, whose password the real homeserver checks.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import secrets
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.models import (
    EnrolmentRole,
    ManagedRoom,
    Region,
    Role,
    School,
    SchoolClass,
)
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from tests.web.conftest import screenshot

PASSWORD = "teacher-password-1"
T = TypeVar("T")


def sign_in(page: Page, base: str, login: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("form[action='/login'] button[type=submit]")


def region_admin_page(region: LocalDeployment, context: BrowserContext) -> Page:
    """A page signed in as the region's administrator, on the dashboard."""
    s = region.settings
    page = context.new_page()
    password = s.region_admin_password.get_secret_value()
    sign_in(page, s.provisioning_url, s.region_admin_localpart, password)
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    return page


def run_async_value(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end; in a thread, as Playwright's sync API owns this one's loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=60)


def run_async(coroutine: Coroutine[Any, Any, None]) -> None:
    run_async_value(coroutine)


def db_session(region: LocalDeployment) -> Session:
    return make_session_factory(make_engine(region.settings.sqlalchemy_url))()


async def _set_password(region: LocalDeployment, user_id: str, name: str) -> None:
    s = region.settings
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as client:
        await client.admin_put_user(user_id, {"password": PASSWORD, "displayname": name})


@dataclass(frozen=True)
class TeacherSetup:
    user_id: str
    own_school: int
    own_class: int
    other_class_same_school: int
    other_school: int
    other_school_class: int


@pytest.fixture(scope="module")
def teacher(region: LocalDeployment) -> TeacherSetup:
    """A teacher of 5А in one school; a second class there and a second school besides."""
    tag = secrets.token_hex(3)
    with db_session(region) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        mine = svc.create_school(session, region_row, f"Школа {tag}", slug=f"t-{tag}",
                                 academic_year=2026)  # fmt: skip
        other = svc.create_school(session, region_row, f"Чужая {tag}", slug=f"o-{tag}",
                                  academic_year=2026)  # fmt: skip
        own_class = svc.add_class(session, mine, 5, "А")
        second = svc.add_class(session, mine, 6, "Б")
        foreign = svc.add_class(session, other, 5, "А")
        name = f"Учитель Тестовый {tag}"
        user_id = LocalpartAllocator(session, region.settings.server_name).user_id(name)
        person = svc.add_person(session, name, matrix_user_id=user_id)
        svc.grant_school_role(session, person, mine, Role.TEACHER)
        svc.enrol(session, person, own_class, EnrolmentRole.CLASS_TEACHER)
        session.commit()
        setup = TeacherSetup(user_id, mine.id, own_class.id, second.id, other.id, foreign.id)
    run_async(_set_password(region, user_id, name))
    return setup


def test_a_region_admin_creates_a_school_and_a_class_in_both_languages(
    region: LocalDeployment, context: BrowserContext
) -> None:
    s = region.settings
    base = s.provisioning_url
    page = context.new_page()
    page.goto(f"{base}/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    expect(page.locator("h1")).to_have_text("Вход в Парту")
    screenshot(page, "ru-login")

    sign_in(page, base, s.region_admin_localpart, "not-the-password")
    expect(page.locator(".error")).to_have_text("Неверное имя пользователя или пароль.")

    sign_in(page, base, s.region_admin_localpart, s.region_admin_password.get_secret_value())
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    screenshot(page, "ru-dashboard")

    tag = secrets.token_hex(3)
    page.click("nav.main-nav >> text=Школы")
    page.fill("input[name=name]", f"Гимназия {tag}")
    page.fill("input[name=slug]", f"gim-{tag}")
    page.click("text=Добавить школу >> nth=-1")
    expect(page.locator("h1")).to_have_text(f"Гимназия {tag}")
    school_url = page.url
    assert re.search(r"/schools/\d+$", school_url)

    # The class form works in place (htmx): the table updates, the page stays.
    page.fill("input[name=label]", "5а")
    page.click("text=Добавить класс")
    expect(page.locator("#classes table")).to_contain_text("5А")
    assert page.url == school_url
    page.fill("input[name=label]", "5А")
    page.click("text=Добавить класс")
    expect(page.locator("#classes .error")).to_have_text("Класс 5А уже есть")
    page.fill("input[name=label]", "пятый")
    page.click("text=Добавить класс")
    expect(page.locator("#classes .error")).to_contain_text("это не класс вида 5А")
    screenshot(page, "ru-school")

    page.click("#classes >> text=5А")
    expect(page.locator("h1")).to_have_text("Класс 5А")
    screenshot(page, "ru-class")
    page.goto(f"{school_url}/audit")
    expect(page.locator("table")).to_contain_text("Создан класс 5А")
    expect(page.locator("table")).to_contain_text("127.0.0.1")
    expect(page.locator("table")).to_contain_text(s.region_admin_user_id)
    screenshot(page, "ru-audit")

    # The service's reconciler places the new class on Matrix, as the API would.
    school_id = int(school_url.rsplit("/", 1)[1])
    deadline = time.monotonic() + 120
    with db_session(region) as session:
        class_id = session.scalar(select(SchoolClass.id).where(SchoolClass.school_id == school_id))
        while time.monotonic() < deadline:
            session.rollback()  # end the read transaction: see what others committed since
            rooms = session.scalars(
                select(ManagedRoom.room_id).where(ManagedRoom.class_id == class_id)
            ).all()
            if len(rooms) == 4 and all(rooms):
                break
            time.sleep(1)
        else:
            pytest.fail(f"the class's space and rooms were not created: {rooms}")

    page.click("text=English")
    expect(page.locator("h1")).to_have_text("Audit log")
    page.goto(school_url)
    expect(page.locator("h2").first).to_have_text("Classes")
    expect(page.locator("#classes table")).to_contain_text("5А")
    screenshot(page, "en-school")
    page.click("#classes >> text=5А")
    expect(page.locator("h1")).to_have_text("Class 5А")
    screenshot(page, "en-class")
    page.goto(f"{school_url}/people")
    expect(page.locator("h1")).to_have_text("People of the school")
    screenshot(page, "en-people")
    page.goto(f"{base}/")
    expect(page.locator("h1")).to_contain_text("Hello")
    screenshot(page, "en-dashboard")
    page.goto(f"{school_url}/audit")
    expect(page.locator("table")).to_contain_text("Class created: 5А")
    screenshot(page, "en-audit")

    page.click("text=Sign out")
    expect(page.locator("h1")).to_have_text("Sign in to Parta")
    page.goto(f"{base}/schools")
    expect(page).to_have_url(re.compile(r"/login\?next=/schools$"))


def test_a_region_admin_reads_the_regions_audit_log_by_school(
    region: LocalDeployment, context: BrowserContext, teacher: TeacherSetup
) -> None:
    """One log for the region: what belongs to no school, and every school's, by school."""
    with db_session(region) as session:
        own = session.get(School, teacher.own_school)
        assert own is not None
        own_name = own.name
    page = region_admin_page(region, context)
    page.click("nav.main-nav >> text=Школы")
    page.click("text=Журнал изменений региона")
    expect(page.locator("h1")).to_have_text("Журнал изменений региона")

    page.select_option("select[name=school]", str(teacher.own_school))
    page.click("form.row button[type=submit]")
    table = page.locator("table")
    expect(table).to_contain_text("Создан класс 6Б")
    expect(table).to_contain_text(own_name)  # the "where" column names the school
    assert "Создан класс 5А" in table.inner_text()
    screenshot(page, "ru-region-audit")

    # The same rows as a table to download: every row, the codes and details as recorded.
    link = page.locator("a[download]")
    expect(link).to_have_text("Скачать таблицей (CSV)")
    href = link.get_attribute("href") or ""
    assert href.startswith(f"/audit.csv?school={teacher.own_school}&")
    base = region.settings.provisioning_url
    answer = page.request.get(f"{base}{href}")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
    assert 'filename="audit-region-' in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.body().decode("utf-8-sig"))))
    assert rows[0] == ["Когда", "Где", "Что", "Объект", "Подробности", "Кто", "Откуда", "Код"]
    assert {row[1] for row in rows[1:]} == {own_name}
    created = [row for row in rows[1:] if row[7] == "class.created"]
    assert {row[2] for row in created} == {"Создан класс"}
    assert sorted(row[3].rsplit("/", 1)[1] for row in created) == ["5А", "6Б"]
    school_csv = page.request.get(f"{base}/schools/{teacher.own_school}/audit.csv")
    assert school_csv.status == 200
    assert len(list(csv.reader(io.StringIO(school_csv.body().decode("utf-8-sig"))))) == len(rows)

    page.select_option("select[name=school]", "region")
    page.click("form.row button[type=submit]")
    expect(page.locator("select[name=school]")).to_have_value("region")
    assert "Создан класс" not in table.inner_text()  # schools' events stay in their filter
    options = page.locator("select[name=action] option").all_inner_texts()
    assert "Регион создан" in options and "Создан класс" not in options  # only what is there
    assert not [text for text in options if re.fullmatch(r"[a-z_]+\.[a-z_]+", text)], options
    page.select_option("select[name=action]", "region.created")  # the oldest: not on page 1
    page.click("form.row button[type=submit]")
    expect(table).to_contain_text("Регион создан")
    expect(table).to_contain_text("Парта, автоматически")  # who: words, not «system»
    assert "system" not in table.inner_text()

    response = page.goto(f"{region.settings.provisioning_url}/audit?school=999999")
    assert response is not None and response.status == 404
    expect(page.locator(".error")).to_have_text("Такой школы нет.")


def test_a_teacher_sees_their_school_and_nothing_of_another(
    region: LocalDeployment, context: BrowserContext, teacher: TeacherSetup
) -> None:
    base = region.settings.provisioning_url
    page = context.new_page()
    sign_in(page, base, teacher.user_id, PASSWORD)
    expect(page.locator("h2", has_text="Ваши классы")).to_be_visible()
    page.click(".tiles >> text=5А")
    expect(page.locator("h1")).to_have_text("Класс 5А")

    forbidden = [
        f"/schools/{teacher.other_school}",
        f"/schools/{teacher.other_school}/classes/{teacher.other_school_class}",
        f"/schools/{teacher.other_school}/people",
        f"/schools/{teacher.own_school}/audit",  # the audit log is the administration's
        f"/schools/{teacher.own_school}/audit.csv",
        "/audit",  # and the region's, the region administrators'
        "/audit.csv",
        f"/schools/{teacher.own_school}/rooms",  # so is opening rooms to other regions
        "/schools",
    ]
    for path in forbidden:
        response = page.goto(f"{base}{path}")
        assert response is not None and response.status == 403, path
    expect(page.locator(".error")).to_be_visible()
    # The school's own pages are open to its teachers.
    response = page.goto(f"{base}/schools/{teacher.own_school}")
    assert response is not None and response.status == 200
    assert page.locator("form[action$='/classes']").count() == 0  # no class form for teachers
    assert page.locator("a[href$='/rooms']").count() == 0

    # A forged request is refused on the server, whatever the page shows.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    added = page.request.post(
        f"{base}/schools/{teacher.own_school}/classes",
        form={"label": "9В", "csrf_token": token or ""},
    )
    assert added.status == 403
    other = page.request.post(
        f"{base}/schools/{teacher.other_school}/classes",
        form={"label": "9В", "csrf_token": token or ""},
    )
    assert other.status == 403
    opened = page.request.post(
        f"{base}/schools/{teacher.own_school}/rooms/school-any-staff/federation",
        form={"federated": "yes", "csrf_token": token or ""},
    )
    assert opened.status == 403


def test_forms_without_a_valid_csrf_token_are_refused(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    page = region_admin_page(region, context)
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    for form in ({"name": "Школа без токена"}, {"name": "Школа", "csrf_token": "0" * 64}):
        response = page.request.post(f"{base}/schools", form=form)
        assert response.status == 403
        assert "Форма устарела" in response.text()
    # A token from before signing in is bound to no session, so it is refused after.
    anonymous = context.browser.new_context()  # type: ignore[union-attr]
    try:
        login_page = anonymous.new_page()
        login_page.goto(f"{base}/login")
        stale = login_page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    finally:
        anonymous.close()
    assert stale != token
    assert (
        page.request.post(f"{base}/schools", form={"name": "Ш", "csrf_token": stale}).status == 403
    )
    assert page.request.post(f"{base}/logout", form={}).status == 403


def test_failed_logins_are_throttled(region: LocalDeployment, context: BrowserContext) -> None:
    base = region.settings.provisioning_url
    page = context.new_page()
    login = f"nobody-{secrets.token_hex(3)}"
    for _ in range(5):
        sign_in(page, base, login, "wrong")
        expect(page.locator(".error")).to_be_visible()
    sign_in(page, base, login, "wrong")
    expect(page.locator(".error")).to_contain_text("Слишком много неудачных попыток")
