"""«Это не я»: the holder of a personal link says the name on it is not theirs.

A personal link (made from a roster for one named person) shows that person's name; if
someone else got it (a swapped sheet, a mistyped roster) they must not take over that
account. Saying so suspends the link at once (revoked, with its own message) and leaves
a flagged request for the school's administration: correct the name and re-issue a new
personal link, or dismiss. One report per link: the link is gone once reported, so its
holder cannot pile up requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.audit import AutomaticActor, record_audit
from provisioning.db.base import utcnow
from provisioning.db.invite_reports import MAX_COMMENT_CHARS, InviteReport
from provisioning.db.models import InviteLink, Person, School, SchoolClass
from provisioning.i18n import N_
from provisioning.services import invites, limits
from provisioning.services.schools import DomainError


@dataclass(frozen=True)
class PendingReport:
    """What the school page shows of one report."""

    id: int
    name: str  # the person's name as the roster has it
    role: str
    class_label: str | None
    comment: str
    created_at: datetime


def clean_comment(text: str) -> str:
    """The optional comment, on one line, bounded.

    Raises:
        DomainError: it is longer than the limit.
    """
    comment = " ".join(text.split())
    if len(comment) > MAX_COMMENT_CHARS:
        raise DomainError(
            N_("The comment is too long: at most %(count)s characters."), count=MAX_COMMENT_CHARS
        )
    return comment


def report_of(session: Session, invite_id: int) -> InviteReport | None:
    return session.scalar(select(InviteReport).where(InviteReport.invite_id == invite_id))


def report(
    session: Session, invite: InviteLink, comment: str, *, origin: str | None
) -> InviteReport:
    """Suspend a usable personal link and flag it for the school, in the caller's
    transaction.

    Raises:
        DomainError: the link is not personal, or was reported already.
    """
    if invite.person_id is None:
        raise DomainError(N_("Only a link made for one named person can be reported."))
    if report_of(session, invite.id) is not None:
        raise DomainError(N_("This link has been reported already. Ask the school for a new one."))
    now = utcnow()
    row = InviteReport(
        invite_id=invite.id, school_id=invite.school_id, person_id=invite.person_id,
        comment=clean_comment(comment), origin=origin, created_at=now,
    )  # fmt: skip
    session.add(row)
    invite.revoked_at = now
    session.flush()
    record_audit(
        session, AutomaticActor.REGISTRATION_FORM, "invite.not_me", str(invite.id),
        school_id=invite.school_id, role=invite.role.value, has_comment=bool(row.comment),
    )  # fmt: skip
    return row


def pending(session: Session, school_id: int) -> list[PendingReport]:
    rows = session.execute(
        select(InviteReport, Person, InviteLink, SchoolClass)
        .join(Person, Person.id == InviteReport.person_id)
        .join(InviteLink, InviteLink.id == InviteReport.invite_id)
        .outerjoin(SchoolClass, SchoolClass.id == InviteLink.class_id)
        .where(InviteReport.school_id == school_id, InviteReport.resolved_at.is_(None))
        .order_by(InviteReport.created_at)
    ).all()
    return [
        PendingReport(
            r.id, p.display_name, link.role.value, c.label if c else None, r.comment, r.created_at
        )
        for r, p, link, c in rows
    ]


def reported_people(session: Session, school_id: int) -> set[int]:
    """The people whose report still waits: no automatic new link for them."""
    return set(
        session.scalars(
            select(InviteReport.person_id).where(
                InviteReport.school_id == school_id, InviteReport.resolved_at.is_(None)
            )
        )
    )


def open_report(session: Session, school_id: int, report_id: int) -> InviteReport:
    """A report of this school still waiting for a decision.

    Raises:
        DomainError: there is none such.
    """
    row = session.get(InviteReport, report_id)
    if row is None or row.school_id != school_id or row.resolved_at is not None:
        raise DomainError(N_("There is no such request."))
    return row


def reissue(
    session: Session, row: InviteReport, display_name: str, *, created_by: int | None, actor: str
) -> InviteLink:
    """Correct the person's name (if changed) and make a new personal link for them.

    Raises:
        DomainError: the name is refused, or the old link's class or child is gone.
        limits.FieldRefused: the name does not fit the rules.
    """
    old = session.get(InviteLink, row.invite_id)
    person = session.get(Person, row.person_id)
    school = session.get(School, row.school_id)
    assert old is not None and person is not None and school is not None
    name = limits.person_name(display_name)
    if name != person.display_name:
        record_audit(
            session, actor, "person.renamed", str(person.id), school_id=school.id,
            old_name=person.display_name, name=name,
        )  # fmt: skip
        person.display_name = name
    school_class = session.get(SchoolClass, old.class_id) if old.class_id else None
    child = session.get(Person, old.child_id) if old.child_id else None
    new = invites.create_invite(
        session, school, old.role, school_class=school_class, child=child, person=person,
        valid_days=30, created_by=created_by, actor=actor,
    )  # fmt: skip
    _resolve(session, row, "reissued", new_invite_id=new.id)
    record_audit(
        session, actor, "invite.not_me_reissued", str(row.invite_id), school_id=school.id,
        new_invite=new.id, name=name,
    )  # fmt: skip
    return new


def dismiss(session: Session, row: InviteReport, *, actor: str) -> None:
    """Close the report; the old link stays suspended."""
    _resolve(session, row, "dismissed")
    record_audit(
        session, actor, "invite.not_me_dismissed", str(row.invite_id), school_id=row.school_id
    )


def _resolve(
    session: Session,
    row: InviteReport,
    resolution: str,
    *,
    new_invite_id: int | None = None,
) -> None:
    row.resolved_at = utcnow()
    row.resolution = resolution
    row.new_invite_id = new_invite_id
