"""Poll events of managed rooms, kept for the admin UI's results (MSC3381).

Starts, responses and ends from any client (Element, Parta's UI) are read from the raw
events of a transaction (`matrix.polls.parse_poll_event`) and stored one row per event
in the transaction that records the transaction itself (`inbox.record_transaction`), so
a transaction Synapse delivers again adds nothing. Counting is done when a page asks
(`services.poll_results`).

Whether an end counts depends on its sender's power: MSC3381 accepts an end from the
poll's creator or from someone who may redact others' events. The power is read from
the room before the transaction is stored (`judge_ends`, through `matrix.room_state`),
and stored with the end, since the database work runs without the network.

Kept: a start in a managed room of a school (a space aside); a response or end that
refers to a poll Parta knows (stored before, or started in the same transaction).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from matrix import polls as msc3381
from matrix.client import MatrixClient
from matrix.errors import Forbidden, NotFound
from matrix.room_state import CREATE, POWER_LEVELS, read_room_state
from provisioning.db.models import ManagedRoom, RoomKind
from provisioning.db.polls import Poll
from provisioning.services import polls

SenderInRoom = tuple[str, str]  # (room ID, user ID)
_SPACES = (RoomKind.SCHOOL_SPACE, RoomKind.CLASS_SPACE)


def translate(events: Iterable[object]) -> list[msc3381.PollEvent]:
    """The poll events of a transaction, in the order Synapse sent them."""
    return [parsed for event in events if (parsed := msc3381.parse_poll_event(event)) is not None]


async def judge_ends(
    client: MatrixClient, poll_events: Iterable[msc3381.PollEvent]
) -> dict[SenderInRoom, bool]:
    """Whether each end's sender may redact others' events in its room, read now.

    A room the bot cannot read (gone, never joined) gives False. A homeserver that does
    not answer raises, so the bridge answers 5xx and Synapse delivers the transaction
    again later, rather than an end being judged without its room's power levels.
    """
    senders: dict[str, set[str]] = {}
    for event in poll_events:
        if isinstance(event, msc3381.PollEnd):
            senders.setdefault(event.room_id, set()).add(event.sender)

    async def judge(room_id: str, users: set[str]) -> dict[SenderInRoom, bool]:
        try:
            state = await read_room_state(client, room_id, only=(CREATE, POWER_LEVELS))
        except (Forbidden, NotFound):
            return dict.fromkeys(((room_id, user) for user in users), False)
        return {(room_id, user): state.may_redact_others(user) for user in users}

    judged: dict[SenderInRoom, bool] = {}
    for result in await asyncio.gather(*(judge(r, u) for r, u in senders.items())):
        judged.update(result)
    return judged


def record(
    session: Session,
    poll_events: list[msc3381.PollEvent],
    may_redact: Mapping[SenderInRoom, bool],
) -> int:
    """Store the poll events worth keeping, each once; how many were considered."""
    if not poll_events:
        return 0
    room_ids = {event.room_id for event in poll_events}
    managed = {
        room.room_id: room
        for room in session.scalars(
            select(ManagedRoom).where(
                ManagedRoom.room_id.in_(room_ids), ManagedRoom.kind.not_in(_SPACES)
            )
        )
    }
    referred = {
        event.poll_event_id
        for event in poll_events
        if isinstance(event, msc3381.PollResponse | msc3381.PollEnd)
    }
    known = set(session.scalars(select(Poll.event_id).where(Poll.event_id.in_(referred))))
    for event in poll_events:
        room = managed.get(event.room_id)
        if room is None:
            continue
        if isinstance(event, msc3381.PollStart):
            if room.school_id is not None:
                polls.record_start(session, event, room)
                known.add(event.event_id)
        elif event.poll_event_id not in known:
            continue
        elif isinstance(event, msc3381.PollResponse):
            polls.record_response(session, event)
        else:
            allowed = may_redact.get((event.room_id, event.sender), False)
            polls.record_end(session, event, sender_may_redact=allowed)
    return len(poll_events)
