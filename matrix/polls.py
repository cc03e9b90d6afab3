"""Matrix polls (MSC3381) in the unstable shape Element Web and Element X send and render.

The MSC's stable `m.poll.*` types are not what clients use yet: they send
`org.matrix.msc3381.poll.start` / `.response` / `.end`, with text as single strings under
`org.matrix.msc1767.text` (the MSC's "Unstable prefix" section). This module builds the
start and end events Parta sends and reads the three kinds of event back from a
transaction, bounded and typed: nothing here trusts a client's content.

How the results are counted from these values is provisioning's business
(`provisioning.services.poll_results`); here is only the protocol.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

START = "org.matrix.msc3381.poll.start"
RESPONSE = "org.matrix.msc3381.poll.response"
END = "org.matrix.msc3381.poll.end"
TEXT = "org.matrix.msc1767.text"  # MSC1767's unstable text block: one string
REFERENCE = "m.reference"

MAX_ANSWERS = 20  # MSC3381: "the array is truncated to 20 maximum options"
MIN_ANSWERS = 2
MAX_QUESTION_CHARS = 500  # what Parta keeps of a question from any client
MAX_ANSWER_CHARS = 200
MAX_ANSWER_ID_CHARS = 100
MAX_SELECTIONS_SENT = 100  # a response listing more is cut here before anything else


class PollKind(enum.StrEnum):
    """MSC3381's kinds: disclosed shows results while the poll is open; undisclosed only
    after its end. Neither makes a vote secret: responses are ordinary room events."""

    DISCLOSED = "org.matrix.msc3381.poll.disclosed"
    UNDISCLOSED = "org.matrix.msc3381.poll.undisclosed"

    @classmethod
    def read(cls, value: object) -> PollKind:
        """A kind a client sent; anything unknown is undisclosed, as the MSC says."""
        return cls.DISCLOSED if value == cls.DISCLOSED.value else cls.UNDISCLOSED


@dataclass(frozen=True)
class Answer:
    id: str
    text: str


@dataclass(frozen=True)
class PollStart:
    event_id: str
    room_id: str
    sender: str
    origin_server_ts: int
    question: str
    kind: PollKind
    max_selections: int
    answers: tuple[Answer, ...]


@dataclass(frozen=True)
class PollResponse:
    event_id: str
    room_id: str
    sender: str
    origin_server_ts: int
    poll_event_id: str
    selections: tuple[str, ...]  # as sent (bounded); validity depends on the poll


@dataclass(frozen=True)
class PollEnd:
    event_id: str
    room_id: str
    sender: str
    origin_server_ts: int
    poll_event_id: str


PollEvent = PollStart | PollResponse | PollEnd


# --- Building what Parta sends ----------------------------------------------------------


def answer_ids(count: int) -> list[str]:
    """Stable, short answer IDs (`a1`, `a2`…): opaque to clients, readable in the CSV."""
    return [f"a{number}" for number in range(1, count + 1)]


def start_content(
    question: str,
    answers: Sequence[str],
    *,
    kind: PollKind,
    max_selections: int,
    fallback: str,
) -> dict[str, Any]:
    """The content of a poll start event; `fallback` is what a client without polls shows.

    `body` repeats the fallback for the clients that show an unknown event with a body as
    text; clients with polls read the `START` block only.
    """
    return {
        START: {
            "question": {TEXT: question},
            "kind": kind.value,
            "max_selections": max_selections,
            "answers": [
                {"id": answer_id, TEXT: text}
                for answer_id, text in zip(answer_ids(len(answers)), answers, strict=True)
            ],
        },
        TEXT: fallback,
        "body": fallback,
    }


def end_content(poll_event_id: str, *, fallback: str) -> dict[str, Any]:
    """The content of a poll end event (MSC3381 requires the empty `END` block)."""
    return {
        "m.relates_to": {"rel_type": REFERENCE, "event_id": poll_event_id},
        END: {},
        TEXT: fallback,
        "body": fallback,
    }


def response_content(poll_event_id: str, selections: Sequence[str]) -> dict[str, Any]:
    """A vote, as Element sends it (Parta itself never votes; tests and tools do)."""
    return {
        "m.relates_to": {"rel_type": REFERENCE, "event_id": poll_event_id},
        RESPONSE: {"answers": list(selections)},
    }


# --- Reading what clients send ----------------------------------------------------------


def _text(value: object, limit: int) -> str | None:
    """An MSC1767 text: the unstable single string, or the stable list's first body."""
    if isinstance(value, dict):
        value = value.get(TEXT, value.get("m.text", value.get("body")))
    if isinstance(value, list) and value and isinstance(value[0], dict):
        value = value[0].get("body")
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:limit]


def _reference(content: dict[str, Any]) -> str | None:
    relation = content.get("m.relates_to")
    if not isinstance(relation, dict) or relation.get("rel_type") != REFERENCE:
        return None
    target = relation.get("event_id")
    return target if isinstance(target, str) and target.startswith("$") else None


def _answers(value: object) -> tuple[Answer, ...]:
    if not isinstance(value, list):
        return ()
    answers: list[Answer] = []
    seen: set[str] = set()
    for entry in value[:MAX_ANSWERS]:
        if not isinstance(entry, dict):
            continue
        answer_id, text = entry.get("id"), _text(entry, MAX_ANSWER_CHARS)
        if not isinstance(answer_id, str) or not answer_id or len(answer_id) > MAX_ANSWER_ID_CHARS:
            continue
        if text is None or answer_id in seen:
            continue
        seen.add(answer_id)
        answers.append(Answer(answer_id, text))
    return tuple(answers)


def _max_selections(value: object, answers: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return 1
    return min(value, max(answers, 1))


def parse_poll_event(event: object) -> PollEvent | None:
    """A poll start, response or end from a transaction's raw event; None for anything
    else, and for a malformed one (a start without a question or two answers, a response
    or end without its reference to the poll)."""
    if not isinstance(event, dict):
        return None
    kind = event.get("type")
    if kind not in (START, RESPONSE, END):
        return None
    fields = (event.get("event_id"), event.get("room_id"), event.get("sender"))
    content, ts = event.get("content"), event.get("origin_server_ts")
    if not all(isinstance(f, str) and f for f in fields) or not isinstance(content, dict):
        return None
    event_id, room_id, sender = (str(f) for f in fields)
    when = ts if isinstance(ts, int) and not isinstance(ts, bool) else 0
    if kind == START:
        block = content.get(START)
        if not isinstance(block, dict):
            return None
        question = _text(block.get("question"), MAX_QUESTION_CHARS)
        answers = _answers(block.get("answers"))
        if question is None or len(answers) < MIN_ANSWERS:
            return None
        return PollStart(
            event_id, room_id, sender, when, question, PollKind.read(block.get("kind")),
            _max_selections(block.get("max_selections"), len(answers)), answers,
        )  # fmt: skip
    poll_event_id = _reference(content)
    if poll_event_id is None:
        return None
    if kind == END:
        return PollEnd(event_id, room_id, sender, when, poll_event_id)
    block = content.get(RESPONSE)
    sent = block.get("answers") if isinstance(block, dict) else None
    if not isinstance(sent, list):
        return None
    selections = tuple(
        s[:MAX_ANSWER_ID_CHARS] if isinstance(s, str) else "" for s in sent[:MAX_SELECTIONS_SENT]
    )
    return PollResponse(event_id, room_id, sender, when, poll_event_id, selections)
