"""The bridge keeps the poll events of managed rooms once, with the rest of a transaction.

On SQLite, then on PostgreSQL (`migrated_session`): `insert_once` is written per dialect.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matrix import polls as msc3381
from provisioning.appservice import polls as bridge_polls
from provisioning.appservice.inbox import fingerprint_of, record_transaction
from provisioning.db.models import ManagedRoom, Region, RoomKind, School
from provisioning.db.polls import Poll, PollEnd, PollResponse
from provisioning.services import polls
from provisioning.services import schools as svc

BOT = "@parta:region.test"
TEACHER, ANNA, BORIS = "@teacher:region.test", "@anna:region.test", "@boris:region.test"
PARENTS, CLASS_SPACE, STRANGER = "!parents", "!space", "!not-managed"


@pytest.fixture
def school(migrated_session: Session) -> School:
    region = Region(server_name="region.test", name="Region")
    migrated_session.add(region)
    migrated_session.flush()
    school = svc.create_school(migrated_session, region, "Школа", slug="s", academic_year=2026)
    school_class = svc.add_class(migrated_session, school, 5, "А")
    for alias, kind, room_id in (
        ("s-2032a-parents", RoomKind.CLASS_PARENTS, PARENTS),
        ("s-2032a", RoomKind.CLASS_SPACE, CLASS_SPACE),
    ):
        migrated_session.add(
            ManagedRoom(alias=alias, kind=kind, school_id=school.id, class_id=school_class.id,
                        room_id=room_id)
        )  # fmt: skip
    migrated_session.commit()
    return school


def raw(kind: str, content: dict[str, Any], event_id: str, sender: str, ts: int,
        room_id: str = PARENTS) -> dict[str, Any]:  # fmt: skip
    return {"type": kind, "event_id": event_id, "room_id": room_id, "sender": sender,
            "origin_server_ts": ts, "content": content}  # fmt: skip


def start(event_id: str = "$poll", room_id: str = PARENTS) -> dict[str, Any]:
    content = msc3381.start_content(
        "Когда собрание?", ["Вторник", "Среда"], kind=msc3381.PollKind.DISCLOSED,
        max_selections=1, fallback="Опрос",
    )  # fmt: skip
    return raw(msc3381.START, content, event_id, TEACHER, 100, room_id)


def vote(event_id: str, sender: str, ts: int, *answers: str, poll: str = "$poll") -> dict[str, Any]:
    return raw(msc3381.RESPONSE, msc3381.response_content(poll, answers), event_id, sender, ts)


def end(event_id: str, sender: str, ts: int) -> dict[str, Any]:
    return raw(msc3381.END, msc3381.end_content("$poll", fallback="Конец"), event_id, sender, ts)


def deliver(
    session: Session, txn_id: str, events: list[dict[str, Any]], redactors: Collection[str] = ()
) -> bool:
    poll_events = bridge_polls.translate(events)
    judged = {(e.room_id, e.sender): e.sender in redactors for e in poll_events
              if isinstance(e, msc3381.PollEnd)}  # fmt: skip
    recorded = record_transaction(
        session, txn_id, [], bot_user_id=BOT, fingerprint=fingerprint_of(events),
        poll_events=poll_events, ends_by_redactors=judged,
    )  # fmt: skip
    return recorded.processed


def count(session: Session, model: type[Poll | PollResponse | PollEnd]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_poll_is_recorded_once_and_counted(migrated_session: Session, school: School) -> None:
    session = migrated_session
    events = [start(), vote("$v1", ANNA, 110, "a1"), vote("$v2", BORIS, 120, "a2"),
              vote("$v3", ANNA, 130, "a2")]  # fmt: skip
    assert deliver(session, "t1", events)
    assert not deliver(session, "t1", events)  # Synapse delivered it again
    # The same events again in another transaction (after a restart): still once each.
    assert deliver(session, "t2", [events[0], events[1]])
    assert (count(session, Poll), count(session, PollResponse)) == (1, 3)
    poll = polls.poll_by_event_id(session, "$poll")
    assert poll is not None
    assert (poll.school_id, poll.creator, poll.question) == (school.id, TEACHER, "Когда собрание?")
    assert poll.answer_texts == {"a1": "Вторник", "a2": "Среда"}
    results = polls.results_of(session, poll)
    assert dict(results.counts) == {"a1": 0, "a2": 2}


def test_ends_count_from_the_creator_or_a_moderator_only(
    migrated_session: Session, school: School
) -> None:
    session = migrated_session
    deliver(session, "t1", [start(), vote("$v1", ANNA, 110, "a1")])
    deliver(session, "t2", [end("$e1", BORIS, 200)])  # Boris may not redact: ignored
    poll = polls.poll_by_event_id(session, "$poll")
    assert poll is not None and not polls.results_of(session, poll).ended
    deliver(session, "t3", [end("$e2", ANNA, 300)], redactors={ANNA})  # a moderator
    deliver(session, "t4", [vote("$v2", BORIS, 310, "a2")])  # after the end
    results = polls.results_of(session, poll)
    assert results.ended_by == ANNA and dict(results.counts) == {"a1": 1, "a2": 0}
    assert count(session, PollEnd) == 2  # both kept: the rule is applied when counting


def test_what_is_not_kept(migrated_session: Session, school: School) -> None:
    session = migrated_session
    deliver(session, "t1", [
        start("$elsewhere", STRANGER),  # not a managed room
        start("$in-space", CLASS_SPACE),  # a space holds no conversation
        vote("$v1", ANNA, 110, "a1", poll="$unknown"),  # a poll Parta never saw
        raw("m.room.message", {"body": "hi"}, "$m", ANNA, 1),
    ])  # fmt: skip
    assert (count(session, Poll), count(session, PollResponse)) == (0, 0)


def test_a_start_the_ui_recorded_first_does_not_lose_the_transaction(
    migrated_session: Session, school: School
) -> None:
    """The admin UI records the poll it sent; the bridge's transaction holding the same
    start, and a knock beside it, must still commit (no IntegrityError)."""
    session = migrated_session
    parsed = bridge_polls.translate([start()])[0]
    assert isinstance(parsed, msc3381.PollStart)
    room = session.scalar(select(ManagedRoom).where(ManagedRoom.room_id == PARENTS))
    assert room is not None
    polls.record_start(session, parsed, room)
    session.commit()
    assert deliver(session, "t1", [start(), vote("$v1", ANNA, 110, "a2")])
    assert (count(session, Poll), count(session, PollResponse)) == (1, 1)
