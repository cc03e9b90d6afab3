"""The school year's changes in the admin UI, in Chromium: each previewed in words (who joins
and leaves which rooms), confirmed, recorded in the audit log; refused to teachers and
parents by the server."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import select

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.db.models import (
    AuditEvent,
    Enrolment,
    EnrolmentRole,
    Person,
    Region,
    Role,
    RoomKind,
    School,
    SchoolClass,
)
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import (
    PASSWORD,
    _set_password,
    db_session,
    run_async,
    run_async_value,
    sign_in,
)
from tests.web.test_invites_ui import admin_page, class_rooms, joined_rooms_of, wait_until_placed
from tests.web.test_requests_ui import _set_password as set_pupil_password


@dataclass(frozen=True)
class SchoolSetup:
    """5А (pupil Иван, his parent Анна, class teacher Мария), 5Б (class teacher Олег), 11А."""

    school: int
    classes: dict[str, int]
    people: dict[str, int]
    user_ids: dict[str, str]


def new_school(region: LocalDeployment, *, passwords: bool = False) -> SchoolSetup:
    tag = secrets.token_hex(3)
    with db_session(region) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        school = svc.create_school(
            session, region_row, f"Гимназия {tag}", slug=f"y-{tag}", academic_year=2026
        )
        classes = {
            label: svc.add_class(session, school, int(label[:-1]), label[-1])
            for label in ("5А", "5Б", "11А")
        }
        allocate = LocalpartAllocator(session, region.settings.server_name)
        people = {
            name: svc.add_person(session, f"{name} {tag}", allocate.user_id(f"{name} {tag}"))
            for name in ("Иван", "Анна", "Мария", "Олег")
        }
        svc.enrol(session, people["Иван"], classes["5А"], EnrolmentRole.PUPIL)
        svc.link_parent(session, people["Анна"], people["Иван"])
        for teacher, label in (("Мария", "5А"), ("Олег", "5Б")):
            svc.grant_school_role(session, people[teacher], school, Role.TEACHER)
            svc.enrol(session, people[teacher], classes[label], EnrolmentRole.CLASS_TEACHER)
        session.commit()
        setup = SchoolSetup(
            school.id,
            {label: c.id for label, c in classes.items()},
            {name: p.id for name, p in people.items()},
            {name: str(p.matrix_user_id) for name, p in people.items()},
        )
    if passwords:
        for name in ("Мария", "Анна"):
            run_async(_set_password(region, setup.user_ids[name], name))
    return setup


def audit_actions(region: LocalDeployment, school_id: int) -> list[str]:
    with db_session(region) as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.school_id == school_id)
                .order_by(AuditEvent.id)
            )
        )


def preview_and_confirm(
    page: Page, url: str, fill: Callable[[Page], None], expected: list[str], name: str
) -> None:
    """Open the change's page, fill its form, read the preview, confirm."""
    page.goto(url)
    if fill is not nothing:  # a change without a form opens on its preview
        fill(page)
        page.click("text=Показать, что изменится")
    preview = page.locator("#preview")
    for text in expected:
        expect(preview).to_contain_text(text)
    screenshot(page, f"ru-school-year-{name}")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing scrolls sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})
    preview.locator("button", has_text="Подтвердить").click()
    expect(page.locator("#preview")).to_have_count(0)


def nothing(_: Page) -> None:
    """A change without a form: the page only previews and confirms."""


def test_a_school_admin_promotes_the_school_once(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    setup = new_school(region)
    page = admin_page(region, context)
    page.goto(f"{base}/schools/{setup.school}")
    page.click("#year-actions >> text=Начать 2027/2028 учебный год")
    expect(page.locator("h1")).to_have_text("Начать 2027/2028 учебный год")
    preview_and_confirm(
        page,
        page.url,
        nothing,
        [
            "Каждый класс переходит на год вперёд. 11-е классы выпускаются",
            "Комната «5А — чат класса» переименовывается в «6А — чат класса»",
            "Комната «11А — чат класса (архив)» становится доступной только для чтения",
        ],
        "promote",
    )
    expect(page.locator("main")).to_contain_text("2027/2028 учебный год")
    assert audit_actions(region, setup.school)[-1] == "school.promoted"

    # The confirmation sent again (a second click, a resent form) changes nothing.
    token = page.locator("input[name=csrf_token]").first.input_value()
    again = page.request.post(
        f"{base}/schools/{setup.school}/promote",
        form={"csrf_token": token, "step": "confirm", "to_year": "2027/2028"},
    )
    assert again.status == 409
    assert "Школа уже в 2027/2028 учебном году" in again.text()
    with db_session(region) as session:
        school = session.get(School, setup.school)
        assert school is not None and school.academic_year == 2027
        live = session.scalars(
            select(SchoolClass.grade).where(
                SchoolClass.school_id == setup.school, SchoolClass.archived_at.is_(None)
            )
        )
        assert sorted(live) == [6, 6]


def test_a_pupil_is_moved_to_another_class(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    setup = new_school(region)
    page = admin_page(region, context)
    page.goto(f"{base}/people/{setup.people['Иван']}")
    page.click("#person-actions >> text=Перевести в другой класс")
    preview_and_confirm(
        page,
        page.url,
        lambda p: p.select_option("select[name=class_id]", label="5Б"),
        [
            "переходит из класса 5А в класс 5Б",
            "входит в: 5Б класс, 5Б — канал класса, 5Б — чат класса",
            "выходит из: 5А класс, 5А — канал класса, 5А — чат класса",
            "5Б — родители",
        ],
        "move",
    )
    expect(page.locator("main")).to_contain_text("класс 5Б")
    assert audit_actions(region, setup.school)[-1] == "pupil.moved"


def test_a_teacher_leaves_the_school(region: LocalDeployment, context: BrowserContext) -> None:
    base = region.settings.provisioning_url
    setup = new_school(region)
    page = admin_page(region, context)
    page.goto(f"{base}/people/{setup.people['Олег']}")
    page.click("#person-actions >> text=Уходит из школы")
    preview_and_confirm(
        page,
        page.url,
        nothing,
        ["уходит из школы как учитель", "выходит из:", "5Б — родители", "Учительская"],
        "teacher-leaves",
    )
    assert audit_actions(region, setup.school)[-1] == "teacher.left"


def test_a_class_teacher_is_appointed(region: LocalDeployment, context: BrowserContext) -> None:
    base = region.settings.provisioning_url
    setup = new_school(region)
    page = admin_page(region, context)
    page.goto(f"{base}/schools/{setup.school}/classes/{setup.classes['5А']}")
    page.click("#class-actions >> text=Назначить классного руководителя")
    preview_and_confirm(
        page,
        page.url,
        lambda p: p.select_option("select[name=person_id]", value=str(setup.people["Олег"])),
        ["становится классным руководителем 5А", "5А — родители"],
        "class-teacher",
    )
    assert audit_actions(region, setup.school)[-1] == "class.teacher_appointed"
    with db_session(region) as session:
        teachers = session.scalars(
            select(Enrolment.person_id).where(
                Enrolment.class_id == setup.classes["5А"],
                Enrolment.role == EnrolmentRole.CLASS_TEACHER,
            )
        )
        assert list(teachers) == [setup.people["Олег"]]


def test_a_person_is_edited_with_the_apis_checks(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    setup = new_school(region)
    page = admin_page(region, context)
    page.goto(f"{base}/people/{setup.people['Иван']}")
    page.click("#person-actions >> text=Изменить имя и контакты")
    page.fill("input[name=phone]", "12")
    page.click("text=Показать, что изменится")
    # The words of the roster, the API and the registration form (services.limits).
    expect(page.locator("#change-error")).to_contain_text("«12» — это не номер телефона")
    page.fill("input[name=phone]", "")
    page.fill("input[name=display_name]", "Я" * 121)
    page.click("text=Показать, что изменится")
    expect(page.locator("#change-error")).to_contain_text("121")

    def fill(p: Page) -> None:
        p.fill("input[name=display_name]", "Иван Петров")
        p.fill("input[name=phone]", "+7 900 100-20-30")
        p.fill("input[name=email]", "ivan@school.example")

    preview_and_confirm(
        page, page.url, fill, ["будет показан(а) как Иван Петров во всех комнатах"], "edit"
    )
    expect(page.locator("h1")).to_have_text("Иван Петров")
    expect(page.locator("main")).to_contain_text("+7 900 100-20-30")
    assert audit_actions(region, setup.school)[-1] == "person.updated"


def test_a_person_is_removed_from_the_school(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    setup = new_school(region)
    page = admin_page(region, context)
    page.goto(f"{base}/people/{setup.people['Анна']}")
    page.click("#person-actions >> text=Вывести из школы")
    preview_and_confirm(
        page, page.url, nothing, ["выводится из школы", "выходит из:", "5А — родители"], "remove"
    )
    assert audit_actions(region, setup.school)[-1] == "person.removed"
    with db_session(region) as session:
        parent = session.get(Person, setup.people["Анна"])
        assert parent is not None  # the account stays
    page.goto(f"{base}/schools/{setup.school}/people/{setup.people['Анна']}/remove")
    expect(page.locator("main")).to_contain_text("В этой школе нет такого человека")


def test_a_class_is_renamed_and_an_empty_class_archived(
    region: LocalDeployment, context: BrowserContext
) -> None:
    base = region.settings.provisioning_url
    setup = new_school(region)
    page = admin_page(region, context)
    class_5b = f"{base}/schools/{setup.school}/classes/{setup.classes['5Б']}"
    page.goto(class_5b)
    page.click("#class-actions >> text=Переименовать класс")
    page.fill("input[name=label]", "6В")
    page.click("text=Показать, что изменится")
    expect(page.locator("#change-error")).to_contain_text("номер только с новым учебным годом")
    preview_and_confirm(
        page,
        page.url,
        lambda p: p.fill("input[name=label]", "5В"),
        [
            "Класс 5Б переименовывается в 5В",
            "Комната «5Б — чат класса» переименовывается в «5В — чат класса»",
        ],
        "rename-class",
    )
    expect(page.locator("h1")).to_have_text("Класс 5В")
    assert audit_actions(region, setup.school)[-1] == "class.renamed"

    page.goto(f"{base}/schools/{setup.school}/classes/{setup.classes['5А']}/archive")
    expect(page.locator("#change-error")).to_contain_text("В классе 5А ещё есть ученики (1)")
    preview_and_confirm(
        page,
        f"{class_5b}/archive",
        nothing,
        ["Класс 5В закрывается", "Комната «5В — чат класса (архив)» становится доступной"],
        "archive-class",
    )
    assert audit_actions(region, setup.school)[-1] == "class.archived"


def test_a_school_is_renamed(region: LocalDeployment, context: BrowserContext) -> None:
    base = region.settings.provisioning_url
    setup = new_school(region)
    page = admin_page(region, context)
    page.goto(f"{base}/schools/{setup.school}")
    page.click("#year-actions >> text=Переименовать школу")
    new_name = f"Лицей имени Пушкина {secrets.token_hex(2)}"
    preview_and_confirm(
        page,
        page.url,
        lambda p: p.fill("input[name=name]", new_name),
        [f"переименовывается в «{new_name}»", "Комната «Гимназия"],
        "rename-school",
    )
    expect(page.locator("h1")).to_have_text(new_name)
    assert audit_actions(region, setup.school)[-1] == "school.renamed"
    for url in (f"/schools/{2**64}/edit", f"/schools/{setup.school}/people/{2**63}/edit"):
        response = page.goto(f"{base}{url}")
        assert response is not None and 400 <= response.status < 500, url


@pytest.mark.parametrize("who", ["Мария", "Анна"])
def test_teachers_and_parents_are_refused_every_change(
    region: LocalDeployment, context: BrowserContext, who: str
) -> None:
    base = region.settings.provisioning_url
    setup = new_school(region, passwords=True)
    page = context.new_page()
    sign_in(page, base, setup.user_ids[who], PASSWORD)
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    token = page.locator("input[name=csrf_token]").first.input_value()
    school = f"{base}/schools/{setup.school}"
    pupil, teacher = setup.people["Иван"], setup.people["Олег"]
    class_5a = f"{school}/classes/{setup.classes['5А']}"
    forms = {
        f"{school}/promote": {"to_year": "2027/2028"},
        f"{school}/edit": {"name": "Захваченная школа"},
        f"{class_5a}/rename": {"label": "5Я"},
        f"{class_5a}/archive": {},
        f"{class_5a}/class-teacher": {"person_id": str(teacher)},
        f"{school}/people/{pupil}/move": {"class_id": str(setup.classes["5Б"])},
        f"{school}/people/{pupil}/edit": {"display_name": "Взломщик", "phone": "", "email": ""},
        f"{school}/people/{pupil}/remove": {},
        f"{school}/people/{teacher}/leave": {},
    }
    for url, values in forms.items():
        assert page.goto(url).status == 403, url  # type: ignore[union-attr]
        form = {"csrf_token": token, "step": "confirm", **values}
        assert page.request.post(url, form=form).status == 403, url
    with db_session(region) as session:
        school_row = session.get(School, setup.school)
        assert school_row is not None and school_row.academic_year == 2026
    changes = {
        "school.promoted",
        "school.renamed",
        "class.renamed",
        "class.archived",
        "class.teacher_appointed",
        "pupil.moved",
        "person.updated",
        "person.removed",
        "teacher.left",
    }
    assert not changes & set(audit_actions(region, setup.school))


def test_on_matrix_a_renamed_class_keeps_its_rooms_and_a_moved_pupil_follows(
    region: LocalDeployment, context: BrowserContext
) -> None:
    """What the preview promised happens on the real homeserver."""
    base = region.settings.provisioning_url
    setup = new_school(region)
    pupil = setup.user_ids["Иван"]
    run_async(set_pupil_password(region, pupil, "Иван"))
    reconcile_now(region)
    rooms_5a, rooms_5b = (
        class_rooms(region, setup.classes["5А"]),
        class_rooms(region, setup.classes["5Б"]),
    )
    wait_until_placed(region, pupil, {rooms_5a[RoomKind.CLASS_CHAT]})

    page = admin_page(region, context)
    class_5b = f"{base}/schools/{setup.school}/classes/{setup.classes['5Б']}"
    preview_and_confirm(
        page,
        f"{class_5b}/rename",
        lambda p: p.fill("input[name=label]", "5В"),
        ["Класс 5Б переименовывается в 5В"],
        "live-rename",
    )
    preview_and_confirm(
        page,
        f"{base}/schools/{setup.school}/people/{setup.people['Иван']}/move",
        lambda p: p.select_option("select[name=class_id]", label="5В"),
        ["входит в: 5В класс, 5В — канал класса, 5В — чат класса"],
        "live-move",
    )

    chat_5b = rooms_5b[RoomKind.CLASS_CHAT]
    wait_until_placed(region, pupil, {chat_5b, rooms_5b[RoomKind.CLASS_SPACE]})
    deadline = time.monotonic() + 120
    while rooms_5a[RoomKind.CLASS_CHAT] in joined_rooms_of(region, pupil):
        assert time.monotonic() < deadline, "the moved pupil was not taken out of 5А's chat"
        time.sleep(2)
    assert class_rooms(region, setup.classes["5Б"]) == rooms_5b  # the same rooms, renamed
    deadline = time.monotonic() + 120
    while run_async_value(room_name(region, chat_5b)) != "5В — чат класса":
        assert time.monotonic() < deadline, "the renamed class's chat kept its old name"
        time.sleep(2)


def reconcile_now(region: LocalDeployment) -> None:
    """Ask the service to place people now (the way Parta's own services ask)."""
    with httpx.Client(timeout=30) as http:
        http.post(
            f"{region.settings.provisioning_url}/internal/reconcile",
            headers={"Authorization": f"Bearer {region.settings.as_token.get_secret_value()}"},
        ).raise_for_status()


async def room_name(region: LocalDeployment, room_id: str) -> str:
    s = region.settings
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as bot:
        state = await bot.request("GET", f"/_matrix/client/v3/rooms/{room_id}/state/m.room.name")
    return str(state.get("name", ""))
