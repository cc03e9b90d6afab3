"""REST API for broadcasts: `/api/v1/schools/{school_id}/broadcasts` (issue 21).

Same Matrix-token sign-in as the rest of `/api/v1`, but open to a school's teachers too:
a school's administration schedules into any of its chats, a teacher into the chats of
the classes they teach (`provisioning.broadcasts.service.may_use_room`). Bodies are
multipart (the cover is a file); 422 names what is wrong, for a cover its size.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.web import ApiError, bearer_token
from matrix.errors import MatrixError
from provisioning.api.auth import verified_user
from provisioning.api.deps import MatrixDep, PathId, SessionDep, SettingsDep
from provisioning.broadcasts import service
from provisioning.broadcasts.clock import BroadcastClock
from provisioning.broadcasts.cover import Cover
from provisioning.broadcasts.intake import parse_time, read_cover, upload_cover
from provisioning.db.base import as_utc
from provisioning.db.models import Broadcast, Person, School
from provisioning.services.access import Access, load_access
from provisioning.services.schools import DomainError

router = APIRouter(prefix="/api/v1", tags=["broadcasts"])


class CoverPublic(BaseModel):
    mxc: str
    width: int
    height: int
    size: int
    mimetype: str


class BroadcastPublic(BaseModel):
    id: int
    school_id: int
    title: str
    description: str
    speakers: list[str]
    audience_room: str  # the chat's alias, `#school-…:server`
    audience_room_id: str | None
    starts_at: datetime
    ends_at: datetime
    state: str
    cover: CoverPublic
    created_by: str
    announcement_event_id: str | None


async def current_staff(request: Request, session: SessionDep) -> Access:
    """The caller's rights: region or school administration, or a teacher."""
    token = bearer_token(request)
    if token is None:
        raise ApiError(
            401, "M_MISSING_TOKEN", "Sign in: send your Matrix access token as a Bearer token"
        )
    user_id = await verified_user(request, token)

    def load() -> Access | None:
        person = session.scalar(select(Person).where(Person.matrix_user_id == user_id))
        return None if person is None else load_access(session, person)

    access = await run_in_threadpool(load)
    if access is None or not access.is_staff:
        raise ApiError(403, "M_FORBIDDEN", "Only a school's administration and teachers do this")
    return access


Staff = Annotated[Access, Depends(current_staff)]
Text = Annotated[str, Form(max_length=4000)]


def _school(session: Session, staff: Access, school_id: int) -> School:
    if not staff.may_view_school(school_id):
        raise ApiError(403, "M_FORBIDDEN", "You are not of this school's staff")
    school = session.get(School, school_id)
    if school is None:
        raise ApiError(404, "M_NOT_FOUND", f"There is no school {school_id}")
    return school


def _broadcast(session: Session, staff: Access, school_id: int, broadcast_id: int) -> Broadcast:
    school = _school(session, staff, school_id)
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.school_id != school.id:
        raise ApiError(404, "M_NOT_FOUND", f"The school has no broadcast {broadcast_id}")
    if not service.may_use_room(staff, broadcast.audience):
        raise ApiError(
            403, "M_FORBIDDEN", "This broadcast is in a chat of a class you do not teach"
        )
    return broadcast


def _refused(session: Session, exc: DomainError) -> ApiError:
    session.rollback()
    if isinstance(exc, service.BroadcastForbidden):
        return ApiError(403, "M_FORBIDDEN", str(exc))
    return ApiError(422, "M_INVALID_PARAM", str(exc))


def public(broadcast: Broadcast, server_name: str) -> BroadcastPublic:
    return BroadcastPublic(
        id=broadcast.id,
        school_id=broadcast.school_id,
        title=broadcast.title,
        description=broadcast.description,
        speakers=list(broadcast.speakers),
        audience_room=f"#{broadcast.audience_alias}:{server_name}",
        audience_room_id=broadcast.audience.room_id,
        starts_at=as_utc(broadcast.starts_at),
        ends_at=as_utc(broadcast.ends_at),
        state=broadcast.state.value,
        cover=CoverPublic(
            mxc=broadcast.cover_mxc,
            width=broadcast.cover_width,
            height=broadcast.cover_height,
            size=broadcast.cover_bytes,
            mimetype=broadcast.cover_mimetype,
        ),
        created_by=broadcast.created_by,
        announcement_event_id=broadcast.announcement_event_id,
    )


def _tick_soon(request: Request) -> None:
    clock: BroadcastClock | None = getattr(request.app.state, "broadcasts", None)
    if clock is not None:
        clock.request()


async def _uploaded(matrix: MatrixDep, cover: Cover) -> str:
    try:
        return await upload_cover(matrix, cover)
    except MatrixError as exc:
        raise ApiError(
            502, "M_UNKNOWN", f"The homeserver did not take the cover ({exc}); try again"
        ) from exc


@router.get("/schools/{school_id}/broadcasts")
def list_broadcasts(
    school_id: PathId, session: SessionDep, staff: Staff, settings: SettingsDep
) -> list[BroadcastPublic]:
    """The school's broadcasts the caller may see: upcoming and live first."""
    school = _school(session, staff, school_id)
    rows = service.of_school(session, staff, school.id)
    return [public(row, settings.server_name) for row in rows]


@router.post("/schools/{school_id}/broadcasts", status_code=201)
async def create_broadcast(
    school_id: PathId,
    request: Request,
    session: SessionDep,
    staff: Staff,
    settings: SettingsDep,
    matrix: MatrixDep,
    title: Text = "",
    description: Text = "",
    speakers: Annotated[list[str] | None, Form()] = None,
    audience_room: Annotated[str, Form(max_length=255)] = "",
    starts_at: Annotated[str, Form(max_length=64)] = "",
    ends_at: Annotated[str, Form(max_length=64)] = "",
    cover: Annotated[UploadFile | None, File()] = None,
) -> BroadcastPublic:
    """Schedule a broadcast; the bot announces it in the chat within seconds."""
    school = _school(session, staff, school_id)
    try:
        form = service.BroadcastForm(
            title,
            description,
            speakers or [],
            audience_room,
            parse_time("starts_at", starts_at),
            parse_time("ends_at", ends_at),
        )
        service.check(session, school.id, form, viewer=staff)  # before the upload
        checked = await read_cover(cover)
        if checked is None:
            raise service.BroadcastInvalid(service.COVER_MISSING)
        mxc = await _uploaded(matrix, checked)
        broadcast = service.create(session, school.id, form, checked, mxc, viewer=staff)
        session.commit()
    except DomainError as exc:
        raise _refused(session, exc) from exc
    _tick_soon(request)
    return public(broadcast, settings.server_name)


@router.get("/schools/{school_id}/broadcasts/{broadcast_id}")
def get_broadcast(
    school_id: PathId,
    broadcast_id: PathId,
    session: SessionDep,
    staff: Staff,
    settings: SettingsDep,
) -> BroadcastPublic:
    return public(_broadcast(session, staff, school_id, broadcast_id), settings.server_name)


@router.patch("/schools/{school_id}/broadcasts/{broadcast_id}")
async def edit_broadcast(
    school_id: PathId,
    broadcast_id: PathId,
    request: Request,
    session: SessionDep,
    staff: Staff,
    settings: SettingsDep,
    matrix: MatrixDep,
    title: Annotated[str | None, Form(max_length=4000)] = None,
    description: Annotated[str | None, Form(max_length=4000)] = None,
    speakers: Annotated[list[str] | None, Form()] = None,
    audience_room: Annotated[str | None, Form(max_length=255)] = None,
    starts_at: Annotated[str | None, Form(max_length=64)] = None,
    ends_at: Annotated[str | None, Form(max_length=64)] = None,
    cover: Annotated[UploadFile | None, File()] = None,
) -> BroadcastPublic:
    """Change what is given (the rest stays) until the broadcast starts; 422 after."""
    broadcast = _broadcast(session, staff, school_id, broadcast_id)
    try:
        service.require_editable(broadcast, staff)
        form = service.BroadcastForm(
            broadcast.title if title is None else title,
            broadcast.description if description is None else description,
            broadcast.speakers if speakers is None else speakers,
            broadcast.audience_alias if audience_room is None else audience_room,
            broadcast.starts_at if starts_at is None else parse_time("starts_at", starts_at),
            broadcast.ends_at if ends_at is None else parse_time("ends_at", ends_at),
        )
        form = _zoned(form)
        service.check(session, broadcast.school_id, form, viewer=staff, current=broadcast)
        checked = await read_cover(cover)
        new_cover = None if checked is None else (checked, await _uploaded(matrix, checked))
        service.edit(session, broadcast, form, new_cover, viewer=staff)
        session.commit()
    except DomainError as exc:
        raise _refused(session, exc) from exc
    _tick_soon(request)
    return public(broadcast, settings.server_name)


def _zoned(form: service.BroadcastForm) -> service.BroadcastForm:
    """Stored times come back from SQLite without their zone: they are UTC."""
    return service.BroadcastForm(
        form.title,
        form.description,
        form.speakers,
        form.audience_room,
        as_utc(form.starts_at),
        as_utc(form.ends_at),
    )


@router.post("/schools/{school_id}/broadcasts/{broadcast_id}/cancel")
def cancel_broadcast(
    school_id: PathId,
    broadcast_id: PathId,
    request: Request,
    session: SessionDep,
    staff: Staff,
    settings: SettingsDep,
) -> BroadcastPublic:
    """Cancel it; the bot tells the chat (and takes a running broadcast's widget out)."""
    broadcast = _broadcast(session, staff, school_id, broadcast_id)
    try:
        service.cancel(session, broadcast, viewer=staff)
        session.commit()
    except DomainError as exc:
        raise _refused(session, exc) from exc
    _tick_soon(request)
    return public(broadcast, settings.server_name)
