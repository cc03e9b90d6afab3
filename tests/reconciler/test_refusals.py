"""Refusals for good: the back-off schedule, what counts as a new change, and the plan's split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.models import AuditEvent, RefusedAction, Region
from provisioning.reconciler.actions import CreateRoom, CreateUser, Join, SetName
from provisioning.reconciler.apply import FailedAction
from provisioning.reconciler.refusals import (
    action_key,
    backoff,
    digest,
    is_permanent,
    record_refusals,
    sort_plan,
)
from provisioning.reconciler.state import (
    DesiredRoom,
    DesiredState,
    JoinRule,
    PowerLevels,
    RoomAlias,
    UserID,
)
from provisioning.services import schools as svc
from provisioning.services.matrix_refusals import refusals_of_school

BOT = UserID("@parta:hs")
PUPIL = UserID("@pupil:hs")
CHAT = RoomAlias("school-s-5a-chat")
NEW_ROOM = RoomAlias("school-s-5b-chat")
NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


@pytest.fixture
def school_id(migrated_session: Session) -> int:
    region = Region(server_name="hs", name="Регион")
    migrated_session.add(region)
    migrated_session.flush()
    school = svc.create_school(migrated_session, region, "Школа", academic_year=2026)
    migrated_session.commit()
    return school.id


def room(alias: RoomAlias, school_id: int | None = None) -> DesiredRoom:
    return DesiredRoom(
        alias=alias,
        is_space=False,
        name=alias,
        topic="",
        join_rule=JoinRule("invite"),
        power_levels=PowerLevels(users=((BOT, 100),), events_default=0),
        members=frozenset({BOT, PUPIL}),
        school_id=school_id,
    )


def desired(name: str = "Иван Петров", school_id: int | None = None) -> DesiredState:
    rooms = {CHAT: room(CHAT, school_id), NEW_ROOM: room(NEW_ROOM, school_id)}
    return DesiredState(BOT, {PUPIL: name}, rooms)


def too_large(action: Join | CreateRoom | SetName) -> FailedAction:
    return FailedAction(action, "M_TOO_LARGE: 413 M_TOO_LARGE: event too large", "M_TOO_LARGE")


def test_the_back_off_starts_at_a_minute_doubles_and_stops_at_six_hours() -> None:
    minutes = [backoff(n) / timedelta(minutes=1) for n in range(1, 12)]
    assert minutes == [1, 2, 4, 8, 16, 32, 64, 128, 256, 360, 360]
    assert backoff(1_000) == timedelta(hours=6)
    with pytest.raises(ValueError):
        backoff(0)


@pytest.mark.parametrize(
    ("errcode", "permanent"),
    [
        ("M_TOO_LARGE", True),
        ("M_BAD_JSON", True),
        ("M_INVALID_PARAM", True),
        ("M_FORBIDDEN", True),
        ("M_LIMIT_EXCEEDED", False),
        ("M_UNKNOWN", False),
        ("PARTA_HOMESERVER_UNAVAILABLE", False),
    ],
)
def test_only_refusals_that_would_repeat_are_permanent(errcode: str, permanent: bool) -> None:
    assert is_permanent(FailedAction(Join(CHAT, PUPIL), errcode, errcode)) is permanent


def test_a_join_is_a_new_change_when_the_persons_name_changes() -> None:
    join = Join(CHAT, PUPIL)
    assert action_key(join) == f"Join {CHAT} {PUPIL}"
    assert digest(join, desired()) == digest(join, desired())
    assert digest(join, desired()) != digest(join, desired("Иван Петрович Петров"))
    assert action_key(SetName(CHAT, "a")) == action_key(SetName(CHAT, "b"))
    assert digest(SetName(CHAT, "a"), desired()) != digest(SetName(CHAT, "b"), desired())


def test_a_refusal_waits_its_back_off_and_is_reported_once(
    migrated_session: Session, school_id: int
) -> None:
    session = migrated_session
    join = Join(CHAT, PUPIL)
    plan = [join]
    wanted = desired(school_id=school_id)
    refused = record_refusals(session, [too_large(join)], [], wanted, NOW)
    assert [f.action for f in refused] == plan
    record = session.scalars(select(RefusedAction)).one()
    assert (record.attempts, record.school_id, record.user_id) == (1, school_id, PUPIL)

    waiting = sort_plan(session, plan, wanted, NOW + timedelta(seconds=59))
    assert waiting.due == [] and [p.action for p in waiting.postponed] == plan
    due = sort_plan(session, plan, wanted, NOW + timedelta(seconds=61))
    assert due.due == plan

    record_refusals(session, [too_large(join)], [], wanted, NOW + timedelta(seconds=61))
    session.refresh(record)
    assert record.attempts == 2
    assert record.next_attempt_at.replace(tzinfo=UTC) == NOW + timedelta(seconds=61 + 120)
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "matrix.refused"))
    assert [(e.subject, e.school_id) for e in audit] == [(f"Join {CHAT} {PUPIL}", school_id)]


def test_a_corrected_name_is_tried_at_once_after_the_account_is_renamed(
    migrated_session: Session,
) -> None:
    session = migrated_session
    join = Join(CHAT, PUPIL)
    record_refusals(session, [too_large(join)], [], desired("Я" * 70_000), NOW)
    fixed = sort_plan(session, [join], desired("Иван Петров"), NOW + timedelta(seconds=1))
    assert fixed.due == [CreateUser(PUPIL, "Иван Петров"), join]
    assert session.scalars(select(RefusedAction)).all() == []


def test_a_refused_room_holds_back_what_needs_it_and_a_success_clears_it(
    migrated_session: Session,
) -> None:
    session = migrated_session
    create = CreateRoom(room(NEW_ROOM))
    join = Join(NEW_ROOM, PUPIL)
    other = Join(CHAT, PUPIL)
    record_refusals(session, [too_large(create)], [], desired(), NOW)
    split = sort_plan(session, [create, other, join], desired(), NOW + timedelta(seconds=1))
    assert split.due == [other]
    assert [(p.action, p.next_attempt_at is None) for p in split.postponed] == [
        (create, False),
        (join, True),
    ]
    record_refusals(session, [], [create], desired(), NOW + timedelta(minutes=2))
    assert session.scalars(select(RefusedAction)).all() == []


@pytest.mark.parametrize("errcode", ["M_TOO_LARGE", "M_FORBIDDEN", "M_BAD_JSON", "M_EXCLUSIVE"])
def test_the_school_page_says_why_for_every_permanent_refusal(
    migrated_session: Session, school_id: int, errcode: str
) -> None:
    session = migrated_session
    join = Join(CHAT, PUPIL)
    failure = FailedAction(join, f"{errcode}: refused", errcode)
    record_refusals(session, [failure], [], desired(school_id=school_id), NOW)
    [notice] = refusals_of_school(session, school_id)
    assert notice.what[1]["room"] == CHAT and notice.what[1]["person"] == PUPIL
    template, params = notice.why
    assert template and (
        errcode in {"M_TOO_LARGE", "M_FORBIDDEN"} or params == {"errcode": errcode}
    )
