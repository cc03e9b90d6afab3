"""What the bridge keeps from a transaction: a pure selection, then one DB transaction."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from matrix.appservice import StateEvent
from matrix.polls import PollEvent
from provisioning.appservice import knocks, polls
from provisioning.appservice.store import AppserviceTransaction, InboxEvent
from provisioning.db.models import ManagedRoom

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    processed: bool  # False: this transaction was processed before, nothing was done
    placements_changed: bool = False  # a join request was decided in a Matrix client


def fingerprint_of(events: Iterable[Any]) -> str:
    """What tells a retried transaction from a new one under a reused ID: its event IDs."""
    ids = sorted(str(e.get("event_id", "")) for e in events if isinstance(e, dict))
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def record_transaction(
    session: Session,
    txn_id: str,
    events: list[StateEvent],
    *,
    bot_user_id: str,
    fingerprint: str,
    poll_events: list[PollEvent] | None = None,
    ends_by_redactors: Mapping[polls.SenderInRoom, bool] | None = None,
) -> Recorded:
    """Store a transaction and its state events once; not `processed` if it was already.

    A transaction ID seen before with other events (`fingerprint`) is a new transaction:
    Synapse on SQLite starts its transaction IDs from 1 again after a restart, once it has
    delivered everything, and dropping those as retries would lose every knock and
    command until the count passed the old one.

    The transaction row and its events commit together, so a crash between them cannot
    leave a transaction marked processed with its events lost, or the other way round.
    A managed room whose state someone other than the bot changed is marked dirty, so the
    reconciler's next run reads it from Synapse and repairs it. Poll events
    (`appservice.polls`) are kept in the same database transaction, with whether each
    end's sender may redact in its room (`ends_by_redactors`, read before).
    """
    seen = session.get(AppserviceTransaction, txn_id)
    # A row from before fingerprints (None) is taken as the same transaction, as before.
    if seen is not None and seen.fingerprint in (None, fingerprint):
        return Recorded(processed=False)
    if seen is not None:
        log.info("transaction ID reused by the homeserver", extra={"txn_id": txn_id})
        session.delete(seen)
        session.flush()
    known = set(
        session.scalars(
            select(InboxEvent.event_id).where(InboxEvent.event_id.in_([e.event_id for e in events]))
        )
    )
    session.add(
        AppserviceTransaction(txn_id=txn_id, event_count=len(events), fingerprint=fingerprint)
    )
    for event in events:
        if event.event_id in known:
            continue  # the same event may arrive again in another transaction
        known.add(event.event_id)
        session.add(
            InboxEvent(
                txn_id=txn_id,
                event_id=event.event_id,
                room_id=event.room_id,
                event_type=event.event_type,
                state_key=event.state_key,
                sender=event.sender,
                origin_server_ts=event.origin_server_ts,
                content=event.content,
            )
        )
    unexpected = [e for e in events if e.sender != bot_user_id and e.changes_room_unexpectedly]
    for event in unexpected:
        log.info(
            "room changed by someone else",
            extra={
                "room_id": event.room_id,
                "event_type": event.event_type,
                "sender": event.sender,
                "membership": event.content.get("membership"),
                "prev_membership": event.prev_membership,
            },
        )
    changed_by_others = {e.room_id for e in unexpected}
    if changed_by_others:
        session.execute(
            update(ManagedRoom).where(ManagedRoom.room_id.in_(changed_by_others)).values(dirty=True)
        )
    placed = knocks.record(session, knocks.translate(events, bot_user_id=bot_user_id))
    polls.record(session, poll_events or [], ends_by_redactors or {})
    try:
        session.commit()
    except IntegrityError:
        # A concurrent delivery of the same transaction won the race: it is processed.
        session.rollback()
        return Recorded(processed=False)
    return Recorded(processed=True, placements_changed=placed)
