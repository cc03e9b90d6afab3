"""Who waits for whom: what a home page tells a teacher, a pupil and a parent.

A teacher learns who asks to join their classes (knocks on the class space, and pupils who
registered through a link in a school that wants them confirmed); a pupil learns that they
wait for a confirmation instead of being told their class is ready.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    JoinRequest,
    Person,
    RequestStatus,
    SchoolClass,
)


@dataclass(frozen=True)
class Waiting:
    """One person who waits for a decision in a class: `kind` is "knock" or "pupil"."""

    kind: str
    name: str
    school_class: SchoolClass
    detail: str  # the Matrix ID of a knock; empty for a registered pupil


def waiting_in_classes(session: Session, class_ids: Collection[int]) -> list[Waiting]:
    """Pending join requests and unconfirmed pupils of these classes, oldest first."""
    if not class_ids:
        return []
    classes = {
        c.id: c
        for c in session.scalars(
            select(SchoolClass).where(
                SchoolClass.id.in_(class_ids), SchoolClass.archived_at.is_(None)
            )
        )
    }
    knocks = session.scalars(
        select(JoinRequest)
        .where(JoinRequest.class_id.in_(classes), JoinRequest.status == RequestStatus.PENDING)
        .order_by(JoinRequest.created_at)
    ).all()
    pupils = session.execute(
        select(Person, Enrolment.class_id)
        .join(Enrolment, Enrolment.person_id == Person.id)
        .where(
            Enrolment.class_id.in_(classes),
            Enrolment.role == EnrolmentRole.PUPIL,
            Enrolment.confirmed_at.is_(None),
        )
        .order_by(Enrolment.created_at)
    ).all()
    found = [
        Waiting("knock", knock.display_name, classes[knock.class_id], knock.user_id)
        for knock in knocks
    ]
    found += [Waiting("pupil", person.display_name, classes[cid], "") for person, cid in pupils]
    return found


def classes_waiting_for_confirmation(session: Session, pupil_id: int) -> set[int]:
    """The classes where this pupil is recorded but not confirmed yet (at most one)."""
    return set(
        session.scalars(
            select(Enrolment.class_id).where(
                Enrolment.person_id == pupil_id,
                Enrolment.role == EnrolmentRole.PUPIL,
                Enrolment.confirmed_at.is_(None),
            )
        )
    )
