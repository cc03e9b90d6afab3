"""May this person be in this room's call, and do they moderate it? The room decides.

A call belongs to a Matrix room: whoever is joined to the room may join its call, and
whoever holds at least the room's `kick` level moderates it (`moderation.is_moderator`).
The SFU asks the region's homeserver through the bridge's client, as the provisioning
bot: in the rooms Parta manages the bot is a member and reads three state events at once; in any
other room of the homeserver (a parents' own group chat, say) it reads the room's state
through Synapse's admin API, which the bot may use as a server admin. Where nobody but
the bot has that power (a parent and child's family room), the floor is open to all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from matrix.client import MatrixClient, path
from matrix.errors import Forbidden, NotFound
from widgets.call.moderation import floor_is_open, is_moderator

_ADMIN = "/_synapse/admin/v1"


class NoAccess(Exception):
    """The person may not join this room's call; `reason` is a stable code for the page."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RoomAccess:
    user_id: str
    room_id: str
    display_name: str
    moderator: bool
    power_levels: dict[str, Any]
    open_floor: bool = False  # nobody but the bot moderates: everyone may speak


async def check_room_access(
    client: MatrixClient, room_id: str, user_id: str, *, bot_user_id: str = ""
) -> RoomAccess:
    """Joined members only; their display name and moderation right come with the answer.

    `bot_user_id` is Parta's bot, whose power alone leaves the floor open to all
    (`moderation.floor_is_open`); empty: its power counts like anyone's.

    Raises:
        NoAccess("unknown_room"): the homeserver has no such room.
        NoAccess("not_a_member"): the person is not joined to the room.
    """
    if not room_id.startswith("!"):
        raise NoAccess("unknown_room")
    try:
        member, levels, create = await asyncio.gather(
            _state(client, room_id, "m.room.member", user_id),
            _state(client, room_id, "m.room.power_levels", ""),
            _state(client, room_id, "m.room.create", "", whole_event=True),
        )
    except Forbidden:
        member, levels, create = await _from_admin_api(client, room_id, user_id)
    if (member or {}).get("membership") != "join":
        raise NoAccess("not_a_member")
    name = (member or {}).get("displayname")
    display_name = name if isinstance(name, str) and name.strip() else user_id
    creators = _creators(create)
    moderator = is_moderator(levels, user_id, creators)
    open_floor = floor_is_open(levels, creators, bot_user_id=bot_user_id)
    return RoomAccess(user_id, room_id, display_name, moderator, dict(levels or {}), open_floor)


@dataclass(frozen=True)
class RoomMembers:
    """A room's joined members and who of them moderates, read in one go for a live call."""

    room_id: str
    joined: frozenset[str]
    moderators: frozenset[str]
    open_floor: bool = False


async def read_room_members(
    client: MatrixClient, room_id: str, *, bot_user_id: str = ""
) -> RoomMembers:
    """Who is joined to the room now, and who of them has at least its `kick` level.

    The call service asks this for every call with people in it, every few seconds, so
    that a teacher made moderator (or demoted) in Matrix gets (or loses) the teacher's
    controls mid-call, and someone who left or was kicked from the room leaves its call.
    Three requests a room (two state events and the joined members), or one through the
    admin API when the bot is not in the room.

    Raises:
        NoAccess("unknown_room"): the homeserver has no such room (any more).
        MatrixError, HomeserverUnavailable: the homeserver did not answer usefully.
    """
    try:
        answer, levels, create = await asyncio.gather(
            client.request("GET", path("rooms", room_id, "joined_members")),
            _state(client, room_id, "m.room.power_levels", ""),
            _state(client, room_id, "m.room.create", "", whole_event=True),
        )
        joined = frozenset(str(user) for user in (answer.get("joined") or {}))
    except Forbidden:
        joined, levels, create = await _members_from_admin_api(client, room_id)
    creators = _creators(create)
    moderators = frozenset(user for user in joined if is_moderator(levels, user, creators))
    open_floor = floor_is_open(levels, creators, bot_user_id=bot_user_id)
    return RoomMembers(room_id, joined, moderators, open_floor)


async def _members_from_admin_api(
    client: MatrixClient, room_id: str
) -> tuple[frozenset[str], dict[str, Any] | None, dict[str, Any] | None]:
    try:
        answer = await client.request("GET", path("rooms", room_id, "state", base=_ADMIN))
    except (NotFound, Forbidden) as exc:
        raise NoAccess("unknown_room") from exc
    joined: set[str] = set()
    levels = create = None
    for event in answer.get("state", ()):
        kind, key = event.get("type"), event.get("state_key")
        content = event.get("content") or {}
        if kind == "m.room.member" and content.get("membership") == "join":
            joined.add(str(key))
        elif kind == "m.room.power_levels" and key == "":
            levels = content
        elif kind == "m.room.create" and key == "":
            create = event
    return frozenset(joined), levels, create


def _creators(create: dict[str, Any] | None) -> frozenset[str]:
    """Who has unlimited power by creating the room: since room version 12 (MSC4289)."""
    if not create:
        return frozenset()
    content = create.get("content") or {}
    version = str(content.get("room_version", "1"))
    modern = version.isdigit() and int(version) >= 12
    if not modern and not version.startswith("org.matrix.hydra"):
        return frozenset()
    extra = content.get("additional_creators") or []
    return frozenset([str(create.get("sender", "")), *(str(u) for u in extra)]) - {""}


async def _state(
    client: MatrixClient,
    room_id: str,
    event_type: str,
    state_key: str,
    *,
    whole_event: bool = False,
) -> dict[str, Any] | None:
    """A state event's content, or with `whole_event` the event (its sender too)."""
    query = {"format": "event"} if whole_event else None
    try:
        return await client.request(
            "GET", path("rooms", room_id, "state", event_type, state_key), query=query
        )
    except NotFound:
        return None


async def _from_admin_api(
    client: MatrixClient, room_id: str, user_id: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
    """The bot is not in the room: read its current state as a server admin."""
    try:
        answer = await client.request("GET", path("rooms", room_id, "state", base=_ADMIN))
    except (NotFound, Forbidden) as exc:
        raise NoAccess("unknown_room") from exc
    member = levels = create = None
    for event in answer.get("state", ()):
        kind, key = event.get("type"), event.get("state_key")
        if kind == "m.room.member" and key == user_id:
            member = event.get("content") or {}
        elif kind == "m.room.power_levels" and key == "":
            levels = event.get("content") or {}
        elif kind == "m.room.create" and key == "":
            create = event
    return member, levels, create
