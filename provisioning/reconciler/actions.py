"""The reconciler's actions: small, typed, each an idempotent "ensure" with a natural key."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dataclass_fields

from provisioning.reconciler.state import (
    DesiredRoom,
    JoinRule,
    PowerLevels,
    RoomAlias,
    RoomWidget,
    UserID,
)


@dataclass(frozen=True, slots=True)
class CreateUser:
    user_id: UserID
    display_name: str


@dataclass(frozen=True, slots=True)
class CreateRoom:
    """Create the room with its whole initial state; a room with the alias is adopted."""

    room: DesiredRoom


@dataclass(frozen=True, slots=True)
class SetName:
    alias: RoomAlias
    name: str


@dataclass(frozen=True, slots=True)
class SetTopic:
    alias: RoomAlias
    topic: str


@dataclass(frozen=True, slots=True)
class SetJoinRule:
    alias: RoomAlias
    join_rule: JoinRule


@dataclass(frozen=True, slots=True)
class SetHistoryVisibility:
    alias: RoomAlias
    history_visibility: str


@dataclass(frozen=True, slots=True)
class SetPowerLevels:
    alias: RoomAlias
    power_levels: PowerLevels


@dataclass(frozen=True, slots=True)
class SetWidget:
    """Put a widget (the call, the documents) into the room, or take it out (`widget`
    None); `widget_id` is its state key, which names it also when it is taken out."""

    alias: RoomAlias
    widget_id: str
    widget: RoomWidget | None


@dataclass(frozen=True, slots=True)
class LinkChild:
    """`m.space.child` in the space and `m.space.parent` in the child."""

    parent: RoomAlias
    child: RoomAlias


@dataclass(frozen=True, slots=True)
class Join:
    """Place a person in a room (Synapse's admin join: invite and join in one)."""

    alias: RoomAlias
    user_id: UserID


@dataclass(frozen=True, slots=True)
class Kick:
    alias: RoomAlias
    user_id: UserID


Action = (
    CreateUser
    | CreateRoom
    | SetName
    | SetTopic
    | SetJoinRule
    | SetHistoryVisibility
    | SetPowerLevels
    | SetWidget
    | LinkChild
    | Join
    | Kick
)


def describe(action: Action) -> dict[str, object]:
    """A JSON-ready description: what a dry run prints and golden test cases hold."""
    fields: dict[str, object]
    match action:
        case CreateRoom(room=room):
            fields = {"alias": room.alias, "is_space": room.is_space}
        case SetPowerLevels(alias=alias, power_levels=levels):
            fields = {
                "alias": alias,
                "users": dict(levels.users),
                "events_default": levels.events_default,
            }
        case SetWidget(alias=alias, widget_id=widget_id, widget=widget):
            fields = {"alias": alias, "widget_id": widget_id, "url": widget.url if widget else None}
        case SetJoinRule(alias=alias, join_rule=rule):
            fields = {"alias": alias, "rule": rule.rule, "allow": list(rule.allow_spaces)}
        case _:
            fields = {f.name: getattr(action, f.name) for f in dataclass_fields(action)}
    return {"action": type(action).__name__, **fields}
