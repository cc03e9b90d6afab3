"""The audit log: a school's for its administrators, the whole region's for region admins.

The region's log holds what belongs to no school (the region itself, its administrators,
the verified library) beside every school's events, and filters by school, so that a
region administrator answers "who changed this?" on one page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session

from provisioning.api.deps import SessionDep
from provisioning.db.models import AuditEvent, School
from provisioning.i18n import N_
from provisioning.web.deps import Viewer, WebError
from provisioning.web.pages.schools import school_for
from provisioning.web.render import render

router = APIRouter()

AUDIT_PAGE_SIZE = 50
REGION_ONLY = "region"  # the school filter's value for events of no school


@router.get("/schools/{school_id}/audit")
def school_audit_page(
    request: Request,
    school_id: int,
    viewer: Viewer,
    session: SessionDep,
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=255)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    school = school_for(session, viewer, school_id, manage=True)
    log = _page(session, AuditEvent.school_id == school.id, action, actor, page)
    return render(request, "audit.html", school=school, **log)


@router.get("/audit")
def region_audit_page(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=255)] = "",
    school: Annotated[str, Query(max_length=20)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    if not viewer.region_admin:
        raise WebError(403, N_("Only a region administrator sees the region's audit log."))
    scope: ColumnElement[bool] = true()
    if school == REGION_ONLY:
        scope = AuditEvent.school_id.is_(None)
    elif school:
        if not school.isdigit() or session.get(School, int(school)) is None:
            raise WebError(404, N_("There is no such school."))
        scope = AuditEvent.school_id == int(school)
    log = _page(session, scope, action, actor, page)
    schools = session.scalars(select(School).order_by(School.name)).all()
    names = {s.id: s.name for s in schools}
    return render(
        request, "audit.html", school=None, schools=schools, school_names=names,
        school_filter=school, **log,
    )  # fmt: skip


def _page(
    session: Session, scope: ColumnElement[bool], action: str, actor: str, page: int
) -> dict[str, Any]:
    """One page of the log within `scope`, newest first, and what the filters offer."""
    condition = scope
    if action:
        condition = condition & AuditEvent.action.startswith(action, autoescape=True)
    if actor.strip():
        condition = condition & AuditEvent.actor.contains(actor.strip(), autoescape=True)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(condition)) or 0
    events = session.scalars(
        select(AuditEvent)
        .where(condition)
        .order_by(AuditEvent.id.desc())
        .offset((page - 1) * AUDIT_PAGE_SIZE)
        .limit(AUDIT_PAGE_SIZE)
    ).all()
    actions = session.scalars(select(AuditEvent.action).where(scope).distinct()).all()
    return {
        "events": events, "total": total, "page": page,
        "pages": max(1, -(-total // AUDIT_PAGE_SIZE)), "action": action, "actor": actor,
        "actions": sorted(actions),
    }  # fmt: skip
