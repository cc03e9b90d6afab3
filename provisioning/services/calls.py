"""Calls in a school's rooms beyond the defaults: the admin UI's button and `!call`.

The choice is desired state (`managed_rooms.call_widget`); the reconciler's next run puts
the widget into the room or takes it out, like any other state it keeps. How a room's
call starts (a lesson, or an open meeting in a class's parents chat) is decided here too,
from the room's kind, and the widget service asks it (`/internal/calls/room`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.audit import record_audit
from provisioning.db.base import as_utc
from provisioning.db.models import Broadcast, BroadcastState, ManagedRoom, RoomKind, School
from provisioning.i18n import N_
from provisioning.reconciler.desired import has_call_by_default
from provisioning.services.schools import DomainError

_SPACES = (RoomKind.SCHOOL_SPACE, RoomKind.CLASS_SPACE)
# Rooms whose call is a meeting of equals, not a lesson: a class's parents chat holds the
# parent meetings, where every parent may speak without being given the floor.
_MEETING_ROOMS = frozenset({RoomKind.CLASS_PARENTS})

CallMode = Literal["lesson", "open"]  # as the call widget names them (widgets.call.moderation)


def managed_room_by_id(session: Session, room_id: str) -> ManagedRoom | None:
    """The managed room with this Matrix room ID; None for a room Parta does not manage."""
    return session.scalar(select(ManagedRoom).where(ManagedRoom.room_id == room_id))


# Speakers may take the stage this long before a broadcast starts, to check their camera.
STAGE_OPENS_BEFORE = timedelta(minutes=15)


def live_broadcast(session: Session, room_id: str, now: datetime) -> Broadcast | None:
    """The broadcast whose audience is this room and whose stage is open now: from a
    quarter of an hour before its start to its end, unless cancelled."""
    pending = session.scalars(
        select(Broadcast)
        .join(ManagedRoom, ManagedRoom.alias == Broadcast.audience_alias)
        .where(
            ManagedRoom.room_id == room_id,
            Broadcast.state.in_((BroadcastState.SCHEDULED, BroadcastState.LIVE)),
        )
        .order_by(Broadcast.starts_at)
    )
    for broadcast in pending:  # SQLite keeps no zone: compare as UTC here
        if as_utc(broadcast.starts_at) - STAGE_OPENS_BEFORE <= now < as_utc(broadcast.ends_at):
            return broadcast
    return None


def starting_call_mode(kind: RoomKind | None) -> CallMode:
    """How a room's call starts: open in a class's parents chat (a parent meeting), a
    lesson anywhere else, including rooms Parta does not manage. The call's moderators
    switch it afterwards."""
    return "open" if kind in _MEETING_ROOMS else "lesson"


def school_room(session: Session, school: School, alias: str) -> ManagedRoom:
    """One of the school's managed rooms.

    Raises:
        DomainError: the school has no managed room with this alias.
    """
    room = session.get(ManagedRoom, alias)
    if room is None or room.school_id != school.id:
        raise DomainError(N_("The school has no room %(alias)s."), alias=alias)
    return room


def has_call(room: ManagedRoom) -> bool:
    """Whether the room is meant to have the call widget: the school's choice, or the default."""
    return room.call_widget if room.call_widget is not None else has_call_by_default(room.kind)


def set_room_call(
    session: Session,
    room: ManagedRoom,
    wanted: bool,
    *,
    name: str | None = None,
    actor: str = "system",
    via: str = "web",
) -> None:
    """Put the call widget into a managed room, or keep it out, from now on.

    `name` names the widget (None: the room kind's usual name). `via` says where the
    decision was taken ("web", or "matrix" for `!call`), for the audit log.

    Raises:
        DomainError: the room is a space (Matrix clients show no widgets in a space).
    """
    if room.kind in _SPACES:
        raise DomainError(N_("A space has no calls; add the call to a room inside it."))
    name = name or None
    if room.call_widget is wanted and (not wanted or room.call_widget_name == name):
        return
    room.call_widget = wanted
    room.call_widget_name = name if wanted else None
    record_audit(
        session, actor, "room.call_added" if wanted else "room.call_removed", room.alias,
        school_id=room.school_id, kind=room.kind.value, via=via,
    )  # fmt: skip
