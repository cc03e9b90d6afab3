"""The rules of a parent meeting, for the admin UI (and any later API).

Who holds a class's meetings: its class teacher and the school's administration; a
subject teacher or another class's teacher is refused (`may_hold`). The meeting lives in
the class's parents chat, whose call «Родительское собрание» starts in open mode. Each
rule's refusal names the field and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from provisioning.audit import record_audit
from provisioning.db.base import as_utc, utcnow
from provisioning.db.models import (
    ManagedRoom,
    MeetingState,
    ParentMeeting,
    RoomKind,
    SchoolClass,
)
from provisioning.i18n import N_
from provisioning.services.access import Access
from provisioning.services.schools import DomainError

AGENDA_MAX: Final = 2000
MINUTES_MAX: Final = 8000
LONGEST: Final = timedelta(hours=6)


class MeetingInvalid(DomainError):
    """The form asks for something the rules refuse (422)."""


class MeetingForbidden(DomainError):
    """The person is not the class's class teacher nor of the school's administration (403)."""


@dataclass(frozen=True)
class MeetingForm:
    agenda: str
    hybrid: bool
    starts_at: datetime  # with a zone
    ends_at: datetime


def may_hold(viewer: Access, school_class: SchoolClass) -> bool:
    """The class teacher of this class, or the school's administration."""
    return viewer.may_manage_school(school_class.school_id) or (
        school_class.id in viewer.class_teacher_of
    )


def _require_holder(viewer: Access, school_class: SchoolClass) -> None:
    if not may_hold(viewer, school_class):
        raise MeetingForbidden(
            N_(
                "Parent meetings of a class are held by its class teacher and the school's "
                "administration."
            )
        )


def parents_chat(session: Session, school_class: SchoolClass) -> ManagedRoom:
    """The class's parents chat, made on the homeserver.

    Raises:
        MeetingInvalid: not made yet.
    """
    room = session.scalar(
        select(ManagedRoom).where(
            ManagedRoom.class_id == school_class.id, ManagedRoom.kind == RoomKind.CLASS_PARENTS
        )
    )
    if room is None or room.room_id is None:
        raise MeetingInvalid(
            N_("The class's parents chat is not on the homeserver yet; try again in a minute.")
        )
    return room


def phase(meeting: ParentMeeting, now: datetime | None = None) -> str:
    """`scheduled`, `live`, `ended` or `cancelled`: only a cancellation is stored, the rest
    follows from the clock."""
    if meeting.state is MeetingState.CANCELLED:
        return "cancelled"
    moment = now or utcnow()
    if moment < as_utc(meeting.starts_at):
        return "scheduled"
    return "live" if moment < as_utc(meeting.ends_at) else "ended"


def _checked(form: MeetingForm, now: datetime) -> str:
    agenda = form.agenda.replace("\r\n", "\n").strip()
    if not agenda:
        raise MeetingInvalid(N_("Agenda: write what the meeting is about."))
    if len(agenda) > AGENDA_MAX:
        raise MeetingInvalid(
            N_("Agenda: %(length)s characters; at most %(limit)s. Shorten it."),
            length=len(agenda),
            limit=AGENDA_MAX,
        )
    starts, ends = form.starts_at, form.ends_at
    if ends <= starts:
        raise MeetingInvalid(N_("Time: the meeting must end after it starts."))
    if ends - starts > LONGEST:
        raise MeetingInvalid(N_("Time: a meeting lasts at most 6 hours."))
    if starts <= now:
        raise MeetingInvalid(N_("Date and time: the start must be in the future."))
    return agenda


def create(
    session: Session,
    school_class: SchoolClass,
    form: MeetingForm,
    *,
    viewer: Access,
    now: datetime | None = None,
) -> ParentMeeting:
    """Schedule a meeting; the clock posts the invitation into the parents chat.

    Raises:
        MeetingForbidden: not the class teacher nor the administration.
        MeetingInvalid: a field is wrong, the class graduated, or its chat is not made yet.
    """
    _require_holder(viewer, school_class)
    if school_class.archived_at is not None:
        raise MeetingInvalid(N_("The class has graduated; its rooms are read-only."))
    agenda = _checked(form, now or utcnow())
    room = parents_chat(session, school_class)
    meeting = ParentMeeting(
        school_id=school_class.school_id,
        class_id=school_class.id,
        room_alias=room.alias,
        agenda=agenda,
        hybrid=form.hybrid,
        starts_at=form.starts_at.astimezone(UTC),  # SQLite keeps the digits, not the zone
        ends_at=form.ends_at.astimezone(UTC),
        state=MeetingState.SCHEDULED,
        version=1,
        minutes_version=0,
        created_by=viewer.user_id,
    )
    session.add(meeting)
    session.flush()
    record_audit(
        session,
        viewer.user_id,
        "meeting.scheduled",
        school_class.label,
        school_id=school_class.school_id,
        meeting_id=meeting.id,
    )
    return meeting


def require_editable(
    meeting: ParentMeeting, school_class: SchoolClass, viewer: Access, now: datetime | None = None
) -> None:
    """Changes until it starts, by its holders only.

    Raises:
        MeetingForbidden, MeetingInvalid.
    """
    _require_holder(viewer, school_class)
    if phase(meeting, now) != "scheduled":
        raise MeetingInvalid(
            N_("The meeting has started, is over or is cancelled; it can no longer be changed.")
        )


def edit(
    session: Session,
    meeting: ParentMeeting,
    school_class: SchoolClass,
    form: MeetingForm,
    *,
    viewer: Access,
    now: datetime | None = None,
) -> None:
    """Change it before the start; the clock posts one update into the chat."""
    moment = now or utcnow()
    require_editable(meeting, school_class, viewer, moment)
    meeting.agenda = _checked(form, moment)
    meeting.hybrid = form.hybrid
    meeting.starts_at = form.starts_at.astimezone(UTC)
    meeting.ends_at = form.ends_at.astimezone(UTC)
    meeting.version += 1
    meeting.updated_at = moment
    record_audit(
        session,
        viewer.user_id,
        "meeting.edited",
        school_class.label,
        school_id=meeting.school_id,
        meeting_id=meeting.id,
    )


def cancel(
    session: Session,
    meeting: ParentMeeting,
    school_class: SchoolClass,
    *,
    viewer: Access,
    now: datetime | None = None,
) -> None:
    """Cancel before the start; the clock tells the parents."""
    moment = now or utcnow()
    require_editable(meeting, school_class, viewer, moment)
    meeting.state = MeetingState.CANCELLED
    meeting.cancelled_at = moment
    record_audit(
        session,
        viewer.user_id,
        "meeting.cancelled",
        school_class.label,
        school_id=meeting.school_id,
        meeting_id=meeting.id,
    )


def save_minutes(
    session: Session,
    meeting: ParentMeeting,
    school_class: SchoolClass,
    text: str,
    *,
    viewer: Access,
    now: datetime | None = None,
) -> bool:
    """Store the minutes (plain text) once the meeting has begun; the clock posts them, and
    after a change a correction. False when the text is the same (nothing to post).

    Raises:
        MeetingForbidden, MeetingInvalid.
    """
    _require_holder(viewer, school_class)
    moment = now or utcnow()
    state = phase(meeting, moment)
    if state == "cancelled":
        raise MeetingInvalid(N_("The meeting was cancelled; it has no minutes."))
    if state == "scheduled":
        raise MeetingInvalid(N_("Minutes: write them once the meeting has begun."))
    minutes = text.replace("\r\n", "\n").strip()
    if not minutes:
        raise MeetingInvalid(N_("Minutes: write what was discussed and decided."))
    if len(minutes) > MINUTES_MAX:
        raise MeetingInvalid(
            N_("Minutes: %(length)s characters; at most %(limit)s. Shorten them."),
            length=len(minutes),
            limit=MINUTES_MAX,
        )
    if minutes == meeting.minutes:
        return False
    meeting.minutes = minutes
    meeting.minutes_version += 1
    meeting.minutes_by, meeting.minutes_at = viewer.user_id, moment
    record_audit(
        session,
        viewer.user_id,
        "meeting.minutes",
        school_class.label,
        school_id=meeting.school_id,
        meeting_id=meeting.id,
    )
    return True


def of_class(session: Session, class_id: int, now: datetime | None = None) -> list[ParentMeeting]:
    """The class's meetings: upcoming and under way first (soonest first), then the past
    and cancelled (latest first); the latest 100."""
    rows = session.scalars(
        select(ParentMeeting)
        .where(ParentMeeting.class_id == class_id)
        .order_by(ParentMeeting.starts_at.desc())
        .limit(100)
    ).all()
    moment = now or utcnow()
    active = [r for r in rows if phase(r, moment) in ("scheduled", "live")]
    active.sort(key=lambda r: as_utc(r.starts_at))
    return active + [r for r in rows if r not in active]


def owing(session: Session, now: datetime, forget: timedelta, limit: int) -> list[ParentMeeting]:
    """The meetings that may still owe their chat a message at `now` (for the clock)."""
    since = now - forget
    return list(
        session.scalars(
            select(ParentMeeting)
            .where(or_(ParentMeeting.ends_at > since, ParentMeeting.minutes_at > since))
            .order_by(ParentMeeting.starts_at)
            .limit(limit)
        )
    )
