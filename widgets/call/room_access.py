"""May this person be in this room's call, and do they moderate it? The room decides.

A call belongs to a Matrix room: whoever is joined to the room may join its call, and
whoever holds at least the room's `kick` level moderates it (`RoomState.is_moderator`).
The SFU asks the region's homeserver through the bridge's client, as the provisioning
bot (`matrix.room_state.read_room_state`): in the rooms Parta manages the bot is a member;
in any other room of the homeserver (a parents' own group chat, say) the room's state is
read through Synapse's admin API, which the bot may use as a server admin. Where nobody
but the bot has that power (a parent and child's family room), the floor is open to all.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from matrix.client import MatrixClient
from matrix.errors import Forbidden, NotFound
from matrix.room_state import (
    CREATE,
    POWER_LEVELS,
    RoomState,
    StateKey,
    membership_key,
    read_room_state,
)
from widgets.call.moderation import floor_is_open


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
    room: RoomState  # the events read: the person's membership, power levels, creation
    open_floor: bool = False  # nobody but the bot moderates: everyone may speak


async def check_room_access(
    client: MatrixClient, room_id: str, user_id: str, *, bot_user_id: str = ""
) -> RoomAccess:
    """Joined members only; their display name and moderation right come with the answer.

    Three state events are read at once (the person's membership, the power levels, the
    create event), or the whole state through the admin API when the bot is not in the room.
    `bot_user_id` is Parta's bot, whose power alone leaves the floor open to all
    (`moderation.floor_is_open`); empty: its power counts like anyone's.

    Raises:
        NoAccess("unknown_room"): the homeserver has no such room.
        NoAccess("not_a_member"): the person is not joined to the room.
    """
    if not room_id.startswith("!"):
        raise NoAccess("unknown_room")
    room = await _read(client, room_id, only=(membership_key(user_id), POWER_LEVELS, CREATE))
    if room.membership(user_id) != "join":
        raise NoAccess("not_a_member")
    return RoomAccess(
        user_id,
        room_id,
        display_name=room.display_names.get(user_id, user_id),
        moderator=room.is_moderator(user_id),
        room=room,
        open_floor=floor_is_open(room, bot_user_id=bot_user_id),
    )


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
    One request a room: its whole state, as a member or through the admin API.

    Raises:
        NoAccess("unknown_room"): the homeserver has no such room (any more).
        MatrixError, HomeserverUnavailable: the homeserver did not answer usefully.
    """
    room = await _read(client, room_id)
    joined = room.joined
    moderators = frozenset(user for user in joined if room.is_moderator(user))
    return RoomMembers(room_id, joined, moderators, floor_is_open(room, bot_user_id=bot_user_id))


async def _read(
    client: MatrixClient, room_id: str, *, only: Collection[StateKey] = ()
) -> RoomState:
    try:
        return await read_room_state(client, room_id, only=only)
    except (NotFound, Forbidden) as exc:  # no such room, or the bot may not read it at all
        raise NoAccess("unknown_room") from exc
