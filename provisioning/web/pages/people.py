"""A person's page: roles, classes, parent–child links and Matrix ID."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from provisioning.api.deps import SessionDep, SettingsDep
from provisioning.db.models import Person
from provisioning.i18n import N_
from provisioning.services.access import Access
from provisioning.services.directory import PersonCard, person_card
from provisioning.web.deps import Viewer, WebError
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


@router.get("/people/{person_id}")
def person_page(
    request: Request, person_id: int, viewer: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    person = session.get(Person, person_id)
    card = person_card(session, person) if person is not None else None
    if card is None or not may_view_person(viewer, card):
        # The same answer whether the person exists or not: nothing to learn by probing.
        raise WebError(404, N_("There is no such person, or you cannot see them."))
    manages = any(viewer.may_manage_school(s) for s in card.school_ids)
    return render(
        request, "person.html", card=card, show_contacts=manages or viewer.person_id == person_id,
        homeserver_url=settings.element_homeserver_url,
    )  # fmt: skip
