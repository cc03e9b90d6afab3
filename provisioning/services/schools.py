"""School operations as a director would describe them; each commits as one change.

The reconciler turns their effect into Matrix state; nothing here talks to Synapse.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from foundation.naming import slugify
from provisioning.audit import record_audit
from provisioning.db.base import utcnow
from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    ManagedRoom,
    ParentLink,
    Person,
    Region,
    Role,
    RoleAssignment,
    School,
    SchoolClass,
    SchoolPromotion,
    Subject,
)
from provisioning.i18n import N_


class DomainError(ValueError):
    """A request that contradicts the school's data; the message is for a school admin.

    `template` and `params` let the admin UI show the message in the person's language;
    `str(error)` is the English text the REST API returns.
    """

    def __init__(self, template: str, **params: object) -> None:
        super().__init__(template % params if params else template)
        self.template = template
        self.params = params


class AlreadyExists(DomainError):
    """What the request would create exists already."""


_audit = record_audit


def create_school(
    session: Session,
    region: Region,
    name: str,
    *,
    academic_year: int,
    slug: str | None = None,
    last_grade: int = 11,
    actor: str = "system",
) -> School:
    """Add a school; its slug (the stable part of its rooms' aliases) is fixed from now on."""
    slug = slug or slugify(name)
    if not slug:
        raise DomainError(
            N_("Cannot make an address from the name «%(name)s»; give a short Latin name"),
            name=name,
        )
    if session.scalar(select(School).where(School.slug == slug)) is not None:
        raise AlreadyExists(
            N_("A school with the address «%(slug)s» exists already; choose another"), slug=slug
        )
    school = School(
        region_id=region.id,
        name=name,
        slug=slug,
        academic_year=academic_year,
        last_grade=last_grade,
    )
    session.add(school)
    session.flush()
    _audit(session, actor, "school.created", slug, school_id=school.id, name=name)
    return school


def add_class(
    session: Session, school: School, grade: int, letter: str, *, actor: str = "system"
) -> SchoolClass:
    """Add a class such as 5А for the school's current academic year."""
    if not 1 <= grade <= school.last_grade:
        raise DomainError(
            N_("Grade %(grade)s is outside 1–%(last)s for this school"),
            grade=grade,
            last=school.last_grade,
        )
    letter = letter.strip().upper()
    if not letter or len(letter) > 8:
        raise DomainError(N_("A class needs a letter such as «А»"))
    graduation_year = school.academic_year + 1 + (school.last_grade - grade)
    exists = session.scalar(
        select(SchoolClass.id).where(
            SchoolClass.school_id == school.id,
            SchoolClass.graduation_year == graduation_year,
            SchoolClass.letter == letter,
        )
    )
    if exists is not None:
        raise AlreadyExists(N_("Class %(label)s exists already"), label=f"{grade}{letter}")
    school_class = SchoolClass(
        school_id=school.id, grade=grade, letter=letter, graduation_year=graduation_year
    )
    # A renamed class keeps its old rooms' key: a new class whose letter gives the same
    # key gets rooms of its own.
    taken = {
        c.alias_key
        for c in session.scalars(select(SchoolClass).where(SchoolClass.school_id == school.id))
    }
    key, suffix = school_class.natural_alias_key, 2
    while key in taken:
        key, suffix = f"{school_class.natural_alias_key}-{suffix}", suffix + 1
    if key != school_class.natural_alias_key:
        school_class.room_key = key
    session.add(school_class)
    session.flush()
    _audit(session, actor, "class.created", f"{school.slug}/{grade}{letter}", school_id=school.id)
    return school_class


def add_subject(session: Session, school: School, name: str) -> Subject:
    subject = session.scalar(
        select(Subject).where(Subject.school_id == school.id, Subject.name == name)
    )
    if subject is None:
        subject = Subject(school_id=school.id, name=name)
        session.add(subject)
        session.flush()
    return subject


def add_person(
    session: Session,
    display_name: str,
    matrix_user_id: str | None,
    *,
    phone: str | None = None,
    email: str | None = None,
    roster_id: str | None = None,
) -> Person:
    """Raises:
    AlreadyExists: someone else holds `roster_id` (it names one person to the sign-on).
    """
    ensure_roster_id_free(session, roster_id, None)
    person = Person(
        display_name=display_name,
        matrix_user_id=matrix_user_id,
        phone=phone,
        email=email,
        roster_id=roster_id,
    )
    session.add(person)
    session.flush()
    return person


def ensure_roster_id_free(session: Session, roster_id: str | None, person_id: int | None) -> None:
    """Raises AlreadyExists if someone other than `person_id` holds the roster ID: the
    region's sign-on may name people by it, and one ID must never open two accounts."""
    if roster_id is None:
        return
    holder = session.scalar(select(Person).where(Person.roster_id == roster_id))
    if holder is not None and holder.id != person_id:
        raise AlreadyExists(
            N_("the roster ID %(roster_id)s is already %(name)s's"),
            roster_id=roster_id,
            name=holder.display_name,
        )


def grant_school_role(
    session: Session, person: Person, school: School, role: Role, *, actor: str = "system"
) -> None:
    if role not in (Role.SCHOOL_ADMIN, Role.TEACHER):
        raise DomainError(N_("%(role)s is not a school-wide role"), role=role.value)
    exists = session.scalar(
        select(RoleAssignment).where(
            RoleAssignment.person_id == person.id,
            RoleAssignment.school_id == school.id,
            RoleAssignment.role == role,
        )
    )
    if exists is None:
        session.add(RoleAssignment(person_id=person.id, school_id=school.id, role=role))
        _audit(
            session,
            actor,
            "role.granted",
            str(person.id),
            school_id=school.id,
            name=person.display_name,
            role=role.value,
        )


def enrol(
    session: Session,
    person: Person,
    school_class: SchoolClass,
    role: EnrolmentRole,
    *,
    subject: Subject | None = None,
    actor: str = "system",
    confirmed: bool = True,
) -> Enrolment:
    """Put a person in a class; a pupil belongs to one class at a time.

    `confirmed=False` records a pupil who registered themselves in a school that wants a
    parent or the administration to confirm them first; they are placed nowhere until then.
    """
    if role is EnrolmentRole.PUPIL:
        if session.scalar(select(ParentLink.id).where(ParentLink.parent_id == person.id).limit(1)):
            raise DomainError(
                N_("%(name)s is linked as a parent, and a parent cannot be enrolled as a pupil"),
                name=person.display_name,
            )
        current = pupil_enrolment(session, person)
        if current is not None and current.class_id != school_class.id:
            raise DomainError(
                N_("%(name)s is a pupil of another class already; move them instead"),
                name=person.display_name,
            )
        if current is not None:
            return current
    if role is EnrolmentRole.SUBJECT_TEACHER and subject is None:
        raise DomainError(N_("A subject teacher is enrolled for a subject"))
    enrolment = Enrolment(
        person_id=person.id,
        class_id=school_class.id,
        role=role,
        subject_id=subject.id if subject else None,
        confirmed_at=utcnow() if confirmed else None,
    )
    session.add(enrolment)
    session.flush()
    _audit(
        session,
        actor,
        "enrolment.added",
        str(person.id),
        school_id=school_class.school_id,
        name=person.display_name,
        role=role.value,
        school_class=school_class.label,
    )
    return enrolment


def link_parent(session: Session, parent: Person, child: Person, *, actor: str = "system") -> None:
    """Record that `parent` is a parent of the pupil `child`.

    A pupil is never anyone's parent, in this school or another: a link would put a child
    in another class's parents chat and make them a parent the policy lets write to
    children.

    The child is checked by the callers (the API: a pupil of this school); the region's
    log keeps a link to a child placed in no class yet.

    Raises:
        DomainError: the parent is a pupil.
    """
    if pupil_enrolment(session, parent) is not None:
        raise DomainError(
            N_("%(name)s is a pupil, and a pupil cannot be linked as anyone's parent"),
            name=parent.display_name,
        )
    exists = session.scalar(
        select(ParentLink).where(ParentLink.parent_id == parent.id, ParentLink.child_id == child.id)
    )
    if exists is None:
        session.add(ParentLink(parent_id=parent.id, child_id=child.id))
        child_class = pupil_enrolment(session, child)  # the school's log shows its families
        _audit(
            session,
            actor,
            "parent.linked",
            str(parent.id),
            school_id=child_class.school_class.school_id if child_class else None,
            name=parent.display_name,
            child=child.id,
            child_name=child.display_name,
        )


def pupil_enrolment(session: Session, pupil: Person) -> Enrolment | None:
    """The pupil's place in their class (a pupil is in one class at a time), if any."""
    return session.scalar(
        select(Enrolment).where(
            Enrolment.person_id == pupil.id, Enrolment.role == EnrolmentRole.PUPIL
        )
    )


def move_pupil(
    session: Session, pupil: Person, to_class: SchoolClass, *, actor: str = "system"
) -> None:
    """Move a pupil to another class (their parents follow through the parent links)."""
    enrolment = pupil_enrolment(session, pupil)
    if enrolment is None:
        raise DomainError(N_("%(name)s is not a pupil of any class"), name=pupil.display_name)
    if enrolment.class_id != to_class.id:
        enrolment.class_id = to_class.id
        _audit(
            session,
            actor,
            "pupil.moved",
            str(pupil.id),
            school_id=to_class.school_id,
            name=pupil.display_name,
            to_class=to_class.label,
        )


def teacher_leaves(
    session: Session, person: Person, school: School, *, actor: str = "system"
) -> None:
    """A teacher leaves the school: their school role and class enrolments end."""
    class_ids = select(SchoolClass.id).where(SchoolClass.school_id == school.id)
    session.execute(
        delete(Enrolment).where(
            Enrolment.person_id == person.id,
            Enrolment.class_id.in_(class_ids),
            Enrolment.role != EnrolmentRole.PUPIL,
        )
    )
    session.execute(
        delete(RoleAssignment).where(
            RoleAssignment.person_id == person.id,
            RoleAssignment.school_id == school.id,
            RoleAssignment.role == Role.TEACHER,
        )
    )
    _audit(
        session,
        actor,
        "teacher.left",
        str(person.id),
        school_id=school.id,
        name=person.display_name,
    )


def school_year_label(academic_year: int) -> str:
    """The school year that begins in `academic_year`, as schools write it: «2027/2028»."""
    return f"{academic_year}/{academic_year + 1}"


def parse_school_year(text: str) -> int | None:
    """The year «2027/2028» begins in, or None if the text is not such a school year."""
    first, slash, second = text.strip().partition("/")
    if not (slash and first.isascii() and first.isdigit() and second.isascii()):
        return None
    if not (second.isdigit() and len(first) == 4 and int(second) == int(first) + 1):
        return None
    return int(first)


def promote(
    session: Session, school: School, to_year: int, *, actor: str = "system"
) -> list[SchoolClass]:
    """Start the next school year: every class goes up one grade, the last grade graduates.

    The request names the year it promotes to, so a repeated request (a retry, a second
    click) is refused instead of promoting the school a second time: that archived whole
    schools (issue 18). A `school_promotions` row, unique per school and year, is written
    and flushed first, so of two concurrent requests the second fails at the database.
    Graduated classes are archived (read-only rooms, members kept), never deleted.
    Returns the classes that graduated.

    Raises:
        AlreadyExists: the school is in that school year already (or was promoted to it).
        DomainError: `to_year` is not the school's next school year.
        sqlalchemy.exc.IntegrityError: a concurrent request promoted it a moment ago.
    """
    if to_year <= school.academic_year:
        raise AlreadyExists(
            N_("The school is in the school year %(year)s already; it was not promoted again"),
            year=school_year_label(school.academic_year),
        )
    if to_year != school.academic_year + 1:
        raise DomainError(
            N_("Only the next school year, %(year)s, can be started now"),
            year=school_year_label(school.academic_year + 1),
        )
    session.add(SchoolPromotion(school_id=school.id, academic_year=to_year, promoted_by=actor))
    session.flush()
    graduated: list[SchoolClass] = []
    classes = session.scalars(
        select(SchoolClass).where(
            SchoolClass.school_id == school.id, SchoolClass.archived_at.is_(None)
        )
    ).all()
    for school_class in classes:
        if school_class.grade >= school.last_grade:
            school_class.archived_at = utcnow()
            graduated.append(school_class)
        else:
            school_class.grade += 1
    school.academic_year = to_year
    _audit(
        session,
        actor,
        "school.promoted",
        school.slug,
        school_id=school.id,
        academic_year=school.academic_year,
        graduated=[c.id for c in graduated],
    )
    return graduated


def confirm_pupil(
    session: Session, pupil: Person, *, parent: Person | None = None, actor: str = "system"
) -> bool:
    """Confirm a pupil's registration; by a parent, that parent also gets a family room.

    Returns whether anything changed.

    Raises:
        DomainError: the person is not a pupil of any class.
    """
    enrolment = pupil_enrolment(session, pupil)
    if enrolment is None:
        raise DomainError(N_("%(name)s is not a pupil of any class"), name=pupil.display_name)
    changed = False
    if enrolment.confirmed_at is None:
        enrolment.confirmed_at = utcnow()
        changed = True
    if parent is not None:
        link = session.scalar(
            select(ParentLink).where(
                ParentLink.parent_id == parent.id, ParentLink.child_id == pupil.id
            )
        )
        if link is None:
            raise DomainError(N_("Only the pupil's own parents confirm them"))
        if link.confirmed_at is None:
            link.confirmed_at = utcnow()
            changed = True
    if changed:
        school_class = session.get(SchoolClass, enrolment.class_id)
        _audit(
            session, actor, "pupil.confirmed", str(pupil.id),
            school_id=school_class.school_id if school_class else None,
            name=pupil.display_name, by_parent=parent is not None,
        )  # fmt: skip
    return changed


def decline_pupil(session: Session, pupil: Person, *, actor: str = "system") -> None:
    """Turn away a pupil who registered themselves and waits for confirmation.

    Their account stays (they may belong elsewhere), but they are in no class of this school.

    Raises:
        DomainError: the pupil is confirmed already (moving or removing placed pupils is
            done on the school's pages) or not waiting at all.
    """
    enrolment = pupil_enrolment(session, pupil)
    if enrolment is None or enrolment.confirmed_at is not None:
        raise DomainError(N_("This request has been decided already."))
    school_class = session.get(SchoolClass, enrolment.class_id)
    session.delete(enrolment)
    _audit(
        session, actor, "pupil.declined", str(pupil.id),
        school_id=school_class.school_id if school_class else None, name=pupil.display_name,
    )  # fmt: skip


def set_room_federation(
    session: Session, school: School, alias: str, federated: bool, *, actor: str = "system"
) -> ManagedRoom:
    """Open one of the school's rooms to the federated regions' people, or close it again.

    Only the school's own rooms; the school policy module (docs/safety.md) keeps every other
    room with pupils closed to other servers. In an open room the reconciler leaves the
    guests from other servers in place; once it is closed, it removes them.

    Raises:
        DomainError: the school has no managed room with this alias.
    """
    room = session.get(ManagedRoom, alias)
    if room is None or room.school_id != school.id:
        raise DomainError(N_("The school has no room %(alias)s."), alias=alias)
    if room.federated != federated:
        room.federated = federated
        # Closing it again removes the other regions' guests: the next run reads the room.
        room.dirty = True
        _audit(
            session, actor, "room.federation_opened" if federated else "room.federation_closed",
            alias, school_id=school.id, kind=room.kind.value,
        )  # fmt: skip
    return room
