"""Knocks on a class's space, and what teachers do with them in Matrix clients.

`translate(events)` is pure: it reads membership events and says what they mean for join
requests. `record(session, commands)` applies that to the database in the transaction
that stores the appservice transaction, so a redelivered transaction changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from matrix.appservice import StateEvent
from provisioning.db.models import ManagedRoom, RoomKind, SchoolClass
from provisioning.services import requests
from provisioning.services.schools import DomainError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Knocked:
    room_id: str
    user_id: str
    display_name: str
    reason: str | None


@dataclass(frozen=True)
class KnockAnswered:
    """Someone other than the bot let the knocker in (invite) or turned them away (leave)."""

    room_id: str
    user_id: str
    by: str
    accepted: bool


KnockCommand = Knocked | KnockAnswered


def translate(events: Iterable[StateEvent], *, bot_user_id: str) -> list[KnockCommand]:
    commands: list[KnockCommand] = []
    for event in events:
        if event.event_type != "m.room.member" or not event.state_key.startswith("@"):
            continue
        membership = event.content.get("membership")
        if membership == "knock" and event.sender == event.state_key:
            name = event.content.get("displayname")
            reason = event.content.get("reason")
            commands.append(
                Knocked(
                    event.room_id,
                    event.state_key,
                    name if isinstance(name, str) and name else event.state_key,
                    reason if isinstance(reason, str) else None,
                )
            )
        elif event.prev_membership == "knock" and event.sender != bot_user_id:
            # The bot's own invite follows a decision already taken in Parta.
            if membership in ("invite", "join"):
                commands.append(KnockAnswered(event.room_id, event.state_key, event.sender, True))
            elif membership in ("leave", "ban"):
                commands.append(KnockAnswered(event.room_id, event.state_key, event.sender, False))
    return commands


def record(session: Session, commands: list[KnockCommand]) -> bool:
    """Apply the commands; True when someone's place changed (the reconciler should run)."""
    if not commands:
        return False
    class_of_room = dict(
        session.execute(
            select(ManagedRoom.room_id, SchoolClass)
            .join(SchoolClass, SchoolClass.id == ManagedRoom.class_id)
            .where(
                ManagedRoom.kind == RoomKind.CLASS_SPACE,
                ManagedRoom.room_id.in_({c.room_id for c in commands}),
            )
        ).all()
    )
    placed = False
    for command in commands:
        school_class = class_of_room.get(command.room_id)
        if school_class is None:
            continue  # not a class: knocks elsewhere are none of Parta's business
        if isinstance(command, Knocked):
            requests.record_knock(
                session, school_class, command.user_id, command.display_name, command.reason
            )
            continue
        request = requests.pending_join_request(session, school_class.id, command.user_id)
        if request is None:
            continue
        try:
            if command.accepted:
                requests.accept_join_request(session, request, actor=command.by, via="matrix")
                placed = True
            else:
                requests.decline_join_request(session, request, actor=command.by, via="matrix")
        except DomainError as exc:
            # Someone with no place in this class (accept_join_request admits nobody as a
            # pupil who is not one): the request stays, saying who they are, for the class.
            log.warning(
                "could not accept a knock answered in Matrix",
                extra={"user_id": command.user_id, "room_id": command.room_id, "reason": str(exc)},
            )
    return placed
