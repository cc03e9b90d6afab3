"""Changes to a school's people and classes during the year, as its administration makes them.

Each function changes the database and records an audit event in the same transaction;
the reconciler then moves people in and out of rooms. `preview` says what a change would
do to rooms before anyone confirms it.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from provisioning.audit import record_audit
from provisioning.db.base import utcnow
from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    InviteLink,
    ParentLink,
    Person,
    Role,
    RoleAssignment,
    School,
    SchoolClass,
)
from provisioning.i18n import N_
from provisioning.services.schools import AlreadyExists, DomainError, ensure_roster_id_free


def school_staff(session: Session, school: School) -> list[Person]:
    """The school's teachers and administration, by name: who may be a class teacher."""
    return list(
        session.scalars(
            select(Person)
            .join(RoleAssignment, RoleAssignment.person_id == Person.id)
            .where(
                RoleAssignment.school_id == school.id,
                RoleAssignment.role.in_((Role.TEACHER, Role.SCHOOL_ADMIN)),
            )
            .distinct()
            .order_by(Person.display_name)
        )
    )


def live_classes(session: Session, school: School) -> list[SchoolClass]:
    return list(
        session.scalars(
            select(SchoolClass)
            .where(SchoolClass.school_id == school.id, SchoolClass.archived_at.is_(None))
            .order_by(SchoolClass.grade, SchoolClass.letter)
        )
    )


def appoint_class_teacher(
    session: Session, school_class: SchoolClass, teacher: Person, *, actor: str
) -> list[Person]:
    """Make `teacher` the class teacher of the class; the one before stays a teacher of
    the school (and of their subjects) but leaves the class's parents chat.

    Returns the class teachers who were replaced.

    Raises:
        DomainError: the person is not a teacher or administrator of the school.
    """
    school = session.get(School, school_class.school_id)
    assert school is not None
    if teacher.id not in {p.id for p in school_staff(session, school)}:
        raise DomainError(
            N_("%(name)s is not a teacher of this school; add them as a teacher first"),
            name=teacher.display_name,
        )
    current = session.scalars(
        select(Enrolment).where(
            Enrolment.class_id == school_class.id, Enrolment.role == EnrolmentRole.CLASS_TEACHER
        )
    ).all()
    if [e.person_id for e in current] == [teacher.id]:
        raise AlreadyExists(
            N_("%(name)s is the class teacher of %(label)s already"),
            name=teacher.display_name,
            label=school_class.label,
        )
    replaced = [e.person for e in current if e.person_id != teacher.id]
    for enrolment in current:
        if enrolment.person_id != teacher.id:
            session.delete(enrolment)
    if teacher.id not in {e.person_id for e in current}:
        session.add(
            Enrolment(
                person_id=teacher.id,
                class_id=school_class.id,
                role=EnrolmentRole.CLASS_TEACHER,
                confirmed_at=utcnow(),
            )
        )
    session.flush()
    record_audit(
        session,
        actor,
        "class.teacher_appointed",
        str(teacher.id),
        school_id=school.id,
        name=teacher.display_name,
        school_class=school_class.label,
        replaced=[p.display_name for p in replaced],
    )
    return replaced


def update_person(
    session: Session,
    person: Person,
    school: School,
    *,
    display_name: str,
    phone: str | None,
    email: str | None,
    roster_id: str | None,
    actor: str,
) -> list[str]:
    """Correct a person's name, contacts or roster ID; their new name reaches every room on
    the next run.

    Returns the names of the fields that changed (nothing is recorded if none did).

    Raises:
        AlreadyExists: another person holds `roster_id`.
    """
    fields = (
        ("display_name", display_name),
        ("phone", phone),
        ("email", email),
        ("roster_id", roster_id),
    )
    changed = [field for field, value in fields if getattr(person, field) != value]
    if not changed:
        return []
    ensure_roster_id_free(session, roster_id, person.id)
    before = person.display_name
    person.display_name, person.phone, person.email = display_name, phone, email
    person.roster_id = roster_id
    record_audit(
        session,
        actor,
        "person.updated",
        str(person.id),
        school_id=school.id,
        name=display_name,
        previous_name=before,
        fields=changed,
    )
    return changed


def remove_from_school(session: Session, person: Person, school: School, *, actor: str) -> None:
    """Take a person out of the school: their roles, classes and (for a pupil) the links
    to their parents there, and their personal links. Their account stays, in no room of
    the school; the person may belong to another school too.

    Raises:
        DomainError: the person has nothing to do with the school.
    """
    class_ids = select(SchoolClass.id).where(SchoolClass.school_id == school.id)
    pupil_here = session.scalar(
        select(Enrolment.id).where(
            Enrolment.person_id == person.id,
            Enrolment.role == EnrolmentRole.PUPIL,
            Enrolment.class_id.in_(class_ids),
        )
    )
    children_here = select(Enrolment.person_id).where(
        Enrolment.class_id.in_(class_ids), Enrolment.role == EnrolmentRole.PUPIL
    )
    removed = 0
    removed += session.execute(
        delete(Enrolment).where(Enrolment.person_id == person.id, Enrolment.class_id.in_(class_ids))
    ).rowcount  # type: ignore[attr-defined]
    removed += session.execute(
        delete(RoleAssignment).where(
            RoleAssignment.person_id == person.id, RoleAssignment.school_id == school.id
        )
    ).rowcount  # type: ignore[attr-defined]
    removed += session.execute(
        delete(ParentLink).where(
            ParentLink.parent_id == person.id, ParentLink.child_id.in_(children_here)
        )
    ).rowcount  # type: ignore[attr-defined]
    if pupil_here is not None:
        session.execute(delete(ParentLink).where(ParentLink.child_id == person.id))
    if not removed:
        raise DomainError(N_("%(name)s is not in this school"), name=person.display_name)
    session.execute(
        delete(InviteLink).where(
            InviteLink.person_id == person.id, InviteLink.school_id == school.id
        )
    )
    record_audit(
        session,
        actor,
        "person.removed",
        str(person.id),
        school_id=school.id,
        name=person.display_name,
    )


def rename_class(
    session: Session, school_class: SchoolClass, grade: int, letter: str, *, actor: str
) -> None:
    """Give a class another letter (5А → 5В); its rooms, aliases and history stay.

    Raises:
        DomainError: another grade (a class changes grade only with the school year), or
            the school has a class with that name already.
    """
    letter = letter.strip().upper()
    if grade != school_class.grade:
        raise DomainError(
            N_("A class changes its grade only with the school year; choose another letter"),
        )
    if not letter or len(letter) > 8:
        raise DomainError(N_("A class needs a letter such as «А»"))
    if letter == school_class.letter:
        raise AlreadyExists(N_("The class is called %(label)s already"), label=school_class.label)
    taken = session.scalar(
        select(SchoolClass.id).where(
            SchoolClass.school_id == school_class.school_id,
            SchoolClass.graduation_year == school_class.graduation_year,
            SchoolClass.letter == letter,
        )
    )
    if taken is not None:
        raise AlreadyExists(N_("Class %(label)s exists already"), label=f"{grade}{letter}")
    before = school_class.label
    school_class.room_key = school_class.alias_key  # the rooms keep their aliases
    school_class.letter = letter
    record_audit(
        session,
        actor,
        "class.renamed",
        str(school_class.id),
        school_id=school_class.school_id,
        previous=before,
        school_class=school_class.label,
    )


def archive_class(session: Session, school_class: SchoolClass, *, actor: str) -> None:
    """Close a class in the middle of the year: its rooms become a read-only archive with
    their members and history, as a graduated class's do.

    Raises:
        DomainError: pupils are still in it (move them first) or it is archived already.
    """
    if school_class.archived_at is not None:
        raise AlreadyExists(N_("Class %(label)s is archived already"), label=school_class.label)
    pupils = session.scalars(
        select(Person.display_name)
        .join(Enrolment, Enrolment.person_id == Person.id)
        .where(Enrolment.class_id == school_class.id, Enrolment.role == EnrolmentRole.PUPIL)
    ).all()
    if pupils:
        raise DomainError(
            N_("Class %(label)s still has pupils (%(count)s); move them to other classes first"),
            count=len(pupils),
            label=school_class.label,
        )
    school_class.archived_at = utcnow()
    record_audit(
        session,
        actor,
        "class.archived",
        str(school_class.id),
        school_id=school_class.school_id,
        school_class=school_class.label,
    )


def rename_school(session: Session, school: School, name: str, *, actor: str) -> None:
    """Rename the school; its address (slug, the rooms' aliases) stays.

    Raises:
        DomainError: the name is empty or unchanged.
    """
    name = " ".join(name.split())
    if len(name) < 2:
        raise DomainError(N_("Give the school a name."))
    if name == school.name:
        raise AlreadyExists(N_("The school is called «%(name)s» already"), name=name)
    before = school.name
    school.name = name
    record_audit(
        session,
        actor,
        "school.renamed",
        school.slug,
        school_id=school.id,
        name=name,
        previous=before,
    )
