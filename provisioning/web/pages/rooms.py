"""A school's rooms: which of them the school opened to other regions, and which have calls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from provisioning.api.deps import PathId, SessionDep, SettingsDep, reconcile_soon
from provisioning.services import calls, directory
from provisioning.services import schools as svc
from provisioning.web.deps import Viewer, WebError
from provisioning.web.pages.schools import school_for
from provisioning.web.render import render

router = APIRouter()


@router.get("/schools/{school_id}/rooms")
def rooms_page(
    request: Request, school_id: PathId, viewer: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    school = school_for(session, viewer, school_id, manage=True)
    rows = directory.school_rooms(session, school)
    return render(
        request, "rooms.html", school=school, rows=rows,
        server_name=settings.server_name, regions=settings.federation_allow_list,
        with_call={row.room.alias for row in rows if calls.has_call(row.room)},
    )  # fmt: skip


@router.post("/schools/{school_id}/rooms/{alias}/federation")
def set_federation(
    request: Request,
    school_id: PathId,
    alias: str,
    viewer: Viewer,
    session: SessionDep,
    federated: Annotated[str, Form(pattern="^(yes|no)$")],
) -> Response:
    """Open a room to other regions, or close it (the reconciler then removes their guests)."""
    school = school_for(session, viewer, school_id, manage=True)
    try:
        svc.set_room_federation(session, school, alias, federated == "yes", actor=viewer.user_id)
    except svc.DomainError as exc:
        session.rollback()
        raise WebError(404, exc.template, **exc.params) from exc
    session.commit()
    reconcile_soon(request)  # the run writes the policy snapshot Synapse decides from
    return RedirectResponse(f"/schools/{school.id}/rooms#room-{alias}", status_code=303)


@router.post("/schools/{school_id}/rooms/{alias}/call")
def set_call(
    request: Request,
    school_id: PathId,
    alias: str,
    viewer: Viewer,
    session: SessionDep,
    call: Annotated[str, Form(pattern="^(yes|no)$")],
) -> Response:
    """Add the call widget to a room or take it out; the reconciler's next run does it."""
    school = school_for(session, viewer, school_id, manage=True)
    try:
        room = calls.school_room(session, school, alias)
    except svc.DomainError as exc:
        raise WebError(404, exc.template, **exc.params) from exc
    try:
        calls.set_room_call(session, room, call == "yes", actor=viewer.user_id)
    except svc.DomainError as exc:  # a space
        session.rollback()
        raise WebError(400, exc.template, **exc.params) from exc
    session.commit()
    reconcile_soon(request)
    return RedirectResponse(f"/schools/{school.id}/rooms#room-{alias}", status_code=303)
