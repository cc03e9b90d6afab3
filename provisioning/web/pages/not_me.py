"""«Это не я» on a personal invitation, and the school administration's decision on it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisioning.api.deps import PathId, SessionDep
from provisioning.db.invite_reports import MAX_COMMENT_CHARS, InviteReport
from provisioning.db.models import InviteLink, Person, School
from provisioning.i18n import N_
from provisioning.services import invites, limits, not_me
from provisioning.services.access import Access
from provisioning.services.schools import DomainError
from provisioning.web.deps import Viewer, WebError
from provisioning.web.render import render, translate
from provisioning.web.security import client_ip

router = APIRouter()


def _personal(session: Session, token: str) -> tuple[InviteLink, Person]:
    """A usable personal link and the person it names (410 or 404 otherwise)."""
    try:
        invite = invites.find_usable(session, token)
    except invites.InviteUnusable as exc:
        raise WebError(410, exc.template) from exc
    person = session.get(Person, invite.person_id) if invite.person_id else None
    if person is None:
        raise WebError(404, N_("Only a link made for one named person can be reported."))
    return invite, person


def _confirm_page(
    request: Request, session: Session, token: str, comment: str = "", problem: str = ""
) -> Response:
    invite, person = _personal(session, token)
    return render(
        request, "not_me.html", status=400 if problem else 200, token=token, person=person,
        school=session.get(School, invite.school_id), comment=comment, problem=problem,
        max_comment=MAX_COMMENT_CHARS,
    )  # fmt: skip


@router.get("/join/{token}/not-me")
def not_me_page(request: Request, token: str, session: SessionDep) -> Response:
    """Asks once more, with room for a comment: the link stops working after this."""
    return _confirm_page(request, session, token)


@router.post("/join/{token}/not-me")
def report_not_me(
    request: Request,
    token: str,
    session: SessionDep,
    # Four times the stored limit: a longer post is not a comment; the service says so.
    comment: Annotated[str, Form(max_length=4 * MAX_COMMENT_CHARS)] = "",
) -> Response:
    invite, _ = _personal(session, token)
    school = session.get(School, invite.school_id)
    try:
        not_me.report(session, invite, comment, origin=client_ip(request))
        session.commit()
    except DomainError as exc:
        session.rollback()
        text = translate(request, exc.template, **exc.params)
        return _confirm_page(request, session, token, comment[:MAX_COMMENT_CHARS], text)
    except IntegrityError as exc:  # reported a moment ago, from another tab
        session.rollback()
        raise WebError(410, invites.SUSPENDED_NOT_ME) from exc
    return render(request, "not_me_done.html", school=school)


def _report(session: Session, viewer: Access, school_id: int, report_id: int) -> InviteReport:
    if not viewer.may_manage_school(school_id):
        raise WebError(403, N_("Only the school's administration decides on this."))
    try:
        return not_me.open_report(session, school_id, report_id)
    except DomainError as exc:
        raise WebError(404, exc.template) from exc


@router.post("/schools/{school_id}/not-me/{report_id}/reissue")
def reissue(
    school_id: PathId,
    report_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    display_name: Annotated[str, Form()] = "",  # bounded by `limits`; the body by the app
) -> Response:
    row = _report(session, viewer, school_id, report_id)
    try:
        new = not_me.reissue(
            session, row, display_name, created_by=viewer.person_id, actor=viewer.user_id
        )
    except limits.FieldRefused as refused:
        session.rollback()
        raise WebError(400, refused.template, **refused.params) from refused
    except DomainError as exc:
        session.rollback()
        raise WebError(409, exc.template, **exc.params) from exc
    session.commit()
    return RedirectResponse(f"/invites/{new.id}", status_code=303)


@router.post("/schools/{school_id}/not-me/{report_id}/dismiss")
def dismiss(school_id: PathId, report_id: PathId, viewer: Viewer, session: SessionDep) -> Response:
    row = _report(session, viewer, school_id, report_id)
    not_me.dismiss(session, row, actor=viewer.user_id)
    session.commit()
    return RedirectResponse(f"/schools/{school_id}#not-me", status_code=303)
