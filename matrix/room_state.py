"""Who has power in a room, and what else its state says: one reading for all of Parta.

The call's moderators, who may put the call widget, and what the reconciler observes all
judge power here, so they cannot disagree. The rules are the Matrix spec's
(`m.room.power_levels`, and MSC4289 for room version 12), as Synapse applies them:

- Room version 12 (and its preview `org.matrix.hydra.11`): the creators (the create
  event's sender and its `additional_creators`) have unlimited power, whatever the power
  levels say; they are not listed in `users` at all.
- Earlier versions: a creator is like anyone once the room has a power-levels event;
  without one, the creator has 100 and everyone else 0.
- Missing keys take the spec's defaults: `users_default`, `events_default` and `invite`
  0; `state_default`, `kick`, `ban` and `redact` 50, with or without a power-levels event
  (the spec's older "state_default 0 without one" text was dropped in 2023, matrix-spec
  #1479; Synapse has used 50 since r0.5.0).
- Rooms before version 10 allow levels as strings ("50"); anything not a level (`true`,
  a float, garbage) counts as missing.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from matrix.client import MatrixClient, path
from matrix.errors import Forbidden, NotFound

StateKey = tuple[str, str]  # (event type, state key)
CREATE: StateKey = ("m.room.create", "")
POWER_LEVELS: StateKey = ("m.room.power_levels", "")
JOIN_RULES: StateKey = ("m.room.join_rules", "")
WIDGETS_EVENT = "im.vector.modular.widgets"
ADMIN_V1 = "/_synapse/admin/v1"

Level = int | float  # float only for math.inf: a creator's unlimited power


def membership_key(user_id: str) -> StateKey:
    """The state key of someone's membership, for `read_room_state(only=...)`."""
    return ("m.room.member", user_id)


def parse_level(value: object) -> int | None:
    """A power level as the spec allows it, or None where the value is not one."""
    if isinstance(value, bool):  # JSON true is not 1
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):  # room versions before 10 (MSC3667 made them integers)
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _levels_map(value: object) -> Mapping[str, int]:
    if not isinstance(value, Mapping):
        return MappingProxyType({})
    parsed = {str(key): parse_level(level) for key, level in value.items()}
    return MappingProxyType({key: level for key, level in parsed.items() if level is not None})


def _read(content: Mapping[str, Any], key: str, default: int) -> int:
    level = parse_level(content.get(key))
    return default if level is None else level


@dataclass(frozen=True)
class PowerLevelsContent:
    """An `m.room.power_levels` event's content, with the spec's defaults filled in."""

    users: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    users_default: int = 0
    events: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    events_default: int = 0
    state_default: int = 50
    invite: int = 0
    kick: int = 50
    ban: int = 50
    redact: int = 50

    @classmethod
    def parse(cls, content: Mapping[str, Any]) -> PowerLevelsContent:
        """Read the content; entries that are not levels are left out (the defaults apply)."""
        return cls(
            users=_levels_map(content.get("users")),
            users_default=_read(content, "users_default", 0),
            events=_levels_map(content.get("events")),
            events_default=_read(content, "events_default", 0),
            state_default=_read(content, "state_default", 50),
            invite=_read(content, "invite", 0),
            kick=_read(content, "kick", 50),
            ban=_read(content, "ban", 50),
            redact=_read(content, "redact", 50),
        )


# Without a power-levels event only the named defaults apply (and the creator's 100).
_NO_POWER_LEVELS = PowerLevelsContent()


def creators_have_unlimited_power(room_version: str) -> bool:
    """MSC4289: room version 12, its preview `org.matrix.hydra.11`, and the numbered
    versions built on 12."""
    if room_version == "org.matrix.hydra.11":
        return True
    return room_version.isdigit() and int(room_version) >= 12


@dataclass(frozen=True)
class RoomState:
    """What a room's state events say: members, power, widgets, join rule, space or not.

    Built from the events a caller read (`from_events`): the whole state, or just the
    ones it needs. What was not read is absent: no create event means no creators known,
    no power-levels event means the spec's rules for a room without one.
    """

    room_version: str = "1"
    creators: frozenset[str] = frozenset()
    power_levels: PowerLevelsContent | None = None  # None: the room has no such event
    members: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    display_names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    widgets: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # state key → content of `im.vector.modular.widgets`; removed widgets left out
    join_rule: str | None = None
    is_space: bool = False

    @classmethod
    def from_events(cls, events: Iterable[Any]) -> RoomState:
        """Read state events (`GET /rooms/{id}/state`, or single ones with `format=event`).

        Anything that is not a state event with an object content is skipped.
        """
        create: Mapping[str, Any] | None = None
        create_sender = ""
        levels: PowerLevelsContent | None = None
        members: dict[str, str] = {}
        names: dict[str, str] = {}
        widgets: dict[str, Mapping[str, Any]] = {}
        join_rule: str | None = None
        for event in events:
            if not isinstance(event, Mapping):
                continue
            kind, key, content = event.get("type"), event.get("state_key"), event.get("content")
            if not isinstance(key, str) or not isinstance(content, Mapping):
                continue
            if (kind, key) == CREATE:
                create, create_sender = content, str(event.get("sender") or "")
            elif (kind, key) == POWER_LEVELS:
                levels = PowerLevelsContent.parse(content)
            elif (kind, key) == JOIN_RULES:
                rule = content.get("join_rule")
                join_rule = rule if isinstance(rule, str) else None
            elif kind == "m.room.member":
                membership = content.get("membership")
                if isinstance(membership, str):
                    members[key] = membership
                name = content.get("displayname")
                if isinstance(name, str) and name.strip():
                    names[key] = name
            elif kind == WIDGETS_EVENT and content:
                widgets[key] = MappingProxyType(dict(content))
        version = str((create or {}).get("room_version") or "1")
        return cls(
            room_version=version,
            creators=_creators(create, create_sender, version),
            power_levels=levels,
            members=MappingProxyType(members),
            display_names=MappingProxyType(names),
            widgets=MappingProxyType(widgets),
            join_rule=join_rule,
            is_space=(create or {}).get("type") == "m.space",
        )

    @property
    def creators_unlimited(self) -> bool:
        return creators_have_unlimited_power(self.room_version)

    @property
    def _levels(self) -> PowerLevelsContent:
        return self.power_levels or _NO_POWER_LEVELS

    def level_of(self, user_id: str) -> Level:
        """Someone's power level; `math.inf` for a creator of a room version 12 room."""
        if user_id in self.creators:
            if self.creators_unlimited:
                return math.inf
            if self.power_levels is None:
                return 100
        levels = self._levels
        return levels.users.get(user_id, levels.users_default)

    @property
    def kick_level(self) -> int:
        return self._levels.kick

    @property
    def redact_level(self) -> int:
        return self._levels.redact

    def may_redact_others(self, user_id: str) -> bool:
        """At least the room's `redact` level: who may remove others' events, and so (by
        MSC3381) end a poll someone else started."""
        return self.level_of(user_id) >= self.redact_level

    @property
    def users_default(self) -> int:
        return self._levels.users_default

    def required_level(self, event_type: str, *, state: bool) -> int:
        """The level needed to send an event of this type: `events`, else the default."""
        levels = self._levels
        default = levels.state_default if state else levels.events_default
        return levels.events.get(event_type, default)

    def may_send(self, user_id: str, event_type: str, *, state: bool) -> bool:
        return self.level_of(user_id) >= self.required_level(event_type, state=state)

    def is_moderator(self, user_id: str) -> bool:
        """At least the room's `kick` level: who moderates the room's call (the level
        provisioning gives a class's teachers)."""
        return self.level_of(user_id) >= self.kick_level

    def users_with_level(self, at_least: Level) -> frozenset[str]:
        """The users this state names (creators, the power levels' `users`) whose level is
        at least `at_least`; anyone else has `users_default`."""
        named = self.creators | set(self._levels.users)
        return frozenset(user for user in named if self.level_of(user) >= at_least)

    def membership(self, user_id: str) -> str | None:
        return self.members.get(user_id)

    @property
    def joined(self) -> frozenset[str]:
        return frozenset(user for user, state in self.members.items() if state == "join")


def _creators(create: Mapping[str, Any] | None, sender: str, version: str) -> frozenset[str]:
    """The create event's sender; `additional_creators` only where MSC4289 applies.

    Before room version 11 the creator is the content's `creator` (normally the sender);
    since then the sender, whatever the content says.
    """
    if create is None:
        return frozenset()
    creator = create.get("creator")
    named_in_content = version.isdigit() and int(version) < 11 and isinstance(creator, str)
    creators = {str(creator) if named_in_content else sender}
    extra = create.get("additional_creators")
    if creators_have_unlimited_power(version) and isinstance(extra, list):
        creators.update(user for user in extra if isinstance(user, str))
    return frozenset(creators - {""})


# --- Reading it from the homeserver ----------------------------------------------------


async def read_room_state(
    client: MatrixClient,
    room_id: str,
    *,
    only: Collection[StateKey] = (),
    via_admin_api: bool = True,
) -> RoomState:
    """A room's current state, read as the bot; as a server admin where it is no member.

    Args:
        only: read just these state events, one request each, at once
            (`membership_key(user)`, `CREATE`, `POWER_LEVELS`...) instead of the whole
            state. Through the admin API the whole state is read anyway (one request).
        via_admin_api: False where only a room the bot is in matters (it answers there):
            then `Forbidden` is raised instead of reading the room as an admin.

    Raises:
        NotFound: the homeserver has no such room.
        Forbidden: the bot is not in the room and is not a server admin.
        MatrixError, HomeserverUnavailable: the homeserver did not answer usefully.
    """
    try:
        if only:
            found = await asyncio.gather(*(_state_event(client, room_id, key) for key in only))
            return RoomState.from_events(event for event in found if event is not None)
        answer = await client.request("GET", path("rooms", room_id, "state"))
        return RoomState.from_events(answer.get("value", ()))
    except Forbidden:
        if not via_admin_api:
            raise
    # Not a member: Synapse's admin API answers for any room of the homeserver.
    answer = await client.request("GET", path("rooms", room_id, "state", base=ADMIN_V1))
    return RoomState.from_events(answer.get("state", ()))


async def _state_event(client: MatrixClient, room_id: str, key: StateKey) -> dict[str, Any] | None:
    event_type, state_key = key
    try:
        return await client.request(
            "GET",
            path("rooms", room_id, "state", event_type, state_key),
            query={"format": "event"},  # the whole event: the create event's sender counts
        )
    except NotFound:
        return None
