"""Appservice plumbing: the state events of a transaction Synapse pushes, parsed and bounded.

Synapse sends an appservice every event of the rooms in its namespace; what Parta acts on
is the state events (memberships, knocks, power levels, widgets). This module turns the
transaction's JSON into typed values and drops anything malformed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StateEvent:
    event_id: str
    room_id: str
    event_type: str
    state_key: str
    sender: str
    origin_server_ts: int
    content: dict[str, Any]
    prev_membership: str | None = None  # from unsigned.prev_content, for memberships

    @property
    def changes_room_unexpectedly(self) -> bool:
        """Made by a person, not by accepting an invitation (the invite itself was judged)."""
        accepted_invite = (
            self.event_type == "m.room.member"
            and self.content.get("membership") == "join"
            and self.prev_membership == "invite"
        )
        return not accepted_invite


def select_state_events(events: Iterable[Any]) -> list[StateEvent]:
    """Keep the well-formed state events of a transaction; drop messages and junk.

    Messages are dropped on purpose: what people write is none of provisioning's business.
    """
    selected: list[StateEvent] = []
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("state_key"), str):
            continue
        fields = (event.get("event_id"), event.get("room_id"), event.get("type"))
        if not all(isinstance(f, str) and f for f in fields):
            continue
        content = event.get("content")
        ts = event.get("origin_server_ts")
        unsigned = event.get("unsigned")
        prev = unsigned.get("prev_content") if isinstance(unsigned, dict) else None
        prev_membership = prev.get("membership") if isinstance(prev, dict) else None
        selected.append(
            StateEvent(
                event_id=event["event_id"],
                room_id=event["room_id"],
                event_type=event["type"],
                state_key=event["state_key"],
                sender=str(event.get("sender", "")),
                origin_server_ts=ts if isinstance(ts, int) else 0,
                content=content if isinstance(content, dict) else {},
                prev_membership=prev_membership if isinstance(prev_membership, str) else None,
            )
        )
    return selected
