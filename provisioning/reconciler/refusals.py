"""Changes the homeserver refuses for good: retried with back-off, reported once, shown.

A change Synapse refuses as too large or invalid (`M_TOO_LARGE`, `M_BAD_JSON`, …) fails
the same way however often it is sent. Issue 18: a 70,000-character name made every
run fail the same six joins, retried every 10 s for ever (186 failed calls in 19 min),
and `parta sync` exited 1 from then on. So such a refusal is recorded
(`refused_actions`), tried again after 1 minute, then 2, 4, … up to 6 hours, reported
once in the school's audit log (`matrix.refused`) and shown on the school's page. A
change of what the desired state asks for (the name corrected) is tried at once.

A refusal is matched to later plans by the action's natural key (its kind, room and
user) and a digest of what the desired state asked for; `plan.py` stays pure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.audit import AutomaticActor, record_audit
from provisioning.db.base import as_utc
from provisioning.db.models import RefusedAction
from provisioning.reconciler.actions import (
    Action,
    CreateRoom,
    CreateUser,
    Join,
    SetJoinRule,
    describe,
)
from provisioning.reconciler.apply import FailedAction, rooms_needed
from provisioning.reconciler.state import DesiredState, RoomAlias, UserID

# What the homeserver answers for a request it will refuse however often it comes: the
# request itself is wrong (too large, malformed, invalid) or not allowed (the policy
# module's refusal, a power level). Rate limits, 5xx and timeouts pass; they are retried
# soon. A Forbidden from a join or kick is first checked against the membership (apply).
PERMANENT_ERRCODES: Final = frozenset(
    {
        "M_TOO_LARGE",
        "M_BAD_JSON",
        "M_NOT_JSON",
        "M_INVALID_PARAM",
        "M_INVALID_USERNAME",
        "M_EXCLUSIVE",
        "M_USER_DEACTIVATED",
        "M_FORBIDDEN",
    }
)
FIRST_RETRY: Final = timedelta(minutes=1)
LONGEST_RETRY: Final = timedelta(hours=6)


def is_permanent(failure: FailedAction) -> bool:
    return failure.errcode in PERMANENT_ERRCODES


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th refusal: 1 min, 2, 4, … at most 6 h."""
    if attempts < 1:
        raise ValueError("a refusal has at least one attempt")
    if attempts > 16:  # 2**15 minutes is far beyond the cap; no need for larger powers
        return LONGEST_RETRY
    return min(FIRST_RETRY * (1 << (attempts - 1)), LONGEST_RETRY)


def _user_of(action: Action) -> UserID | None:
    return getattr(action, "user_id", None)


def _alias_of(action: Action) -> RoomAlias | None:
    if isinstance(action, CreateRoom):
        return action.room.alias
    needed = rooms_needed(action)
    return needed[0] if needed else None


def action_key(action: Action) -> str:
    """The action's natural key: what it changes, not to what (`SetName school-x-5a`)."""
    rooms = [action.room.alias] if isinstance(action, CreateRoom) else list(rooms_needed(action))
    if isinstance(action, SetJoinRule):
        rooms = rooms[:1]  # the spaces it names are part of the change, not of its key
    parts = [type(action).__name__, *rooms, _user_of(action) or ""]
    return " ".join(part for part in parts if part)[:600]


def digest(action: Action, desired: DesiredState) -> str:
    """What the desired state asks of this action; another digest is another change.

    A join carries the person's display name into the room (the member event), so the
    name is part of what a join asks for: correcting it makes the join a new change.
    """
    asked: dict[str, object] = {"action": describe(action)}
    match action:
        case CreateRoom(room=room):
            asked["room"] = {
                "name": room.name,
                "topic": room.topic,
                "members": sorted(room.members),
                "power_levels": room.power_levels.content(),
            }
        case Join(user_id=user_id):
            asked["display_name"] = desired.users.get(user_id)
    text = json.dumps(asked, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _school_of(action: Action, desired: DesiredState) -> int | None:
    alias = _alias_of(action)
    if alias is not None and alias in desired.rooms:
        return desired.rooms[alias].owner.school_id
    user = _user_of(action)
    for room in sorted(desired.rooms.values(), key=lambda r: r.alias):
        if user is not None and user in room.members and room.owner.school_id is not None:
            return room.owner.school_id
    return None


@dataclass(frozen=True)
class Postponed:
    """An action left out of this run: refused for good, and its back-off not yet over."""

    action: Action
    next_attempt_at: datetime | None  # None: waits for a room whose creation is postponed


@dataclass(frozen=True)
class Sorted:
    due: list[Action]
    postponed: list[Postponed]


def sort_plan(
    session: Session, plan: Sequence[Action], desired: DesiredState, now: datetime
) -> Sorted:
    """Split the plan into what to apply now and what waits for its back-off.

    A refusal whose change the desired state no longer asks for (someone fixed the data,
    or the action is no longer needed) is forgotten, and the action is tried at once. A
    join whose person's name changed first sets the account's name again: the homeserver
    keeps the name it was given, and puts it into every room the person joins.
    """
    records = {r.action_key: r for r in session.scalars(select(RefusedAction))}
    due: list[Action] = []
    postponed: list[Postponed] = []
    waiting_rooms: set[RoomAlias] = set()
    renamed: dict[UserID, str] = {}
    planned: set[str] = set()
    for action in plan:
        key = action_key(action)
        planned.add(key)
        record = records.get(key)
        if record is not None and record.digest == digest(action, desired):
            if as_utc(record.next_attempt_at) > now:
                postponed.append(Postponed(action, as_utc(record.next_attempt_at)))
                if isinstance(action, CreateRoom):
                    waiting_rooms.add(action.room.alias)
                continue
        elif record is not None:
            session.delete(record)  # the desired state changed: a new change, tried now
            if isinstance(action, Join) and action.user_id in desired.users:
                renamed[action.user_id] = desired.users[action.user_id]
        if waiting_rooms & set(rooms_needed(action)):
            postponed.append(Postponed(action, None))
            continue
        due.append(action)
    for key, record in records.items():
        if key not in planned:
            session.delete(record)  # done meanwhile, or no longer wanted
    already = {a.user_id for a in due if isinstance(a, CreateUser)}
    refresh: list[Action] = [
        CreateUser(user_id, name)
        for user_id, name in sorted(renamed.items())
        if user_id not in already
    ]
    session.commit()
    return Sorted([*refresh, *due], postponed)


def record_refusals(
    session: Session,
    failed: Sequence[FailedAction],
    done: Sequence[Action],
    desired: DesiredState,
    now: datetime,
) -> list[FailedAction]:
    """Record this run's permanent refusals and forget those of actions that succeeded.

    Each refusal waits `backoff(attempts)`; a refusal not recorded before (or of another
    change, or with another errcode) is reported once in the audit log. Returns the
    permanent refusals among `failed`.
    """
    refused = [f for f in failed if is_permanent(f)]
    keys = [action_key(f.action) for f in refused]
    records = {r.action_key: r for r in session.scalars(select(RefusedAction))}  # a few rows
    for action in done:
        cleared = records.pop(action_key(action), None)
        if cleared is not None:
            session.delete(cleared)
    for failure, key in zip(refused, keys, strict=True):
        wanted = digest(failure.action, desired)
        record = records.get(key)
        new = record is None or record.digest != wanted or record.errcode != failure.errcode
        if record is None:
            record = RefusedAction(action_key=key, attempts=0, first_refused_at=now)
            session.add(record)
            records[key] = record
        elif new:
            record.attempts, record.first_refused_at = 0, now
        record.attempts += 1
        record.action = describe(failure.action)
        record.digest = wanted
        record.school_id = _school_of(failure.action, desired)
        record.alias = _alias_of(failure.action)
        record.user_id = _user_of(failure.action)
        record.errcode = failure.errcode[:64]
        record.error = failure.error[:500]
        record.last_refused_at = now
        record.next_attempt_at = now + backoff(record.attempts)
        if new:
            record_audit(
                session,
                AutomaticActor.RECONCILER,
                "matrix.refused",
                key,
                school_id=record.school_id,
                errcode=record.errcode,
                error=record.error[:200],
                user_id=record.user_id,
                alias=record.alias,
            )
    session.commit()
    return refused


def next_attempt(session: Session) -> datetime | None:
    """When the earliest recorded refusal may be tried again (None: nothing refused)."""
    moment = session.scalar(
        select(RefusedAction.next_attempt_at).order_by(RefusedAction.next_attempt_at).limit(1)
    )
    return as_utc(moment) if moment is not None else None
