"""Read-only views of a school for the admin UI: counts, classes, members, people lists.

Each function is a handful of set-based queries, whatever the school's size, so a page
for a school of a thousand pupils renders in milliseconds (see bench/ui.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, aliased

from provisioning.db.models import (
    AuditEvent,
    Enrolment,
    EnrolmentRole,
    ManagedRoom,
    ParentLink,
    Person,
    Role,
    RoleAssignment,
    RoomKind,
    School,
    SchoolClass,
    Subject,
)

PAGE_SIZE = 50


@dataclass(frozen=True)
class ClassRow:
    school_class: SchoolClass
    pupils: int
    parents: int
    class_teacher: str | None


@dataclass(frozen=True)
class StaffRow:
    person: Person
    roles: tuple[Role, ...]
    classes: tuple[str, ...]


@dataclass(frozen=True)
class SchoolOverview:
    school: School
    classes: list[ClassRow]
    staff: list[StaffRow]
    pupils: int
    parents: int
    recent_events: list[AuditEvent]


@dataclass(frozen=True)
class PupilRow:
    person: Person
    parents: list[Person] = field(default_factory=list)
    confirmed: bool = True


@dataclass(frozen=True)
class TeacherRow:
    person: Person
    role: EnrolmentRole
    subject: str | None


@dataclass(frozen=True)
class ClassMembers:
    school_class: SchoolClass
    teachers: list[TeacherRow]
    pupils: list[PupilRow]

    @property
    def parent_count(self) -> int:
        return len({p.id for row in self.pupils for p in row.parents})


@dataclass(frozen=True)
class PeoplePage:
    rows: list[tuple[Person, list[tuple[str, str]]]]  # a person, and (role, class label)s
    total: int
    page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


def active_classes(school_id: int) -> Select[int]:
    return select(SchoolClass.id).where(
        SchoolClass.school_id == school_id, SchoolClass.archived_at.is_(None)
    )


def school_overview(session: Session, school: School, *, events: int = 10) -> SchoolOverview:
    classes = session.scalars(
        select(SchoolClass)
        .where(SchoolClass.school_id == school.id, SchoolClass.archived_at.is_(None))
        .order_by(SchoolClass.grade, SchoolClass.letter)
    ).all()
    pupil_counts = dict(
        session.execute(
            select(Enrolment.class_id, func.count())
            .where(Enrolment.role == EnrolmentRole.PUPIL)
            .where(Enrolment.class_id.in_(active_classes(school.id)))
            .group_by(Enrolment.class_id)
        ).all()
    )
    parent_counts = dict(
        session.execute(
            select(Enrolment.class_id, func.count(func.distinct(ParentLink.parent_id)))
            .join(ParentLink, ParentLink.child_id == Enrolment.person_id)
            .where(Enrolment.role == EnrolmentRole.PUPIL)
            .where(Enrolment.class_id.in_(active_classes(school.id)))
            .group_by(Enrolment.class_id)
        ).all()
    )
    class_teachers = dict(
        session.execute(
            select(Enrolment.class_id, Person.display_name)
            .join(Person, Person.id == Enrolment.person_id)
            .where(Enrolment.role == EnrolmentRole.CLASS_TEACHER)
            .where(Enrolment.class_id.in_(active_classes(school.id)))
        ).all()
    )
    parents_total = session.scalar(
        select(func.count(func.distinct(ParentLink.parent_id)))
        .join(Enrolment, Enrolment.person_id == ParentLink.child_id)
        .where(Enrolment.role == EnrolmentRole.PUPIL)
        .where(Enrolment.class_id.in_(active_classes(school.id)))
    )
    recent = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.school_id == school.id)
        .order_by(AuditEvent.id.desc())
        .limit(events)
    ).all()
    return SchoolOverview(
        school=school,
        classes=[
            ClassRow(
                c, pupil_counts.get(c.id, 0), parent_counts.get(c.id, 0), class_teachers.get(c.id)
            )
            for c in classes
        ],
        staff=school_staff(session, school),
        pupils=sum(pupil_counts.values()),
        parents=parents_total or 0,
        recent_events=list(recent),
    )


def school_staff(session: Session, school: School) -> list[StaffRow]:
    roles: dict[int, list[Role]] = {}
    people: dict[int, Person] = {}
    for assignment, person in session.execute(
        select(RoleAssignment, Person)
        .join(Person, Person.id == RoleAssignment.person_id)
        .where(RoleAssignment.school_id == school.id)
    ).all():
        roles.setdefault(person.id, []).append(assignment.role)
        people[person.id] = person
    classes: dict[int, set[str]] = {}
    for person_id, school_class in session.execute(
        select(Enrolment.person_id, SchoolClass)
        .join(SchoolClass, SchoolClass.id == Enrolment.class_id)
        .where(
            SchoolClass.school_id == school.id,
            SchoolClass.archived_at.is_(None),
            Enrolment.role != EnrolmentRole.PUPIL,
            Enrolment.person_id.in_(people),
        )
    ).all():
        classes.setdefault(person_id, set()).add(school_class.label)
    rows = [
        StaffRow(people[pid], tuple(sorted(r)), tuple(sorted(classes.get(pid, ()))))
        for pid, r in roles.items()
    ]
    return sorted(
        rows, key=lambda row: (Role.SCHOOL_ADMIN not in row.roles, row.person.display_name)
    )


def class_members(session: Session, school_class: SchoolClass) -> ClassMembers:
    teacher_rows = session.execute(
        select(Person, Enrolment.role, Subject.name)
        .join(Enrolment, Enrolment.person_id == Person.id)
        .outerjoin(Subject, Subject.id == Enrolment.subject_id)
        .where(Enrolment.class_id == school_class.id, Enrolment.role != EnrolmentRole.PUPIL)
        .order_by(Enrolment.role, Person.display_name)
    ).all()
    pupil_rows = session.execute(
        select(Person, Enrolment.confirmed_at)
        .join(Enrolment, Enrolment.person_id == Person.id)
        .where(Enrolment.class_id == school_class.id, Enrolment.role == EnrolmentRole.PUPIL)
        .order_by(Person.display_name)
    ).all()
    pupils = [person for person, _ in pupil_rows]
    confirmed = {person.id for person, at in pupil_rows if at is not None}
    parent = aliased(Person)
    parents: dict[int, list[Person]] = {}
    for child_id, person in session.execute(
        select(ParentLink.child_id, parent)
        .join(parent, parent.id == ParentLink.parent_id)
        .where(ParentLink.child_id.in_([p.id for p in pupils]))
        .order_by(parent.display_name)
    ).all():
        parents.setdefault(child_id, []).append(person)
    return ClassMembers(
        school_class=school_class,
        teachers=[TeacherRow(p, role, subject) for p, role, subject in teacher_rows],
        pupils=[PupilRow(p, parents.get(p.id, []), p.id in confirmed) for p in pupils],
    )


def school_people(
    session: Session, school: School, *, role: str = "", query: str = "", page: int = 1
) -> PeoplePage:
    """Everyone of the school (staff, pupils, their parents), filtered and a page at a time."""
    classes = active_classes(school.id)
    pupil_ids = select(Enrolment.person_id).where(
        Enrolment.role == EnrolmentRole.PUPIL, Enrolment.class_id.in_(classes)
    )
    parent_ids = select(ParentLink.parent_id).where(ParentLink.child_id.in_(pupil_ids))
    staff_ids = select(RoleAssignment.person_id).where(RoleAssignment.school_id == school.id)
    chosen = {"pupil": [pupil_ids], "parent": [parent_ids], "staff": [staff_ids]}.get(
        role, [pupil_ids, parent_ids, staff_ids]
    )
    condition = or_(*(Person.id.in_(ids) for ids in chosen))
    if query.strip():
        pattern = f"%{query.strip()}%"
        condition = condition & or_(
            Person.display_name.ilike(pattern),
            Person.matrix_user_id.ilike(pattern),
            Person.email.ilike(pattern),
            Person.phone.ilike(pattern),
        )
    total = session.scalar(select(func.count()).select_from(Person).where(condition)) or 0
    page = max(1, min(page, max(1, -(-total // PAGE_SIZE))))
    people = session.scalars(
        select(Person)
        .where(condition)
        .order_by(Person.display_name, Person.id)
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    return PeoplePage(rows=_describe(session, school, people), total=total, page=page)


def _describe(
    session: Session, school: School, people: Sequence[Person]
) -> list[tuple[Person, list[tuple[str, str]]]]:
    """What each person is in this school: ("teacher", ""), ("pupil", "5А"), ("parent", "5А")."""
    ids = [p.id for p in people]
    labels: dict[int, list[tuple[str, str]]] = {pid: [] for pid in ids}
    for person_id, role in session.execute(
        select(RoleAssignment.person_id, RoleAssignment.role).where(
            RoleAssignment.school_id == school.id, RoleAssignment.person_id.in_(ids)
        )
    ).all():
        labels[person_id].append((str(role), ""))
    for person_id, enrolment_role, school_class in session.execute(
        select(Enrolment.person_id, Enrolment.role, SchoolClass)
        .join(SchoolClass, SchoolClass.id == Enrolment.class_id)
        .where(
            SchoolClass.school_id == school.id,
            SchoolClass.archived_at.is_(None),
            Enrolment.person_id.in_(ids),
        )
    ).all():
        labels[person_id].append((str(enrolment_role), school_class.label))
    child = aliased(Enrolment)
    for parent_id, school_class in session.execute(
        select(ParentLink.parent_id, SchoolClass)
        .join(child, child.person_id == ParentLink.child_id)
        .join(SchoolClass, SchoolClass.id == child.class_id)
        .where(
            child.role == EnrolmentRole.PUPIL,
            SchoolClass.school_id == school.id,
            ParentLink.parent_id.in_(ids),
        )
    ).all():
        labels[parent_id].append(("parent", school_class.label))
    return [(p, sorted(set(labels[p.id]))) for p in people]


@dataclass(frozen=True)
class PersonCard:
    person: Person
    school_roles: list[tuple[School, Role]]
    enrolments: list[tuple[SchoolClass, EnrolmentRole, str | None]]
    parents: list[Person]
    children: list[tuple[Person, SchoolClass | None]]

    @property
    def school_ids(self) -> set[int]:
        """Schools where this person has a role, a class, or a child in a class."""
        ids = {school.id for school, _ in self.school_roles}
        ids |= {c.school_id for c, _, _ in self.enrolments}
        ids |= {c.school_id for _, c in self.children if c is not None}
        return ids

    @property
    def class_ids(self) -> set[int]:
        """Classes this person is a pupil of, or has a child in."""
        ids = {c.id for c, role, _ in self.enrolments if role is EnrolmentRole.PUPIL}
        return ids | {c.id for _, c in self.children if c is not None}


def person_card(session: Session, person: Person) -> PersonCard:
    school_roles = session.execute(
        select(School, RoleAssignment.role)
        .join(RoleAssignment, RoleAssignment.school_id == School.id)
        .where(RoleAssignment.person_id == person.id)
        .order_by(School.name)
    ).all()
    enrolments = session.execute(
        select(SchoolClass, Enrolment.role, Subject.name)
        .join(Enrolment, Enrolment.class_id == SchoolClass.id)
        .outerjoin(Subject, Subject.id == Enrolment.subject_id)
        .where(Enrolment.person_id == person.id, SchoolClass.archived_at.is_(None))
        .order_by(SchoolClass.grade, SchoolClass.letter)
    ).all()
    parents = session.scalars(
        select(Person)
        .join(ParentLink, ParentLink.parent_id == Person.id)
        .where(ParentLink.child_id == person.id)
        .order_by(Person.display_name)
    ).all()
    return PersonCard(
        person=person,
        school_roles=[(s, r) for s, r in school_roles],
        enrolments=[(c, r, subject) for c, r, subject in enrolments],
        parents=list(parents),
        children=children_of(session, person.id),
    )


def children_of(session: Session, parent_id: int) -> list[tuple[Person, SchoolClass | None]]:
    """A parent's children, each with the class they are a pupil of (if any)."""
    return [(row.child, row.school_class) for row in family_of(session, parent_id)]


@dataclass(frozen=True)
class ChildRow:
    child: Person
    school_class: SchoolClass | None
    pupil_confirmed: bool  # placed in the class (or waiting for a confirmation)
    family_room: bool  # this parent confirmed the child: they share a family room


def family_of(session: Session, parent_id: int) -> list[ChildRow]:
    """A parent's children, with what is confirmed about each."""
    pupil_class = aliased(SchoolClass)
    rows = session.execute(
        select(Person, pupil_class, Enrolment.confirmed_at, ParentLink.confirmed_at)
        .join(ParentLink, ParentLink.child_id == Person.id)
        .outerjoin(
            Enrolment,
            (Enrolment.person_id == Person.id) & (Enrolment.role == EnrolmentRole.PUPIL),
        )
        .outerjoin(pupil_class, pupil_class.id == Enrolment.class_id)
        .where(ParentLink.parent_id == parent_id)
        .order_by(Person.display_name)
    ).all()
    return [
        ChildRow(child, school_class, enrolled_at is not None, linked_at is not None)
        for child, school_class, enrolled_at, linked_at in rows
    ]


# Within a school, its rooms are listed school-wide first, then class by class.
_ROOM_ORDER = {
    kind: index
    for index, kind in enumerate(
        (
            RoomKind.SCHOOL_SPACE,
            RoomKind.ANNOUNCEMENTS,
            RoomKind.SCHOOL_MATERIALS,
            RoomKind.SCHOOL_EVENTS,
            RoomKind.STAFF_ROOM,
            RoomKind.CLASS_SPACE,
            RoomKind.CLASS_CHAT,
            RoomKind.CLASS_CHANNEL,
            RoomKind.CLASS_PARENTS,
        )
    )
}


@dataclass(frozen=True)
class RoomRow:
    room: ManagedRoom
    school_class: SchoolClass | None  # None for the school-wide rooms


def school_rooms(session: Session, school: School) -> list[RoomRow]:
    """The school's managed rooms, of its current classes, in the order people read them."""
    rows = session.execute(
        select(ManagedRoom, SchoolClass)
        .outerjoin(SchoolClass, SchoolClass.id == ManagedRoom.class_id)
        .where(ManagedRoom.school_id == school.id, SchoolClass.archived_at.is_(None))
    ).all()
    result = [RoomRow(room, school_class) for room, school_class in rows]
    result.sort(
        key=lambda row: (
            (0, 0, "") if row.school_class is None
            else (1, row.school_class.grade, row.school_class.letter),
            _ROOM_ORDER.get(row.room.kind, len(_ROOM_ORDER)),
        )
    )  # fmt: skip
    return result
