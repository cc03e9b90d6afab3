"""A school's broadcasts in the admin UI: the list, the form («Новая трансляция»), edits
until the start, and cancelling with a confirmation.

The form follows the reference: title, speakers, audience (the members of a chosen chat),
date, time from–to in the region's zone, cover, description. Every rule is the service's
(`provisioning.broadcasts.service`), the same as the REST API's; a refused form is shown
again with the message and what was typed (a browser cannot keep a chosen file).
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from matrix.errors import MatrixError
from provisioning.api.deps import MatrixDep, PathId, SessionDep, SettingsDep
from provisioning.broadcasts import service
from provisioning.broadcasts.clock import BroadcastClock
from provisioning.broadcasts.cover import MIN_HEIGHT, MIN_WIDTH
from provisioning.broadcasts.intake import read_cover, upload_cover
from provisioning.db.base import as_utc
from provisioning.db.models import Broadcast, School
from provisioning.i18n import N_
from provisioning.services import directory
from provisioning.services.access import Access
from provisioning.services.schools import DomainError
from provisioning.web.deps import Viewer, WebError
from provisioning.web.pages.schools import school_for
from provisioning.web.render import render, translate

router = APIRouter()

Field = Annotated[str, Form(max_length=4000)]
Short = Annotated[str, Form(max_length=255)]


class FormProblem(Exception):
    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _tick_soon(request: Request) -> None:
    clock: BroadcastClock | None = getattr(request.app.state, "broadcasts", None)
    if clock is not None:
        clock.request()


def _broadcast(session: Session, viewer: Access, school: School, broadcast_id: int) -> Broadcast:
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.school_id != school.id:
        raise WebError(404, N_("There is no such broadcast in this school."))
    if not service.may_use_room(viewer, broadcast.audience):
        raise WebError(403, N_("This broadcast is in a chat of a class you do not teach."))
    return broadcast


def _form_of(broadcast: Broadcast, zone: ZoneInfo) -> dict[str, object]:
    starts = as_utc(broadcast.starts_at).astimezone(zone)
    ends = as_utc(broadcast.ends_at).astimezone(zone)
    return {
        "title": broadcast.title,
        "description": broadcast.description,
        "speakers": list(broadcast.speakers),
        "audience_room": broadcast.audience_alias,
        "date": starts.date().isoformat(),
        "time_from": f"{starts:%H:%M}",
        "time_to": f"{ends:%H:%M}",
    }


def _page(
    request: Request,
    session: Session,
    viewer: Access,
    school: School,
    *,
    form: dict[str, object],
    broadcast: Broadcast | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    rooms = {room.alias for room in service.audience_rooms(session, viewer, school.id)}
    return render(
        request,
        "broadcast.html",
        status=status,
        school=school,
        broadcast=broadcast,
        form=form,
        error=error,
        staff=directory.school_staff(session, school),
        rooms=[row for row in directory.school_rooms(session, school) if row.room.alias in rooms],
        min_width=MIN_WIDTH,
        min_height=MIN_HEIGHT,
    )


def _moments(
    request: Request, zone: ZoneInfo, day: str, time_from: str, time_to: str
) -> tuple[datetime, datetime]:
    """The date and the two times, read in the region's zone; an end before the start
    stays before it (the service names that)."""
    try:
        on = date.fromisoformat(day)
        starts = datetime.combine(on, time.fromisoformat(time_from), zone)
        ends = datetime.combine(on, time.fromisoformat(time_to), zone)
    except ValueError as exc:
        raise FormProblem(
            translate(request, N_("Give the date and the times from and to."))
        ) from exc
    return starts, ends


async def _save(
    request: Request,
    session: Session,
    viewer: Access,
    school: School,
    matrix: MatrixDep,
    fields: dict[str, object],
    cover: UploadFile | None,
    broadcast: Broadcast | None,
) -> Broadcast:
    zone = ZoneInfo(request.app.state.settings.timezone)
    starts, ends = _moments(
        request, zone, str(fields["date"]), str(fields["time_from"]), str(fields["time_to"])
    )
    speakers = fields["speakers"]
    form = service.BroadcastForm(
        str(fields["title"]),
        str(fields["description"]),
        speakers if isinstance(speakers, list) else [],
        str(fields["audience_room"]),
        starts,
        ends,
    )
    try:
        if broadcast is not None:
            service.require_editable(broadcast, viewer)
        service.check(session, school.id, form, viewer=viewer, current=broadcast)
        checked = await read_cover(cover)
        if checked is None and broadcast is None:
            raise service.BroadcastInvalid(service.COVER_MISSING)
        mxc = None if checked is None else await upload_cover(matrix, checked)
        if broadcast is None:
            assert checked is not None and mxc is not None
            broadcast = service.create(session, school.id, form, checked, mxc, viewer=viewer)
        else:
            new_cover = None if checked is None or mxc is None else (checked, mxc)
            service.edit(session, broadcast, form, new_cover, viewer=viewer)
        session.commit()
    except DomainError as exc:
        session.rollback()
        status = 403 if isinstance(exc, service.BroadcastForbidden) else 422
        raise FormProblem(translate(request, exc.template, **exc.params), status) from exc
    except MatrixError as exc:
        session.rollback()
        raise FormProblem(
            translate(
                request,
                N_("The homeserver did not take the cover (%(problem)s). Try again later."),
                problem=str(exc),
            ),
            502,
        ) from exc
    _tick_soon(request)
    return broadcast


@router.get("/schools/{school_id}/broadcasts/new")
def new_broadcast(
    request: Request, school_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    school = school_for(session, viewer, school_id, manage=False)
    return _page(request, session, viewer, school, form={"speakers": [viewer.user_id]})


@router.post("/schools/{school_id}/broadcasts")
async def create_broadcast(
    request: Request,
    school_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    matrix: MatrixDep,
    title: Field = "",
    description: Field = "",
    speakers: Annotated[list[str] | None, Form()] = None,
    audience_room: Short = "",
    day: Annotated[str, Form(alias="date", max_length=16)] = "",
    time_from: Annotated[str, Form(max_length=8)] = "",
    time_to: Annotated[str, Form(max_length=8)] = "",
    cover: Annotated[UploadFile | None, File()] = None,
) -> Response:
    school = school_for(session, viewer, school_id, manage=False)
    fields: dict[str, object] = {
        "title": title,
        "description": description,
        "speakers": speakers or [],
        "audience_room": audience_room,
        "date": day,
        "time_from": time_from,
        "time_to": time_to,
    }
    try:
        await _save(request, session, viewer, school, matrix, fields, cover, None)
    except FormProblem as problem:
        return _page(
            request,
            session,
            viewer,
            school,
            form=fields,
            error=problem.message,
            status=problem.status,
        )
    return RedirectResponse(f"/schools/{school.id}#broadcasts", status_code=303)


@router.get("/schools/{school_id}/broadcasts/{broadcast_id}")
def broadcast_page(
    request: Request,
    school_id: PathId,
    broadcast_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    school = school_for(session, viewer, school_id, manage=False)
    broadcast = _broadcast(session, viewer, school, broadcast_id)
    form = _form_of(broadcast, ZoneInfo(settings.timezone))
    return _page(request, session, viewer, school, form=form, broadcast=broadcast)


@router.post("/schools/{school_id}/broadcasts/{broadcast_id}")
async def edit_broadcast(
    request: Request,
    school_id: PathId,
    broadcast_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    matrix: MatrixDep,
    title: Field = "",
    description: Field = "",
    speakers: Annotated[list[str] | None, Form()] = None,
    audience_room: Short = "",
    day: Annotated[str, Form(alias="date", max_length=16)] = "",
    time_from: Annotated[str, Form(max_length=8)] = "",
    time_to: Annotated[str, Form(max_length=8)] = "",
    cover: Annotated[UploadFile | None, File()] = None,
) -> Response:
    school = school_for(session, viewer, school_id, manage=False)
    broadcast = _broadcast(session, viewer, school, broadcast_id)
    fields: dict[str, object] = {
        "title": title,
        "description": description,
        "speakers": speakers or [],
        "audience_room": audience_room,
        "date": day,
        "time_from": time_from,
        "time_to": time_to,
    }
    try:
        await _save(request, session, viewer, school, matrix, fields, cover, broadcast)
    except FormProblem as problem:
        return _page(
            request,
            session,
            viewer,
            school,
            form=fields,
            broadcast=broadcast,
            error=problem.message,
            status=problem.status,
        )
    return RedirectResponse(f"/schools/{school.id}#broadcasts", status_code=303)


@router.post("/schools/{school_id}/broadcasts/{broadcast_id}/cancel")
def cancel_broadcast(
    request: Request,
    school_id: PathId,
    broadcast_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    confirm: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    """Cancel after the person ticked the confirmation; the audience is told."""
    school = school_for(session, viewer, school_id, manage=False)
    broadcast = _broadcast(session, viewer, school, broadcast_id)
    form = _form_of(broadcast, ZoneInfo(settings.timezone))
    if confirm != "yes":
        message = translate(request, N_("Tick the box to confirm that the broadcast is cancelled."))
        return _page(
            request,
            session,
            viewer,
            school,
            form=form,
            broadcast=broadcast,
            error=message,
            status=422,
        )
    try:
        service.cancel(session, broadcast, viewer=viewer)
        session.commit()
    except DomainError as exc:
        session.rollback()
        return _page(
            request,
            session,
            viewer,
            school,
            form=form,
            broadcast=broadcast,
            error=translate(request, exc.template, **exc.params),
            status=422,
        )
    _tick_soon(request)
    return RedirectResponse(f"/schools/{school.id}#broadcasts", status_code=303)
