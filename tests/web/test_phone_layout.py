"""Every page of the admin UI, for every role, on a phone: 390×844, as an iPhone 12-15.

The pages are listed from the app's own routes, so a page added later is walked too (and
the test asks for a value of any path parameter it does not know yet). A page fails when
it scrolls sideways or its header takes more than `HEADER_MAX_PX` of the screen.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.routing import iter_route_contexts
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from parta.deployment import LocalDeployment
from provisioning.app import create_app
from provisioning.db.models import EnrolmentRole, Region, Role, RosterImport
from provisioning.services import invites
from provisioning.services import library as library_svc
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import PASSWORD, db_session, run_async, sign_in
from tests.web.test_admin_ui import _set_password as set_password

PHONE = {"width": 390, "height": 844}
HEADER_MAX_PX = 64
NOT_PAGES = ("/api/", "/internal/", "/healthz", "/openapi.json", "/docs", "/redoc")
PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")

# Measured in the page: how wide it scrolls, how tall its header is, and what sticks out.
# A phone zooms a too-wide page out until it fits, which widens `innerWidth` with it, so
# the page is measured against the screen's width as well.
MEASURE = """(screenWidth) => {
  const width = Math.min(window.innerWidth, screenWidth);
  const header = document.querySelector('header.top');
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > width + 1 && !e.closest('.table-wrap'))
    .slice(0, 5)
    .map(e => `${e.tagName.toLowerCase()}.${e.className} ${e.getBoundingClientRect().right}px`);
  const squeezed = [...document.querySelectorAll('code')]
    .filter(e => e.getClientRects().length > 4)  // a Matrix ID on more than four lines
    .slice(0, 3).map(e => `${e.textContent} on ${e.getClientRects().length} lines`);
  return {
    scroll: document.scrollingElement.scrollWidth, width, squeezed,
    header: header ? Math.round(header.getBoundingClientRect().height) : 0, wide,
  };
}"""


@dataclass
class Person:
    name: str
    user_id: str = ""
    person_id: int = 0


@dataclass
class SchoolOnAPhone:
    """A school with one person of every role and something on every page."""

    people: dict[str, Person] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)  # path parameter → value


@pytest.fixture(scope="module")
def school(region: LocalDeployment) -> SchoolOnAPhone:
    tag = secrets.token_hex(3)
    setup = SchoolOnAPhone()
    names = {  # long names make long Matrix IDs: the case that wrapped a letter per line
        "director": f"Александра Владимировна Преображенская-Ковалевская {tag}",
        "teacher": f"Константин Константинович Константинопольский {tag}",
        "pupil": f"Екатерина Римская-Корсакова {tag}",
        "parent": f"Мария Римская-Корсакова {tag}",
    }
    with db_session(region) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        school_row = svc.create_school(
            session, region_row, f"Муниципальное бюджетное общеобразовательное учреждение {tag}",
            slug=f"phone-{tag}", academic_year=2026,
        )  # fmt: skip
        school_class = svc.add_class(session, school_row, 7, "А")
        allocator = LocalpartAllocator(session, region.settings.server_name)
        for role, name in names.items():
            user_id = allocator.user_id(name)
            person = svc.add_person(session, name, matrix_user_id=user_id)
            setup.people[role] = Person(name, user_id, person.id)
            if role == "director":
                svc.grant_school_role(session, person, school_row, Role.SCHOOL_ADMIN)
            elif role == "teacher":
                svc.grant_school_role(session, person, school_row, Role.TEACHER)
                svc.enrol(session, person, school_class, EnrolmentRole.CLASS_TEACHER)
            elif role == "pupil":
                svc.enrol(session, person, school_class, EnrolmentRole.PUPIL)
                pupil = person
            else:
                svc.link_parent(session, person, pupil)
        invite = invites.create_invite(
            session, school_row, Role.PUPIL, school_class=school_class, created_by=None,
            actor="system",
        )  # fmt: skip
        item = library_svc.create(session, library_svc.LibraryItemIn(
            title="Дроби и проценты: задачи на каждый день для седьмого класса",
            subject="Математика",
            grade_from=5, grade_to=7, kind="link",
            url="https://example.org/" + "очень-длинный-адрес-материала-" * 4,
            licence="CC BY 4.0", source="Региональный методический центр",
            verified_by="Методист Иванова",
        ), actor="system", person_id=None)  # fmt: skip
        record = RosterImport(
            school_id=school_row.id, actor=setup.people["director"].user_id,
            filename="список-учеников-7А-на-новый-учебный-год.csv",
            summary={"created": 1, "moved": 0, "unchanged": 0, "classes_created": 0},
            person_ids=[pupil.id],
        )  # fmt: skip
        session.add(record)
        session.commit()
        setup.values = {
            "school_id": str(school_row.id), "class_id": str(school_class.id),
            "invite_id": str(invite.id), "token": invite.token, "import_id": str(record.id),
            "item_id": str(item.id), "locale": "ru", "kind": "svg",
            "person_id": str(setup.people["pupil"].person_id),
            # A broadcast's page needs a chat on Matrix, which this school never gets: the
            # page is walked as its refusal; tests/web/test_broadcasts_ui.py measures it.
            "broadcast_id": "1",
            # Likewise a parent meeting (its chat is never made here): walked as its refusal.
            "meeting_id": "1",
        }  # fmt: skip
    for person in setup.people.values():
        run_async(set_password(region, person.user_id, person.name))
    return setup


def page_paths(region: LocalDeployment) -> list[str]:
    """Every path of the app a browser can open (GET), its parameters still in braces."""
    app = create_app(region.settings)  # builds the routes; the lifespan does not run
    paths = []
    for route in iter_route_contexts(app.routes):
        methods = getattr(route, "methods", None) or set()
        path: str = getattr(route, "path", "")
        if "GET" in methods and not path.startswith(NOT_PAGES):
            paths.append(path)
    return sorted(set(paths))


def concrete(path: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"{path}: give the phone test a value for {{{name}}}"
        return values[name]

    return PARAMETER.sub(value, path)


def walk(
    page: Page,
    base: str,
    paths: list[str],
    values: dict[str, str],
    role: str,
    measured: list[str],
) -> Iterator[str]:
    """Open each page; yield what is wrong with it on a phone; list in `measured` the pages
    that were measured (a page the role may not see is measured as the refusal it shows)."""
    for template in paths:
        url = base + concrete(template, values)
        answer = page.request.get(url, max_redirects=5)
        if answer.status >= 500:
            yield f"{template}: {answer.status}"
            continue
        if not answer.headers.get("content-type", "").startswith("text/html"):
            continue  # a download or a picture, not a page
        if not answer.text().lstrip().lower().startswith("<!doctype html>"):
            continue  # a fragment htmx swaps into a page, which is measured itself
        page.goto(url)
        measured.append(template)
        found = page.evaluate(MEASURE, PHONE["width"])
        if template.endswith(("/people", "/import", "/audit", "/library")):
            screenshot(page, f"phone-{role}-" + re.sub(r"\W+", "-", template).strip("-"))
        if found["scroll"] > found["width"]:
            wide, width = found["scroll"], found["width"]
            yield f"{template}: {wide} px wide on a {width} px screen {found['wide']}"
        if found["squeezed"]:
            yield f"{template}: squeezed {found['squeezed']}"
        if found["header"] > HEADER_MAX_PX:
            yield f"{template}: the header takes {found['header']} px (at most {HEADER_MAX_PX})"


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "role", ["visitor", "region_admin", "director", "teacher", "parent", "pupil"]
)
def test_every_page_fits_a_phone(
    region: LocalDeployment, browser: Browser, school: SchoolOnAPhone, role: str
) -> None:
    s = region.settings
    context: BrowserContext = browser.new_context(
        viewport=PHONE, locale="ru-RU", is_mobile=True, has_touch=True, device_scale_factor=3
    )
    context.set_default_timeout(30_000)
    try:
        page = context.new_page()
        if role == "region_admin":
            password = s.region_admin_password.get_secret_value()
            sign_in(page, s.provisioning_url, s.region_admin_localpart, password)
        elif role != "visitor":
            sign_in(page, s.provisioning_url, school.people[role].user_id, PASSWORD)
        if role != "visitor":
            expect(page.locator("h1")).to_contain_text("Здравствуйте")  # signed in
        paths = page_paths(region)
        assert "/schools/{school_id}/import" in paths and "/library" in paths
        measured: list[str] = []
        problems = list(walk(page, s.provisioning_url, paths, school.values, role, measured))
        # Every role is shown its home page and the pages it may open; most are measured.
        assert "/" in measured and len(measured) > len(paths) // 2, measured
        if problems:
            screenshot(page, f"phone-{role}-last")
        assert not problems, "\n".join(problems)
        if role != "visitor":  # the menu folds away on a phone, and opens with a tap
            page.goto(f"{s.provisioning_url}/")
            sign_out = page.get_by_role("button", name="Выйти")
            expect(sign_out).to_be_hidden()
            page.click("text=Меню")
            expect(sign_out).to_be_visible()
            expect(page.locator("nav.main-nav >> text=Мой профиль")).to_be_visible()
            screenshot(page, f"phone-{role}-menu")
    finally:
        context.close()
