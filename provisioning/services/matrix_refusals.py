"""What the homeserver refuses for good, in words for the school's administration.

The reconciler records such refusals (`reconciler/refusals.py`, issue 18) and retries
them with back-off; this tells the people who can fix the data what is refused and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.base import as_utc
from provisioning.db.models import ManagedRoom, Person, RefusedAction
from provisioning.i18n import N_
from provisioning.services.limits import shown

Sentence = tuple[str, dict[str, object]]  # a message template (marked with N_), its values

_WHY: dict[str, str] = {
    "M_TOO_LARGE": N_(
        "Matrix refuses it as too large: usually a name or a text far too long. "
        "Correct it, and Parta tries again at once."
    ),
    "M_FORBIDDEN": N_("the homeserver does not allow it (its policy or the room's permissions)"),
}
_INVALID = N_("the homeserver refuses it as invalid (%(errcode)s)")


@dataclass(frozen=True)
class RefusalNotice:
    what: Sentence
    why: Sentence
    person_id: int | None
    next_attempt_at: datetime
    attempts: int


def _what(kind: str, person: str, room: str) -> Sentence:
    match kind:
        case "Join":
            return N_("add %(person)s to «%(room)s»"), {"person": person, "room": room}
        case "CreateUser":
            return N_("create or rename the account of %(person)s"), {"person": person}
        case "CreateRoom":
            return N_("create the room «%(room)s»"), {"room": room}
        case "Kick":
            return N_("remove %(person)s from «%(room)s»"), {"person": person, "room": room}
    return N_("change the room «%(room)s»"), {"room": room}


def refusals_of_school(session: Session, school_id: int) -> list[RefusalNotice]:
    """The school's refused changes, the oldest first (few: each is one failed change)."""
    notices: list[RefusalNotice] = []
    records = session.scalars(
        select(RefusedAction)
        .where(RefusedAction.school_id == school_id)
        .order_by(RefusedAction.first_refused_at, RefusedAction.id)
        .limit(50)
    ).all()
    user_ids = {r.user_id for r in records if r.user_id}
    people = {
        p.matrix_user_id: p
        for p in session.scalars(select(Person).where(Person.matrix_user_id.in_(user_ids)))
    }
    aliases = {r.alias for r in records if r.alias}
    rooms = {
        r.alias: r
        for r in session.scalars(select(ManagedRoom).where(ManagedRoom.alias.in_(aliases)))
    }
    for record in records:
        person = people.get(record.user_id) if record.user_id else None
        room = rooms.get(record.alias) if record.alias else None
        room_name = str((room.applied or {}).get("name") or "") if room else ""
        kind = str(record.action.get("action", ""))
        what = _what(
            kind,
            shown(person.display_name) if person else (record.user_id or ""),
            shown(room_name or record.alias or ""),
        )
        known = _WHY.get(record.errcode)
        why: Sentence = (known, {}) if known else (_INVALID, {"errcode": record.errcode})
        notices.append(
            RefusalNotice(
                what=what,
                why=why,
                person_id=person.id if person else None,
                next_attempt_at=as_utc(record.next_attempt_at),
                attempts=record.attempts,
            )
        )
    return notices
