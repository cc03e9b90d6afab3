"""The rules of a broadcast, the same for the REST API and the admin UI.

Who may schedule into which chat: a school's administration into any of the school's
chats, a teacher only into the chats of the classes they teach (`may_use_room`). The form
is checked here whole, and the first problem is raised with a message that names it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from provisioning.audit import record_audit
from provisioning.db.base import as_utc, utcnow
from provisioning.db.models import (
    Broadcast,
    BroadcastState,
    Enrolment,
    ManagedRoom,
    ParentLink,
    Person,
    RoleAssignment,
    RoomKind,
    SchoolClass,
)
from provisioning.i18n import N_
from provisioning.services.access import Access
from provisioning.services.schools import DomainError

from .cover import Cover

TITLE_MAX: Final = 200
DESCRIPTION_MAX: Final = 4000
SPEAKERS_MAX: Final = 20
LONGEST: Final = timedelta(hours=12)
_USER_ID: Final = re.compile(r"^@[a-z0-9._=/+-]+:[A-Za-z0-9.:-]+$")
_SPACES: Final = (RoomKind.SCHOOL_SPACE, RoomKind.CLASS_SPACE)
_PRIVATE: Final = (RoomKind.FAMILY,)  # a family's own room is no audience
COVER_MISSING: Final = N_("cover: choose a landscape picture of at least 830×540 px.")


class BroadcastInvalid(DomainError):
    """The form asks for something the rules refuse (answered 422)."""


class BroadcastForbidden(DomainError):
    """The person may not schedule into this chat, or change this broadcast (403)."""


@dataclass(frozen=True)
class BroadcastForm:
    """What the person typed, before the checks."""

    title: str
    description: str
    speakers: Sequence[str]
    audience_room: str
    starts_at: datetime
    ends_at: datetime


def split_speakers(values: Iterable[str]) -> list[str]:
    """The field repeated, or comma-separated, or both: each Matrix ID once, in order."""
    seen: dict[str, None] = {}
    for value in values:
        for part in value.split(","):
            if part.strip():
                seen.setdefault(part.strip(), None)
    return list(seen)


def may_use_room(viewer: Access, room: ManagedRoom) -> bool:
    """School admins: any of the school's chats; teachers: their classes' chats only."""
    if room.school_id is None:
        return False
    if viewer.may_manage_school(room.school_id):
        return True
    return room.class_id is not None and room.class_id in viewer.teaches_classes


def audience_rooms(session: Session, viewer: Access, school_id: int) -> list[ManagedRoom]:
    """The chats this person may choose as an audience (not spaces; made on Matrix)."""
    rooms = session.scalars(
        select(ManagedRoom)
        .where(
            ManagedRoom.school_id == school_id,
            ManagedRoom.kind.not_in(_SPACES + _PRIVATE),
            ManagedRoom.room_id.is_not(None),
        )
        .order_by(ManagedRoom.alias)
    )
    return [room for room in rooms if may_use_room(viewer, room)]


def find_room(session: Session, school_id: int, name: str) -> ManagedRoom:
    """One of the school's chats by its alias (`#school-…:server` or the localpart) or ID.

    Raises:
        BroadcastInvalid: the school has no such chat, or it is a space or not made yet.
    """
    name = name.strip()
    if name.startswith("!"):
        room = session.scalar(select(ManagedRoom).where(ManagedRoom.room_id == name))
    else:
        room = session.get(ManagedRoom, name.removeprefix("#").partition(":")[0])
    if room is None or room.school_id != school_id or room.kind in _PRIVATE:
        raise BroadcastInvalid(
            N_("audience_room: «%(room)s» is not one of this school's chats."), room=name[:80]
        )
    if room.kind in _SPACES:
        raise BroadcastInvalid(
            N_("audience_room: «%(room)s» is a space; choose a chat inside it."), room=name[:80]
        )
    if room.room_id is None:
        raise BroadcastInvalid(
            N_(
                "audience_room: the chat «%(room)s» is not on the homeserver yet; try again "
                "in a minute."
            ),
            room=name[:80],
        )
    return room


def people_of_school(session: Session, school_id: int, user_ids: Sequence[str]) -> set[str]:
    """Which of these Matrix IDs are people of the school: staff, pupils, their parents."""
    class_ids = select(SchoolClass.id).where(SchoolClass.school_id == school_id)
    pupils = select(Enrolment.person_id).where(Enrolment.class_id.in_(class_ids))
    ids = select(Person.matrix_user_id).where(
        Person.matrix_user_id.in_(list(user_ids)),
        or_(
            Person.id.in_(pupils),
            Person.id.in_(
                select(RoleAssignment.person_id).where(RoleAssignment.school_id == school_id)
            ),
            Person.id.in_(select(ParentLink.parent_id).where(ParentLink.child_id.in_(pupils))),
        ),
    )
    return {user_id for user_id in session.scalars(ids) if user_id}


def _checked(
    session: Session, school_id: int, form: BroadcastForm, viewer: Access, now: datetime
) -> tuple[str, str, list[str], ManagedRoom]:
    title = " ".join(form.title.split())
    if not title:
        raise BroadcastInvalid(N_("title: give the broadcast a title."))
    if len(title) > TITLE_MAX:
        raise BroadcastInvalid(
            N_("title: %(length)s characters; at most %(limit)s."),
            length=len(title),
            limit=TITLE_MAX,
        )
    description = form.description.strip()
    if len(description) > DESCRIPTION_MAX:
        raise BroadcastInvalid(
            N_("description: %(length)s characters; at most %(limit)s."),
            length=len(description),
            limit=DESCRIPTION_MAX,
        )
    speakers = split_speakers(form.speakers)
    if not speakers:
        raise BroadcastInvalid(N_("speakers: name at least one speaker (a Matrix ID)."))
    if len(speakers) > SPEAKERS_MAX:
        raise BroadcastInvalid(N_("speakers: at most %(limit)s speakers."), limit=SPEAKERS_MAX)
    for speaker in speakers:
        if not _USER_ID.match(speaker):
            raise BroadcastInvalid(
                N_("speakers: «%(speaker)s» is not a Matrix ID such as @name:server."),
                speaker=speaker[:80],
            )
    known = people_of_school(session, school_id, speakers)
    for speaker in speakers:
        if speaker not in known:
            raise BroadcastInvalid(
                N_("speakers: %(speaker)s is not a person of this school."), speaker=speaker
            )
    room = find_room(session, school_id, form.audience_room)
    if not may_use_room(viewer, room):
        raise BroadcastForbidden(
            N_("You may schedule broadcasts only into the chats of the classes you teach.")
        )
    starts, ends = form.starts_at, form.ends_at
    if starts.tzinfo is None or ends.tzinfo is None:
        raise BroadcastInvalid(
            N_("starts_at and ends_at need a time zone, such as 2027-09-01T10:00+03:00.")
        )
    if ends <= starts:
        raise BroadcastInvalid(N_("ends_at: the broadcast must end after it starts."))
    if ends - starts > LONGEST:
        raise BroadcastInvalid(N_("ends_at: a broadcast lasts at most 12 hours."))
    if starts <= now:
        raise BroadcastInvalid(N_("starts_at: the start must be in the future."))
    return title, description, speakers, room


def create(
    session: Session,
    school_id: int,
    form: BroadcastForm,
    cover: Cover,
    cover_mxc: str,
    *,
    viewer: Access,
    now: datetime | None = None,
) -> Broadcast:
    """Schedule a broadcast (the cover already checked and uploaded); the clock announces it.

    Raises:
        BroadcastInvalid, BroadcastForbidden: see `check`.
    """
    title, description, speakers, room = _checked(session, school_id, form, viewer, now or utcnow())
    broadcast = Broadcast(
        school_id=school_id,
        title=title,
        description=description,
        speakers=speakers,
        audience_alias=room.alias,
        starts_at=form.starts_at.astimezone(UTC),
        ends_at=form.ends_at.astimezone(UTC),
        cover_mxc=cover_mxc,
        cover_width=cover.width,
        cover_height=cover.height,
        cover_bytes=len(cover.data),
        cover_mimetype=cover.mimetype,
        created_by=viewer.user_id,
        state=BroadcastState.SCHEDULED,
        version=1,
    )
    session.add(broadcast)
    session.flush()
    record_audit(
        session,
        viewer.user_id,
        "broadcast.scheduled",
        title,
        school_id=school_id,
        broadcast_id=broadcast.id,
        room=room.alias,
    )
    return broadcast


def check(
    session: Session,
    school_id: int,
    form: BroadcastForm,
    *,
    viewer: Access,
    current: Broadcast | None = None,
    now: datetime | None = None,
) -> None:
    """Check a form without storing it, before the cover is uploaded to the homeserver
    (`current`: the broadcast an edit changes).

    Raises:
        BroadcastInvalid: a field is wrong; the message names it.
        BroadcastForbidden: the person may not use the chat.
    """
    room = _checked(session, school_id, form, viewer, now or utcnow())[3]
    if current is not None:
        _same_room(current, room)


def _same_room(broadcast: Broadcast, room: ManagedRoom) -> None:
    """An edit keeps the chat: the update goes where the announcement went."""
    if room.alias != broadcast.audience_alias:
        raise BroadcastInvalid(
            N_(
                "audience_room: a broadcast stays in the chat it was announced in; cancel it "
                "and schedule a new one in the other chat."
            )
        )


def require_editable(broadcast: Broadcast, viewer: Access, now: datetime | None = None) -> None:
    """Refuse changes once it has started, was cancelled, or by someone without the chat.

    Raises:
        BroadcastForbidden: the person may not use its chat.
        BroadcastInvalid: it started already or is over.
    """
    if not may_use_room(viewer, broadcast.audience):
        raise BroadcastForbidden(
            N_("You may change broadcasts only in the chats of the classes you teach.")
        )
    started = as_utc(broadcast.starts_at) <= (now or utcnow())
    if broadcast.state is not BroadcastState.SCHEDULED or started:
        raise BroadcastInvalid(
            N_("The broadcast has started or is over; it can no longer be changed.")
        )


def edit(
    session: Session,
    broadcast: Broadcast,
    form: BroadcastForm,
    cover: tuple[Cover, str] | None,
    *,
    viewer: Access,
    now: datetime | None = None,
) -> None:
    """Change a broadcast before it starts; the clock posts one update into the chat.

    Raises:
        BroadcastInvalid, BroadcastForbidden: see `check` and `require_editable`.
    """
    moment = now or utcnow()
    require_editable(broadcast, viewer, moment)
    title, description, speakers, room = _checked(
        session, broadcast.school_id, form, viewer, moment
    )
    _same_room(broadcast, room)
    broadcast.title, broadcast.description, broadcast.speakers = title, description, speakers
    # Stored in UTC: SQLite keeps a moment's digits and drops its zone.
    broadcast.starts_at = form.starts_at.astimezone(UTC)
    broadcast.ends_at = form.ends_at.astimezone(UTC)
    if cover is not None:
        checked, mxc = cover
        broadcast.cover_mxc, broadcast.cover_mimetype = mxc, checked.mimetype
        broadcast.cover_width, broadcast.cover_height = checked.width, checked.height
        broadcast.cover_bytes = len(checked.data)
    broadcast.version += 1
    broadcast.updated_at = moment
    record_audit(
        session,
        viewer.user_id,
        "broadcast.edited",
        title,
        school_id=broadcast.school_id,
        broadcast_id=broadcast.id,
        room=room.alias,
    )


def cancel(
    session: Session, broadcast: Broadcast, *, viewer: Access, now: datetime | None = None
) -> None:
    """Cancel a scheduled or live broadcast; the clock tells the audience, removes a widget.

    Raises:
        BroadcastForbidden: the person may not use its chat.
        BroadcastInvalid: it is over or cancelled already.
    """
    if not may_use_room(viewer, broadcast.audience):
        raise BroadcastForbidden(
            N_("You may change broadcasts only in the chats of the classes you teach.")
        )
    if broadcast.state not in (BroadcastState.SCHEDULED, BroadcastState.LIVE):
        raise BroadcastInvalid(N_("The broadcast is over or cancelled already."))
    broadcast.state = BroadcastState.CANCELLED
    broadcast.cancelled_at = now or utcnow()
    record_audit(
        session,
        viewer.user_id,
        "broadcast.cancelled",
        broadcast.title,
        school_id=broadcast.school_id,
        broadcast_id=broadcast.id,
    )


def of_school(session: Session, viewer: Access, school_id: int) -> list[Broadcast]:
    """The school's broadcasts this person may see: live and upcoming first (soonest
    first), then the ended and cancelled (latest first); the latest 200."""
    rows = session.scalars(
        select(Broadcast)
        .where(Broadcast.school_id == school_id)
        .order_by(Broadcast.starts_at.desc())
        .limit(200)
    ).all()
    visible = [row for row in rows if may_use_room(viewer, row.audience)]
    active = (BroadcastState.SCHEDULED, BroadcastState.LIVE)
    upcoming = sorted((r for r in visible if r.state in active), key=lambda r: as_utc(r.starts_at))
    return upcoming + [r for r in visible if r.state not in active]
