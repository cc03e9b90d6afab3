"""Rooms, ensured: each helper may be called again, and counts a lost answer as done.

A request whose answer was lost (a timeout in a big room) is retried by the client; the
retry then meets the state the first attempt made ("already in the room", "alias in
use"). Each helper here recognises that state and returns as if the first answer had
arrived, in the spirit of mautrix-python's `IntentAPI.ensure_joined`. A refusal for any
other reason is raised, typed (`matrix.errors`).

The helpers take anything with `request(method, path, *, body, query)`: the appservice
bot's `MatrixClient` (with retries) or a person's own token (`TokenClient`, no retries).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from matrix.client import JsonDict, path
from matrix.errors import Forbidden, NotFound, RoomInUse

_ADMIN = "/_synapse/admin/v1"


class Requester(Protocol):
    """What the helpers need of a client: one JSON request, errors raised typed."""

    async def request(
        self,
        method: str,
        url_path: str,
        *,
        body: Mapping[str, Any] | None = ...,
        query: Mapping[str, str] | None = ...,
        idempotent: bool | None = ...,
    ) -> JsonDict: ...


@dataclass(frozen=True)
class EnsuredRoom:
    room_id: str
    created: bool  # False: a room with the alias existed already and was adopted


async def resolve_alias(client: Requester, alias: str) -> str | None:
    """The room ID a full alias (`#name:server`) names, or None if it names none."""
    try:
        answer = await client.request("GET", path("directory", "room", alias))
    except NotFound:
        return None
    return str(answer["room_id"])


async def create_or_adopt(
    client: Requester, alias_name: str, server_name: str, body: Mapping[str, Any]
) -> EnsuredRoom:
    """Create a room with the alias `#alias_name:server_name`, or adopt the room it names.

    The alias is the natural key: a retry after a lost answer, or a creation that raced
    with another, meets `RoomInUse`, and the room holding the alias is the one wanted.

    Raises:
        RoomInUse: the alias is in use but resolves to no room (deleted meanwhile).
    """
    request = {**body, "room_alias_name": alias_name}
    try:
        answer = await client.request("POST", path("createRoom"), body=request, idempotent=True)
    except RoomInUse:
        existing = await resolve_alias(client, f"#{alias_name}:{server_name}")
        if existing is None:
            raise
        return EnsuredRoom(existing, created=False)
    return EnsuredRoom(str(answer["room_id"]), created=True)


async def membership(client: Requester, room_id: str, user_id: str) -> str | None:
    """A user's membership in a room (`join`, `invite`, `leave`…), None if they have none.

    Raises:
        Forbidden: the caller may not read the room's state (it is not in the room).
    """
    try:
        event = await read_state(client, room_id, "m.room.member", user_id)
    except NotFound:
        return None
    return str(event.get("membership", "")) or None


async def join(client: Requester, room_id: str) -> None:
    """Join a room as the caller, accepting its invite (the bot's answer to an invitation).

    Joining a room one is in already succeeds, so a retry after a lost answer is done.
    """
    await client.request("POST", path("join", room_id), body={}, idempotent=True)


async def admin_join(client: Requester, room_id: str, user_id: str) -> None:
    """Place a local user in a room with Synapse's admin join (an invite and a join).

    Done when the user is in the room: Synapse refuses to join someone who is in it
    already, which is what a retry after a lost answer meets.

    Raises:
        Forbidden: refused, and the user is not in the room (or the caller cannot tell).
    """
    try:
        await client.request(
            "POST", path("join", room_id, base=_ADMIN), body={"user_id": user_id}, idempotent=True
        )
    except Forbidden:
        if await _membership_or_none(client, room_id, user_id) != "join":
            raise


async def kick(client: Requester, room_id: str, user_id: str, *, reason: str) -> None:
    """Take a user out of a room; done when they are neither in it, invited nor knocking.

    Raises:
        Forbidden: refused while the user is still in the room, invited or knocking.
    """
    try:
        await client.request(
            "POST",
            path("rooms", room_id, "kick"),
            body={"user_id": user_id, "reason": reason},
            idempotent=True,
        )
    except Forbidden:
        # Synapse refuses to kick someone who is not in the room: gone already, so done.
        if await membership(client, room_id, user_id) in ("join", "invite", "knock"):
            raise


async def leave(
    client: Requester, room_id: str, *, reason: str | None = None, user_id: str | None = None
) -> None:
    """Leave a room as the caller, or decline its invite (`user_id` names who the caller
    is, to check the outcome without asking the homeserver).

    Done when the caller is out: a retry after a lost answer, or a room left earlier, is
    refused by Synapse (403 or 404) but leaves the wanted state.

    Raises:
        Forbidden, NotFound: refused while the caller is still in the room.
    """
    try:
        body = {} if reason is None else {"reason": reason}
        await client.request("POST", path("rooms", room_id, "leave"), body=body, idempotent=True)
    except (Forbidden, NotFound):
        if user_id is None:
            user_id = str((await client.request("GET", path("account", "whoami")))["user_id"])
        if await _membership_or_none(client, room_id, user_id) in ("join", "invite", "knock"):
            raise


async def put_state(
    client: Requester,
    room_id: str,
    event_type: str,
    content: Mapping[str, Any],
    state_key: str = "",
    *,
    as_user: str | None = None,
) -> str:
    """Set one state event (PUT: the same content twice is the same state); its event ID."""
    url = path("rooms", room_id, "state", event_type, state_key)
    if as_user is None:
        answer = await client.request("PUT", url, body=content)
    else:
        answer = await client.request("PUT", url, body=content, query={"user_id": as_user})
    return str(answer.get("event_id", ""))


async def read_state(
    client: Requester, room_id: str, event_type: str, state_key: str = ""
) -> JsonDict:
    """One state event's content.

    Raises:
        NotFound: the room has no such state event.
        Forbidden: the caller may not read the room.
    """
    return await client.request("GET", path("rooms", room_id, "state", event_type, state_key))


async def read_all_state(client: Requester, room_id: str) -> list[JsonDict]:
    """Every current state event of a room (as the client API lists them)."""
    answer = await client.request("GET", path("rooms", room_id, "state"))
    listed = answer.get("value", answer)  # the client wraps a JSON list as {"value": …}
    return [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []


async def joined_rooms(client: Requester) -> list[str]:
    """The rooms the caller is joined to."""
    answer = await client.request("GET", path("joined_rooms"))
    return [r for r in answer.get("joined_rooms") or [] if isinstance(r, str)]


async def send_message(
    client: Requester,
    room_id: str,
    content: Mapping[str, Any],
    *,
    transaction_id: str | None = None,
    event_type: str = "m.room.message",
) -> str:
    """Send an event; its event ID. The transaction ID makes a retry the same event."""
    txn = transaction_id or secrets.token_urlsafe(12)
    answer = await client.request(
        "PUT", path("rooms", room_id, "send", event_type, txn), body=content
    )
    return str(answer.get("event_id", ""))


async def redact(
    client: Requester,
    room_id: str,
    event_id: str,
    *,
    reason: str,
    transaction_id: str | None = None,
) -> None:
    """Redact an event; the transaction ID makes a retry the same redaction."""
    txn = transaction_id or secrets.token_urlsafe(12)
    await client.request(
        "PUT", path("rooms", room_id, "redact", event_id, txn), body={"reason": reason}
    )


async def read_event(client: Requester, room_id: str, event_id: str) -> JsonDict:
    return await client.request("GET", path("rooms", room_id, "event", event_id))


async def read_messages(client: Requester, room_id: str, *, query: Mapping[str, str]) -> JsonDict:
    """One page of a room's timeline (`dir`, `from`, `limit`, `filter` in `query`)."""
    return await client.request("GET", path("rooms", room_id, "messages"), query=query)


async def read_recent(
    client: Requester, room_id: str, *, event_filter: str, limit: int, page: int = 1000
) -> list[JsonDict]:
    """Up to `limit` of a room's latest events that pass `event_filter` (a RoomEventFilter
    as JSON), newest first, read back page by page."""
    events: list[JsonDict] = []
    since: str | None = None
    while len(events) < limit:
        query = {"dir": "b", "limit": str(min(page, limit - len(events))), "filter": event_filter}
        if since:
            query["from"] = since
        answer = await read_messages(client, room_id, query=query)
        chunk = answer.get("chunk") or []
        events.extend(e for e in chunk if isinstance(e, dict))
        since = answer.get("end")
        if not chunk or not since:
            break
    return events


async def read_relations(
    client: Requester, room_id: str, event_id: str, rel_type: str, *, limit: int = 100
) -> JsonDict:
    """Events related to one event by `rel_type` (such as `m.replace`: its edits)."""
    url = path("rooms", room_id, "relations", event_id, rel_type, base="/_matrix/client/v1")
    return await client.request("GET", url, query={"limit": str(limit)})


async def _membership_or_none(client: Requester, room_id: str, user_id: str) -> str | None:
    """`membership`, or None when the caller cannot read the room (it is not in it)."""
    try:
        return await membership(client, room_id, user_id)
    except Forbidden:
        return None
