"""A class's parent meetings in the admin UI: scheduling from the class page, edits and
cancelling until the start, and the minutes afterwards.

Every rule is the service's (`provisioning.meetings.service`); a refused form is shown
again with the message and what was typed. The date and times are read in the region's
zone (`PARTA_TIMEZONE`). Saving asks the broadcasts' clock, which also runs the
meetings' notices, to tick at once.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from provisioning.api.deps import PathId, SessionDep, SettingsDep
from provisioning.broadcasts.clock import BroadcastClock
from provisioning.db.base import as_utc
from provisioning.db.models import ParentMeeting, School, SchoolClass
from provisioning.i18n import N_
from provisioning.meetings import service
from provisioning.services.access import Access
from provisioning.services.schools import DomainError
from provisioning.web import call_links
from provisioning.web.deps import Viewer, WebError
from provisioning.web.pages.schools import class_for, school_for
from provisioning.web.render import render, translate

router = APIRouter()

Agenda = Annotated[str, Form(max_length=service.AGENDA_MAX * 2)]  # the service names the limit
Minutes = Annotated[str, Form(max_length=service.MINUTES_MAX * 2)]
Day = Annotated[str, Form(alias="date", max_length=16)]
Clock = Annotated[str, Form(max_length=8)]
Mode = Annotated[str, Form(pattern="^(remote|hybrid)$")]


def _tick_soon(request: Request) -> None:
    clock: BroadcastClock | None = getattr(request.app.state, "broadcasts", None)
    if clock is not None:
        clock.request()


def _class(
    session: Session, viewer: Access, school_id: int, class_id: int
) -> tuple[School, SchoolClass]:
    """The school and class, for the class teacher or the school's administration only."""
    school = school_for(session, viewer, school_id, manage=False)
    school_class = class_for(session, school, class_id)
    if not service.may_hold(viewer, school_class):
        raise WebError(
            403,
            N_(
                "Parent meetings of a class are held by its class teacher and the school's "
                "administration."
            ),
        )
    return school, school_class


def _meeting(session: Session, school_class: SchoolClass, meeting_id: int) -> ParentMeeting:
    meeting = session.get(ParentMeeting, meeting_id)
    if meeting is None or meeting.class_id != school_class.id:
        raise WebError(404, N_("There is no such parent meeting in this class."))
    return meeting


def _form_of(meeting: ParentMeeting, zone: ZoneInfo) -> dict[str, str]:
    starts = as_utc(meeting.starts_at).astimezone(zone)
    ends = as_utc(meeting.ends_at).astimezone(zone)
    return {
        "agenda": meeting.agenda,
        "mode": "hybrid" if meeting.hybrid else "remote",
        "date": starts.date().isoformat(),
        "time_from": f"{starts:%H:%M}",
        "time_to": f"{ends:%H:%M}",
    }


def _page(
    request: Request,
    session: Session,
    school: School,
    school_class: SchoolClass,
    *,
    form: dict[str, str],
    meeting: ParentMeeting | None = None,
    error: str | None = None,
    minutes_error: str | None = None,
    minutes_text: str | None = None,
    status: int = 200,
) -> Response:
    settings = request.app.state.settings
    links = call_links.class_links(session, settings, [school_class])[school_class.id]
    return render(
        request,
        "meeting.html",
        status=status,
        school=school,
        school_class=school_class,
        meeting=meeting,
        phase=service.phase(meeting) if meeting else "new",
        form=form,
        error=error,
        minutes_error=minutes_error,
        minutes_text=minutes_text if minutes_text is not None else (meeting and meeting.minutes),
        classroom_link=links.parents_meeting,
        agenda_max=service.AGENDA_MAX,
        minutes_max=service.MINUTES_MAX,
    )


def _read(request: Request, zone: ZoneInfo, fields: dict[str, str]) -> service.MeetingForm:
    try:
        on = date.fromisoformat(fields["date"])
        starts = datetime.combine(on, time.fromisoformat(fields["time_from"]), zone)
        ends = datetime.combine(on, time.fromisoformat(fields["time_to"]), zone)
    except ValueError as exc:
        raise service.MeetingInvalid(N_("Give the date and the times from and to.")) from exc
    return service.MeetingForm(fields["agenda"], fields["mode"] == "hybrid", starts, ends)


def _problem(request: Request, exc: DomainError) -> tuple[str, int]:
    status = 403 if isinstance(exc, service.MeetingForbidden) else 422
    return translate(request, exc.template, **exc.params), status


def _back(school: School, school_class: SchoolClass) -> RedirectResponse:
    return RedirectResponse(
        f"/schools/{school.id}/classes/{school_class.id}#meetings", status_code=303
    )


@router.get("/schools/{school_id}/classes/{class_id}/meetings/new")
def new_meeting(
    request: Request, school_id: PathId, class_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    school, school_class = _class(session, viewer, school_id, class_id)
    return _page(request, session, school, school_class, form={"mode": "remote"})


@router.post("/schools/{school_id}/classes/{class_id}/meetings")
def create_meeting(
    request: Request,
    school_id: PathId,
    class_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    agenda: Agenda = "",
    mode: Mode = "remote",
    day: Day = "",
    time_from: Clock = "",
    time_to: Clock = "",
) -> Response:
    school, school_class = _class(session, viewer, school_id, class_id)
    fields = {
        "agenda": agenda,
        "mode": mode,
        "date": day,
        "time_from": time_from,
        "time_to": time_to,
    }
    try:
        form = _read(request, ZoneInfo(settings.timezone), fields)
        service.create(session, school_class, form, viewer=viewer)
        session.commit()
    except DomainError as exc:
        session.rollback()
        message, status = _problem(request, exc)
        return _page(
            request, session, school, school_class, form=fields, error=message, status=status
        )
    _tick_soon(request)
    return _back(school, school_class)


@router.get("/schools/{school_id}/classes/{class_id}/meetings/{meeting_id}")
def meeting_page(
    request: Request,
    school_id: PathId,
    class_id: PathId,
    meeting_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    school, school_class = _class(session, viewer, school_id, class_id)
    meeting = _meeting(session, school_class, meeting_id)
    form = _form_of(meeting, ZoneInfo(settings.timezone))
    return _page(request, session, school, school_class, form=form, meeting=meeting)


@router.post("/schools/{school_id}/classes/{class_id}/meetings/{meeting_id}")
def edit_meeting(
    request: Request,
    school_id: PathId,
    class_id: PathId,
    meeting_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    agenda: Agenda = "",
    mode: Mode = "remote",
    day: Day = "",
    time_from: Clock = "",
    time_to: Clock = "",
) -> Response:
    school, school_class = _class(session, viewer, school_id, class_id)
    meeting = _meeting(session, school_class, meeting_id)
    fields = {
        "agenda": agenda,
        "mode": mode,
        "date": day,
        "time_from": time_from,
        "time_to": time_to,
    }
    try:
        form = _read(request, ZoneInfo(settings.timezone), fields)
        service.edit(session, meeting, school_class, form, viewer=viewer)
        session.commit()
    except DomainError as exc:
        session.rollback()
        message, status = _problem(request, exc)
        return _page(
            request,
            session,
            school,
            school_class,
            form=fields,
            meeting=meeting,
            error=message,
            status=status,
        )
    _tick_soon(request)
    return _back(school, school_class)


@router.post("/schools/{school_id}/classes/{class_id}/meetings/{meeting_id}/cancel")
def cancel_meeting(
    request: Request,
    school_id: PathId,
    class_id: PathId,
    meeting_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    confirm: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    """Cancel after the person ticked the confirmation; the parents are told."""
    school, school_class = _class(session, viewer, school_id, class_id)
    meeting = _meeting(session, school_class, meeting_id)
    form = _form_of(meeting, ZoneInfo(settings.timezone))
    try:
        if confirm != "yes":
            raise service.MeetingInvalid(
                N_("Tick the box to confirm that the meeting is cancelled.")
            )
        service.cancel(session, meeting, school_class, viewer=viewer)
        session.commit()
    except DomainError as exc:
        session.rollback()
        message, status = _problem(request, exc)
        return _page(
            request,
            session,
            school,
            school_class,
            form=form,
            meeting=meeting,
            error=message,
            status=status,
        )
    _tick_soon(request)
    return _back(school, school_class)


@router.post("/schools/{school_id}/classes/{class_id}/meetings/{meeting_id}/minutes")
def save_minutes(
    request: Request,
    school_id: PathId,
    class_id: PathId,
    meeting_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    minutes: Minutes = "",
) -> Response:
    """Store the minutes; the clock posts them into the parents chat (a change: a correction)."""
    school, school_class = _class(session, viewer, school_id, class_id)
    meeting = _meeting(session, school_class, meeting_id)
    form = _form_of(meeting, ZoneInfo(settings.timezone))
    try:
        service.save_minutes(session, meeting, school_class, minutes, viewer=viewer)
        session.commit()
    except DomainError as exc:
        session.rollback()
        message, status = _problem(request, exc)
        return _page(
            request,
            session,
            school,
            school_class,
            form=form,
            meeting=meeting,
            minutes_error=message,
            minutes_text=minutes,
            status=status,
        )
    _tick_soon(request)
    return RedirectResponse(
        f"/schools/{school.id}/classes/{school_class.id}/meetings/{meeting.id}#minutes",
        status_code=303,
    )
