"""The school year and its people, from the admin UI: promote the school, move a pupil, a
teacher leaves, appoint a class teacher, correct or remove a person, rename or archive a
class, rename the school.

Every change goes the same three steps on one page: its form, a preview in words of what
will change (who joins and leaves which rooms, from the reconciler's desired state before
and after, worked out in a transaction that is rolled back), and a confirmation (a POST
with the CSRF token) that makes it. The services record the audit entry. Only the school's
administration and the region's administrators make these changes: the server refuses
everyone else (403), whatever the page showed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisioning.api.deps import PathId, SessionDep, reconcile_soon
from provisioning.api.schemas import PersonUpdate
from provisioning.db.models import EnrolmentRole, Person, Role, School, SchoolClass
from provisioning.i18n import N_
from provisioning.services import limits
from provisioning.services import school_changes as changes
from provisioning.services import schools as svc
from provisioning.services.access import Access
from provisioning.services.directory import PersonCard, person_card
from provisioning.services.preview import preview
from provisioning.services.roster import parse_class
from provisioning.web.deps import Viewer, WebError
from provisioning.web.pages.schools import class_for, school_for
from provisioning.web.render import render, translate

router = APIRouter()

MAX_FIELD = 300  # no field of these forms is longer; longer input is refused, not cut
MAX_PEOPLE_SHOWN = 200


@dataclass(frozen=True)
class FormField:
    name: str
    label: str  # an `N_` message ID
    kind: str = "text"  # text, tel, email, select, hidden
    options: tuple[tuple[str, str], ...] = ()  # (value, label) for a select
    required: bool = True


@dataclass(frozen=True)
class Proposal:
    """A change checked and ready: in words (`N_` ID and its parameters), and how to make
    it in a session (it loads what it changes by ID, so it works in the preview's too)."""

    summary: str
    apply: Callable[[Session], object]
    params: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    title: str  # an `N_` message ID
    title_params: Mapping[str, object]
    back: str  # where the page returns to, after the change or on «Cancel»
    fields: tuple[FormField, ...]
    propose: Callable[[Mapping[str, str]], Proposal]  # raises Refused or DomainError
    danger: bool = False

    @property
    def has_form(self) -> bool:
        """Whether the person fills anything in before the preview."""
        return any(f.kind != "hidden" for f in self.fields)


def _manage(session: Session, viewer: Access, school_id: int) -> School:
    return school_for(session, viewer, school_id, manage=True)


def _person_in(session: Session, school: School, person_id: int) -> tuple[Person, PersonCard]:
    person = session.get(Person, person_id)
    card = person_card(session, person) if person is not None else None
    if person is None or card is None or school.id not in card.school_ids:
        raise WebError(404, N_("There is no such person in this school."))
    return person, card


def _pupil_class(card: PersonCard, school: School) -> SchoolClass | None:
    for school_class, role, _ in card.enrolments:
        if role is EnrolmentRole.PUPIL and school_class.school_id == school.id:
            return school_class
    return None


def _teaches_here(card: PersonCard, school: School) -> bool:
    return any(s.id == school.id and role is Role.TEACHER for s, role in card.school_roles)


# --- The changes -----------------------------------------------------------------------


def _promotion(session: Session, actor: str, school: School) -> Change:
    next_year = svc.school_year_label(school.academic_year + 1)
    school_id, last = school.id, school.last_grade

    def propose(values: Mapping[str, str]) -> Proposal:
        year = svc.parse_school_year(values["to_year"])
        if year is None:
            raise svc.DomainError(N_("Give the school year to start, such as 2027/2028."))
        return Proposal(
            N_(
                "Every class goes up a grade. Classes of grade %(last)s graduate: their rooms "
                "become a read-only archive that keeps its members and history."
            ),
            lambda s: svc.promote(s, s.get_one(School, school_id), year, actor=actor),
            {"last": last},
        )

    return Change(
        N_("Start the school year %(year)s"),
        {"year": next_year},
        f"/schools/{school.id}",
        (FormField("to_year", N_("School year"), "hidden"),),
        propose,
    )


def _school_rename(session: Session, actor: str, school: School) -> Change:
    school_id, before = school.id, school.name

    def propose(values: Mapping[str, str]) -> Proposal:
        name = " ".join(values["name"].split())
        if not 2 <= len(name) <= 200:
            raise svc.DomainError(N_("Give the school a name of 2 to 200 characters."))
        return Proposal(
            N_("The school «%(before)s» is renamed «%(after)s»; its address and rooms stay."),
            lambda s: changes.rename_school(s, s.get_one(School, school_id), name, actor=actor),
            {"before": before, "after": name},
        )

    return Change(
        N_("Rename the school"),
        {},
        f"/schools/{school.id}",
        (FormField("name", N_("Name")),),
        propose,
    )


def _class_rename(session: Session, actor: str, school_class: SchoolClass) -> Change:
    class_id, before = school_class.id, school_class.label

    def propose(values: Mapping[str, str]) -> Proposal:
        parsed = parse_class(values["label"])
        if parsed is None:
            raise svc.DomainError(
                N_("«%(label)s» is not a class such as 5А."), label=values["label"]
            )
        return Proposal(
            N_("Class %(before)s is renamed %(after)s; its rooms and their history stay."),
            lambda s: changes.rename_class(
                s, s.get_one(SchoolClass, class_id), *parsed, actor=actor
            ),
            {"before": before, "after": f"{parsed[0]}{parsed[1]}"},
        )

    return Change(
        N_("Rename class %(label)s"),
        {"label": before},
        f"/schools/{school_class.school_id}/classes/{class_id}",
        (FormField("label", N_("New name, such as 5В")),),
        propose,
    )


def _class_archive(session: Session, actor: str, school_class: SchoolClass) -> Change:
    class_id, label = school_class.id, school_class.label

    def propose(values: Mapping[str, str]) -> Proposal:
        return Proposal(
            N_(
                "Class %(label)s is closed: its rooms become a read-only archive that keeps its "
                "members and history."
            ),
            lambda s: changes.archive_class(s, s.get_one(SchoolClass, class_id), actor=actor),
            {"label": label},
        )

    return Change(
        N_("Archive class %(label)s"),
        {"label": label},
        f"/schools/{school_class.school_id}/classes/{class_id}",
        (),
        propose,
        danger=True,
    )


def _class_teacher(
    session: Session, actor: str, school: School, school_class: SchoolClass
) -> Change:
    class_id, label = school_class.id, school_class.label
    staff = {str(p.id): p.display_name for p in changes.school_staff(session, school)}

    def propose(values: Mapping[str, str]) -> Proposal:
        if values["person_id"] not in staff:
            raise svc.DomainError(N_("Choose a teacher of the school."))
        person_id = int(values["person_id"])
        return Proposal(
            N_(
                "%(name)s becomes the class teacher of %(label)s; a class teacher before them "
                "stays a teacher of the school."
            ),
            lambda s: changes.appoint_class_teacher(
                s, s.get_one(SchoolClass, class_id), s.get_one(Person, person_id), actor=actor
            ),
            {"name": staff[values["person_id"]], "label": label},
        )

    return Change(
        N_("Appoint the class teacher of %(label)s"),
        {"label": label},
        f"/schools/{school.id}/classes/{class_id}",
        (FormField("person_id", N_("Teacher"), "select", tuple(staff.items())),),
        propose,
    )


def _move_pupil(
    session: Session, actor: str, school: School, person: Person, current: SchoolClass
) -> Change:
    person_id, name = person.id, person.display_name
    targets = {
        str(c.id): c.label for c in changes.live_classes(session, school) if c.id != current.id
    }

    def propose(values: Mapping[str, str]) -> Proposal:
        if values["class_id"] not in targets:
            raise svc.DomainError(N_("Choose a class of the school."))
        class_id = int(values["class_id"])
        return Proposal(
            N_(
                "%(name)s moves from class %(before)s to class %(after)s; their parents follow "
                "to the new class's rooms."
            ),
            lambda s: svc.move_pupil(
                s, s.get_one(Person, person_id), s.get_one(SchoolClass, class_id), actor=actor
            ),
            {"name": name, "before": current.label, "after": targets[values["class_id"]]},
        )

    return Change(
        N_("Move %(name)s to another class"),
        {"name": name},
        f"/people/{person_id}",
        (FormField("class_id", N_("Class"), "select", tuple(targets.items())),),
        propose,
    )


def _teacher_leaves(session: Session, actor: str, school: School, person: Person) -> Change:
    person_id, school_id, name = person.id, school.id, person.display_name

    def propose(values: Mapping[str, str]) -> Proposal:
        return Proposal(
            N_(
                "%(name)s leaves the school as a teacher: their classes and subjects here end. "
                "Their account stays."
            ),
            lambda s: svc.teacher_leaves(
                s, s.get_one(Person, person_id), s.get_one(School, school_id), actor=actor
            ),
            {"name": name},
        )

    return Change(
        N_("%(name)s leaves the school"),
        {"name": name},
        f"/people/{person_id}",
        (),
        propose,
        danger=True,
    )


def _person_edit(session: Session, actor: str, school: School, person: Person) -> Change:
    person_id, school_id, name = person.id, school.id, person.display_name

    def propose(values: Mapping[str, str]) -> Proposal:
        # The checks of `services.limits`, as when the person was added; their refusal says why.
        display_name = limits.person_name(" ".join(values["display_name"].split()))
        phone = values["phone"].strip()
        email = values["email"].strip()
        update = PersonUpdate(
            display_name=display_name,
            phone=limits.phone_number(phone) if phone else None,
            email=limits.email_address(email) if email else None,
        )
        return Proposal(
            N_("%(before)s: name «%(name)s», phone %(phone)s, e-mail %(email)s."),
            lambda s: changes.update_person(
                s,
                s.get_one(Person, person_id),
                s.get_one(School, school_id),
                display_name=update.display_name,
                phone=update.phone,
                email=update.email,
                roster_id=s.get_one(Person, person_id).roster_id,  # this form does not show it
                actor=actor,
            ),
            {
                "before": name,
                "name": update.display_name,
                "phone": update.phone or "—",
                "email": update.email or "—",
            },
        )

    return Change(
        N_("Edit %(name)s"),
        {"name": name},
        f"/people/{person_id}",
        (
            FormField("display_name", N_("Name")),
            FormField("phone", N_("Phone"), "tel", required=False),
            FormField("email", N_("E-mail"), "email", required=False),
        ),
        propose,
    )


def _person_remove(
    session: Session, actor: str, school: School, person: Person, viewer: Access
) -> Change:
    person_id, school_id, name = person.id, school.id, person.display_name

    def propose(values: Mapping[str, str]) -> Proposal:
        if person_id == viewer.person_id:
            raise svc.DomainError(N_("You cannot remove yourself from the school."))
        return Proposal(
            N_(
                "%(name)s is taken out of %(school)s: their roles, classes and family links "
                "there end. Their account stays, in none of the school's rooms."
            ),
            lambda s: changes.remove_from_school(
                s, s.get_one(Person, person_id), s.get_one(School, school_id), actor=actor
            ),
            {"name": name, "school": school.name},
        )

    return Change(
        N_("Remove %(name)s from the school"),
        {"name": name},
        f"/schools/{school_id}/people",
        (),
        propose,
        danger=True,
    )


# --- One page for every change ---------------------------------------------------------


def _initial(change: Change, values: Mapping[str, str]) -> dict[str, str]:
    return {f.name: values.get(f.name, "") for f in change.fields}


async def _page(
    request: Request,
    session: Session,
    make: Callable[[], Change],
    initial: Mapping[str, str],
) -> Response:
    """GET shows the form (or, with nothing to fill in, what will change); POST
    `step=preview` shows what will change; `step=confirm` makes it and returns to the page
    it concerns."""
    form: dict[str, str] = {}
    if request.method == "POST":
        for key, value in (await request.form()).multi_items():
            if isinstance(value, str):
                form[key] = value

    def handle() -> Response:
        change = make()
        if request.method == "GET":
            values = _initial(change, initial)
            if change.has_form:
                return _render(request, change, values)
            # Nothing to fill in: the page opens on what will change.
        else:
            values = {f.name: form.get(f.name, "") for f in change.fields}
        too_long = [f.name for f in change.fields if len(values[f.name]) > MAX_FIELD]
        if too_long or any("\x00" in v for v in values.values()):
            message = N_("A field is too long or holds characters a name cannot have.")
            return _render(request, change, values, error=translate(request, message), status=400)
        try:
            proposal = change.propose(values)
            if form.get("step") == "confirm":
                proposal.apply(session)
                session.commit()
                reconcile_soon(request)
                return RedirectResponse(change.back, status_code=303)
            rooms = preview(session, proposal.apply)
        except (svc.DomainError, limits.FieldRefused) as exc:
            session.rollback()
            status = 409 if isinstance(exc, svc.AlreadyExists) else 400
            error = translate(request, exc.template, **exc.params)
            return _render(request, change, values, error=error, status=status)
        except IntegrityError:
            session.rollback()  # a concurrent request made the same change a moment ago
            error = translate(
                request,
                N_(
                    "This was changed at the same moment by someone "
                    "else. Reload the page to see it."
                ),
            )
            return _render(request, change, values, error=error, status=409)
        summary = translate(request, proposal.summary, **proposal.params)
        return _render(request, change, values, summary=summary, rooms=rooms)

    return await run_in_threadpool(handle)


def _render(
    request: Request,
    change: Change,
    values: Mapping[str, str],
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    context.setdefault("error", None)
    context.setdefault("summary", None)
    context.setdefault("rooms", None)
    return render(
        request,
        "school_year/change.html",
        status=status,
        change=change,
        values=values,
        title=translate(request, change.title, **change.title_params),
        max_people=MAX_PEOPLE_SHOWN,
        **context,
    )


_FORM = ["GET", "POST"]


@router.api_route("/schools/{school_id}/promote", methods=_FORM)
async def promote_page(
    request: Request, school_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    school = _manage(session, viewer, school_id)
    initial = {"to_year": svc.school_year_label(school.academic_year + 1)}
    return await _page(
        request, session, lambda: _promotion(session, viewer.user_id, school), initial
    )


@router.api_route("/schools/{school_id}/edit", methods=_FORM)
async def school_edit_page(
    request: Request, school_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    school = _manage(session, viewer, school_id)
    return await _page(
        request,
        session,
        lambda: _school_rename(session, viewer.user_id, school),
        {"name": school.name},
    )


def _class_page(what: str) -> None:
    """Register the page of one change to a class (rename, archive, class teacher)."""

    async def class_change_page(
        request: Request, school_id: PathId, class_id: PathId, viewer: Viewer, session: SessionDep
    ) -> Response:
        school = _manage(session, viewer, school_id)
        school_class = class_for(session, school, class_id)
        if school_class.archived_at is not None:
            raise WebError(404, N_("The class is archived; its rooms are read-only."))
        actor = viewer.user_id
        makers: dict[str, Callable[[], Change]] = {
            "rename": lambda: _class_rename(session, actor, school_class),
            "archive": lambda: _class_archive(session, actor, school_class),
            "class-teacher": lambda: _class_teacher(session, actor, school, school_class),
        }
        return await _page(request, session, makers[what], {"label": school_class.label})

    router.add_api_route(
        f"/schools/{{school_id}}/classes/{{class_id}}/{what}", class_change_page, methods=_FORM
    )


def _person_page(what: str) -> None:
    """Register the page of one change to a person (edit, remove, move, leave)."""

    async def person_change_page(
        request: Request, school_id: PathId, person_id: PathId, viewer: Viewer, session: SessionDep
    ) -> Response:
        school = _manage(session, viewer, school_id)
        person, card = _person_in(session, school, person_id)
        current = _pupil_class(card, school)
        actor = viewer.user_id
        makers: dict[str, Callable[[], Change]] = {
            "edit": lambda: _person_edit(session, actor, school, person),
            "remove": lambda: _person_remove(session, actor, school, person, viewer),
        }
        if current is not None:
            makers["move"] = lambda: _move_pupil(session, actor, school, person, current)
        if _teaches_here(card, school):
            makers["leave"] = lambda: _teacher_leaves(session, actor, school, person)
        if what not in makers:
            raise WebError(404, N_("This change does not apply to this person."))
        initial = {
            "display_name": person.display_name,
            "phone": person.phone or "",
            "email": person.email or "",
        }
        return await _page(request, session, makers[what], initial)

    router.add_api_route(
        f"/schools/{{school_id}}/people/{{person_id}}/{what}", person_change_page, methods=_FORM
    )


for _what in ("rename", "archive", "class-teacher"):
    _class_page(_what)
for _what in ("edit", "remove", "move", "leave"):
    _person_page(_what)


@dataclass(frozen=True)
class PersonActions:
    """The changes the viewer may make to a person in one school, for the person's page."""

    school: School
    pupil: bool
    teacher: bool


def person_actions(session: Session, viewer: Access, card: PersonCard) -> list[PersonActions]:
    schools = session.scalars(
        select(School).where(School.id.in_(card.school_ids)).order_by(School.name)
    )
    return [
        PersonActions(school, _pupil_class(card, school) is not None, _teaches_here(card, school))
        for school in schools
        if viewer.may_manage_school(school.id)
    ]
