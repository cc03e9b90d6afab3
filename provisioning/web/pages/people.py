"""A person's page: roles, classes, parent–child links and Matrix ID."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from provisioning.api.deps import PathId, SessionDep, SettingsDep
from provisioning.db.models import EnrolmentRole, Person, Role, School, SchoolClass
from provisioning.i18n import N_
from provisioning.services.access import Access
from provisioning.services.directory import PersonCard, person_card
from provisioning.services.invites import create_invite
from provisioning.web.deps import Viewer, WebError
from provisioning.web.pages.school_year import person_actions
from provisioning.web.render import render

router = APIRouter()


def may_view_person(viewer: Access, card: PersonCard) -> bool:
    """Oneself; the administration of their school; the teachers of their (child's) class;
    their parents."""
    if viewer.person_id == card.person.id or card.person.id in viewer.parent_of:
        return True
    if any(viewer.may_manage_school(school_id) for school_id in card.school_ids):
        return True
    return bool(card.class_ids & viewer.teaches_classes)


def reset_target(card: PersonCard) -> tuple[int, Role, int | None] | None:
    """The school, role and class a password-reset link for this person is made under."""
    for school, role in card.school_roles:
        return school.id, role, None
    for school_class, enrolment_role, _ in card.enrolments:
        role = Role.PUPIL if enrolment_role is EnrolmentRole.PUPIL else Role.TEACHER
        return school_class.school_id, role, school_class.id
    for _, child_class in card.children:
        if child_class is not None:
            return child_class.school_id, Role.PARENT, child_class.id
    return None


def may_reset(viewer: Access, card: PersonCard) -> bool:
    target = reset_target(card)
    if target is None or card.person.id == viewer.person_id:
        return False  # one's own password is changed in Element
    school_id, role, class_id = target
    return viewer.may_invite(school_id, role, class_id)


@router.post("/people/{person_id}/reset-password")
def reset_password(person_id: PathId, viewer: Viewer, session: SessionDep) -> Response:
    """A one-time link (valid 3 days) with which the person chooses a new password."""
    person = session.get(Person, person_id)
    card = person_card(session, person) if person is not None else None
    if card is None or not may_view_person(viewer, card) or not may_reset(viewer, card):
        raise WebError(403, N_("You may not reset this person's password."))
    target = reset_target(card)
    assert target is not None and person is not None
    school = session.get(School, target[0])
    school_class = session.get(SchoolClass, target[2]) if target[2] else None
    assert school is not None
    invite = create_invite(
        session, school, target[1], school_class=school_class, person=person, valid_days=3,
        created_by=viewer.person_id, actor=viewer.user_id,
    )  # fmt: skip
    session.commit()
    return RedirectResponse(f"/invites/{invite.id}", status_code=303)


@router.get("/people/{person_id}")
def person_page(
    request: Request, person_id: PathId, viewer: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    person = session.get(Person, person_id)
    card = person_card(session, person) if person is not None else None
    if card is None or not may_view_person(viewer, card):
        # The same answer whether the person exists or not: nothing to learn by probing.
        raise WebError(404, N_("There is no such person, or you cannot see them."))
    manages = any(viewer.may_manage_school(s) for s in card.school_ids)
    return render(
        request, "person.html", card=card, show_contacts=manages or viewer.person_id == person_id,
        homeserver_url=settings.element_homeserver_url, may_reset=may_reset(viewer, card),
        year_actions=person_actions(session, viewer, card),
    )  # fmt: skip
