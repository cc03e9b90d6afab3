"""REST API `/api/v1`: schools, classes, people, parent links, roster import, sync.

Routes do HTTP only: they check who may act, call the services, commit, and ask the
reconciler to run. Every error is `{errcode, error}` with a message for a school admin.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foundation.web import ApiError
from provisioning.api.auth import Actor, CurrentAdmin
from provisioning.api.deps import PathId, SessionDep, SettingsDep, reconcile_soon
from provisioning.api.schemas import (
    ClassCreate,
    ClassPublic,
    ImportResult,
    MovePupil,
    ParentLinkCreate,
    PersonCreate,
    PersonPublic,
    Promotion,
    RoomFederation,
    RoomPublic,
    SchoolCreate,
    SchoolPublic,
    SyncResult,
)
from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    ManagedRoom,
    ParentLink,
    Person,
    Region,
    Role,
    RoleAssignment,
    School,
    SchoolClass,
)
from provisioning.reconciler.lease import ReconcilerBusy
from provisioning.reconciler.scheduler import ReconcileScheduler
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from provisioning.services.roster import (
    RosterError,
    check_roster,
    import_roster,
    parse_class,
    parse_class_list,
)

router = APIRouter(prefix="/api/v1", tags=["provisioning"])

MAX_IMPORT_BYTES = 5 * 1024 * 1024


def _commit(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ApiError(409, "M_CONFLICT", "This exists already") from exc


def _refusal(session: Session, exc: svc.DomainError) -> ApiError:
    """A rule of the school domain refused the change: none of it stays, and the error says
    why (409 when the thing exists already, 400 otherwise)."""
    session.rollback()
    if isinstance(exc, svc.AlreadyExists):
        return ApiError(409, "M_CONFLICT", str(exc))
    return ApiError(400, "M_INVALID_PARAM", str(exc))


def _school(session: Session, actor: Actor, school_id: int) -> School:
    actor.require_school(school_id)
    school = session.get(School, school_id)
    if school is None:
        raise ApiError(404, "M_NOT_FOUND", f"There is no school {school_id}")
    return school


def _class(session: Session, school: School, label: str) -> SchoolClass:
    parsed = parse_class(label)
    if parsed is None:
        raise ApiError(400, "M_INVALID_PARAM", f"«{label}» is not a class such as 5А")
    found = session.scalar(
        select(SchoolClass).where(
            SchoolClass.school_id == school.id,
            SchoolClass.grade == parsed[0],
            SchoolClass.letter == parsed[1],
            SchoolClass.archived_at.is_(None),
        )
    )
    if found is None:
        raise ApiError(404, "M_NOT_FOUND", f"The school has no class {label}; create it first")
    return found


def _school_public(session: Session, school: School) -> SchoolPublic:
    classes = session.scalars(
        select(SchoolClass)
        .where(SchoolClass.school_id == school.id)
        .order_by(SchoolClass.grade, SchoolClass.letter)
    ).all()
    return SchoolPublic(
        id=school.id,
        name=school.name,
        slug=school.slug,
        academic_year=school.academic_year,
        classes=[_class_public(c) for c in classes],
    )


def _class_public(c: SchoolClass) -> ClassPublic:
    return ClassPublic(
        id=c.id,
        label=c.label,
        grade=c.grade,
        letter=c.letter,
        graduation_year=c.graduation_year,
        archived=c.archived_at is not None,
    )


@router.get("/schools")
def list_schools(session: SessionDep, actor: CurrentAdmin) -> list[SchoolPublic]:
    schools = session.scalars(select(School).order_by(School.id)).all()
    return [_school_public(session, s) for s in schools if actor.may_manage_school(s.id)]


@router.post("/schools", status_code=201)
def create_school(
    body: SchoolCreate,
    request: Request,
    session: SessionDep,
    actor: CurrentAdmin,
    settings: SettingsDep,
) -> SchoolPublic:
    actor.require_region_admin()
    region = session.scalar(select(Region).where(Region.server_name == settings.server_name))
    if region is None:
        raise ApiError(503, "M_UNKNOWN", "The region is not set up yet; restart the service")
    today = date.today()
    year = body.academic_year or (today.year if today.month >= 9 else today.year - 1)
    try:
        school = svc.create_school(
            session,
            region,
            body.name,
            academic_year=year,
            slug=body.slug,
            last_grade=body.last_grade,
            actor=actor.user_id,
        )
    except svc.DomainError as exc:
        raise _refusal(session, exc) from exc
    _commit(session)
    reconcile_soon(request)
    return _school_public(session, school)


@router.get("/schools/{school_id}")
def get_school(school_id: PathId, session: SessionDep, actor: CurrentAdmin) -> SchoolPublic:
    return _school_public(session, _school(session, actor, school_id))


@router.post("/schools/{school_id}/classes", status_code=201)
def create_class(
    school_id: PathId, body: ClassCreate, request: Request, session: SessionDep, actor: CurrentAdmin
) -> ClassPublic:
    school = _school(session, actor, school_id)
    grade, letter = parse_class(body.label) or (0, "")
    try:
        created = svc.add_class(session, school, grade, letter, actor=actor.user_id)
    except svc.DomainError as exc:
        raise _refusal(session, exc) from exc
    _commit(session)
    reconcile_soon(request)
    return _class_public(created)


@router.post("/schools/{school_id}/promote")
def promote(
    school_id: PathId, body: Promotion, request: Request, session: SessionDep, actor: CurrentAdmin
) -> SchoolPublic:
    """Start the next school year, named in the body; refused (409) once it has started."""
    school = _school(session, actor, school_id)
    try:
        svc.promote(session, school, body.academic_year, actor=actor.user_id)
        session.commit()
    except svc.DomainError as exc:
        raise _refusal(session, exc) from exc
    except IntegrityError as exc:  # a concurrent request promoted it a moment ago
        session.rollback()
        raise ApiError(
            409,
            "M_CONFLICT",
            f"The school has just been promoted to {body.to_year} by another request; "
            "it was not promoted again",
        ) from exc
    reconcile_soon(request)
    return _school_public(session, school)


def _roles_of(session: Session, person: Person, school: School) -> list[str]:
    roles = [
        r.value
        for r in session.scalars(
            select(RoleAssignment.role).where(
                RoleAssignment.person_id == person.id, RoleAssignment.school_id == school.id
            )
        )
    ]
    for role, label in session.execute(
        select(Enrolment.role, SchoolClass.grade.concat(SchoolClass.letter))
        .join(SchoolClass, SchoolClass.id == Enrolment.class_id)
        .where(Enrolment.person_id == person.id, SchoolClass.school_id == school.id)
    ):
        roles.append(f"{role.value}:{label}")
    if session.scalar(select(ParentLink.id).where(ParentLink.parent_id == person.id).limit(1)):
        roles.append("parent")
    return roles


def _person_public(session: Session, person: Person, school: School) -> PersonPublic:
    return PersonPublic(
        id=person.id,
        display_name=person.display_name,
        matrix_user_id=person.matrix_user_id,
        roster_id=person.roster_id,
        roles=_roles_of(session, person, school),
    )


def _in_school(session: Session, person_id: int, school: School) -> Person:
    """The person, if they belong to the school (staff, pupil, or parent of a pupil)."""
    person = session.get(Person, person_id)
    if person is None or not _roles_of(session, person, school):
        raise ApiError(404, "M_NOT_FOUND", f"Person {person_id} is not in this school")
    return person


def _pupil_here(session: Session, person_id: int, school: School) -> Person:
    """The person, if they are a pupil of the school: the only ones who have parents here."""
    child = _in_school(session, person_id, school)
    if not any(role.startswith("pupil:") for role in _roles_of(session, child, school)):
        raise ApiError(400, "M_INVALID_PARAM", f"{child.display_name} is not a pupil here")
    return child


@router.get("/schools/{school_id}/people")
def list_people(school_id: PathId, session: SessionDep, actor: CurrentAdmin) -> list[PersonPublic]:
    school = _school(session, actor, school_id)
    class_ids = select(SchoolClass.id).where(SchoolClass.school_id == school.id)
    pupil_ids = select(Enrolment.person_id).where(Enrolment.class_id.in_(class_ids))
    ids = set(session.scalars(pupil_ids)) | set(
        session.scalars(
            select(RoleAssignment.person_id).where(RoleAssignment.school_id == school.id)
        )
    )
    ids |= set(session.scalars(select(ParentLink.parent_id).where(ParentLink.child_id.in_(ids))))
    people = session.scalars(select(Person).where(Person.id.in_(ids)).order_by(Person.display_name))
    return [_person_public(session, p, school) for p in people]


@router.post("/schools/{school_id}/people", status_code=201)
def add_person(
    school_id: PathId,
    body: PersonCreate,
    request: Request,
    session: SessionDep,
    actor: CurrentAdmin,
    settings: SettingsDep,
) -> PersonPublic:
    school = _school(session, actor, school_id)
    school_class = _class(session, school, body.class_label) if body.class_label else None
    if body.role == "pupil" and school_class is None:
        raise ApiError(400, "M_INVALID_PARAM", "A pupil needs a class (class_label)")
    if body.role == "parent" and not body.children:
        raise ApiError(400, "M_INVALID_PARAM", "A parent needs their children (children)")
    children = [_pupil_here(session, child, school) for child in body.children]
    user_id = LocalpartAllocator(session, settings.server_name).user_id(body.display_name)
    try:
        person = svc.add_person(
            session,
            body.display_name,
            user_id,
            phone=body.phone,
            email=body.email,
            roster_id=body.roster_id,
        )
        if body.role == "pupil":
            assert school_class is not None
            svc.enrol(session, person, school_class, EnrolmentRole.PUPIL, actor=actor.user_id)
        elif body.role == "parent":
            for child in children:
                svc.link_parent(session, person, child, actor=actor.user_id)
        else:
            role = Role.SCHOOL_ADMIN if body.role == "school_admin" else Role.TEACHER
            svc.grant_school_role(session, person, school, role, actor=actor.user_id)
            if school_class is not None and body.role == "class_teacher":
                svc.enrol(
                    session, person, school_class, EnrolmentRole.CLASS_TEACHER, actor=actor.user_id
                )
            elif school_class is not None:
                subject = svc.add_subject(session, school, body.subject or "Предмет")
                svc.enrol(
                    session,
                    person,
                    school_class,
                    EnrolmentRole.SUBJECT_TEACHER,
                    subject=subject,
                    actor=actor.user_id,
                )
    except svc.DomainError as exc:
        raise _refusal(session, exc) from exc
    _commit(session)
    reconcile_soon(request)
    return _person_public(session, person, school)


@router.post("/schools/{school_id}/pupils/{person_id}/move")
def move_pupil(
    school_id: PathId,
    person_id: PathId,
    body: MovePupil,
    request: Request,
    session: SessionDep,
    actor: CurrentAdmin,
) -> PersonPublic:
    school = _school(session, actor, school_id)
    pupil = _in_school(session, person_id, school)
    try:
        svc.move_pupil(
            session, pupil, _class(session, school, body.class_label), actor=actor.user_id
        )
    except svc.DomainError as exc:
        raise _refusal(session, exc) from exc
    _commit(session)
    reconcile_soon(request)
    return _person_public(session, pupil, school)


@router.post("/schools/{school_id}/parent-links", status_code=201)
def link_parent(
    school_id: PathId,
    body: ParentLinkCreate,
    request: Request,
    session: SessionDep,
    actor: CurrentAdmin,
) -> PersonPublic:
    """Confirm that a person is a parent of a pupil of this school."""
    school = _school(session, actor, school_id)
    child = _pupil_here(session, body.child_id, school)
    parent = session.get(Person, body.parent_id)
    if parent is None or parent.id == child.id:
        raise ApiError(404, "M_NOT_FOUND", f"There is no person {body.parent_id} to link")
    try:
        svc.link_parent(session, parent, child, actor=actor.user_id)
    except svc.DomainError as exc:
        raise _refusal(session, exc) from exc
    _commit(session)
    reconcile_soon(request)
    return _person_public(session, parent, school)


@router.delete("/schools/{school_id}/teachers/{person_id}", status_code=204)
def teacher_leaves(
    school_id: PathId, person_id: PathId, request: Request, session: SessionDep, actor: CurrentAdmin
) -> None:
    school = _school(session, actor, school_id)
    svc.teacher_leaves(session, _in_school(session, person_id, school), school, actor=actor.user_id)
    _commit(session)
    reconcile_soon(request)


def _room_public(room: ManagedRoom) -> RoomPublic:
    return RoomPublic(
        alias=room.alias,
        kind=room.kind.value,
        class_id=room.class_id,
        room_id=room.room_id,
        federated=room.federated,
    )


@router.get("/schools/{school_id}/rooms")
def list_rooms(school_id: PathId, session: SessionDep, actor: CurrentAdmin) -> list[RoomPublic]:
    """The school's managed spaces and rooms."""
    school = _school(session, actor, school_id)
    rooms = session.scalars(
        select(ManagedRoom).where(ManagedRoom.school_id == school.id).order_by(ManagedRoom.alias)
    )
    return [_room_public(room) for room in rooms]


@router.put("/schools/{school_id}/rooms/{alias}/federation")
def set_room_federation(
    school_id: PathId,
    alias: str,
    body: RoomFederation,
    request: Request,
    session: SessionDep,
    actor: CurrentAdmin,
) -> RoomPublic:
    """Open a room to people of the federated regions (or close it again).

    Every other room with pupils stays closed to other servers (docs/safety.md).
    """
    school = _school(session, actor, school_id)
    try:
        room = svc.set_room_federation(session, school, alias, body.federated, actor=actor.user_id)
    except svc.DomainError as exc:
        raise ApiError(404, "M_NOT_FOUND", str(exc)) from exc
    _commit(session)
    reconcile_soon(request)  # the run writes the policy snapshot the module reads
    return _room_public(room)


@router.post("/schools/{school_id}/import")
async def import_csv(
    school_id: PathId,
    request: Request,
    session: SessionDep,
    actor: CurrentAdmin,
    settings: SettingsDep,
    data: Annotated[bytes, Body(media_type="text/csv")],
    create_classes: Annotated[
        str,
        Query(
            max_length=2000,
            description="Classes the file may create, such as «7Б,8В»; a class the school "
            "does not have and this does not name makes its rows problems.",
        ),
    ] = "",
) -> ImportResult:
    if len(data) > MAX_IMPORT_BYTES:
        raise ApiError(413, "M_TOO_LARGE", "The file is over 5 MB; split it by class")
    wanted = parse_class_list(create_classes)
    if wanted is None:
        raise ApiError(400, "M_INVALID_PARAM", "create_classes lists classes such as 7Б,8В")

    def apply() -> ImportResult:
        school = _school(session, actor, school_id)
        try:
            checked = check_roster(session, school, data, create_classes=wanted)
            summary = import_roster(
                session,
                school,
                checked.rows,
                server_name=settings.server_name,
                actor=actor.user_id,
                create_classes=wanted,
            )
            session.commit()
        except RosterError as exc:
            session.rollback()
            raise ApiError(
                400, "PARTA_BAD_ROSTER", "The file was not imported: " + "; ".join(exc.problems)
            ) from exc
        except Exception:
            session.rollback()
            raise
        return ImportResult(
            created=summary.created,
            moved=summary.moved,
            unchanged=summary.unchanged,
            classes_created=summary.classes_created,
        )

    result = await run_in_threadpool(apply)
    reconcile_soon(request)
    return result


@router.post("/sync")
async def sync(request: Request, actor: CurrentAdmin) -> SyncResult:
    """Run the reconciler now and report what it did.

    The run covers the whole region (every school's rooms), so it is the region
    administrators' tool; a school's own changes are placed by the service on its own.
    """
    if not actor.region_admin:
        raise ApiError(
            403,
            "M_FORBIDDEN",
            "Only a region administrator starts a sync of the whole region; your school's "
            "changes are placed on Matrix by the service within seconds of being made",
        )
    scheduler: ReconcileScheduler = request.app.state.reconciler
    try:
        report = await scheduler.run_now()
    except ReconcilerBusy as exc:
        raise ApiError(409, "M_CONFLICT", str(exc).capitalize()) from exc
    return SyncResult(
        actions=len(report.plan), calls=report.calls, seconds=round(report.seconds, 3)
    )
