"""Starting and ending a poll from the admin UI: the events, sent as the person.

A poll started in Parta is sent from the teacher's own account, not by the bot: it is
then theirs in every client (Element names them, and its own "End poll" button works
for them, since MSC3381 lets the creator end a poll), and Synapse and the school policy
module judge it by their own power in the room. The appservice cannot assert their
identity (`?user_id=` covers only its `@parta…` namespace), so the bot, a server admin,
takes a short-lived token of theirs through Synapse's admin "login as user" and logs it
out at once (`matrix.accounts.acting_as`), as the documents service acts for people.

An end from Parta is sent by the creator the same way; by the bot when someone of the
school's administration ends a poll someone else started (the bot created every managed
room, so it may redact there: MSC3381's rule for who may end a poll).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from sqlalchemy.orm import Session

from matrix import polls as msc3381
from matrix import rooms
from matrix.accounts import acting_as
from matrix.client import MatrixClient
from matrix.rooms import Requester
from provisioning.audit import record_audit
from provisioning.db.polls import Poll
from provisioning.services import polls
from provisioning.services.access import Access
from provisioning.services.poll_results import Results

MAX_QUESTION = 300
MAX_ANSWER = 200

Question = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION)
]
AnswerText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ANSWER)
]


class PollDraft(BaseModel):
    """What the form asks: checked here, at the edge, before anything is sent."""

    model_config = ConfigDict(frozen=True)

    question: Question
    answers: Annotated[
        list[AnswerText], Field(min_length=msc3381.MIN_ANSWERS, max_length=msc3381.MAX_ANSWERS)
    ]
    disclosed: bool = True
    max_selections: Annotated[int, Field(ge=1, le=msc3381.MAX_ANSWERS)] = 1

    @field_validator("answers", mode="before")
    @classmethod
    def _one_per_line(cls, value: object) -> object:
        """The form's textarea: one answer a line, blank lines skipped."""
        if isinstance(value, str):
            return [line for line in (part.strip() for part in value.splitlines()) if line]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PollDraft:
        if len({answer.casefold() for answer in self.answers}) != len(self.answers):
            raise ValueError("the same answer is given twice")
        if self.max_selections > len(self.answers):
            raise ValueError("more choices allowed than there are answers")
        return self

    @property
    def kind(self) -> msc3381.PollKind:
        return msc3381.PollKind.DISCLOSED if self.disclosed else msc3381.PollKind.UNDISCLOSED


def start_fallback(draft: PollDraft) -> str:
    """What a client without polls shows: the question, numbered answers, where to answer."""
    lines = [f"Опрос: {draft.question}"]
    lines += [f"{number}. {answer}" for number, answer in enumerate(draft.answers, 1)]
    if draft.max_selections > 1:
        lines.append(f"Можно выбрать до {draft.max_selections} ответов.")
    if not draft.disclosed:
        lines.append("Итоги будут видны, когда опрос завершится.")
    lines.append("Ответить можно в Element (в браузере или в приложении Element X).")
    lines.append("Poll: answer it in Element.")
    return "\n".join(lines)


def end_fallback(poll: Poll, results: Results) -> str:
    """The end's text: the question and the final counts (shown now whatever the kind)."""
    texts = poll.answer_texts
    counts = ", ".join(f"{texts[a]} — {results.counts[a]}" for a in poll.answer_ids)
    return f"Опрос «{poll.question}» завершён. Итоги: {counts}.\nThe poll has ended."


async def _sent_event(
    client: Requester, room_id: str, event_type: str, content: Mapping[str, object]
) -> msc3381.PollEvent:
    """Send one poll event and read it back: the homeserver's timestamp is what counts."""
    event_id = await rooms.send_message(client, room_id, content, event_type=event_type)
    parsed = msc3381.parse_poll_event(await rooms.read_event(client, room_id, event_id))
    if parsed is None:  # the homeserver stored something else: nothing Parta can count
        raise ValueError(f"the homeserver gave back no poll event for {event_id}")
    return parsed


async def start_poll(
    matrix: MatrixClient, session: Session, viewer: Access, target: polls.PollRoom, draft: PollDraft
) -> Poll:
    """Send the poll into the room as the viewer, record it and the audit event.

    Raises:
        MatrixError: the homeserver refused (the viewer is not in the room yet, say).
    """
    room = target.room
    assert room.room_id is not None  # rooms_to_poll lists only created rooms
    content = msc3381.start_content(
        draft.question, draft.answers, kind=draft.kind,
        max_selections=draft.max_selections, fallback=start_fallback(draft),
    )  # fmt: skip
    async with acting_as(matrix, viewer.user_id) as person:
        start = await _sent_event(person, room.room_id, msc3381.START, content)
    assert isinstance(start, msc3381.PollStart)
    polls.record_start(session, start, room)
    record_audit(
        session, viewer.user_id, "poll.created", start.event_id, school_id=room.school_id,
        room=room.alias, question=draft.question,
    )  # fmt: skip
    session.commit()
    poll = polls.poll_by_event_id(session, start.event_id)
    assert poll is not None  # recorded just now, or by the bridge a moment before
    return poll


async def end_poll(
    matrix: MatrixClient, session: Session, viewer: Access, poll: Poll, *, bot_user_id: str
) -> None:
    """End the poll: as its creator if they end it, else by the bot (a room creator).

    Raises:
        MatrixError: the homeserver refused.
    """
    content = msc3381.end_content(
        poll.event_id, fallback=end_fallback(poll, polls.results_of(session, poll))
    )
    if viewer.user_id == poll.creator:
        async with acting_as(matrix, viewer.user_id) as person:
            end = await _sent_event(person, poll.room_id, msc3381.END, content)
    else:
        end = await _sent_event(matrix, poll.room_id, msc3381.END, content)
    assert isinstance(end, msc3381.PollEnd)
    polls.record_end(session, end, sender_may_redact=end.sender == bot_user_id)
    record_audit(
        session,
        viewer.user_id,
        "poll.ended",
        poll.event_id,
        school_id=poll.school_id,
        question=poll.question,
    )
    session.commit()
