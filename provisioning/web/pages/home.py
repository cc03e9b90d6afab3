"""The first page after signing in: what this person looks after, by role."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from provisioning.api.deps import SessionDep, SettingsDep
from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    JoinRequest,
    RequestStatus,
    School,
    SchoolClass,
    TeacherApplication,
)
from provisioning.services.directory import family_of
from provisioning.services.waiting import classes_waiting_for_confirmation, waiting_in_classes
from provisioning.web import call_links
from provisioning.web.deps import Viewer
from provisioning.web.pages.appointments import parent_view
from provisioning.web.render import render

router = APIRouter()


@router.get("/")
def dashboard(
    request: Request, viewer: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    managed_ids = (
        set(session.scalars(select(School.id))) if viewer.region_admin else viewer.school_admin_of
    )
    managed = session.scalars(
        select(School).where(School.id.in_(managed_ids)).order_by(School.name)
    ).all()
    pupil_counts = dict(
        session.execute(
            select(SchoolClass.school_id, func.count())
            .join(Enrolment, Enrolment.class_id == SchoolClass.id)
            .where(
                Enrolment.role == EnrolmentRole.PUPIL,
                SchoolClass.archived_at.is_(None),
                SchoolClass.school_id.in_(managed_ids),
            )
            .group_by(SchoolClass.school_id)
        ).all()
    )
    taught = session.scalars(
        select(SchoolClass)
        .where(SchoolClass.id.in_(viewer.teaches_classes))
        .order_by(SchoolClass.grade, SchoolClass.letter)
    ).all()
    own_classes = session.scalars(
        select(SchoolClass).where(SchoolClass.id.in_(viewer.pupil_of_classes))
    ).all()
    children = family_of(session, viewer.person_id)
    waiting = session.execute(
        select(TeacherApplication, School)
        .join(School, School.id == TeacherApplication.school_id)
        .where(
            TeacherApplication.person_id == viewer.person_id,
            TeacherApplication.status == RequestStatus.PENDING,
        )
    ).all()
    requests_by_class = dict(
        session.execute(
            select(JoinRequest.class_id, func.count())
            .where(
                JoinRequest.class_id.in_(viewer.teaches_classes),
                JoinRequest.status == RequestStatus.PENDING,
            )
            .group_by(JoinRequest.class_id)
        ).all()
    )
    # Lessons, parents' meetings and documents: each class whose rooms this person is in
    # (a pupil, or a parent's child, waiting for confirmation is placed in none yet).
    placed_in = set(
        session.scalars(
            select(Enrolment.class_id).where(
                Enrolment.person_id == viewer.person_id,
                Enrolment.role == EnrolmentRole.PUPIL,
                Enrolment.confirmed_at.is_not(None),
            )
        )
    )
    linked = [
        *taught,
        *(school_class for school_class in own_classes if school_class.id in placed_in),
        *(row.school_class for row in children if row.school_class and row.pupil_confirmed),
    ]
    families = [row.child.id for row in children if row.family_room]
    return render(
        request,
        "dashboard.html",
        managed=managed,
        pupil_counts=pupil_counts,
        taught=taught,
        own_classes=own_classes,
        children=children,
        waiting=waiting,
        requests_by_class=requests_by_class,
        waiting_for_teacher=waiting_in_classes(session, viewer.teaches_classes),
        unconfirmed_classes=classes_waiting_for_confirmation(session, viewer.person_id),
        homeserver_url=settings.element_homeserver_url,
        class_links=call_links.class_links(session, settings, linked),
        family_calls=call_links.family_calls(session, settings, viewer.person_id, families),
        my_documents=call_links.documents_url(settings),
        **parent_view(session, viewer),
    )
