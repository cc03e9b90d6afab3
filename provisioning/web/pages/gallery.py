"""Galleries of a school's and a class's photo and video reports (provisioning/services/gallery.py).

The pages list what the homeserver holds; thumbnails and files come through
`/gallery/media/…`, which checks on every request that the event is a photo or video of a
room whose gallery the viewer may see, and serves only images and videos inline (anything
else as a download, under a sandboxing policy), so no uploaded file runs as a page here.
"""

from __future__ import annotations

import re
from collections.abc import Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from matrix.errors import HomeserverUnavailable, MatrixError
from provisioning.api.deps import MatrixDep, PathId, SessionDep
from provisioning.db.models import School, SchoolClass
from provisioning.i18n import N_
from provisioning.services import gallery
from provisioning.web.deps import Viewer, WebError
from provisioning.web.render import render

router = APIRouter()

# Room and event IDs as Synapse writes them (room version 12: `!` + base64), bounded.
_ROOM_ID = re.compile(r"![A-Za-z0-9._~:=+/-]{1,250}")
_EVENT_ID = re.compile(r"\$[A-Za-z0-9._~:=+/-]{1,250}")
_RANGE = re.compile(r"bytes=\d{0,15}-\d{0,15}")
_PASSED_HEADERS = ("content-length", "content-range", "accept-ranges", "last-modified", "etag")
_UNAVAILABLE = N_("The server cannot show the reports right now. Try again in a minute.")


def _school(session: SessionDep, school_id: int) -> School:
    school = session.get(School, school_id)
    if school is None:
        raise WebError(404, N_("There is no such school."))
    return school


@router.get("/schools/{school_id}/gallery")
async def school_gallery(
    request: Request, school_id: PathId, viewer: Viewer, session: SessionDep, bot: MatrixDep
) -> Response:
    school = _school(session, school_id)
    if not gallery.may_view_school_gallery(session, viewer, school.id):
        raise WebError(403, N_("The school's reports are for the people of the school."))
    reports = gallery.school_reports(session, bot, school.id)
    return await _page(request, session, school, None, reports)


@router.get("/schools/{school_id}/classes/{class_id}/gallery")
async def class_gallery(
    request: Request,
    school_id: PathId,
    class_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    bot: MatrixDep,
) -> Response:
    school = _school(session, school_id)
    school_class = session.get(SchoolClass, class_id)
    if school_class is None or school_class.school_id != school.id:
        raise WebError(404, N_("There is no such class in this school."))
    if not gallery.may_view_class_gallery(session, viewer, school_class):
        raise WebError(
            403, N_("A class's reports are for its pupils, their parents and the staff.")
        )
    reports = gallery.class_reports(session, bot, school_class)
    return await _page(request, session, school, school_class, reports)


async def _page(
    request: Request,
    session: SessionDep,
    school: School,
    school_class: SchoolClass | None,
    reading: Coroutine[Any, Any, list[gallery.Report]],
) -> Response:
    try:
        reports = await reading
    except (HomeserverUnavailable, MatrixError) as exc:
        raise WebError(503, _UNAVAILABLE) from exc
    return render(
        request, "gallery.html", school=school, school_class=school_class, reports=reports,
        names=gallery.names_of(session, reports), limit=gallery.MAX_ITEMS,
    )  # fmt: skip


@router.get("/gallery/media")
async def report_media(
    viewer: Viewer,
    session: SessionDep,
    bot: MatrixDep,
    room: Annotated[str, Query(max_length=255)],
    event: Annotated[str, Query(max_length=255)],
    thumbnail: Annotated[bool, Query()] = False,
    range_header: Annotated[str | None, Header(alias="Range", max_length=40)] = None,
) -> Response:
    if not (_ROOM_ID.fullmatch(room) and _EVENT_ID.fullmatch(event)):
        raise WebError(404, N_("There is no such report."))
    wanted = range_header if range_header and _RANGE.fullmatch(range_header) else None
    try:
        upstream = await gallery.open_media(
            session, bot, viewer, room, event, thumbnail=thumbnail, range_header=wanted
        )
    except (gallery.NoSuchReport, MatrixError) as exc:
        raise WebError(404, N_("There is no such report.")) from exc
    except HomeserverUnavailable as exc:
        raise WebError(503, _UNAVAILABLE) from exc
    mimetype = upstream.headers.get("content-type", "").split(";")[0].strip().lower()
    inline = mimetype in gallery.INLINE_TYPES
    headers = {k: v for k, v in upstream.headers.items() if k.lower() in _PASSED_HEADERS}
    headers |= {
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Content-Disposition": "inline" if inline else "attachment",
    }
    return StreamingResponse(
        upstream.aiter_bytes(),
        status_code=upstream.status_code,
        media_type=mimetype if inline else "application/octet-stream",
        headers=headers,
        background=BackgroundTask(upstream.aclose),
    )
