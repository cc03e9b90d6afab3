"""A school for the appointment tests, placed in the running region's database: class 5А
with its class teacher and two pupils, each with a parent; another school with a pupil and
her parent. Their Matrix accounts get the tests' password (created if missing)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from parta.deployment import LocalDeployment
from provisioning.db.models import EnrolmentRole, Region, Role
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from tests.harness.broadcasts import PASSWORD, set_passwords
from tests.harness.region import region_session
from tests.web.test_admin_ui import run_async  # runs a coroutine beside Playwright's loop

__all__ = ["PASSWORD", "AppointmentSchool", "make_school"]


@dataclass(frozen=True)
class AppointmentSchool:
    school_id: int
    teacher: str  # class teacher of 5А
    parent: str  # a parent of a pupil of 5А
    second_parent: str  # a parent of another pupil of 5А
    stranger: str  # a parent of a pupil of another school
    parent_name: str
    child_name: str


def make_school(region: LocalDeployment) -> AppointmentSchool:
    tag = secrets.token_hex(3)
    with region_session(region) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        school = svc.create_school(
            session, region_row, f"Школа встреч {tag}", slug=f"a-{tag}", academic_year=2026
        )
        other = svc.create_school(
            session, region_row, f"Чужая школа {tag}", slug=f"ao-{tag}", academic_year=2026
        )
        klass, far = svc.add_class(session, school, 5, "А"), svc.add_class(session, other, 5, "А")
        allocate = LocalpartAllocator(session, region.settings.server_name)

        def person(name: str) -> Any:
            return svc.add_person(session, name, matrix_user_id=allocate.user_id(name))

        teacher = person(f"Учительница {tag}")
        svc.grant_school_role(session, teacher, school, Role.TEACHER)
        svc.enrol(session, teacher, klass, EnrolmentRole.CLASS_TEACHER)
        parents = []
        for name, group in (("Оля", klass), ("Петя", klass), ("Ваня", far)):
            pupil, parent = person(f"{name} {tag}"), person(f"Родитель {name} {tag}")
            svc.enrol(session, pupil, group, EnrolmentRole.PUPIL)
            svc.link_parent(session, parent, pupil)
            parents.append(parent)
        session.commit()
        found = AppointmentSchool(
            school_id=school.id,
            teacher=teacher.matrix_user_id,
            parent=parents[0].matrix_user_id,
            second_parent=parents[1].matrix_user_id,
            stranger=parents[2].matrix_user_id,
            parent_name=parents[0].display_name,
            child_name=f"Оля {tag}",
        )
    run_async(
        set_passwords(region, found.teacher, found.parent, found.second_parent, found.stranger)
    )
    return found
