"""`observe`: what Synapse holds for the managed rooms, read only where it is needed.

A managed room remembers in `managed_rooms.applied` what the reconciler last made true
there. A run reads a room from Synapse only when that record is missing, when the room
is dirty (the bridge saw someone else change it), or when a full verification asks. So
a run with nothing changed makes no calls for rooms at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from matrix import rooms as matrix_rooms
from matrix.accounts import local_user_ids
from matrix.client import MatrixClient
from matrix.room_state import RoomState
from provisioning.db.models import ManagedRoom, Person, RoomKind
from provisioning.reconciler.state import (
    CALL_WIDGET_ID,
    DOCUMENTS_WIDGET_ID,
    JoinRule,
    ObservedRoom,
    ObservedState,
    PowerLevels,
    RoomAlias,
    RoomOwner,
    RoomWidget,
    UserID,
)

JsonDict = dict[str, Any]


def full_alias(alias: RoomAlias, server_name: str) -> str:
    return f"#{alias}:{server_name}"


def room_to_json(room: ObservedRoom) -> JsonDict:
    """The `applied` record of a managed room."""
    return {
        "name": room.name,
        "topic": room.topic,
        "join_rule": None
        if room.join_rule is None
        else {"rule": room.join_rule.rule, "allow": list(room.join_rule.allow_spaces)},
        "history_visibility": room.history_visibility,
        "power_levels": None if room.power_levels is None else room.power_levels.content(),
        "members": sorted(room.members),
        "invited": sorted(room.invited),
        "children": sorted(room.children),
        "parent": room.parent,
        "call_widget": None
        if room.call_widget is None
        else {"url": room.call_widget.url, "name": room.call_widget.name},
        "documents_widget": None
        if room.documents_widget is None
        else {"url": room.documents_widget.url, "name": room.documents_widget.name},
    }


def room_from_json(alias: RoomAlias, room_id: str, data: Mapping[str, Any]) -> ObservedRoom:
    rule = data.get("join_rule")
    levels = data.get("power_levels")
    return ObservedRoom(
        alias=alias,
        room_id=room_id,
        name=data.get("name"),
        topic=data.get("topic"),
        join_rule=None
        if rule is None
        else JoinRule(rule["rule"], tuple(RoomAlias(a) for a in rule.get("allow", []))),
        power_levels=None if levels is None else PowerLevels.from_content(levels),
        history_visibility=data.get("history_visibility"),
        members=frozenset(UserID(m) for m in data.get("members", [])),
        children=frozenset(RoomAlias(c) for c in data.get("children", [])),
        parent=data.get("parent"),
        invited=frozenset(UserID(m) for m in data.get("invited", [])),
        call_widget=RoomWidget.from_content(data.get("call_widget") or {}),
        documents_widget=RoomWidget.from_content(
            data.get("documents_widget") or {}, DOCUMENTS_WIDGET_ID
        ),
    )


def room_from_state(
    alias: RoomAlias, room_id: str, events: Iterable[JsonDict], alias_of: Mapping[str, RoomAlias]
) -> ObservedRoom:
    """Read a room's full state (`GET /rooms/{id}/state`) into an ObservedRoom.

    Room IDs are translated to managed aliases; an unknown room ID stays as it is, so it
    never equals a desired alias and the planner puts the right value back.
    """
    events = list(events)
    state = {(e["type"], e.get("state_key", "")): e.get("content", {}) for e in events}
    room = RoomState.from_events(events)  # members, levels, widgets: read as everywhere else

    def as_alias(other_room_id: str) -> RoomAlias:
        return alias_of.get(other_room_id, RoomAlias(other_room_id))

    join = state.get(("m.room.join_rules", ""))
    join_rule = None
    if join is not None:
        allow = tuple(
            as_alias(str(a.get("room_id")))
            for a in join.get("allow", [])
            if a.get("type") == "m.room_membership"
        )
        join_rule = JoinRule(str(join.get("join_rule")), allow)
    history = state.get(("m.room.history_visibility", ""))

    def with_membership(membership: str) -> frozenset[UserID]:
        return frozenset(UserID(user) for user, m in room.members.items() if m == membership)

    children = frozenset(
        as_alias(key)
        for (kind, key), content in state.items()
        if kind == "m.space.child" and content.get("via")
    )
    parents = [
        as_alias(key)
        for (kind, key), content in state.items()
        if kind == "m.space.parent" and content.get("via")
    ]
    name = state.get(("m.room.name", ""))
    topic = state.get(("m.room.topic", ""))
    return ObservedRoom(
        alias=alias,
        room_id=room_id,
        name=None if name is None else name.get("name"),
        topic=None if topic is None else topic.get("topic"),
        join_rule=join_rule,
        power_levels=None
        if room.power_levels is None
        else PowerLevels.from_levels(room.power_levels),
        history_visibility=None if history is None else history.get("history_visibility"),
        members=with_membership("join"),
        children=children,
        parent=parents[0] if len(parents) == 1 else None,
        invited=with_membership("invite"),
        call_widget=RoomWidget.from_content(room.widgets.get(CALL_WIDGET_ID) or {}),
        documents_widget=RoomWidget.from_content(
            room.widgets.get(DOCUMENTS_WIDGET_ID) or {}, DOCUMENTS_WIDGET_ID
        ),
    )


async def resolve_alias(client: MatrixClient, alias: RoomAlias, server_name: str) -> str | None:
    return await matrix_rooms.resolve_alias(client, full_alias(alias, server_name))


async def read_room(
    client: MatrixClient, alias: RoomAlias, room_id: str, alias_of: Mapping[str, RoomAlias]
) -> ObservedRoom:
    events = await matrix_rooms.read_all_state(client, room_id)
    return room_from_state(alias, room_id, events, alias_of)


async def observe(
    client: MatrixClient,
    session: Session,
    aliases: Iterable[RoomAlias],
    *,
    server_name: str,
    bot: UserID,
    full: bool = False,
    owners: Mapping[RoomAlias, RoomOwner] | None = None,
) -> ObservedState:
    """Observe the managed rooms named by `aliases` and the accounts Parta created.

    `owners` (what each desired room stands for) is recorded with every room read, so
    rooms recorded before the record had an owner get one at the next full run.

    With `full=True` every room is read from Synapse and every account checked: the
    periodic repair of drift that the bridge could not see (for example while it was down).
    """
    records = {RoomAlias(r.alias): r for r in session.scalars(select(ManagedRoom))}
    alias_of = {r.room_id: alias for alias, r in records.items() if r.room_id}
    rooms: dict[RoomAlias, ObservedRoom] = {}
    for alias in sorted(set(aliases)):
        record = records.get(alias)
        if record is not None and record.room_id and record.applied and not (record.dirty or full):
            rooms[alias] = room_from_json(alias, record.room_id, record.applied)
            continue
        room_id = record.room_id if record is not None and record.room_id else None
        room_id = room_id or await resolve_alias(client, alias, server_name)
        if room_id is None:
            continue  # not created yet
        alias_of[room_id] = alias
        room = await read_room(client, alias, room_id, alias_of)
        rooms[alias] = room
        owner = (owners or {}).get(alias)
        if owner is None and record is not None:
            owner = RoomOwner(record.kind.value, record.school_id, record.class_id)
        remember(session, alias, room, owner=owner)
    session.commit()
    users = {bot}
    if full:
        users |= await _existing_local_users(client)
    else:
        users |= {
            UserID(u)
            for u in session.scalars(
                select(Person.matrix_user_id).where(Person.account_created_at.is_not(None))
            )
            if u
        }
    return ObservedState(users=frozenset(users), rooms=rooms)


def remember(
    session: Session, alias: RoomAlias, room: ObservedRoom, *, owner: RoomOwner | None
) -> None:
    """Record what a managed room now holds (after reading it or after changing it), and
    which school or class it stands for."""
    record = session.get(ManagedRoom, alias)
    if record is None:
        record = ManagedRoom(alias=alias, kind=RoomKind(owner.kind if owner else "class_chat"))
        session.add(record)
    if owner is not None and owner.kind:
        record.kind = RoomKind(owner.kind)
        record.school_id = owner.school_id
        record.class_id = owner.class_id
    record.room_id = room.room_id
    record.applied = room_to_json(room)
    record.dirty = False


async def _existing_local_users(client: MatrixClient) -> set[UserID]:
    """Every account on the homeserver (Synapse's admin API)."""
    return {UserID(u) for u in await local_user_ids(client)}
