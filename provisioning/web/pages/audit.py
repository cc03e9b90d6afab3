"""The audit log: a school's for its administrators, the whole region's for region admins.

The region's log holds what belongs to no school (the region itself, its administrators,
the verified library) beside every school's events, and filters by school, so that a
region administrator answers "who changed this?" on one page.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session

from provisioning.api.deps import SessionDep
from provisioning.db.models import AuditEvent, School
from provisioning.i18n import N_
from provisioning.services.access import Access
from provisioning.web.deps import Viewer, WebError
from provisioning.web.pages.schools import school_for
from provisioning.web.render import render, translate

router = APIRouter()

AUDIT_PAGE_SIZE = 50
REGION_ONLY = "region"  # the school filter's value for events of no school
MAX_CSV_ROWS = 200_000  # years of a large region; a few tens of MB at most


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
    log = _page(session, _region_scope(viewer, session, school), action, actor, page)
    schools = session.scalars(select(School).order_by(School.name)).all()
    names = {s.id: s.name for s in schools}
    return render(
        request, "audit.html", school=None, schools=schools, school_names=names,
        school_filter=school, **log,
    )  # fmt: skip


@router.get("/schools/{school_id}/audit.csv")
def school_audit_csv(
    request: Request,
    school_id: int,
    viewer: Viewer,
    session: SessionDep,
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=255)] = "",
) -> Response:
    """The school's log as the page filters it, every row, for a spreadsheet."""
    school = school_for(session, viewer, school_id, manage=True)
    condition = _filtered(AuditEvent.school_id == school.id, action, actor)
    return _csv(request, session, condition, f"audit-{school.slug}")


@router.get("/audit.csv")
def region_audit_csv(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=255)] = "",
    school: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """The region's log as the page filters it, every row, for a spreadsheet."""
    scope = _region_scope(viewer, session, school)
    return _csv(request, session, _filtered(scope, action, actor), "audit-region")


def _region_scope(viewer: Access, session: Session, school: str) -> ColumnElement[bool]:
    """Region administrators only: everything, the region's own events, or one school's."""
    if not viewer.region_admin:
        raise WebError(403, N_("Only a region administrator sees the region's audit log."))
    if school == REGION_ONLY:
        return AuditEvent.school_id.is_(None)
    if school:
        if not school.isdigit() or session.get(School, int(school)) is None:
            raise WebError(404, N_("There is no such school."))
        return AuditEvent.school_id == int(school)
    return true()


def _filtered(scope: ColumnElement[bool], action: str, actor: str) -> ColumnElement[bool]:
    condition = scope
    if action:
        condition = condition & AuditEvent.action.startswith(action, autoescape=True)
    if actor.strip():
        condition = condition & AuditEvent.actor.contains(actor.strip(), autoescape=True)
    return condition


def _csv(request: Request, session: Session, condition: ColumnElement[bool], name: str) -> Response:
    """Newest first, up to `MAX_CSV_ROWS`; times in the region's zone, ISO 8601; the
    action's code and its details as recorded (the page shows them in words)."""
    zone = ZoneInfo(request.app.state.settings.timezone)
    schools = dict(session.execute(select(School.id, School.name)).tuples().all())
    region = translate(request, N_("Region"))
    out = io.StringIO()
    writer = csv.writer(out)
    header = (N_("When"), N_("Where"), N_("What"), N_("Object"), N_("Details"), N_("Who"),
              N_("From where"))  # fmt: skip
    writer.writerow([translate(request, column) for column in header])
    events = session.scalars(
        select(AuditEvent).where(condition).order_by(AuditEvent.id.desc()).limit(MAX_CSV_ROWS)
    )
    for event in events:
        at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
        writer.writerow([
            at.astimezone(zone).isoformat(timespec="seconds"),
            schools.get(event.school_id, region) if event.school_id else region,
            event.action, event.subject,
            json.dumps(event.details or {}, ensure_ascii=False, sort_keys=True),
            event.actor, event.origin or "",
        ])  # fmt: skip
    filename = f"{name}-{datetime.now(zone).date().isoformat()}.csv"
    return Response(
        "\ufeff" + out.getvalue(),  # the byte-order mark: spreadsheets then read UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _page(
    session: Session, scope: ColumnElement[bool], action: str, actor: str, page: int
) -> dict[str, Any]:
    """One page of the log within `scope`, newest first, and what the filters offer."""
    condition = _filtered(scope, action, actor)
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
