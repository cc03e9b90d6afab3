"""REST API for parent meetings: `/api/v1/schools/{school_id}/classes/{class_id}/meetings`.

The same sign-in and refusals as the broadcasts' API (`provisioning.api.broadcasts`): a
Matrix access token as a Bearer token; 403 for anyone but the class's class teacher and
the school's administration; 422 `M_INVALID_PARAM` naming what is wrong. Bodies are JSON
(a meeting has no file); times are ISO 8601 with a zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from foundation.web import ApiError
from provisioning.api.broadcasts import Staff
from provisioning.api.deps import PathId, SessionDep
from provisioning.broadcasts.clock import BroadcastClock
from provisioning.broadcasts.intake import parse_time
from provisioning.db.base import as_utc
from provisioning.db.models import ParentMeeting, SchoolClass
from provisioning.meetings import service
from provisioning.services.access import Access
from provisioning.services.schools import DomainError

router = APIRouter(prefix="/api/v1", tags=["meetings"])

# Bounds at the edge, above the service's own limits, so the service names the excess.
AgendaText = Annotated[str, Field(max_length=service.AGENDA_MAX * 2)]
Moment = Annotated[str, Field(max_length=64)]


class MeetingIn(BaseModel):
    agenda: AgendaText
    hybrid: bool = False
    starts_at: Moment
    ends_at: Moment


class MeetingChange(BaseModel):
    agenda: AgendaText | None = None
    hybrid: bool | None = None
    starts_at: Moment | None = None
    ends_at: Moment | None = None


class MinutesIn(BaseModel):
    minutes: Annotated[str, Field(max_length=service.MINUTES_MAX * 2)]


class MeetingPublic(BaseModel):
    id: int
    school_id: int
    class_id: int
    room_id: str | None  # the class's parents chat
    agenda: str
    hybrid: bool
    starts_at: datetime
    ends_at: datetime
    state: str  # scheduled, live, ended, cancelled
    created_by: str
    minutes: str | None
    minutes_version: int


def _class(session: Session, staff: Access, school_id: int, class_id: int) -> SchoolClass:
    school_class = session.get(SchoolClass, class_id)
    if school_class is None or school_class.school_id != school_id:
        raise ApiError(404, "M_NOT_FOUND", f"The school has no class {class_id}")
    if not service.may_hold(staff, school_class):
        raise ApiError(
            403,
            "M_FORBIDDEN",
            "Parent meetings of a class are held by its class teacher and the school's "
            "administration",
        )
    return school_class


def _meeting(session: Session, school_class: SchoolClass, meeting_id: int) -> ParentMeeting:
    meeting = session.get(ParentMeeting, meeting_id)
    if meeting is None or meeting.class_id != school_class.id:
        raise ApiError(404, "M_NOT_FOUND", f"The class has no parent meeting {meeting_id}")
    return meeting


def _refused(session: Session, exc: DomainError) -> ApiError:
    session.rollback()
    if isinstance(exc, service.MeetingForbidden):
        return ApiError(403, "M_FORBIDDEN", str(exc))
    return ApiError(422, "M_INVALID_PARAM", str(exc))


def public(meeting: ParentMeeting) -> MeetingPublic:
    return MeetingPublic(
        id=meeting.id,
        school_id=meeting.school_id,
        class_id=meeting.class_id,
        room_id=meeting.room.room_id,
        agenda=meeting.agenda,
        hybrid=meeting.hybrid,
        starts_at=as_utc(meeting.starts_at),
        ends_at=as_utc(meeting.ends_at),
        state=service.phase(meeting),
        created_by=meeting.created_by,
        minutes=meeting.minutes,
        minutes_version=meeting.minutes_version,
    )


def _tick_soon(request: Request) -> None:
    clock: BroadcastClock | None = getattr(request.app.state, "broadcasts", None)
    if clock is not None:
        clock.request()


BASE = "/schools/{school_id}/classes/{class_id}/meetings"


@router.get(BASE)
def list_meetings(
    school_id: PathId, class_id: PathId, session: SessionDep, staff: Staff
) -> list[MeetingPublic]:
    """The class's meetings: upcoming and under way first."""
    school_class = _class(session, staff, school_id, class_id)
    return [public(row) for row in service.of_class(session, school_class.id)]


@router.post(BASE, status_code=201)
def create_meeting(
    school_id: PathId,
    class_id: PathId,
    body: MeetingIn,
    request: Request,
    session: SessionDep,
    staff: Staff,
) -> MeetingPublic:
    """Schedule a meeting; the bot invites the parents in their chat within seconds."""
    school_class = _class(session, staff, school_id, class_id)
    try:
        form = service.MeetingForm(
            body.agenda,
            body.hybrid,
            parse_time("starts_at", body.starts_at),
            parse_time("ends_at", body.ends_at),
        )
        meeting = service.create(session, school_class, form, viewer=staff)
        session.commit()
    except DomainError as exc:
        raise _refused(session, exc) from exc
    _tick_soon(request)
    return public(meeting)


@router.get(BASE + "/{meeting_id}")
def get_meeting(
    school_id: PathId, class_id: PathId, meeting_id: PathId, session: SessionDep, staff: Staff
) -> MeetingPublic:
    school_class = _class(session, staff, school_id, class_id)
    return public(_meeting(session, school_class, meeting_id))


@router.patch(BASE + "/{meeting_id}")
def edit_meeting(
    school_id: PathId,
    class_id: PathId,
    meeting_id: PathId,
    body: MeetingChange,
    request: Request,
    session: SessionDep,
    staff: Staff,
) -> MeetingPublic:
    """Change what is given (the rest stays) until the start; 422 after."""
    school_class = _class(session, staff, school_id, class_id)
    meeting = _meeting(session, school_class, meeting_id)
    try:
        form = service.MeetingForm(
            meeting.agenda if body.agenda is None else body.agenda,
            meeting.hybrid if body.hybrid is None else body.hybrid,
            as_utc(meeting.starts_at)
            if body.starts_at is None
            else parse_time("starts_at", body.starts_at),
            as_utc(meeting.ends_at)
            if body.ends_at is None
            else parse_time("ends_at", body.ends_at),
        )
        service.edit(session, meeting, school_class, form, viewer=staff)
        session.commit()
    except DomainError as exc:
        raise _refused(session, exc) from exc
    _tick_soon(request)
    return public(meeting)


@router.post(BASE + "/{meeting_id}/cancel")
def cancel_meeting(
    school_id: PathId,
    class_id: PathId,
    meeting_id: PathId,
    request: Request,
    session: SessionDep,
    staff: Staff,
) -> MeetingPublic:
    """Cancel before the start; the bot tells the parents."""
    school_class = _class(session, staff, school_id, class_id)
    meeting = _meeting(session, school_class, meeting_id)
    try:
        service.cancel(session, meeting, school_class, viewer=staff)
        session.commit()
    except DomainError as exc:
        raise _refused(session, exc) from exc
    _tick_soon(request)
    return public(meeting)


@router.put(BASE + "/{meeting_id}/minutes")
def put_minutes(
    school_id: PathId,
    class_id: PathId,
    meeting_id: PathId,
    body: MinutesIn,
    request: Request,
    session: SessionDep,
    staff: Staff,
) -> MeetingPublic:
    """The minutes (plain text) once the meeting has begun; posted into the parents chat,
    a changed text as a correction."""
    school_class = _class(session, staff, school_id, class_id)
    meeting = _meeting(session, school_class, meeting_id)
    try:
        service.save_minutes(session, meeting, school_class, body.minutes, viewer=staff)
        session.commit()
    except DomainError as exc:
        raise _refused(session, exc) from exc
    _tick_soon(request)
    return public(meeting)
