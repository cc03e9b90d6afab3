"""The rules of individual appointments, for the admin UI.

Who offers: a teacher of the school or its administration (the director). Who books: a
parent whose child is a pupil of a class the host teaches, or, when the host is of the
school's administration, a parent of any pupil of the school. Every check is made here,
on the server, for every request; each refusal names what to do. Two parents cannot hold
one slot and a parent holds at most one slot per offer: unique constraints
(`AppointmentBooking.holds_slot`, `holds_offer`) decide races, not a read before a write.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisioning.audit import record_audit
from provisioning.db.base import as_utc, utcnow
from provisioning.db.models import (
    AppointmentBooking,
    AppointmentSlot,
    Enrolment,
    EnrolmentRole,
    Person,
    SchoolClass,
)
from provisioning.i18n import N_
from provisioning.services.access import Access
from provisioning.services.schools import DomainError

MAX_SLOTS: Final = 40  # one offer generates at most this many slots
SHORTEST: Final = timedelta(minutes=5)
LONGEST: Final = timedelta(hours=2)
FORGET_AFTER: Final = timedelta(days=2)


class AppointmentInvalid(DomainError):
    """The form asks for something the rules refuse (422)."""


class AppointmentForbidden(DomainError):
    """The person may not offer, see or book this (403)."""


class SlotTaken(DomainError):
    """Someone else booked the slot first, or the parent holds a slot of the offer (409)."""


@dataclass(frozen=True)
class OfferForm:
    starts_at: datetime  # with a zone
    ends_at: datetime
    minutes: int | None  # the length of each slot; None: one slot from start to end


def may_offer(viewer: Access, school_id: int) -> bool:
    """Teachers of the school and its administration."""
    return viewer.may_manage_school(school_id) or school_id in viewer.teacher_of_schools


def slot_times(form: OfferForm, now: datetime) -> list[tuple[datetime, datetime]]:
    """The slots an offer makes: consecutive slots of `minutes` within start–end.

    Raises:
        AppointmentInvalid: the times or the length are wrong.
    """
    starts, ends = form.starts_at.astimezone(UTC), form.ends_at.astimezone(UTC)
    if ends <= starts:
        raise AppointmentInvalid(N_("Time: the end must come after the start."))
    if starts <= now:
        raise AppointmentInvalid(N_("Date and time: the start must be in the future."))
    if form.minutes is None:
        if ends - starts > LONGEST:
            raise AppointmentInvalid(N_("Time: a single slot lasts at most 2 hours."))
        return [(starts, ends)]
    length = timedelta(minutes=form.minutes)
    if not SHORTEST <= length <= LONGEST:
        raise AppointmentInvalid(N_("Slot length: from 5 to 120 minutes."))
    times: list[tuple[datetime, datetime]] = []
    moment = starts
    while moment + length <= ends:
        times.append((moment, moment + length))
        moment += length
    if not times:
        raise AppointmentInvalid(N_("Time: the period is shorter than one slot."))
    if len(times) > MAX_SLOTS:
        raise AppointmentInvalid(
            N_("Time: that makes %(count)s slots; at most %(limit)s. Shorten the period."),
            count=len(times),
            limit=MAX_SLOTS,
        )
    return times


def offer(
    session: Session,
    school_id: int,
    form: OfferForm,
    *,
    viewer: Access,
    now: datetime | None = None,
) -> list[AppointmentSlot]:
    """Offer slots in the school.

    Raises:
        AppointmentForbidden: not a teacher nor of the administration of the school.
        AppointmentInvalid: the times are wrong.
    """
    if not may_offer(viewer, school_id):
        raise AppointmentForbidden(
            N_("Appointments are offered by the school's teachers and its administration.")
        )
    times = slot_times(form, now or utcnow())
    offer_id = secrets.token_hex(8)
    slots = [
        AppointmentSlot(
            school_id=school_id, host_id=viewer.person_id, offer_id=offer_id, starts_at=s, ends_at=e
        )
        for s, e in times
    ]
    session.add_all(slots)
    session.flush()
    record_audit(
        session, viewer.user_id, "appointment.offered", str(len(slots)), school_id=school_id
    )
    return slots


def _children_classes(session: Session, viewer: Access) -> dict[int, set[int]]:
    """Each child's current classes (confirmed pupils only)."""
    rows = session.execute(
        select(Enrolment.person_id, Enrolment.class_id)
        .join(SchoolClass, SchoolClass.id == Enrolment.class_id)
        .where(
            Enrolment.person_id.in_(viewer.parent_of),
            Enrolment.role == EnrolmentRole.PUPIL,
            Enrolment.confirmed_at.is_not(None),  # a pupil the school has confirmed
            SchoolClass.archived_at.is_(None),
        )
    ).all()
    found: dict[int, set[int]] = {}
    for child, class_id in rows:
        found.setdefault(child, set()).add(class_id)
    return found


def _host_reach(session: Session, host_id: int, school_id: int) -> tuple[bool, set[int]]:
    """Whether the host is of the school's administration, and the classes they teach."""
    from provisioning.services.access import load_access  # one place decides roles

    host = session.get(Person, host_id)
    if host is None:
        return False, set()
    access = load_access(session, host)
    return access.may_manage_school(school_id), set(access.teaches_classes)


def children_for(session: Session, viewer: Access, slot: AppointmentSlot) -> list[int]:
    """The viewer's children on whose behalf they may book this slot (empty: none)."""
    admin, classes = _host_reach(session, slot.host_id, slot.school_id)
    school_classes = set(
        session.scalars(select(SchoolClass.id).where(SchoolClass.school_id == slot.school_id))
    )
    found = []
    for child, child_classes in sorted(_children_classes(session, viewer).items()):
        reach = school_classes if admin else classes
        if child_classes & reach & school_classes:
            found.append(child)
    return found


def open_slots(
    session: Session, viewer: Access, now: datetime | None = None
) -> list[AppointmentSlot]:
    """The future, free, uncancelled slots the viewer (a parent) may book, soonest first."""
    if not viewer.parent_of:
        return []
    moment = now or utcnow()
    children = _children_classes(session, viewer)
    classes = set().union(*children.values()) if children else set()
    schools = set(session.scalars(select(SchoolClass.school_id).where(SchoolClass.id.in_(classes))))
    taken = select(AppointmentBooking.holds_slot).where(AppointmentBooking.holds_slot.is_not(None))
    rows = session.scalars(
        select(AppointmentSlot)
        .where(
            AppointmentSlot.school_id.in_(schools),
            AppointmentSlot.cancelled_at.is_(None),
            AppointmentSlot.starts_at > moment,
            AppointmentSlot.id.not_in(taken),
        )
        .order_by(AppointmentSlot.starts_at)
        .limit(500)
    ).all()
    mine = set(
        session.scalars(
            select(AppointmentBooking.holds_offer).where(
                AppointmentBooking.parent_id == viewer.person_id,
                AppointmentBooking.holds_offer.is_not(None),
            )
        )
    )
    return [s for s in rows if s.offer_id not in mine and children_for(session, viewer, s)]


def book(
    session: Session,
    slot: AppointmentSlot,
    child_id: int | None,
    *,
    viewer: Access,
    now: datetime | None = None,
) -> AppointmentBooking:
    """Book the slot for a child; the clock makes the private room and posts the time.

    Raises:
        AppointmentForbidden: not a parent of a pupil the host teaches (or of the school).
        AppointmentInvalid: the slot is cancelled or has begun.
        SlotTaken: another parent was first, or the parent holds a slot of this offer.
    """
    children = children_for(session, viewer, slot)
    if not children or (child_id is not None and child_id not in children):
        raise AppointmentForbidden(
            N_(
                "Only parents of pupils this teacher teaches (or, with the administration, "
                "of the school's pupils) can book these slots."
            )
        )
    if slot.cancelled_at is not None or as_utc(slot.starts_at) <= (now or utcnow()):
        raise AppointmentInvalid(N_("This slot is cancelled or has begun; choose another."))
    booking = AppointmentBooking(
        slot_id=slot.id,
        parent_id=viewer.person_id,
        child_id=child_id if child_id is not None else children[0],
        holds_slot=slot.id,
        holds_offer=slot.offer_id,
    )
    nested = session.begin_nested()
    session.add(booking)
    try:
        nested.commit()
    except IntegrityError:
        nested.rollback()
        mine = session.scalar(
            select(AppointmentBooking.id).where(
                AppointmentBooking.holds_offer == slot.offer_id,
                AppointmentBooking.parent_id == viewer.person_id,
            )
        )
        if mine is not None:
            raise SlotTaken(
                N_("You have booked a slot of this offer already; cancel it to choose another.")
            ) from None
        raise SlotTaken(
            N_("Another parent has just booked this slot; choose another free one.")
        ) from None
    record_audit(
        session, viewer.user_id, "appointment.booked", str(slot.id), school_id=slot.school_id
    )
    return booking


def cancel_booking(
    session: Session, booking: AppointmentBooking, *, viewer: Access, now: datetime | None = None
) -> None:
    """The parent cancels their booking (before it begins); the slot is free again and the
    host is told in the room.

    Raises:
        AppointmentForbidden: not this booking's parent.
        AppointmentInvalid: cancelled already or begun.
    """
    if booking.parent_id != viewer.person_id:
        raise AppointmentForbidden(N_("Only the parent who booked it can cancel a booking."))
    moment = now or utcnow()
    if booking.cancelled_at is not None or as_utc(booking.slot.starts_at) <= moment:
        raise AppointmentInvalid(N_("This booking is cancelled already or has begun."))
    _release(booking, moment, "parent")
    record_audit(
        session,
        viewer.user_id,
        "appointment.cancelled",
        str(booking.slot_id),
        school_id=booking.slot.school_id,
    )


def cancel_slot(
    session: Session, slot: AppointmentSlot, *, viewer: Access, now: datetime | None = None
) -> None:
    """The host (or the school's administration) cancels a slot; its parent is told.

    Raises:
        AppointmentForbidden, AppointmentInvalid.
    """
    if slot.host_id != viewer.person_id and not viewer.may_manage_school(slot.school_id):
        raise AppointmentForbidden(N_("Only the teacher who offered a slot can cancel it."))
    moment = now or utcnow()
    if slot.cancelled_at is not None or as_utc(slot.starts_at) <= moment:
        raise AppointmentInvalid(N_("This slot is cancelled already or has begun."))
    slot.cancelled_at = moment
    booking = holder(session, slot)
    if booking is not None:
        _release(booking, moment, "host")
    record_audit(
        session,
        viewer.user_id,
        "appointment.slot_cancelled",
        str(slot.id),
        school_id=slot.school_id,
    )


def _release(booking: AppointmentBooking, moment: datetime, by: str) -> None:
    booking.cancelled_at, booking.cancelled_by = moment, by
    booking.holds_slot = booking.holds_offer = None


def holder(session: Session, slot: AppointmentSlot) -> AppointmentBooking | None:
    """The standing booking of a slot."""
    return session.scalar(
        select(AppointmentBooking).where(AppointmentBooking.holds_slot == slot.id)
    )


def hosted_by(
    session: Session, person_id: int, now: datetime | None = None
) -> list[AppointmentSlot]:
    """A host's slots that have not ended, soonest first."""
    moment = now or utcnow()
    return list(
        session.scalars(
            select(AppointmentSlot)
            .where(AppointmentSlot.host_id == person_id, AppointmentSlot.ends_at > moment)
            .order_by(AppointmentSlot.starts_at)
            .limit(500)
        )
    )


def bookings_of(
    session: Session, parent_id: int, now: datetime | None = None
) -> list[AppointmentBooking]:
    """A parent's standing bookings that have not ended, soonest first."""
    moment = now or utcnow()
    return list(
        session.scalars(
            select(AppointmentBooking)
            .join(AppointmentSlot, AppointmentSlot.id == AppointmentBooking.slot_id)
            .where(
                AppointmentBooking.parent_id == parent_id,
                AppointmentBooking.cancelled_at.is_(None),
                AppointmentSlot.ends_at > moment,
            )
            .order_by(AppointmentSlot.starts_at)
        )
    )


def owing(session: Session, now: datetime, limit: int) -> list[AppointmentBooking]:
    """Bookings that may still owe their room a message at `now` (for the clock)."""
    return list(
        session.scalars(
            select(AppointmentBooking)
            .join(AppointmentSlot, AppointmentSlot.id == AppointmentBooking.slot_id)
            .where(AppointmentSlot.ends_at > now - FORGET_AFTER)
            .order_by(AppointmentSlot.starts_at)
            .limit(limit)
        )
    )
