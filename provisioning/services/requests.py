"""Requests that wait for a decision: teachers applying to a school, knocks on a class.

Both are decided by people with the right to decide (the school's administration for
teachers; the class's teachers for join requests), in the admin UI or — for knocks — in
any Matrix client. A decision only changes the database; the reconciler then places
people on Matrix.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.audit import AutomaticActor, record_audit
from provisioning.db.base import utcnow
from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    JoinRequest,
    ParentLink,
    Person,
    RequestStatus,
    Role,
    RoleAssignment,
    School,
    SchoolClass,
    Subject,
    TeacherApplication,
)
from provisioning.i18n import N_
from provisioning.services import schools as svc
from provisioning.services.schools import DomainError

MAX_SUBJECTS = 10


def parse_subjects(text: str) -> list[str]:
    """ "математика, физика" → ["Математика", "Физика"]: trimmed, capitalised, unique."""
    subjects: list[str] = []
    for part in text.replace(";", ",").split(","):
        name = " ".join(part.split())
        if name:
            name = name[0].upper() + name[1:]
            if name not in subjects and len(name) <= 60:
                subjects.append(name)
    return subjects[:MAX_SUBJECTS]


# --- Teacher applications --------------------------------------------------------------


def apply_as_teacher(
    session: Session,
    person: Person,
    school: School,
    *,
    subjects: Sequence[str],
    class_ids: Sequence[int],
) -> TeacherApplication:
    valid = set(
        session.scalars(
            select(SchoolClass.id).where(
                SchoolClass.school_id == school.id,
                SchoolClass.id.in_(class_ids),
                SchoolClass.archived_at.is_(None),
            )
        )
    )
    application = TeacherApplication(
        person_id=person.id,
        school_id=school.id,
        subjects=list(subjects),
        class_ids=sorted(valid),
    )
    session.add(application)
    session.flush()
    record_audit(
        session, person.matrix_user_id or AutomaticActor.REGISTRATION_FORM, "teacher.applied",
        str(person.id), school_id=school.id, name=person.display_name, subjects=list(subjects),
    )  # fmt: skip
    return application


def pending_applications(session: Session, school_id: int) -> list[TeacherApplication]:
    return list(
        session.scalars(
            select(TeacherApplication)
            .where(
                TeacherApplication.school_id == school_id,
                TeacherApplication.status == RequestStatus.PENDING,
            )
            .order_by(TeacherApplication.created_at)
        )
    )


def _subject(session: Session, school: School, name: str) -> Subject:
    found = session.scalar(
        select(Subject).where(Subject.school_id == school.id, Subject.name == name)
    )
    return found if found is not None else svc.add_subject(session, school, name)


def decide_application(
    session: Session, application: TeacherApplication, *, approve: bool, actor: str
) -> None:
    """Approve (the teacher joins the school, and teaches their subjects in their classes)
    or decline.

    Raises:
        DomainError: the application was decided already.
    """
    if application.status is not RequestStatus.PENDING:
        raise DomainError(N_("This request has been decided already."))
    application.status = RequestStatus.APPROVED if approve else RequestStatus.DECLINED
    application.decided_at = utcnow()
    application.decided_by = actor
    school = session.get(School, application.school_id)
    person = session.get(Person, application.person_id)
    assert school is not None and person is not None
    if approve:
        svc.grant_school_role(session, person, school, Role.TEACHER, actor=actor)
        classes = session.scalars(
            select(SchoolClass).where(
                SchoolClass.id.in_(application.class_ids),
                SchoolClass.school_id == school.id,
                SchoolClass.archived_at.is_(None),
            )
        ).all()
        for school_class in classes:
            for name in application.subjects:
                svc.enrol(
                    session, person, school_class, EnrolmentRole.SUBJECT_TEACHER,
                    subject=_subject(session, school, name), actor=actor,
                )  # fmt: skip
    record_audit(
        session, actor, "teacher.approved" if approve else "teacher.declined", str(person.id),
        school_id=school.id, name=person.display_name,
    )  # fmt: skip


# --- Join requests (knocks on a class) -------------------------------------------------


def record_knock(
    session: Session, school_class: SchoolClass, user_id: str, display_name: str, reason: str | None
) -> JoinRequest:
    """A knock becomes a pending request, once: knocking again updates the same request."""
    request = pending_join_request(session, school_class.id, user_id)
    if request is None:
        request = JoinRequest(class_id=school_class.id, user_id=user_id, display_name="")
        session.add(request)
        record_audit(
            session, user_id, "join.requested", user_id, school_id=school_class.school_id,
            name=display_name, school_class=school_class.label,
        )  # fmt: skip
    request.display_name = display_name[:255] or user_id
    request.reason = (reason or "")[:1000] or None
    session.flush()
    return request


def pending_join_requests(session: Session, class_ids: Sequence[int]) -> list[JoinRequest]:
    return list(
        session.scalars(
            select(JoinRequest)
            .where(
                JoinRequest.class_id.in_(class_ids),
                JoinRequest.status == RequestStatus.PENDING,
            )
            .order_by(JoinRequest.created_at)
        )
    )


def pending_join_request(session: Session, class_id: int, user_id: str) -> JoinRequest | None:
    return session.scalar(
        select(JoinRequest).where(
            JoinRequest.class_id == class_id,
            JoinRequest.user_id == user_id,
            JoinRequest.status == RequestStatus.PENDING,
        )
    )


class KnockerKind(enum.StrEnum):
    """Who knocked, as the class's teachers need to know before deciding."""

    PUPIL_OF_CLASS = "pupil_of_class"
    PUPIL_OF_OTHER_CLASS = "pupil_of_other_class"  # of this school
    TEACHER_OF_CLASS = "teacher_of_class"
    PARENT_OF_CLASS = "parent_of_class"  # a parent of a pupil of this class
    STAFF_OF_SCHOOL = "staff_of_school"  # works at the school, not in this class
    PARENT_IN_SCHOOL = "parent_in_school"  # their children are in other classes
    NOT_OF_SCHOOL = "not_of_school"  # Parta knows them, of another school or of none
    UNKNOWN_ACCOUNT = "unknown_account"  # an account Parta never recorded


# Whom accepting admits, in the role they already have in the class.
ADMISSIBLE = frozenset(
    {KnockerKind.PUPIL_OF_CLASS, KnockerKind.TEACHER_OF_CLASS, KnockerKind.PARENT_OF_CLASS}
)


@dataclass(frozen=True)
class Knocker:
    kind: KnockerKind
    person: Person | None
    pupil_class: str | None = None  # a pupil's own class, such as «5Б»

    @property
    def admissible(self) -> bool:
        return self.kind in ADMISSIBLE


def who_knocked(session: Session, school_class: SchoolClass, user_id: str) -> Knocker:
    """Who the person behind a join request is, for this class and its school.

    Accepting never changes anyone's role: a pupil of the class comes back into it, a
    teacher or a parent of the class is placed in their own role; everyone else is told
    apart so that no click makes an adult or a stranger a pupil (issue 18).
    """
    person = session.scalar(select(Person).where(Person.matrix_user_id == user_id))
    if person is None:
        return Knocker(KnockerKind.UNKNOWN_ACCOUNT, None)
    school_id = school_class.school_id
    pupil_place = svc.pupil_enrolment(session, person)
    if pupil_place is not None:
        own = session.get(SchoolClass, pupil_place.class_id)
        if own is None or own.school_id != school_id:
            return Knocker(KnockerKind.NOT_OF_SCHOOL, person)
        if own.id == school_class.id:
            return Knocker(KnockerKind.PUPIL_OF_CLASS, person, own.label)
        return Knocker(KnockerKind.PUPIL_OF_OTHER_CLASS, person, own.label)
    teaches = set(
        session.scalars(
            select(Enrolment.class_id)
            .join(SchoolClass, SchoolClass.id == Enrolment.class_id)
            .where(
                Enrolment.person_id == person.id,
                Enrolment.role != EnrolmentRole.PUPIL,
                SchoolClass.school_id == school_id,
            )
        )
    )
    if school_class.id in teaches:
        return Knocker(KnockerKind.TEACHER_OF_CLASS, person)
    children_classes = set(
        session.execute(
            select(SchoolClass.id, SchoolClass.school_id)
            .join(Enrolment, Enrolment.class_id == SchoolClass.id)
            .join(ParentLink, ParentLink.child_id == Enrolment.person_id)
            .where(ParentLink.parent_id == person.id, Enrolment.role == EnrolmentRole.PUPIL)
        ).all()
    )
    if (school_class.id, school_id) in children_classes:
        return Knocker(KnockerKind.PARENT_OF_CLASS, person)
    works_here = teaches or session.scalar(
        select(RoleAssignment.id).where(
            RoleAssignment.person_id == person.id, RoleAssignment.school_id == school_id
        )
    )
    if works_here:
        return Knocker(KnockerKind.STAFF_OF_SCHOOL, person)
    if any(school == school_id for _, school in children_classes):
        return Knocker(KnockerKind.PARENT_IN_SCHOOL, person)
    return Knocker(KnockerKind.NOT_OF_SCHOOL, person)


def why_not_admissible(knocker: Knocker, name: str, school_class: SchoolClass) -> DomainError:
    """The refusal to accept, with what to do instead (the admin UI and the API show it)."""
    label = school_class.label
    if knocker.kind is KnockerKind.PUPIL_OF_OTHER_CLASS:
        return DomainError(
            N_(
                "%(name)s is a pupil of class %(other)s. Moving a pupil to another class is "
                "the administration's decision, on the school's pages; decline this request."
            ),
            name=name,
            other=knocker.pupil_class or "",
        )
    if knocker.kind is KnockerKind.STAFF_OF_SCHOOL:
        return DomainError(
            N_(
                "%(name)s works at this school but does not teach class %(label)s. The "
                "administration adds a teacher to a class; decline this request."
            ),
            name=name,
            label=label,
        )
    if knocker.kind is KnockerKind.PARENT_IN_SCHOOL:
        return DomainError(
            N_(
                "%(name)s is a parent in this school, but none of their children is in class "
                "%(label)s. Parents are placed in their children's classes; decline this "
                "request."
            ),
            name=name,
            label=label,
        )
    return DomainError(
        N_(
            "%(name)s is not a person of this school, so the request cannot be accepted. "
            "Decline it; if they belong to the school, send them an invitation link."
        ),
        name=name,
    )


def accept_join_request(session: Session, request: JoinRequest, *, actor: str, via: str) -> Person:
    """Admit the one who knocked in the role they have in the class already.

    A pupil of the class comes back into it (confirmed, if they waited for confirmation); a
    teacher or a parent of the class is placed in their own role. Nobody becomes a pupil
    here: an adult or an account Parta does not know would then reach the class's children.

    Raises:
        DomainError: decided already, or the person has no place in this class (a pupil of
            another class, a stranger, …); the message says what to do instead.
    """
    if request.status is not RequestStatus.PENDING:
        raise DomainError(N_("This request has been decided already."))
    school_class = session.get(SchoolClass, request.class_id)
    assert school_class is not None
    knocker = who_knocked(session, school_class, request.user_id)
    if knocker.person is None or not knocker.admissible:
        raise why_not_admissible(knocker, request.display_name, school_class)
    person = knocker.person
    if knocker.kind is KnockerKind.PUPIL_OF_CLASS:
        svc.confirm_pupil(session, person, actor=actor)
    _decide(request, RequestStatus.APPROVED, actor, via)
    record_audit(
        session, actor, "join.accepted", request.user_id, school_id=school_class.school_id,
        name=person.display_name, school_class=school_class.label, via=via,
        knocker=knocker.kind.value,
    )  # fmt: skip
    return person


def decline_join_request(session: Session, request: JoinRequest, *, actor: str, via: str) -> None:
    if request.status is not RequestStatus.PENDING:
        raise DomainError(N_("This request has been decided already."))
    school_class = session.get(SchoolClass, request.class_id)
    assert school_class is not None
    _decide(request, RequestStatus.DECLINED, actor, via)
    record_audit(
        session, actor, "join.declined", request.user_id, school_id=school_class.school_id,
        name=request.display_name, school_class=school_class.label, via=via,
    )  # fmt: skip


def _decide(request: JoinRequest, status: RequestStatus, actor: str, via: str) -> None:
    request.status = status
    request.decided_at = utcnow()
    request.decided_by = actor
    request.decided_in = via
