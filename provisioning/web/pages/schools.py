"""Schools, classes and the people of a school."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioning.api.deps import PathId, SessionDep, SettingsDep, reconcile_soon
from provisioning.broadcasts import service as broadcasts
from provisioning.db.models import InviteLink, Region, School, SchoolClass
from provisioning.i18n import N_
from provisioning.meetings import service as meetings
from provisioning.services import directory, not_me, requests
from provisioning.services import schools as svc
from provisioning.services.access import Access
from provisioning.services.invites import invite_status
from provisioning.services.matrix_refusals import refusals_of_school
from provisioning.services.roster import parse_class
from provisioning.web import call_links
from provisioning.web.deps import Viewer, WebError
from provisioning.web.render import render, translate

router = APIRouter()


def current_academic_year(today: date) -> int:
    """A Russian school year starts on 1 September."""
    return today.year if today.month >= 9 else today.year - 1


def school_for(session: Session, viewer: Access, school_id: int, *, manage: bool) -> School:
    """The school, if this person may see it (or manage it); 404 before 403 leaks nothing."""
    allowed = viewer.may_manage_school(school_id) if manage else viewer.may_view_school(school_id)
    if not allowed:
        raise WebError(403, N_("You do not have access to this school."))
    school = session.get(School, school_id)
    if school is None:
        raise WebError(404, N_("There is no such school."))
    return school


def class_for(session: Session, school: School, class_id: int) -> SchoolClass:
    school_class = session.get(SchoolClass, class_id)
    if school_class is None or school_class.school_id != school.id:
        raise WebError(404, N_("There is no such class in this school."))
    return school_class


# --- Schools of the region -------------------------------------------------------------


@router.get("/schools")
def schools_page(request: Request, viewer: Viewer, session: SessionDep) -> Response:
    if not viewer.region_admin:
        raise WebError(403, N_("Only a region administrator sees every school."))
    return _schools(request, session, error=None, form={})


def _schools(
    request: Request,
    session: Session,
    *,
    error: str | None,
    form: dict[str, str],
    status: int = 200,
) -> Response:
    schools = session.scalars(select(School).order_by(School.name)).all()
    class_counts = dict(
        session.execute(
            select(SchoolClass.school_id, func.count())
            .where(SchoolClass.archived_at.is_(None))
            .group_by(SchoolClass.school_id)
        ).all()
    )
    return render(
        request, "schools.html", status=status, schools=schools, class_counts=class_counts,
        error=error, form=form,
    )  # fmt: skip


@router.post("/schools")
def create_school(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    name: Annotated[str, Form(max_length=255)] = "",
    slug: Annotated[str, Form(max_length=40)] = "",
    last_grade: Annotated[int, Form(ge=9, le=12)] = 11,
) -> Response:
    if not viewer.region_admin:
        raise WebError(403, N_("Only a region administrator adds schools."))
    form = {"name": name, "slug": slug}
    if not name.strip():
        return _schools(
            request, session, error=translate(request, N_("Give the school a name.")), form=form,
            status=400,
        )  # fmt: skip
    region = session.scalar(select(Region).where(Region.server_name == settings.server_name))
    if region is None:
        raise WebError(503, N_("The region is not set up yet. Try again in a minute."))
    try:
        school = svc.create_school(
            session, region, name.strip(), slug=slug.strip().lower() or None,
            academic_year=current_academic_year(date.today()), last_grade=last_grade,
            actor=viewer.user_id,
        )  # fmt: skip
    except svc.DomainError as exc:
        session.rollback()
        message = translate(request, exc.template, **exc.params)
        return _schools(request, session, error=message, form=form, status=400)
    session.commit()
    reconcile_soon(request)
    return RedirectResponse(f"/schools/{school.id}", status_code=303)


# --- One school ------------------------------------------------------------------------


@router.get("/schools/{school_id}")
def school_page(
    request: Request, school_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    school = school_for(session, viewer, school_id, manage=False)
    overview = directory.school_overview(session, school)
    manage = viewer.may_manage_school(school.id)
    links = invite_links(session, school.id, None) if manage else []
    applications = requests.pending_applications(session, school.id) if manage else []
    class_labels = {row.school_class.id: row.school_class.label for row in overview.classes}
    refusals = refusals_of_school(session, school.id) if manage else []
    not_me_reports = not_me.pending(session, school.id) if manage else []
    return render(
        request, "school.html", overview=overview, school=school, manage=manage,
        not_me_reports=not_me_reports, class_error=None, class_label="", links=links,
        children={}, school_class=None,
        applications=applications, class_labels=class_labels, refusals=refusals,
        broadcasts=broadcasts.of_school(session, viewer, school.id),
    )  # fmt: skip


@router.post("/schools/{school_id}/classes")
def add_class(
    request: Request,
    school_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    label: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    school = school_for(session, viewer, school_id, manage=True)
    parsed = parse_class(label)
    error: str | None = None
    if parsed is None:
        error = translate(request, N_("«%(label)s» is not a class such as 5А."), label=label)
    else:
        try:
            svc.add_class(session, school, parsed[0], parsed[1], actor=viewer.user_id)
        except svc.DomainError as exc:
            error = translate(request, exc.template, **exc.params)
    if error is not None:
        session.rollback()
    else:
        session.commit()
        reconcile_soon(request)
    overview = directory.school_overview(session, school)
    context = dict(
        overview=overview, school=school, manage=True, class_error=error,
        class_label=label if error else "",
    )  # fmt: skip
    status = 400 if error else 200
    if request.headers.get("hx-request"):
        return render(request, "_classes.html", status=status, **context)
    if error is None:
        return RedirectResponse(f"/schools/{school.id}", status_code=303)
    return render(request, "school.html", status=status, **context)


@router.get("/schools/{school_id}/classes/{class_id}")
def class_page(
    request: Request, school_id: PathId, class_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    school = school_for(session, viewer, school_id, manage=False)
    school_class = class_for(session, school, class_id)
    members = directory.class_members(session, school_class)
    manage = viewer.may_manage_class(school.id, school_class.id)
    links = invite_links(session, school.id, school_class.id) if manage else []
    children = {row.person.id: row.person.display_name for row in members.pupils}
    join_requests = requests.pending_join_requests(session, [school_class.id]) if manage else []
    settings = request.app.state.settings
    calls = call_links.class_links(session, settings, [school_class])[school_class.id]
    knockers = {
        join_request.id: requests.who_knocked(session, school_class, join_request.user_id)
        for join_request in join_requests
    }
    may_hold = meetings.may_hold(viewer, school_class)
    held = meetings.of_class(session, school_class.id) if may_hold else []
    return render(
        request, "class.html", school=school, members=members, manage=manage, links=links,
        children=children, school_class=school_class, join_requests=join_requests,
        knockers=knockers,
        class_links=calls,
        may_hold_meetings=may_hold,
        meetings=[(meeting, meetings.phase(meeting)) for meeting in held],
    )  # fmt: skip


def invite_links(
    session: Session, school_id: int, class_id: int | None
) -> list[tuple[InviteLink, str]]:
    """The shared (not personal) links of a school, or of one class, newest first."""
    links = session.scalars(
        select(InviteLink)
        .where(
            InviteLink.school_id == school_id,
            InviteLink.class_id.is_(None) if class_id is None else InviteLink.class_id == class_id,
            InviteLink.person_id.is_(None),
        )
        .order_by(InviteLink.id.desc())
        .limit(50)
    ).all()
    return [(link, invite_status(link)) for link in links]


@router.get("/schools/{school_id}/people")
def people_page(
    request: Request,
    school_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    role: Annotated[str, Query(pattern="^(|pupil|parent|staff)$")] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    school = school_for(session, viewer, school_id, manage=False)
    result = directory.school_people(session, school, role=role, query=q, page=page)
    template = "_people_rows.html" if request.headers.get("hx-request") else "people.html"
    return render(request, template, school=school, result=result, role=role, q=q)
