"""Invite links: made by an administrator or a teacher, used by people to join a school.

A link is for a role in a school — a class for pupils, a child for parents — with an
expiry and a use limit. A personal link names the one person it was made for (someone
imported from a roster, or someone whose password is being reset); using it sets that
person's password instead of creating a new person.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from provisioning.audit import record_audit
from provisioning.db.base import as_utc, utcnow
from provisioning.db.invite_reports import InviteReport
from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    InviteLink,
    InviteUse,
    Person,
    Role,
    School,
    SchoolClass,
)
from provisioning.i18n import N_
from provisioning.services import limits, passwords, requests
from provisioning.services import schools as svc
from provisioning.services.schools import DomainError

SUSPENDED_NOT_ME = N_(
    "This link is suspended: someone said the name on it is not theirs. Nobody can "
    "register with it now. Ask the school (the class teacher or the administration) for "
    "a new personal link."
)
INVITE_ROLES = (Role.SCHOOL_ADMIN, Role.TEACHER, Role.PUPIL, Role.PARENT)
MAX_VALID_DAYS = 90
FormProblem = tuple[str, dict[str, object]]  # a message template (marked with N_), its values


class InviteUnusable(DomainError):
    """The link cannot be used (unknown, revoked, expired or used up); the message says which."""


@dataclass(frozen=True)
class Registration:
    """What a person typed on the registration page, checked."""

    display_name: str
    phone: str | None
    email: str | None
    password: str
    subjects: tuple[str, ...] = ()  # a teacher's application: what and where they teach
    class_ids: tuple[int, ...] = ()


def new_token() -> str:
    return secrets.token_urlsafe(16)


def is_pupil_of_school(session: Session, person_id: int, school_id: int) -> bool:
    return (
        session.scalar(
            select(Enrolment.id)
            .join(SchoolClass, SchoolClass.id == Enrolment.class_id)
            .where(
                Enrolment.person_id == person_id,
                Enrolment.role == EnrolmentRole.PUPIL,
                SchoolClass.school_id == school_id,
                SchoolClass.archived_at.is_(None),
            )
        )
        is not None
    )


def create_invite(
    session: Session,
    school: School,
    role: Role,
    *,
    school_class: SchoolClass | None = None,
    child: Person | None = None,
    person: Person | None = None,
    valid_days: int = 14,
    max_uses: int | None = None,
    created_by: int | None,
    actor: str,
) -> InviteLink:
    """Make a link; the caller has checked that the actor may invite for this role and class.

    Raises:
        DomainError: the role, class, child or limits do not fit together.
    """
    if role not in INVITE_ROLES:
        raise DomainError(N_("Links are made for administrators, teachers, pupils and parents"))
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        raise DomainError(N_("A link is valid for 1 to %(days)s days"), days=MAX_VALID_DAYS)
    if max_uses is not None and not 1 <= max_uses <= 1000:
        raise DomainError(N_("A link can be used 1 to 1000 times, or without a limit"))
    if school_class is not None and school_class.school_id != school.id:
        raise DomainError(N_("This class is not in this school"))
    if role is Role.PUPIL and school_class is None and person is None:
        raise DomainError(N_("A link for pupils is made for a class"))
    if (
        role is Role.PARENT
        and person is None
        and (child is None or not is_pupil_of_school(session, child.id, school.id))
    ):
        raise DomainError(N_("A link for parents is made for a pupil of this school"))
    if person is not None:
        max_uses = 1  # a personal link activates one account
    invite = InviteLink(
        token=new_token(),
        school_id=school.id,
        role=role,
        class_id=school_class.id if school_class is not None else None,
        child_id=child.id if child is not None else None,
        person_id=person.id if person is not None else None,
        created_by=created_by,
        expires_at=utcnow() + timedelta(days=valid_days),
        max_uses=max_uses,
    )
    session.add(invite)
    session.flush()
    record_audit(
        session, actor, "invite.created", str(invite.id), school_id=school.id, role=role.value,
        school_class=school_class.label if school_class else None,
        child_name=child.display_name if child else None,
        name=person.display_name if person else None,
    )  # fmt: skip
    return invite


def revoke_invite(session: Session, invite: InviteLink, *, actor: str) -> None:
    if invite.revoked_at is None:
        invite.revoked_at = utcnow()
        record_audit(
            session, actor, "invite.revoked", str(invite.id), school_id=invite.school_id,
            role=invite.role.value,
        )  # fmt: skip


def invite_status(invite: InviteLink, now: datetime | None = None) -> str:
    """ "active", "revoked", "expired" or "used_up"."""
    now = now or utcnow()
    if invite.revoked_at is not None:
        return "revoked"
    if as_utc(invite.expires_at) <= now:
        return "expired"
    if invite.max_uses is not None and invite.uses >= invite.max_uses:
        return "used_up"
    return "active"


def find_usable(session: Session, token: str) -> InviteLink:
    """The link behind a token, if it can still be used.

    Raises:
        InviteUnusable: with a message that tells the person what to do.
    """
    invite = session.scalar(select(InviteLink).where(InviteLink.token == token))
    if invite is None:
        raise InviteUnusable(
            N_("This link is not valid. Check that it was copied whole, or ask for a new one.")
        )
    status = invite_status(invite)
    if status == "revoked" and session.scalar(
        select(InviteReport.id).where(InviteReport.invite_id == invite.id)
    ):
        raise InviteUnusable(SUSPENDED_NOT_ME)
    if status == "revoked":
        raise InviteUnusable(N_("This link was withdrawn. Ask whoever sent it for a new one."))
    if status == "expired":
        raise InviteUnusable(N_("This link has expired. Ask whoever sent it for a new one."))
    if status == "used_up":
        raise InviteUnusable(
            N_("This link has been used as many times as allowed. Ask for a new one.")
        )
    return invite


def check_registration(
    display_name: str,
    phone_text: str,
    email_text: str,
    password: str,
    password_again: str,
    *,
    phone_required: bool = True,
    user_id: str | None = None,
) -> tuple[Registration | None, dict[str, FormProblem]]:
    """Validate the registration form: the checked data, or field → message (N_) and values.

    The phone is a mobile number in E.164 (its code is checked by the page), required
    unless the link is personal (a staff-made link for someone without a phone). Name and
    e-mail go through `services.limits`, as in the roster and the API; the password
    through `services.passwords`.
    """
    problems: dict[str, FormProblem] = {}
    name = phone = email = ""
    try:
        name = limits.person_name(display_name)
    except limits.FieldRefused as refused:
        problems["display_name"] = (refused.template, refused.params)
    if phone_text.strip() or phone_required:
        try:
            phone = limits.mobile_number(phone_text)
        except limits.FieldRefused as refused:
            problems["phone"] = (refused.template, refused.params)
    try:
        email = limits.email_address(email_text) if email_text.strip() else ""
    except limits.FieldRefused as refused:
        problems["email"] = (refused.template, refused.params)
    personal = tuple(v for v in (display_name, phone_text, phone, user_id or "") if v)
    refused_password = passwords.password_problem(password, personal=personal)
    if refused_password is not None:
        problems["password"] = refused_password
    elif password != password_again:
        problems["password_again"] = (N_("The two passwords differ."), {})
    if problems:
        return None, problems
    return Registration(name, phone or None, email or None, password), {}


def check_subjects(text: str) -> FormProblem | None:
    """The refusal of the first subject `services.limits` refuses in "Математика, физика"
    (as the roster and the API refuse it), or None."""
    for part in text.replace(";", ",").split(","):
        if part.strip():
            try:
                limits.subject_name(part)
            except limits.FieldRefused as refused:
                return refused.template, refused.params
    return None


def take_use(session: Session, invite: InviteLink) -> None:
    """Count one use, atomically: two people racing for the last use cannot both get it.

    Raises:
        InviteUnusable: the link was used up (or revoked) a moment ago.
    """
    result = session.execute(
        update(InviteLink)
        .where(
            InviteLink.id == invite.id,
            InviteLink.revoked_at.is_(None),
            or_(InviteLink.max_uses.is_(None), InviteLink.uses < InviteLink.max_uses),
        )
        .values(uses=InviteLink.uses + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise InviteUnusable(
            N_("This link has been used as many times as allowed. Ask for a new one.")
        )


def record_registration(
    session: Session,
    invite: InviteLink,
    form: Registration,
    *,
    user_id: str,
    origin: str | None,
) -> Person:
    """Record a new person (or activate the invited one) with the link's role, in the
    caller's transaction; the caller commits only once the Matrix account exists."""
    take_use(session, invite)
    school = session.get(School, invite.school_id)
    assert school is not None
    if invite.person_id is not None:
        person = session.get(Person, invite.person_id)
        assert person is not None
        person.phone = form.phone or person.phone
        person.email = form.email or person.email
    else:
        person = svc.add_person(
            session, form.display_name, matrix_user_id=user_id, phone=form.phone,
            email=form.email,
        )  # fmt: skip
        actor = user_id
        if invite.role is Role.SCHOOL_ADMIN:
            svc.grant_school_role(session, person, school, invite.role, actor=actor)
        elif invite.role is Role.TEACHER:
            # A teacher is placed once the administration approves what they asked for.
            requests.apply_as_teacher(
                session, person, school, subjects=form.subjects, class_ids=form.class_ids
            )
        elif invite.role is Role.PUPIL:
            school_class = session.get(SchoolClass, invite.class_id)
            assert school_class is not None
            svc.enrol(
                session, person, school_class, EnrolmentRole.PUPIL, actor=actor,
                confirmed=not school.pupils_need_confirmation,
            )  # fmt: skip
        elif invite.role is Role.PARENT:
            child = session.get(Person, invite.child_id)
            assert child is not None
            svc.link_parent(session, person, child, actor=actor)
    session.add(InviteUse(invite_id=invite.id, person_id=person.id, ip=origin))
    record_audit(
        session, user_id, "invite.used", str(invite.id), school_id=school.id,
        name=person.display_name, role=invite.role.value,
    )  # fmt: skip
    return person


def invite_uses(session: Session, invite_ids: list[int]) -> dict[int, list[InviteUse]]:
    uses: dict[int, list[InviteUse]] = {i: [] for i in invite_ids}
    for use in session.scalars(
        select(InviteUse).where(InviteUse.invite_id.in_(invite_ids)).order_by(InviteUse.used_at)
    ):
        uses[use.invite_id].append(use)
    return uses
