"""Requests that wait for a decision: teachers applying to a school, knocks on a class.

Both are decided by people with the right to decide (the school's administration for
teachers; the class's teachers for join requests), in the admin UI or — for knocks — in
any Matrix client. A decision only changes the database; the reconciler then places
people on Matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.audit import AutomaticActor, record_audit
from provisioning.db.base import utcnow
from provisioning.db.models import (
    EnrolmentRole,
    JoinRequest,
    Person,
    RequestStatus,
    Role,
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


def accept_join_request(session: Session, request: JoinRequest, *, actor: str, via: str) -> Person:
    """The knocker becomes a pupil of the class (recorded if Parta did not know them).

    Raises:
        DomainError: decided already, or a pupil of another class (moving pupils between
            classes is the administration's decision, on the school's pages).
    """
    if request.status is not RequestStatus.PENDING:
        raise DomainError(N_("This request has been decided already."))
    school_class = session.get(SchoolClass, request.class_id)
    assert school_class is not None
    person = session.scalar(select(Person).where(Person.matrix_user_id == request.user_id))
    if person is None:
        person = svc.add_person(session, request.display_name, matrix_user_id=request.user_id)
        person.account_created_at = utcnow()  # they knocked, so the account exists
    svc.enrol(session, person, school_class, EnrolmentRole.PUPIL, actor=actor)
    _decide(request, RequestStatus.APPROVED, actor, via)
    record_audit(
        session, actor, "join.accepted", request.user_id, school_id=school_class.school_id,
        name=person.display_name, school_class=school_class.label, via=via,
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
