"""Deciding requests: teacher applications (administration) and join requests (teachers)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from matrix.client import MatrixClient
from matrix.errors import MatrixError
from matrix.rooms import put_state
from provisioning.api.deps import MatrixDep, PathId, SessionDep, reconcile_soon
from provisioning.audit import record_audit
from provisioning.db.models import (
    JoinRequest,
    ManagedRoom,
    Person,
    RoomKind,
    School,
    SchoolClass,
    TeacherApplication,
)
from provisioning.i18n import N_
from provisioning.services import requests as svc
from provisioning.services import schools
from provisioning.services.access import Access
from provisioning.services.schools import DomainError
from provisioning.web.deps import Viewer, WebError

router = APIRouter()
log = logging.getLogger(__name__)


@router.post("/schools/{school_id}/applications/{application_id}/{decision}")
def decide_application(
    request: Request,
    school_id: PathId,
    application_id: PathId,
    decision: str,
    viewer: Viewer,
    session: SessionDep,
) -> Response:
    if not viewer.may_manage_school(school_id):
        raise WebError(403, N_("Only the school's administration decides on teachers."))
    application = session.get(TeacherApplication, application_id)
    if application is None or application.school_id != school_id or decision not in (
        "approve", "decline"
    ):  # fmt: skip
        raise WebError(404, N_("There is no such request."))
    try:
        svc.decide_application(
            session, application, approve=decision == "approve", actor=viewer.user_id
        )
    except DomainError as exc:
        session.rollback()
        raise WebError(409, exc.template, **exc.params) from exc
    session.commit()
    reconcile_soon(request)
    return RedirectResponse(f"/schools/{school_id}#applications", status_code=303)


def _join_request(
    session: Session, viewer: Access, school_id: int, class_id: int, request_id: int
) -> tuple[JoinRequest, SchoolClass]:
    school_class = session.get(SchoolClass, class_id)
    join_request = session.get(JoinRequest, request_id)
    if (
        school_class is None
        or school_class.school_id != school_id
        or join_request is None
        or join_request.class_id != class_id
    ):
        raise WebError(404, N_("There is no such request."))
    if not viewer.may_manage_class(school_id, class_id):
        raise WebError(403, N_("Only the class's teachers and the administration decide this."))
    return join_request, school_class


def _class_space_room_id(session: Session, class_id: int) -> str | None:
    return session.scalar(
        select(ManagedRoom.room_id).where(
            ManagedRoom.class_id == class_id, ManagedRoom.kind == RoomKind.CLASS_SPACE
        )
    )


async def _reject_knock(matrix: MatrixClient, room_id: str, user_id: str, bot: str) -> None:
    """Turn the knock away in Matrix too, so the person's client stops waiting."""
    content = {"membership": "leave", "reason": "Заявка отклонена / request declined"}
    await put_state(matrix, room_id, "m.room.member", content, user_id, as_user=bot)


@router.post("/schools/{school_id}/classes/{class_id}/requests/{request_id}/{decision}")
async def decide_join_request(
    request: Request,
    school_id: PathId,
    class_id: PathId,
    request_id: PathId,
    decision: str,
    viewer: Viewer,
    session: SessionDep,
    matrix: MatrixDep,
) -> Response:
    if decision not in ("accept", "decline"):
        raise WebError(404, N_("There is no such request."))
    join_request, _ = await run_in_threadpool(
        _join_request, session, viewer, school_id, class_id, request_id
    )

    def decide() -> str | None:
        try:
            if decision == "accept":
                svc.accept_join_request(session, join_request, actor=viewer.user_id, via="parta")
            else:
                svc.decline_join_request(session, join_request, actor=viewer.user_id, via="parta")
        except DomainError as exc:
            session.rollback()
            raise WebError(409, exc.template, **exc.params) from exc
        session.commit()
        return _class_space_room_id(session, class_id)

    room_id = await run_in_threadpool(decide)
    if decision == "accept":
        reconcile_soon(request)  # the reconciler invites and places the new pupil
    elif room_id is not None:
        settings = request.app.state.settings
        try:
            await _reject_knock(matrix, room_id, join_request.user_id, settings.bot_user_id)
        except MatrixError:
            # Declined in Parta all the same; the knock just stays unanswered in Matrix.
            log.warning("could not turn a knock away", exc_info=True)
    return RedirectResponse(f"/schools/{school_id}/classes/{class_id}#requests", status_code=303)


# --- Confirming pupils -----------------------------------------------------------------


@router.post("/children/{child_id}/confirm")
def parent_confirms(
    request: Request, child_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    """A parent confirms their child: the child is placed, and they get a family room."""
    if child_id not in viewer.parent_of:
        raise WebError(403, N_("Only the pupil's own parents confirm them"))
    child = session.get(Person, child_id)
    parent = session.get(Person, viewer.person_id)
    assert child is not None and parent is not None
    try:
        changed = schools.confirm_pupil(session, child, parent=parent, actor=viewer.user_id)
    except DomainError as exc:
        session.rollback()
        raise WebError(409, exc.template, **exc.params) from exc
    session.commit()
    if changed:
        reconcile_soon(request)
    return RedirectResponse("/", status_code=303)


@router.post("/schools/{school_id}/classes/{class_id}/pupils/{pupil_id}/{decision}")
def staff_decides(
    request: Request,
    school_id: PathId,
    class_id: PathId,
    pupil_id: PathId,
    decision: str,
    viewer: Viewer,
    session: SessionDep,
) -> Response:
    if not viewer.may_manage_class(school_id, class_id):
        raise WebError(403, N_("Only the class's teachers and the administration decide this."))
    pupil = session.get(Person, pupil_id)
    school_class = session.get(SchoolClass, class_id)
    if pupil is None or school_class is None or school_class.school_id != school_id:
        raise WebError(404, N_("There is no such request."))
    if decision not in ("confirm", "decline"):
        raise WebError(404, N_("There is no such request."))
    try:
        if decision == "confirm":
            changed = schools.confirm_pupil(session, pupil, actor=viewer.user_id)
        else:
            schools.decline_pupil(session, pupil, actor=viewer.user_id)
            changed = False  # they were placed nowhere
    except DomainError as exc:
        session.rollback()
        raise WebError(409, exc.template, **exc.params) from exc
    session.commit()
    if changed:
        reconcile_soon(request)
    return RedirectResponse(f"/schools/{school_id}/classes/{class_id}", status_code=303)


@router.post("/schools/{school_id}/settings")
def school_settings(
    school_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    pupils_need_confirmation: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    if not viewer.may_manage_school(school_id):
        raise WebError(403, N_("You do not have access to this school."))
    school = session.get(School, school_id)
    if school is None:
        raise WebError(404, N_("There is no such school."))
    wanted = pupils_need_confirmation == "yes"
    if school.pupils_need_confirmation != wanted:
        school.pupils_need_confirmation = wanted
        record_audit(
            session, viewer.user_id, "school.settings", school.slug, school_id=school.id,
            pupils_need_confirmation=wanted,
        )  # fmt: skip
        session.commit()
    return RedirectResponse(f"/schools/{school_id}#settings", status_code=303)
