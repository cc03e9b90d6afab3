"""Polls in a school's rooms: who may start, see and end them, and their records.

Rows are written by the bridge (every poll event of a managed room) and by the admin UI
(the events it has just sent, so that the page shows them at once); both write each
event once by its event ID (`insert_once`), so whichever comes second changes nothing.

Who may do what (docs/polls.md):
- start a poll from Parta: in a class's channel or parents chat, its teachers (class or
  subject) and the school's administration; in the school's announcements, the
  administration;
- see a poll and its results: the school's administration, the poll's creator, and for a
  class's room the class's teachers; for a school-wide room any teacher of the school;
- end it from Parta: its creator and the school's administration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from matrix import polls as msc3381
from provisioning.db.models import ManagedRoom, Person, RoomKind, School, SchoolClass
from provisioning.db.polls import Poll, PollEnd, PollResponse
from provisioning.services.access import Access
from provisioning.services.poll_results import Results, tally

CLASS_POLL_ROOMS = (RoomKind.CLASS_CHANNEL, RoomKind.CLASS_PARENTS)
SCHOOL_POLL_ROOMS = (RoomKind.ANNOUNCEMENTS,)
LIST_LIMIT = 200  # the newest polls a list shows


# --- Records, written once per event --------------------------------------------------


def insert_once(
    session: Session, model: type[Poll | PollResponse | PollEnd], **values: Any
) -> None:
    """Insert a row unless one with its `event_id` exists, without an IntegrityError.

    An error would roll back the bridge's whole transaction (its de-duplication record
    with it), so a race between the bridge and the UI is settled by the database:
    `ON CONFLICT DO NOTHING` on SQLite and PostgreSQL alike.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model).values(**values).on_conflict_do_nothing(index_elements=["event_id"])
    session.execute(statement)


def record_start(session: Session, start: msc3381.PollStart, room: ManagedRoom) -> None:
    insert_once(
        session, Poll, event_id=start.event_id, room_id=start.room_id,
        school_id=room.school_id, class_id=room.class_id, creator=start.sender,
        question=start.question, kind=start.kind.value, max_selections=start.max_selections,
        answers=[{"id": a.id, "text": a.text} for a in start.answers],
        origin_server_ts=start.origin_server_ts,
    )  # fmt: skip


def record_response(session: Session, response: msc3381.PollResponse) -> None:
    insert_once(
        session, PollResponse, event_id=response.event_id,
        poll_event_id=response.poll_event_id, room_id=response.room_id,
        sender=response.sender, origin_server_ts=response.origin_server_ts,
        selections=list(response.selections),
    )  # fmt: skip


def record_end(session: Session, end: msc3381.PollEnd, *, sender_may_redact: bool) -> None:
    insert_once(
        session, PollEnd, event_id=end.event_id, poll_event_id=end.poll_event_id,
        room_id=end.room_id, sender=end.sender, origin_server_ts=end.origin_server_ts,
        sender_may_redact=sender_may_redact,
    )  # fmt: skip


# --- Who may do what --------------------------------------------------------------------


def may_start_in(viewer: Access, room: ManagedRoom) -> bool:
    """Whether this person may start a poll in this room from Parta."""
    if room.school_id is None or room.room_id is None:
        return False
    if room.kind in CLASS_POLL_ROOMS and room.class_id is not None:
        return viewer.may_manage_class(room.school_id, room.class_id)
    if room.kind in SCHOOL_POLL_ROOMS:
        return viewer.may_manage_school(room.school_id)
    return False


def may_view(viewer: Access, poll: Poll) -> bool:
    if poll.school_id is None:
        return viewer.region_admin
    if viewer.may_manage_school(poll.school_id) or poll.creator == viewer.user_id:
        return True
    if poll.class_id is not None:
        return poll.class_id in viewer.teaches_classes
    return poll.school_id in viewer.teacher_of_schools


def may_end(viewer: Access, poll: Poll) -> bool:
    if poll.school_id is None:
        return viewer.region_admin
    return poll.creator == viewer.user_id or viewer.may_manage_school(poll.school_id)


def shows_counts(poll: Poll, results: Results) -> bool:
    """Undisclosed polls hide their counts until the end, from everyone (the creator and
    the administration too), as Element hides them from the room."""
    return poll.disclosed or results.ended


def shows_who(poll: Poll, results: Results) -> bool:
    """Who chose what: for named (disclosed) polls only, as the MSC suggests."""
    return poll.disclosed


# --- Reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollRoom:
    """A room a person may start a poll in."""

    room: ManagedRoom
    school_class: SchoolClass | None


@dataclass(frozen=True)
class PollRow:
    poll: Poll
    room: ManagedRoom | None
    school_class: SchoolClass | None
    results: Results


def rooms_to_poll(session: Session, viewer: Access, school: School) -> list[PollRoom]:
    """The rooms of the school this person may start a poll in, classes in order."""
    rooms = session.scalars(
        select(ManagedRoom).where(
            ManagedRoom.school_id == school.id,
            ManagedRoom.kind.in_(CLASS_POLL_ROOMS + SCHOOL_POLL_ROOMS),
            ManagedRoom.room_id.is_not(None),
        )
    ).all()
    classes = _classes(session, {r.class_id for r in rooms if r.class_id is not None})
    found = [
        PollRoom(room, classes.get(room.class_id) if room.class_id is not None else None)
        for room in rooms
        if may_start_in(viewer, room)
        and (
            room.class_id is None
            or (room.class_id in classes and classes[room.class_id].archived_at is None)
        )
    ]
    return sorted(
        found, key=lambda r: (r.school_class is not None, _class_key(r.school_class), r.room.kind)
    )


def room_to_poll(session: Session, viewer: Access, school: School, alias: str) -> PollRoom | None:
    return next((r for r in rooms_to_poll(session, viewer, school) if r.room.alias == alias), None)


def poll_by_event_id(session: Session, event_id: str) -> Poll | None:
    return session.scalar(select(Poll).where(Poll.event_id == event_id))


def results_of(session: Session, poll: Poll) -> Results:
    responses = session.scalars(
        select(PollResponse).where(PollResponse.poll_event_id == poll.event_id)
    ).all()
    ends = session.scalars(select(PollEnd).where(PollEnd.poll_event_id == poll.event_id)).all()
    return tally(poll, responses, ends)


def polls_of_school(
    session: Session, viewer: Access, school: School, *, class_id: int | None = None
) -> list[PollRow]:
    """The school's polls this person may see (of one class, if given), newest first."""
    query = select(Poll).where(Poll.school_id == school.id)
    if class_id is not None:
        query = query.where(Poll.class_id == class_id)
    polls = [
        poll
        for poll in session.scalars(query.order_by(Poll.origin_server_ts.desc()).limit(LIST_LIMIT))
        if may_view(viewer, poll)
    ]
    rooms = {
        room.room_id: room
        for room in session.scalars(
            select(ManagedRoom).where(ManagedRoom.room_id.in_({p.room_id for p in polls}))
        )
    }
    classes = _classes(session, {p.class_id for p in polls if p.class_id is not None})
    return [
        PollRow(
            poll,
            rooms.get(poll.room_id),
            classes.get(poll.class_id) if poll.class_id is not None else None,
            results_of(session, poll),
        )
        for poll in polls
    ]


def poll_row(session: Session, poll: Poll) -> PollRow:
    room = session.scalar(select(ManagedRoom).where(ManagedRoom.room_id == poll.room_id))
    school_class = session.get(SchoolClass, poll.class_id) if poll.class_id is not None else None
    return PollRow(poll, room, school_class, results_of(session, poll))


def names_of(session: Session, user_ids: Iterable[str]) -> dict[str, str]:
    """People's names in Parta by Matrix ID (someone unknown to Parta has none)."""
    wanted = set(user_ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(Person.matrix_user_id, Person.display_name).where(Person.matrix_user_id.in_(wanted))
    ).all()
    return {str(user_id): name for user_id, name in rows}


def csv_rows(
    poll: Poll, results: Results, names: Mapping[str, str], labels: Mapping[str, str]
) -> list[list[object]]:
    """The poll as a table: the counts per answer, then (named polls) who chose what.

    `labels` names the columns in the reader's language: answer, votes, person,
    matrix_id, choice.
    """
    rows: list[list[object]] = [[labels["question"], poll.question], []]
    rows.append([labels["answer"], labels["votes"]])
    texts = poll.answer_texts
    rows.extend([texts[answer_id], results.counts[answer_id]] for answer_id in poll.answer_ids)
    if shows_who(poll, results):
        rows += [[], [labels["person"], labels["matrix_id"], labels["choice"]]]
        for user_id, choice in sorted(results.choices.items(), key=lambda i: names.get(i[0], i[0])):
            chosen = "; ".join(texts[answer_id] for answer_id in choice)
            rows.append([names.get(user_id, ""), user_id, chosen])
    return rows


def _classes(session: Session, class_ids: set[int]) -> dict[int, SchoolClass]:
    if not class_ids:
        return {}
    return {
        c.id: c for c in session.scalars(select(SchoolClass).where(SchoolClass.id.in_(class_ids)))
    }


def _class_key(school_class: SchoolClass | None) -> tuple[int, str]:
    return (0, "") if school_class is None else (school_class.grade, school_class.letter)
