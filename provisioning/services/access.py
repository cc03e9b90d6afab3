"""What a signed-in person may see and do, from their roles: one place for every check.

The admin UI and the REST API both ask these questions on the server for every request;
templates only hide what the server would refuse anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    ParentLink,
    Person,
    Role,
    RoleAssignment,
    SchoolClass,
)


@dataclass(frozen=True)
class Access:
    """A person's rights, loaded once per request."""

    person_id: int
    user_id: str
    display_name: str
    region_admin: bool = False
    school_admin_of: frozenset[int] = field(default_factory=frozenset)
    teacher_of_schools: frozenset[int] = field(default_factory=frozenset)
    teaches_classes: frozenset[int] = field(default_factory=frozenset)  # class or subject
    class_teacher_of: frozenset[int] = field(default_factory=frozenset)
    pupil_of_classes: frozenset[int] = field(default_factory=frozenset)
    parent_of: frozenset[int] = field(default_factory=frozenset)  # children's person IDs

    @property
    def is_staff(self) -> bool:
        return self.region_admin or bool(self.school_admin_of or self.teacher_of_schools)

    @property
    def may_browse_library(self) -> bool:
        """The verified library: its content is for teachers and pupils, as the reference
        texts it comes from say; parents see what teachers send to the chats."""
        return self.is_staff or bool(self.pupil_of_classes)

    def may_manage_school(self, school_id: int) -> bool:
        """Edit the school, its classes and members; invite anyone; see its audit log."""
        return self.region_admin or school_id in self.school_admin_of

    def may_view_school(self, school_id: int) -> bool:
        """Open the school's page: its administration and its teachers."""
        return self.may_manage_school(school_id) or school_id in self.teacher_of_schools

    def may_manage_class(self, school_id: int, class_id: int) -> bool:
        """Invite pupils and parents into the class, handle its join requests."""
        return self.may_manage_school(school_id) or class_id in self.teaches_classes

    def may_invite(self, school_id: int, role: Role, class_id: int | None) -> bool:
        """Administrators invite every role; a teacher invites pupils and parents of a class
        they teach, as the platform Parta replaces lets teachers invite pupils."""
        if self.may_manage_school(school_id):
            return role is not Role.REGION_ADMIN
        if role in (Role.PUPIL, Role.PARENT) and class_id is not None:
            return class_id in self.teaches_classes
        return False


def load_access(session: Session, person: Person) -> Access:
    """Read a person's roles, enrolments and children into an `Access`."""
    roles = session.execute(
        select(RoleAssignment.role, RoleAssignment.school_id).where(
            RoleAssignment.person_id == person.id
        )
    ).all()
    enrolments = session.execute(
        select(Enrolment.role, Enrolment.class_id)
        .join(SchoolClass, SchoolClass.id == Enrolment.class_id)
        .where(Enrolment.person_id == person.id, SchoolClass.archived_at.is_(None))
    ).all()
    children = session.scalars(select(ParentLink.child_id).where(ParentLink.parent_id == person.id))
    teaching = {EnrolmentRole.CLASS_TEACHER, EnrolmentRole.SUBJECT_TEACHER}
    return Access(
        person_id=person.id,
        user_id=person.matrix_user_id or "",
        display_name=person.display_name,
        region_admin=any(role is Role.REGION_ADMIN for role, _ in roles),
        school_admin_of=frozenset(s for r, s in roles if r is Role.SCHOOL_ADMIN and s),
        teacher_of_schools=frozenset(s for r, s in roles if r is Role.TEACHER and s),
        teaches_classes=frozenset(c for r, c in enrolments if r in teaching),
        class_teacher_of=frozenset(c for r, c in enrolments if r is EnrolmentRole.CLASS_TEACHER),
        pupil_of_classes=frozenset(c for r, c in enrolments if r is EnrolmentRole.PUPIL),
        parent_of=frozenset(children),
    )
