"""Invite links (made by administrators and teachers) and registration through them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foundation.settings import Settings
from matrix.accounts import phone_threepid
from matrix.client import MatrixClient
from matrix.errors import MatrixError
from matrix.sso import link_subject
from provisioning.api.deps import (
    MatrixDep,
    PathId,
    RowId,
    SessionDep,
    SettingsDep,
    reconcile_soon,
)
from provisioning.db.base import utcnow
from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    InviteLink,
    InviteUse,
    ParentLink,
    Person,
    Role,
    School,
    SchoolClass,
)
from provisioning.i18n import N_
from provisioning.services import invites as svc
from provisioning.services import limits, not_me, passwords
from provisioning.services.access import Access
from provisioning.services.accounts import LocalpartAllocator
from provisioning.services.phone_codes import Purpose
from provisioning.services.requests import parse_subjects
from provisioning.services.schools import DomainError
from provisioning.web.deps import MaybeViewer, Viewer, WebError
from provisioning.web.pages import join_sign_on
from provisioning.web.phone_check import (
    CodeState,
    account_with_phone,
    check_code,
    code_state,
    flash_calls,
    send_code,
    shown_number,
    wanted_channel,
)
from provisioning.web.qr import qr_data_uri, qr_png, qr_svg
from provisioning.web.render import render, translate
from provisioning.web.security import client_ip

log = logging.getLogger(__name__)
router = APIRouter()


def invite_url(settings: Settings, invite: InviteLink) -> str:
    return f"{settings.web_url}/join/{invite.token}"


def _may_handle(viewer: Access, invite: InviteLink) -> bool:
    return viewer.may_invite(invite.school_id, invite.role, invite.class_id)


def _invite_for(session: Session, viewer: Access, invite_id: int) -> InviteLink:
    invite = session.get(InviteLink, invite_id)
    if invite is None or not _may_handle(viewer, invite):
        raise WebError(404, N_("There is no such link, or it is not yours to manage."))
    return invite


def _back_to(invite: InviteLink) -> str:
    if invite.class_id is not None:
        return f"/schools/{invite.school_id}/classes/{invite.class_id}#invites"
    return f"/schools/{invite.school_id}#invites"


# --- Making and managing links -----------------------------------------------------------


@router.post("/schools/{school_id}/invites")
def create_invite(
    request: Request,
    school_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    role: Annotated[Role, Form()],
    class_id: Annotated[RowId | None, Form()] = None,
    child_id: Annotated[RowId | None, Form()] = None,
    valid_days: Annotated[int, Form(ge=1, le=svc.MAX_VALID_DAYS)] = 14,
    max_uses: Annotated[str, Form(max_length=6)] = "",
) -> Response:
    if not viewer.may_invite(school_id, role, class_id):
        raise WebError(403, N_("You may not invite people for this role here."))
    school = session.get(School, school_id)
    if school is None:
        raise WebError(404, N_("There is no such school."))
    school_class = session.get(SchoolClass, class_id) if class_id is not None else None
    child = session.get(Person, child_id) if child_id is not None else None
    if role is Role.PARENT and child is not None and school_class is None:
        school_class = session.scalar(
            select(SchoolClass)
            .join(Enrolment, Enrolment.class_id == SchoolClass.id)
            .where(Enrolment.person_id == child.id, Enrolment.role == EnrolmentRole.PUPIL)
        )
        if school_class is None or not viewer.may_invite(school_id, role, school_class.id):
            raise WebError(403, N_("You may not invite people for this role here."))
    limit = int(max_uses) if max_uses.strip().isdigit() else None
    try:
        invite = svc.create_invite(
            session, school, role, school_class=school_class, child=child,
            valid_days=valid_days, max_uses=limit, created_by=viewer.person_id,
            actor=viewer.user_id,
        )  # fmt: skip
    except DomainError as exc:
        session.rollback()
        raise WebError(400, exc.template, **exc.params) from exc
    session.commit()
    return RedirectResponse(f"/invites/{invite.id}", status_code=303)


@router.get("/invites/{invite_id}")
def invite_page(
    request: Request, invite_id: PathId, viewer: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    invite = _invite_for(session, viewer, invite_id)
    url = invite_url(settings, invite)
    uses = svc.invite_uses(session, [invite.id])[invite.id]
    child = session.get(Person, invite.child_id) if invite.child_id else None
    person = session.get(Person, invite.person_id) if invite.person_id else None
    return render(
        request, "invite.html", invite=invite, url=url, qr=qr_data_uri(url, scale=6),
        link_status=svc.invite_status(invite), uses=uses, child=child, person=person,
        back=_back_to(invite),
    )  # fmt: skip


@router.get("/invites/{invite_id}/qr.{kind}")
def invite_qr(
    invite_id: PathId, kind: str, viewer: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    invite = _invite_for(session, viewer, invite_id)
    url = invite_url(settings, invite)
    name = f"parta-invite-{invite.id}"
    if kind == "png":
        return Response(qr_png(url), media_type="image/png", headers=_download(name, "png"))
    if kind == "svg":
        return Response(qr_svg(url), media_type="image/svg+xml", headers=_download(name, "svg"))
    raise WebError(
        404, N_("There is no such page. Check the address, or start from the main page.")
    )


def _download(name: str, extension: str) -> dict[str, str]:
    return {"Content-Disposition": f'inline; filename="{name}.{extension}"'}


@router.post("/invites/{invite_id}/revoke")
def revoke(invite_id: PathId, viewer: Viewer, session: SessionDep) -> Response:
    invite = _invite_for(session, viewer, invite_id)
    svc.revoke_invite(session, invite, actor=viewer.user_id)
    session.commit()
    return RedirectResponse(f"/invites/{invite.id}", status_code=303)


# --- The class's hand-out sheet ------------------------------------------------------------


def _class_for_sheet(
    session: Session, viewer: Access, school_id: int, class_id: int
) -> SchoolClass:
    school_class = session.get(SchoolClass, class_id)
    if school_class is None or school_class.school_id != school_id:
        raise WebError(404, N_("There is no such class in this school."))
    if not viewer.may_invite(school_id, Role.PUPIL, class_id):
        raise WebError(403, N_("You may not invite people for this role here."))
    return school_class


@router.post("/schools/{school_id}/classes/{class_id}/sheet")
def prepare_sheet(
    school_id: PathId, class_id: PathId, viewer: Viewer, session: SessionDep
) -> Response:
    """Make a personal link for every pupil and parent of the class who has none active."""
    school_class = _class_for_sheet(session, viewer, school_id, class_id)
    school = session.get(School, school_id)
    assert school is not None
    pupils = session.scalars(
        select(Person)
        .join(Enrolment, Enrolment.person_id == Person.id)
        .where(Enrolment.class_id == class_id, Enrolment.role == EnrolmentRole.PUPIL)
    ).all()
    parents = session.execute(
        select(Person, ParentLink.child_id)
        .join(ParentLink, ParentLink.parent_id == Person.id)
        .where(ParentLink.child_id.in_([p.id for p in pupils]))
    ).all()
    covered = _personal_links(session, class_id)
    # Someone reported with «это не я» waits for the administration's decision (a new
    # link under a corrected name), not for a new link under the same name.
    covered.update(dict.fromkeys(not_me.reported_people(session, school_id)))  # type: ignore[arg-type]
    for person, role in [(p, Role.PUPIL) for p in pupils] + [(p, Role.PARENT) for p, _ in parents]:
        if person.id in covered or _activated(session, person.id):
            continue
        child = None
        if role is Role.PARENT:
            child = session.get(Person, next(c for p, c in parents if p.id == person.id))
        svc.create_invite(
            session, school, role, school_class=school_class, child=child, person=person,
            valid_days=30, created_by=viewer.person_id, actor=viewer.user_id,
        )  # fmt: skip
        covered[person.id] = None  # type: ignore[assignment]
    session.commit()
    return RedirectResponse(f"/schools/{school_id}/classes/{class_id}/sheet", status_code=303)


def _personal_links(session: Session, class_id: int) -> dict[int, InviteLink]:
    """The class's active personal links, by the person they are for."""
    links = session.scalars(
        select(InviteLink).where(
            InviteLink.class_id == class_id,
            InviteLink.person_id.is_not(None),
            InviteLink.revoked_at.is_(None),
            InviteLink.expires_at > utcnow(),
            or_(InviteLink.max_uses.is_(None), InviteLink.uses < InviteLink.max_uses),
        )
    ).all()
    return {link.person_id: link for link in links if link.person_id is not None}


def _activated(session: Session, person_id: int) -> bool:
    """Someone who has registered or activated through a link has a password already."""
    return session.scalar(select(InviteUse.id).where(InviteUse.person_id == person_id)) is not None


@router.get("/schools/{school_id}/classes/{class_id}/sheet")
def sheet(
    request: Request,
    school_id: PathId,
    class_id: PathId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    school_class = _class_for_sheet(session, viewer, school_id, class_id)
    school = session.get(School, school_id)
    links = sorted(
        _personal_links(session, class_id).values(),
        key=lambda link: (link.role != Role.PUPIL, link.child_id or 0, link.person_id or 0),
    )
    wanted = {link.person_id for link in links} | {link.child_id for link in links}
    people = {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(wanted)))}
    cards = [
        {
            "person": people[link.person_id],
            "child": people.get(link.child_id) if link.child_id else None,
            "role": link.role.value,
            "url": invite_url(settings, link),
            "qr": qr_data_uri(invite_url(settings, link), scale=3),
            "expires_at": link.expires_at,
        }
        for link in links
        if link.person_id in people
    ]
    return render(request, "sheet.html", school=school, school_class=school_class, cards=cards)


# --- Registration through a link -------------------------------------------------------------


def _join_context(session: Session, invite: InviteLink) -> dict[str, Any]:
    classes = (
        session.scalars(
            select(SchoolClass)
            .where(SchoolClass.school_id == invite.school_id, SchoolClass.archived_at.is_(None))
            .order_by(SchoolClass.grade, SchoolClass.letter)
        ).all()
        if invite.role is Role.TEACHER
        else []
    )
    return {
        "classes": classes,
        "invite": invite,
        "school": session.get(School, invite.school_id),
        "school_class": session.get(SchoolClass, invite.class_id) if invite.class_id else None,
        "child": session.get(Person, invite.child_id) if invite.child_id else None,
        "person": session.get(Person, invite.person_id) if invite.person_id else None,
    }


def _usable(session: Session, token: str) -> InviteLink:
    try:
        return svc.find_usable(session, token)
    except svc.InviteUnusable as exc:
        raise WebError(410, exc.template) from exc


@router.get("/join/{token}")
def join_page(request: Request, token: str, session: SessionDep, viewer: MaybeViewer) -> Response:
    invite = _usable(session, token)
    form = join_sign_on.prefilled({}, join_sign_on.vouched(request, token))
    return _join_form(request, session, invite, token, form=form, problems={})


def _join_form(
    request: Request,
    session: Session,
    invite: InviteLink,
    token: str,
    *,
    form: dict[str, Any],
    problems: dict[str, svc.FormProblem],
    phone: str | None = None,
    code: CodeState | None = None,
    status: int = 200,
) -> Response:
    """The registration page, again with what was typed (never the passwords)."""
    if code is None:
        code = code_state(session, phone, Purpose.REGISTRATION, flash_calls=flash_calls(request))
    return render(
        request, "join.html", status=status, **_join_context(session, invite), token=token,
        form=form, code=code, code_sent_to=shown_number(phone) if phone and code.sent else "",
        password_rules=translate(request, passwords.RULES),
        problems={k: _sentence(translate(request, t, **p)) for k, (t, p) in problems.items()},
        **join_sign_on.form_context(request, token),
    )  # fmt: skip


def _contact_taken(
    session: Session, phone: str | None, email: str | None, invite: InviteLink
) -> str | None:
    """The user ID of a registered person with this phone or e-mail (not the invited one)."""
    conditions = []
    if phone:
        conditions.append(Person.phone == phone)
    if email:
        conditions.append(Person.email == email)
    if not conditions:
        return None
    found = session.scalars(
        select(Person).where(or_(*conditions), Person.account_created_at.is_not(None))
    ).all()
    for person in found:
        if person.id != invite.person_id and person.matrix_user_id:
            return person.matrix_user_id
    return None


_CONTACT_TAKEN = N_(
    "Someone with this phone or e-mail is registered already. "
    "Sign in with your account, or use «Forgot password?» on the sign-in page."
)


async def _phone_taken(
    session: Session, matrix: MatrixClient, phone: str, invite: InviteLink
) -> bool:
    """Whether another account has this number, in Parta or as its sign-in number."""
    if await run_in_threadpool(_contact_taken, session, phone, None, invite):
        return True
    owner = await account_with_phone(matrix, phone)
    if owner is None:
        return False
    invited = session.get(Person, invite.person_id) if invite.person_id else None
    return invited is None or invited.matrix_user_id != owner


async def _free_user_id(session: Session, matrix: MatrixClient, name: str, server: str) -> str:
    """A readable user ID that neither Parta nor the homeserver has given out."""
    allocator = await run_in_threadpool(LocalpartAllocator, session, server)
    for _ in range(20):
        user_id = allocator.user_id(name)
        if await matrix.admin_get_user(user_id) is None:
            return user_id
    raise WebError(503, N_("Could not create the account right now. Try again in a minute."))


def _sentence(text: str) -> str:
    """A message shown alone under a field starts with a capital letter."""
    return text[:1].upper() + text[1:]


_FORM_FIELDS = ("display_name", "phone", "email", "subjects", "confirm")


@router.post("/join/{token}/code")
async def send_join_code(
    request: Request,
    token: str,
    session: SessionDep,
    matrix: MatrixDep,
    display_name: Annotated[str, Form(max_length=1024)] = "",
    phone: Annotated[str, Form(max_length=256)] = "",
    email: Annotated[str, Form(max_length=1024)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
    subjects: Annotated[str, Form(max_length=500)] = "",
    class_ids: Annotated[list[RowId] | None, Form()] = None,
    channel: Annotated[str, Form(max_length=16)] = "",  # "sms": no flash call this time
) -> Response:
    """Send a code to the number typed (or call it, where the gateway places flash calls);
    the form comes back with the code field waiting.

    The "Send code" button of the registration form posts here; nothing is recorded but
    the code's hash, so a page left half-filled costs nothing.
    """
    invite = await run_in_threadpool(_usable, session, token)
    form = {"display_name": display_name, "phone": phone, "email": email, "subjects": subjects,
            "class_ids": class_ids or [], "confirm": confirm}  # fmt: skip
    try:
        number = limits.mobile_number(phone)
    except limits.FieldRefused as refused:
        return _join_form(request, session, invite, token, form=form, status=400,
                          problems={"phone": (refused.template, refused.params)})  # fmt: skip
    if await _phone_taken(session, matrix, number, invite):
        return _join_form(request, session, invite, token, form=form, status=409,
                          problems={"phone": (_CONTACT_TAKEN, {})}, phone=number)  # fmt: skip
    how = wanted_channel(request, channel)
    state, refused_code = await send_code(request, session, number, Purpose.REGISTRATION, how)
    problems = {"sms": refused_code} if refused_code else {}
    return _join_form(
        request, session, invite, token, form=form, problems=problems, phone=number, code=state,
        status=429 if refused_code else 200,
    )  # fmt: skip


@router.post("/join/{token}")
async def join(
    request: Request,
    token: str,
    session: SessionDep,
    matrix: MatrixDep,
    settings: SettingsDep,
    # No length here: `services.limits` refuses what is too long, in the same words as the
    # roster import and the API; the request's size is bounded before it is read.
    display_name: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    code: Annotated[str, Form(max_length=32)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    password_again: Annotated[str, Form(max_length=1024)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
    subjects: Annotated[str, Form(max_length=500)] = "",
    class_ids: Annotated[list[RowId] | None, Form()] = None,
) -> Response:
    invite = await run_in_threadpool(_usable, session, token)
    context = await run_in_threadpool(_join_context, session, invite)
    person = context["person"]
    invited = person if isinstance(person, Person) else None
    if invited is not None:
        display_name = invited.display_name
    # A personal link (a roster's pupil, a staff-made reset) works without a phone, for
    # people who have none; everyone else signs in with a checked mobile number.
    registration, problems = svc.check_registration(
        display_name, phone, email, password, password_again,
        phone_required=invited is None, user_id=invited.matrix_user_id if invited else None,
    )  # fmt: skip
    if confirm != "yes":
        problems["confirm"] = (N_("Check the school, class and role, and tick the box."), {})
    if registration is not None and invite.role is Role.TEACHER:
        chosen = parse_subjects(subjects)
        refused = svc.check_subjects(subjects)
        if refused is not None:
            problems["subjects"] = refused
        elif not chosen:
            problems["subjects"] = (N_("Name at least one subject you teach."), {})
        registration = replace(
            registration, subjects=tuple(chosen), class_ids=tuple(class_ids or ())
        )
    number = registration.phone if registration is not None else None
    # A mobile number the region's provider verified stands for the SMS code (issue 22).
    claims = join_sign_on.vouched(request, token)
    phone_vouched = bool(number and claims and claims.phone_verified and number == claims.phone)
    if number and not phone_vouched and not code.strip():
        problems["code"] = (
            N_("Enter the code from the SMS. No SMS yet? Press «Send a code by SMS».")
            if not flash_calls(request)
            else N_(
                "Enter the last 4 digits of the number that called you. "
                "No call yet? Press «Get a code by call»."
            ),
            {},
        )
    if registration is not None and not problems:
        taken = await run_in_threadpool(
            _contact_taken, session, registration.phone, registration.email, invite
        )
        if taken or (number and await _phone_taken(session, matrix, number, invite)):
            problems["contact"] = (_CONTACT_TAKEN, {})
    if registration is not None and number and not phone_vouched and not problems:
        # Last, so that a typo elsewhere on the form does not spend one of the code's tries.
        wrong_code = await check_code(request, session, number, Purpose.REGISTRATION, code)
        if wrong_code is not None:
            problems["code"] = wrong_code
    if registration is None or problems:
        form = {"display_name": display_name, "phone": phone, "email": email, "subjects": subjects,
                "class_ids": class_ids or [], "confirm": confirm}  # fmt: skip
        return _join_form(
            request, session, invite, token, form=form, problems=problems, status=400,
            phone=_mobile_or_none(phone),
        )  # fmt: skip
    if invited is not None and invited.matrix_user_id:
        user_id = invited.matrix_user_id
    else:
        user_id = await _free_user_id(
            session, matrix, registration.display_name, settings.server_name
        )
    # Three short steps, never a database transaction held open while the homeserver
    # works (SQLite would make every other writer wait): record, create the account,
    # then mark it created — or undo the record if the account could not be made.
    try:
        recorded = await run_in_threadpool(
            _record, session, invite, registration, user_id, client_ip(request)
        )
    except DomainError as exc:
        raise WebError(409, exc.template, **exc.params) from exc
    except IntegrityError as exc:  # the same user ID taken by a registration a moment ago
        raise WebError(
            409, N_("Someone else registered at the same moment. Send the form again.")
        ) from exc
    account: dict[str, object] = {
        "password": registration.password,
        "displayname": recorded.display_name,
    }
    if number:  # the checked number signs in too, in Element and in the admin UI
        account["threepids"] = [phone_threepid(number)]
    try:
        await matrix.admin_put_user(user_id, account)
    except MatrixError as exc:
        await run_in_threadpool(_undo, session, invite, recorded)
        raise WebError(
            503, N_("Could not create the account right now. Try again in a minute.")
        ) from exc
    await run_in_threadpool(_mark_created, session, recorded)
    if claims is not None:
        await _link_provider_person(matrix, user_id, settings.oidc_idp_id, claims.subject)
    reconcile_soon(request)
    done = RedirectResponse(f"/welcome?user={quote(user_id)}&new=1", status_code=303)
    return join_sign_on.forget(done)


async def _link_provider_person(
    matrix: MatrixClient, user_id: str, idp_id: str, subject: str
) -> None:
    """So that their next "Sign in with …" opens this account. The account stands without
    the link (the password works; Synapse's own login can still link it by the claim)."""
    try:
        await link_subject(matrix, user_id, idp_id, subject)
    except MatrixError as exc:
        log.warning("the new account was not linked to its region account: %s", exc.errcode)


def _mobile_or_none(text: str) -> str | None:
    try:
        return limits.mobile_number(text)
    except limits.FieldRefused:
        return None


@dataclass(frozen=True)
class _Recorded:
    person_id: int
    display_name: str
    new_person: bool
    use_id: int


def _record(
    session: Session, invite: InviteLink, form: svc.Registration, user_id: str, origin: str | None
) -> _Recorded:
    try:
        person = svc.record_registration(session, invite, form, user_id=user_id, origin=origin)
        if person.matrix_user_id is None:
            person.matrix_user_id = user_id
        session.flush()
        use_id = session.scalar(
            select(InviteUse.id)
            .where(InviteUse.invite_id == invite.id, InviteUse.person_id == person.id)
            .order_by(InviteUse.id.desc())
        )
        session.commit()
    except Exception:
        session.rollback()
        raise
    assert use_id is not None
    return _Recorded(person.id, person.display_name, invite.person_id is None, use_id)


def _undo(session: Session, invite: InviteLink, recorded: _Recorded) -> None:
    """Give the use back and forget a person who never got an account."""
    session.execute(
        update(InviteLink).where(InviteLink.id == invite.id).values(uses=InviteLink.uses - 1)
    )
    session.execute(delete(InviteUse).where(InviteUse.id == recorded.use_id))
    if recorded.new_person:
        session.execute(delete(Person).where(Person.id == recorded.person_id))
    session.commit()


def _mark_created(session: Session, recorded: _Recorded) -> None:
    person = session.get(Person, recorded.person_id)
    if person is not None and person.account_created_at is None:
        person.account_created_at = utcnow()
    session.commit()


@router.get("/welcome")
def welcome(request: Request, settings: SettingsDep, user: str = "", new: str = "") -> Response:
    """How to sign in from Element, on a computer or (through the QR code) on a phone."""
    valid = user.startswith("@") and user.endswith(f":{settings.server_name}") and len(user) < 256
    user_id = user if valid else ""
    phone_url = f"{settings.web_url}/welcome?user={user_id}" if user_id else settings.web_url
    return render(
        request, "welcome.html", user_id=user_id, homeserver_url=settings.element_homeserver_url,
        qr=qr_data_uri(phone_url, scale=5), just_registered=bool(new),
        localpart=user_id[1:].split(":", 1)[0] if user_id else "",
        sign_on_label=settings.oidc_label if settings.oidc_enabled else "",
    )  # fmt: skip
