"""The demo school: so that a new deployment shows a populated school with logins to try."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.settings import Settings
from matrix.client import MatrixClient
from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    LibraryItem,
    ParentLink,
    Person,
    Region,
    Role,
    RoleAssignment,
    School,
    SchoolClass,
)
from provisioning.reconciler.run import reconcile_region
from provisioning.services import library
from provisioning.services.generate import generate_school
from provisioning.services.region import ensure_region

DEMO_SLUG = "demo"
DEMO_NAME = "Школа № 1 (демо)"
# Links to the state's open lessons, so a demo teacher finds something in the library.
_SOURCE = "Российская электронная школа (РЭШ)"
DEMO_LIBRARY = (
    ("Обыкновенные дроби: уроки 5 класса", "Математика", 5, 6,
     "Видеоуроки, конспекты и тренировочные задания.", "https://resh.edu.ru/subject/12/5/"),
    ("Русский язык: орфография и пунктуация", "Русский язык", 5, 7,
     "Уроки с упражнениями и проверочными заданиями.", "https://resh.edu.ru/subject/13/5/"),
    ("Окружающий мир: природные зоны России", "Окружающий мир", 1, 4,
     "Уроки начальной школы с иллюстрациями.", "https://resh.edu.ru/subject/43/4/"),
)  # fmt: skip


@dataclass(frozen=True)
class DemoLogin:
    role: str  # as people say it: "директор", "классный руководитель", …
    user_id: str
    display_name: str


@dataclass(frozen=True)
class DemoSchool:
    created: bool
    logins: list[DemoLogin]
    sync_actions: int


def _add_demo_library(session: Session) -> None:
    """The demo's library items, each unless the region has it already (by its link)."""
    known = set(session.scalars(select(LibraryItem.url)))
    for title, subject, grade_from, grade_to, description, url in DEMO_LIBRARY:
        if url in known:
            continue
        item = library.validate({
            "title": title, "subject": subject, "grade_from": grade_from,
            "grade_to": grade_to, "description": description, "kind": "link", "url": url,
            "licence": "Свободный доступ", "source": _SOURCE,
            "verified_by": "Методический центр (демо)",
        })  # fmt: skip
        library.create(session, item, actor="demo", person_id=None)


def _academic_year(today: date) -> int:
    """The year the current school year began (it starts on 1 September)."""
    return today.year if today.month >= 9 else today.year - 1


def _logins(session: Session, school: School) -> list[DemoLogin]:
    """The director, the first class's teacher, its first pupil and that pupil's parent."""
    first_class = session.scalars(
        select(SchoolClass).where(SchoolClass.school_id == school.id).order_by(SchoolClass.id)
    ).first()
    director = session.scalars(
        select(Person)
        .join(RoleAssignment, RoleAssignment.person_id == Person.id)
        .where(RoleAssignment.school_id == school.id, RoleAssignment.role == Role.SCHOOL_ADMIN)
        .order_by(Person.id)
    ).first()
    found: list[tuple[str, Person | None]] = [("директор", director)]
    if first_class is not None:

        def enrolled(role: EnrolmentRole) -> Person | None:
            return session.scalars(
                select(Person)
                .join(Enrolment, Enrolment.person_id == Person.id)
                .where(Enrolment.class_id == first_class.id, Enrolment.role == role)
                .order_by(Person.id)
            ).first()

        pupil = enrolled(EnrolmentRole.PUPIL)
        parent = None
        if pupil is not None:
            parent = session.scalars(
                select(Person)
                .join(ParentLink, ParentLink.parent_id == Person.id)
                .where(ParentLink.child_id == pupil.id)
                .order_by(Person.id)
            ).first()
        label = first_class.label
        found += [
            (f"классный руководитель {label}", enrolled(EnrolmentRole.CLASS_TEACHER)),
            (f"ученик {label}", pupil),
            (f"родитель ученика {label}", parent),
        ]
    return [
        DemoLogin(role, str(person.matrix_user_id), person.display_name)
        for role, person in found
        if person is not None and person.matrix_user_id
    ]


async def ensure_demo_school(
    session: Session, client: MatrixClient, settings: Settings, *, today: date | None = None
) -> DemoSchool:
    """Load the demo school once, reconcile, and give its demo accounts the demo password.

    Safe to call again: an existing demo school is only reconciled (which also finishes a
    load that was interrupted).
    """
    school = session.scalar(select(School).where(School.slug == DEMO_SLUG))
    created = school is None
    if school is None:
        region = session.scalar(select(Region).where(Region.server_name == settings.server_name))
        region = region or ensure_region(session, settings)
        school = generate_school(
            session,
            region,
            DEMO_NAME,
            pupils=24,
            classes=3,
            academic_year=_academic_year(today or date.today()),
            seed=2026,
            slug=DEMO_SLUG,
        ).school
        _add_demo_library(session)
        session.commit()
    # The service's own first run may be in progress: wait for it rather than fail.
    report = await reconcile_region(session, client, settings, wait_s=600.0)
    logins = _logins(session, school)
    if created:
        password = settings.demo_password.get_secret_value()
        for login in logins:
            await client.admin_put_user(login.user_id, {"password": password})
    return DemoSchool(created, logins, len(report.plan))
