"""REST API `/api/v1` for the changes of the school year the admin UI also makes: renaming
a school or a class, archiving a class, appointing a class teacher, correcting or removing a
person. (Promotion, moving a pupil and a teacher leaving are in `v1`.)

The same services, checks and audit entries as the admin UI's pages.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from foundation.web import ApiError
from provisioning.api.auth import CurrentAdmin
from provisioning.api.deps import PathId, SessionDep, reconcile_soon
from provisioning.api.schemas import (
    ClassPublic,
    ClassTeacher,
    ClassUpdate,
    PersonPublic,
    PersonUpdate,
    SchoolPublic,
    SchoolUpdate,
)
from provisioning.api.v1 import (
    _class_public,
    _in_school,
    _person_public,
    _refusal,
    _school,
    _school_public,
)
from provisioning.db.models import Person, School, SchoolClass
from provisioning.services import school_changes as changes
from provisioning.services.roster import parse_class
from provisioning.services.schools import DomainError

router = APIRouter(prefix="/api/v1", tags=["provisioning"])


def _class_of(session: Session, school: School, class_id: int) -> SchoolClass:
    school_class = session.get(SchoolClass, class_id)
    if school_class is None or school_class.school_id != school.id:
        raise ApiError(404, "M_NOT_FOUND", f"The school has no class {class_id}")
    return school_class


@router.put("/schools/{school_id}")
def rename_school(
    school_id: PathId,
    body: SchoolUpdate,
    request: Request,
    session: SessionDep,
    actor: CurrentAdmin,
) -> SchoolPublic:
    """Rename the school; its address and rooms' aliases stay."""
    school = _school(session, actor, school_id)
    try:
        changes.rename_school(session, school, body.name, actor=actor.user_id)
    except DomainError as exc:
        raise _refusal(session, exc) from exc
    session.commit()
    reconcile_soon(request)
    return _school_public(session, school)


@router.patch("/schools/{school_id}/classes/{class_id}")
def rename_class(
    school_id: PathId,
    class_id: PathId,
    body: ClassUpdate,
    request: Request,
    session: SessionDep,
    actor: CurrentAdmin,
) -> ClassPublic:
    """Give a class another letter; its rooms keep their aliases and history."""
    school = _school(session, actor, school_id)
    school_class = _class_of(session, school, class_id)
    grade, letter = parse_class(body.label) or (0, "")
    try:
        changes.rename_class(session, school_class, grade, letter, actor=actor.user_id)
    except DomainError as exc:
        raise _refusal(session, exc) from exc
    session.commit()
    reconcile_soon(request)
    return _class_public(school_class)


@router.post("/schools/{school_id}/classes/{class_id}/archive")
def archive_class(
    school_id: PathId, class_id: PathId, request: Request, session: SessionDep, actor: CurrentAdmin
) -> ClassPublic:
    """Close a class without pupils: its rooms become a read-only archive."""
    school = _school(session, actor, school_id)
    school_class = _class_of(session, school, class_id)
    try:
        changes.archive_class(session, school_class, actor=actor.user_id)
    except DomainError as exc:
        raise _refusal(session, exc) from exc
    session.commit()
    reconcile_soon(request)
    return _class_public(school_class)


@router.put("/schools/{school_id}/classes/{class_id}/class-teacher")
def appoint_class_teacher(
    school_id: PathId,
    class_id: PathId,
    body: ClassTeacher,
    request: Request,
    session: SessionDep,
    actor: CurrentAdmin,
) -> PersonPublic:
    """Make a teacher of the school the class teacher; the one before stays a teacher."""
    school = _school(session, actor, school_id)
    school_class = _class_of(session, school, class_id)
    teacher = _in_school(session, body.person_id, school)
    try:
        changes.appoint_class_teacher(session, school_class, teacher, actor=actor.user_id)
    except DomainError as exc:
        raise _refusal(session, exc) from exc
    session.commit()
    reconcile_soon(request)
    return _person_public(session, teacher, school)


@router.put("/schools/{school_id}/people/{person_id}")
def update_person(
    school_id: PathId,
    person_id: PathId,
    body: PersonUpdate,
    request: Request,
    session: SessionDep,
    actor: CurrentAdmin,
) -> PersonPublic:
    """Correct a person's name, phone and e-mail (all three given; null clears a contact)
    and, if given, their roster ID (null clears it)."""
    school = _school(session, actor, school_id)
    person = _in_school(session, person_id, school)
    given = "roster_id" in body.model_fields_set
    try:
        changes.update_person(
            session,
            person,
            school,
            display_name=body.display_name,
            phone=body.phone,
            email=body.email,
            roster_id=body.roster_id if given else person.roster_id,
            actor=actor.user_id,
        )
    except DomainError as exc:
        raise _refusal(session, exc) from exc
    session.commit()
    reconcile_soon(request)
    return _person_public(session, person, school)


@router.delete("/schools/{school_id}/people/{person_id}", status_code=204)
def remove_person(
    school_id: PathId, person_id: PathId, request: Request, session: SessionDep, actor: CurrentAdmin
) -> None:
    """Take a person out of the school; their account stays, in none of its rooms."""
    school = _school(session, actor, school_id)
    person: Person = _in_school(session, person_id, school)
    if person.matrix_user_id == actor.user_id:
        raise ApiError(400, "M_INVALID_PARAM", "You cannot remove yourself from the school")
    try:
        changes.remove_from_school(session, person, school, actor=actor.user_id)
    except DomainError as exc:
        raise _refusal(session, exc) from exc
    session.commit()
    reconcile_soon(request)
