"""Desired and observed Matrix state, as plain frozen values the planner compares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NewType

from matrix.room_state import WIDGETS_EVENT as WIDGETS_EVENT  # re-exported for the reconciler
from matrix.room_state import PowerLevelsContent

UserID = NewType("UserID", str)
RoomAlias = NewType("RoomAlias", str)  # the localpart: "school-shkola-57-2032a-chat"

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class JoinRule:
    """`m.room.join_rules`: invite, knock, or restricted to the members of given spaces."""

    rule: str
    allow_spaces: tuple[RoomAlias, ...] = ()


@dataclass(frozen=True, slots=True)
class PowerLevels:
    """The parts of `m.room.power_levels` Parta decides and writes; compared as a whole.

    Who has what power in a room is judged by `matrix.room_state.RoomState`, not here.
    """

    users: tuple[tuple[UserID, int], ...]
    events_default: int
    state_default: int = 50
    invite: int = 50
    kick: int = 50
    ban: int = 50
    redact: int = 50
    events: tuple[tuple[str, int], ...] = ()

    def content(self) -> JsonDict:
        return {
            "users": dict(self.users),
            "users_default": 0,
            "events_default": self.events_default,
            "state_default": self.state_default,
            "invite": self.invite,
            "kick": self.kick,
            "ban": self.ban,
            "redact": self.redact,
            "events": dict(self.events),
        }

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> PowerLevels:
        """Read what Synapse holds as every part of Parta reads power levels
        (`matrix.room_state`): the spec's defaults for missing keys, string levels of old
        rooms, and no level where a value is none (so the planner puts the desired one back).
        """
        return cls.from_levels(PowerLevelsContent.parse(content))

    @classmethod
    def from_levels(cls, levels: PowerLevelsContent) -> PowerLevels:
        """The parts Parta writes, from levels `matrix.room_state` has already read."""
        return cls(
            users=tuple(sorted((UserID(user), level) for user, level in levels.users.items())),
            events_default=levels.events_default,
            state_default=levels.state_default,
            invite=levels.invite,
            kick=levels.kick,
            ban=levels.ban,
            redact=levels.redact,
            events=tuple(sorted(levels.events.items())),
        )


CALL_WIDGET_ID = "parta-call"  # the state key of the call widget Parta keeps in a room
DOCUMENTS_WIDGET_ID = "parta-documents"  # and of the documents widget


@dataclass(frozen=True, slots=True)
class RoomWidget:
    """A widget Parta keeps in a room (`im.vector.modular.widgets`, state key
    `widget_id`): the call (`parta-call`) or the documents (`parta-documents`).

    `url` is the widget's URL template: the Matrix client fills in `$matrix_room_id` and
    the others (Widget API spec) before it loads the page.
    """

    url: str
    name: str
    widget_id: str = CALL_WIDGET_ID

    def content(self, creator: str) -> JsonDict:
        return {
            "id": self.widget_id,
            "type": "m.custom",
            "url": self.url,
            "name": self.name,
            "creatorUserId": creator,
            "waitForIframeLoad": True,
            "data": {"title": self.name},
        }

    @classmethod
    def from_content(
        cls, content: Mapping[str, Any], widget_id: str = CALL_WIDGET_ID
    ) -> RoomWidget | None:
        url, name = content.get("url"), content.get("name")
        if not isinstance(url, str) or not url:
            return None  # removed (empty content) or not a widget
        return cls(url, name if isinstance(name, str) else "", widget_id)


class RoomOwner(NamedTuple):
    """What a managed room stands for: its kind and the school (and class) it belongs to."""

    kind: str
    school_id: int | None
    class_id: int | None


@dataclass(frozen=True, slots=True)
class DesiredRoom:
    alias: RoomAlias
    is_space: bool
    name: str
    topic: str
    join_rule: JoinRule
    power_levels: PowerLevels
    members: frozenset[UserID]
    parent: RoomAlias | None = None
    history_visibility: str = "shared"
    kind: str = ""  # a RoomKind value, recorded with the managed room
    school_id: int | None = None  # the row the room stands for, recorded with it too
    class_id: int | None = None
    # The school opened the room to other regions (docs/safety.md): members of other servers,
    # let in by the school policy module, stay; closing the room again removes them.
    federated: bool = False
    call_widget: RoomWidget | None = None  # lessons in class chats, meetings with parents
    documents_widget: RoomWidget | None = None  # materials in class chats and channels

    @property
    def owner(self) -> RoomOwner:
        return RoomOwner(self.kind, self.school_id, self.class_id)


@dataclass(frozen=True, slots=True)
class DesiredState:
    bot: UserID  # creates every managed room, so it is a member of each from the start
    users: Mapping[UserID, str]  # user ID → display name
    rooms: Mapping[RoomAlias, DesiredRoom]


@dataclass(frozen=True, slots=True)
class ObservedRoom:
    alias: RoomAlias
    room_id: str
    name: str | None
    topic: str | None
    join_rule: JoinRule | None
    power_levels: PowerLevels | None
    history_visibility: str | None
    members: frozenset[UserID]  # joined
    children: frozenset[RoomAlias] = frozenset()  # managed children linked from this space
    parent: RoomAlias | None = None  # managed space this room names as its parent
    invited: frozenset[UserID] = frozenset()  # invited, not (yet) joined
    call_widget: RoomWidget | None = None
    documents_widget: RoomWidget | None = None


@dataclass(frozen=True, slots=True)
class ObservedState:
    users: frozenset[UserID]
    rooms: Mapping[RoomAlias, ObservedRoom] = field(default_factory=dict)
