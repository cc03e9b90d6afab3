"""The audit log: a school's for its administrators, the whole region's for region admins.

The region's log holds what belongs to no school (the region itself, its administrators,
the verified library) beside every school's events, and filters by school, so that a
region administrator answers "who changed this?" on one page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session

from provisioning.api.deps import PathId, SessionDep
from provisioning.db.models import AuditEvent, School
from provisioning.i18n import N_
from provisioning.services.access import Access
from provisioning.spreadsheet import csv_attachment, csv_document
from provisioning.web.audit_labels import action_label, actor_label
from provisioning.web.deps import Viewer, WebError
from provisioning.web.pages.schools import school_for
from provisioning.web.render import local_time, region_zone, render, translate

router = APIRouter()

AUDIT_PAGE_SIZE = 50
REGION_ONLY = "region"  # the school filter's value for events of no school
MAX_CSV_ROWS = 200_000  # years of a large region; a few tens of MB at most


@dataclass(frozen=True)
class LogFilter:
    """The page's filters, which its CSV keeps too: a kind of change, and who made it."""

    action: str
    actor: str

    def within(self, scope: ColumnElement[bool]) -> ColumnElement[bool]:
        condition = scope
        if self.action:
            condition = condition & AuditEvent.action.startswith(self.action, autoescape=True)
        if self.actor.strip():
            condition = condition & AuditEvent.actor.contains(self.actor.strip(), autoescape=True)
        return condition


def log_filter(
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=255)] = "",
) -> LogFilter:
    return LogFilter(action, actor)


Filter = Annotated[LogFilter, Depends(log_filter)]
SchoolFilter = Annotated[str, Query(max_length=20)]  # "", REGION_ONLY or a school's ID
Page = Annotated[int, Query(ge=1, le=100_000)]


@router.get("/schools/{school_id}/audit")
def school_audit_page(
    request: Request, school_id: PathId, viewer: Viewer, session: SessionDep, shown: Filter,
    page: Page = 1,
) -> Response:  # fmt: skip
    school = school_for(session, viewer, school_id, manage=True)
    log = _page(session, AuditEvent.school_id == school.id, shown, page)
    return render(request, "audit.html", school=school, **log)


@router.get("/audit")
def region_audit_page(
    request: Request, viewer: Viewer, session: SessionDep, shown: Filter,
    school: SchoolFilter = "", page: Page = 1,
) -> Response:  # fmt: skip
    log = _page(session, _region_scope(viewer, session, school), shown, page)
    return render(
        request, "audit.html", school=None, school_names=_school_names(session),
        school_filter=school, **log,
    )  # fmt: skip


@router.get("/schools/{school_id}/audit.csv")
def school_audit_csv(
    request: Request, school_id: PathId, viewer: Viewer, session: SessionDep, shown: Filter
) -> Response:
    """The school's log as the page filters it, every row, for a spreadsheet."""
    school = school_for(session, viewer, school_id, manage=True)
    return _csv(request, session, shown.within(AuditEvent.school_id == school.id),
                f"audit-{school.slug}")  # fmt: skip


@router.get("/audit.csv")
def region_audit_csv(
    request: Request, viewer: Viewer, session: SessionDep, shown: Filter,
    school: SchoolFilter = "",
) -> Response:  # fmt: skip
    """The region's log as the page filters it, every row, for a spreadsheet."""
    scope = _region_scope(viewer, session, school)
    return _csv(request, session, shown.within(scope), "audit-region")


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


def _school_names(session: Session) -> dict[int, str]:
    """Every school's name by its ID, in the order of the names."""
    rows = session.execute(select(School.id, School.name).order_by(School.name)).tuples()
    return dict(rows.all())


def _csv(request: Request, session: Session, condition: ColumnElement[bool], name: str) -> Response:
    """Newest first, up to `MAX_CSV_ROWS`; times in the region's zone, ISO 8601; the
    action and automatic actors in the reader's words, the details as recorded, and the
    action's code last, for those who sort by it."""
    zone = region_zone(request)
    schools = _school_names(session)
    region = translate(request, N_("Region"))
    header = (N_("When"), N_("Where"), N_("What"), N_("Object"), N_("Details"), N_("Who"),
              N_("From where"), N_("Action code"))  # fmt: skip

    def gettext(message: str) -> str:
        return translate(request, message)

    events = session.scalars(
        select(AuditEvent).where(condition).order_by(AuditEvent.id.desc()).limit(MAX_CSV_ROWS)
    )
    rows = (
        [
            local_time(event.at, zone).isoformat(timespec="seconds"),
            region if event.school_id is None else schools.get(event.school_id, region),
            action_label(event.action, gettext), event.subject,
            json.dumps(event.details or {}, ensure_ascii=False, sort_keys=True),
            actor_label(event.actor, gettext) or event.actor, event.origin or "", event.action,
        ]
        for event in events
    )  # fmt: skip
    document = csv_document(chain([[translate(request, column) for column in header]], rows))
    return csv_attachment(document, f"{name}-{datetime.now(zone).date().isoformat()}.csv")


def _page(
    session: Session, scope: ColumnElement[bool], shown: LogFilter, page: int
) -> dict[str, Any]:
    """One page of the log within `scope`, newest first, and what the filters offer."""
    condition = shown.within(scope)
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
        "pages": max(1, -(-total // AUDIT_PAGE_SIZE)), "action": shown.action,
        "actor": shown.actor, "actions": sorted(actions),
    }  # fmt: skip
