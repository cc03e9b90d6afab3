"""Galleries of a school's and a class's photo and video reports (provisioning/services/gallery.py).

The pages list what the homeserver holds and give each file a signed ticket for this
viewer (`services/media_tickets.py`); thumbnails and files come through
`/gallery/media?ticket=…`, which checks the ticket, its viewer and that the viewer may still
see the room before asking the homeserver, and serves only images and videos inline
(anything else as a download, under a sandboxing policy), so no uploaded file runs as a
page here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from foundation.settings import Settings
from matrix.errors import HomeserverUnavailable, MatrixError
from provisioning.api.deps import MatrixDep, PathId, SessionDep, SettingsDep
from provisioning.db.models import School, SchoolClass
from provisioning.i18n import N_
from provisioning.services import gallery
from provisioning.services.access import Access
from provisioning.services.media_tickets import MAX_TICKET_CHARS, MediaTickets, TicketRefused
from provisioning.services.media_tickets import key_from as ticket_key
from provisioning.web.deps import Viewer, WebError
from provisioning.web.render import render

router = APIRouter()

_RANGE = re.compile(r"bytes=\d{0,15}-\d{0,15}")
_PASSED_HEADERS = ("content-length", "content-range", "accept-ranges", "last-modified", "etag")
_UNAVAILABLE = N_("The server cannot show the reports right now. Try again in a minute.")
_REFUSED = {
    "invalid": N_("This link to the file is not valid. Open the gallery again."),
    "expired": N_("This link to the file has expired. Reload the gallery page."),
}


def _tickets(settings: Settings) -> MediaTickets:
    return MediaTickets(ticket_key(settings.as_token.get_secret_value()))


def _school(session: SessionDep, school_id: int) -> School:
    school = session.get(School, school_id)
    if school is None:
        raise WebError(404, N_("There is no such school."))
    return school


@router.get("/schools/{school_id}/gallery")
async def school_gallery(
    request: Request,
    school_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    bot: MatrixDep,
    settings: SettingsDep,
) -> Response:
    school = _school(session, school_id)
    if not gallery.may_view_school_gallery(session, viewer, school.id):
        raise WebError(403, N_("The school's reports are for the people of the school."))
    reports = gallery.school_reports(session, bot, school.id)
    return await _page(request, session, settings, viewer, school, None, reports)


@router.get("/schools/{school_id}/classes/{class_id}/gallery")
async def class_gallery(
    request: Request,
    school_id: PathId,
    class_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    bot: MatrixDep,
    settings: SettingsDep,
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
    return await _page(request, session, settings, viewer, school, school_class, reports)


async def _page(
    request: Request,
    session: SessionDep,
    settings: Settings,
    viewer: Access,
    school: School,
    school_class: SchoolClass | None,
    reading: Coroutine[Any, Any, list[gallery.Report]],
) -> Response:
    try:
        reports = await reading
    except (HomeserverUnavailable, MatrixError) as exc:
        raise WebError(503, _UNAVAILABLE) from exc
    links = gallery.media_links(_tickets(settings), viewer, reports, time.time())
    return render(
        request, "gallery.html", school=school, school_class=school_class, reports=reports,
        links=links, names=gallery.names_of(session, reports), limit=gallery.MAX_ITEMS,
    )  # fmt: skip


@router.get("/gallery/media")
async def report_media(
    viewer: Viewer,
    session: SessionDep,
    bot: MatrixDep,
    settings: SettingsDep,
    ticket: Annotated[str, Query(max_length=MAX_TICKET_CHARS)],
    range_header: Annotated[str | None, Header(alias="Range", max_length=40)] = None,
) -> Response:
    wanted = range_header if range_header and _RANGE.fullmatch(range_header) else None
    try:
        upstream = await gallery.open_media(
            session, bot, _tickets(settings), viewer, ticket, now=time.time(), range_header=wanted
        )
    except TicketRefused as exc:
        raise WebError(403, _REFUSED[exc.reason]) from exc
    except gallery.NotTheirTicket as exc:
        raise WebError(
            403, N_("This link to the file was made for someone else. Open the gallery yourself.")
        ) from exc
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
