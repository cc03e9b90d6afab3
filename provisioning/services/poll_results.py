"""A poll's results from the events the bridge kept: MSC3381's counting rules, pure.

The rules, as the MSC states them and Element applies them (so that this page and a
member's Element show the same numbers):

- The poll ends at the first valid end event by timestamp; an end is valid from the
  poll's creator, or from someone who may redact others' events in the room (the bridge
  read their power when the end arrived). Any other end is ignored.
- Each person's latest response counts (by `origin_server_ts`; equal timestamps by the
  order the bridge received them), among those sent on or before the end.
- A response is cut to the poll's `max_selections`, then spoiled (counts as no choice,
  and still replaces an earlier vote) if it names an answer the poll does not have.
  Repeated answers count once. An empty response withdraws the person's vote.
- Only events of the poll's own room count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol


class StartFacts(Protocol):
    room_id: str
    creator: str
    max_selections: int

    @property
    def answer_ids(self) -> Sequence[str]: ...


class ResponseFacts(Protocol):
    id: int
    room_id: str
    sender: str
    origin_server_ts: int
    selections: list[str]


class EndFacts(Protocol):
    id: int
    room_id: str
    sender: str
    origin_server_ts: int
    sender_may_redact: bool


@dataclass(frozen=True)
class Results:
    """What a poll's events add up to."""

    counts: Mapping[str, int]  # answer ID → people who chose it (every answer listed)
    choices: Mapping[str, tuple[str, ...]]  # person → their counted answer IDs (non-empty)
    ended_ts: int | None = None
    ended_by: str | None = None

    @property
    def ended(self) -> bool:
        return self.ended_ts is not None

    @property
    def voters(self) -> int:
        return len(self.choices)


def effective_end(poll: StartFacts, ends: Iterable[EndFacts]) -> EndFacts | None:
    """The first valid end by timestamp (then by arrival), or None while the poll is open."""
    valid = [
        end
        for end in ends
        if end.room_id == poll.room_id and (end.sender == poll.creator or end.sender_may_redact)
    ]
    return min(valid, key=lambda end: (end.origin_server_ts, end.id), default=None)


def counted_choice(poll: StartFacts, selections: Sequence[str]) -> tuple[str, ...]:
    """One response's answers as they count: cut to `max_selections`, spoiled (nothing)
    if any is unknown, each answer once."""
    kept = list(selections[: max(poll.max_selections, 1)])
    known = set(poll.answer_ids)
    if any(selection not in known for selection in kept):
        return ()
    return tuple(dict.fromkeys(kept))


def tally(
    poll: StartFacts, responses: Iterable[ResponseFacts], ends: Iterable[EndFacts]
) -> Results:
    """The poll's results from all the responses and ends recorded for it."""
    end = effective_end(poll, ends)
    latest: dict[str, ResponseFacts] = {}
    for response in responses:
        if response.room_id != poll.room_id:
            continue
        if end is not None and response.origin_server_ts > end.origin_server_ts:
            continue  # sent after the poll ended
        current = latest.get(response.sender)
        order = (response.origin_server_ts, response.id)
        if current is None or order > (current.origin_server_ts, current.id):
            latest[response.sender] = response
    counts = dict.fromkeys(poll.answer_ids, 0)
    choices: dict[str, tuple[str, ...]] = {}
    for sender, response in sorted(latest.items()):
        choice = counted_choice(poll, response.selections)
        if not choice:
            continue
        choices[sender] = choice
        for answer_id in choice:
            counts[answer_id] += 1
    return Results(
        counts=MappingProxyType(counts),
        choices=MappingProxyType(choices),
        ended_ts=None if end is None else end.origin_server_ts,
        ended_by=None if end is None else end.sender,
    )
