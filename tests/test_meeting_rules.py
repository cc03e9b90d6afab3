"""Parent meetings' rules on a migrated database (SQLite and PostgreSQL), and what a
meeting owes its chat at a given moment. The messages in Matrix are in
tests/web/test_meetings_ui.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.orm import Session

from provisioning.db.base import Base
from provisioning.db.models import (
    EnrolmentRole,
    ManagedRoom,
    MeetingState,
    ParentMeeting,
    Region,
    Role,
    RoomKind,
)
from provisioning.meetings import service
from provisioning.meetings.clock import due
from provisioning.services import schools as svc
from provisioning.services.access import Access, load_access

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def _form(**changes: object) -> service.MeetingForm:
    values: dict[str, object] = {
        "agenda": "Итоги четверти",
        "hybrid": False,
        "starts_at": NOW + timedelta(days=3),
        "ends_at": NOW + timedelta(days=3, hours=1),
    }
    values.update(changes)
    return service.MeetingForm(**values)  # type: ignore[arg-type]


@pytest.fixture
def people(migrated_session: Session) -> dict[str, object]:
    session = migrated_session
    region = Region(server_name="hs", name="Регион")
    session.add(region)
    session.flush()
    school = svc.create_school(session, region, "Школа № 5", academic_year=2026)
    class_5a, class_6b = (
        svc.add_class(session, school, 5, "А"),
        svc.add_class(session, school, 6, "Б"),
    )
    maths = svc.add_subject(session, school, "Математика")
    found: dict[str, object] = {"class": class_5a}
    for key, klass, role in (
        ("class_teacher", class_5a, EnrolmentRole.CLASS_TEACHER),
        ("subject_teacher", class_5a, EnrolmentRole.SUBJECT_TEACHER),
        ("other_teacher", class_6b, EnrolmentRole.CLASS_TEACHER),
    ):
        person = svc.add_person(session, key, f"@{key.replace('_', '')}:hs")
        svc.grant_school_role(session, person, school, Role.TEACHER)
        subject = maths if role is EnrolmentRole.SUBJECT_TEACHER else None
        svc.enrol(session, person, klass, role, subject=subject)
        found[key] = person
    director = svc.add_person(session, "director", "@director:hs")
    svc.grant_school_role(session, director, school, Role.SCHOOL_ADMIN)
    found["director"] = director
    session.add(
        ManagedRoom(
            alias="m-5a-parents",
            school_id=school.id,
            class_id=class_5a.id,
            kind=RoomKind.CLASS_PARENTS,
            room_id="!parents:hs",
        )
    )
    session.commit()
    return found


def _access(session: Session, people: dict[str, object], key: str) -> Access:
    return load_access(session, people[key])  # type: ignore[arg-type]


def test_the_migration_matches_the_models(migrated_session: Session) -> None:
    context = MigrationContext.configure(migrated_session.connection())
    ours = ("parent_meetings", "meeting_notices")
    diff = [d for d in compare_metadata(context, Base.metadata) if any(t in str(d) for t in ours)]
    assert diff == []


def test_only_the_class_teacher_and_the_administration_hold_meetings(
    migrated_session: Session, people: dict[str, object]
) -> None:
    session, klass = migrated_session, people["class"]
    for key in ("subject_teacher", "other_teacher"):
        with pytest.raises(service.MeetingForbidden, match="class teacher"):
            service.create(session, klass, _form(), viewer=_access(session, people, key), now=NOW)  # type: ignore[arg-type]
    for key in ("class_teacher", "director"):
        meeting = service.create(
            session,
            klass,  # type: ignore[arg-type]
            _form(),
            viewer=_access(session, people, key),
            now=NOW,
        )
        assert meeting.room_alias == "m-5a-parents" and meeting.state is MeetingState.SCHEDULED


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"ends_at": NOW + timedelta(days=3, minutes=-30)}, "must end after it starts"),
        ({"starts_at": NOW - timedelta(hours=1), "ends_at": NOW}, "in the future"),
        ({"agenda": "я" * 2001}, "2001 characters; at most 2000"),
        ({"agenda": "   "}, "write what the meeting is about"),
        ({"ends_at": NOW + timedelta(days=3, hours=7)}, "at most 6 hours"),
    ],
)
def test_a_bad_form_is_refused_naming_the_problem(
    migrated_session: Session, people: dict[str, object], changes: dict[str, object], words: str
) -> None:
    viewer = _access(migrated_session, people, "class_teacher")
    with pytest.raises(service.MeetingInvalid, match=words):
        service.create(migrated_session, people["class"], _form(**changes), viewer=viewer, now=NOW)  # type: ignore[arg-type]


def test_minutes_after_the_start_only_bounded_and_a_change_is_a_new_version(
    migrated_session: Session, people: dict[str, object]
) -> None:
    session, klass = migrated_session, people["class"]
    viewer = _access(session, people, "class_teacher")
    meeting = service.create(session, klass, _form(), viewer=viewer, now=NOW)  # type: ignore[arg-type]
    during = NOW + timedelta(days=3, minutes=10)
    with pytest.raises(service.MeetingInvalid, match="once the meeting has begun"):
        service.save_minutes(session, meeting, klass, "Решили", viewer=viewer, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(service.MeetingInvalid, match="8001 characters; at most 8000"):
        service.save_minutes(session, meeting, klass, "я" * 8001, viewer=viewer, now=during)  # type: ignore[arg-type]
    with pytest.raises(service.MeetingInvalid, match="can no longer be changed"):
        service.edit(session, meeting, klass, _form(), viewer=viewer, now=during)  # type: ignore[arg-type]
    assert service.save_minutes(session, meeting, klass, "Решили", viewer=viewer, now=during)  # type: ignore[arg-type]
    assert not service.save_minutes(session, meeting, klass, "Решили ", viewer=viewer, now=during)  # type: ignore[arg-type]
    assert service.save_minutes(session, meeting, klass, "Решили: да", viewer=viewer, now=during)  # type: ignore[arg-type]
    assert meeting.minutes_version == 2


def _meeting(**values: object) -> ParentMeeting:
    defaults: dict[str, object] = {
        "starts_at": NOW + timedelta(days=3),
        "ends_at": NOW + timedelta(days=3, hours=1),
        "created_at": NOW,
        "state": MeetingState.SCHEDULED,
        "version": 1,
        "minutes_version": 0,
    }
    defaults.update(values)
    return ParentMeeting(**defaults)


def test_what_a_meeting_owes_its_chat_at_each_moment() -> None:
    meeting = _meeting()
    starts = NOW + timedelta(days=3)
    assert due(meeting, set(), NOW) == ["announce"]
    assert due(meeting, {"announce"}, NOW) == []
    assert due(meeting, {"announce"}, starts - timedelta(hours=23)) == ["remind_day"]
    assert due(meeting, {"announce", "remind_day"}, starts - timedelta(minutes=10)) == [
        "remind_15m"
    ]
    assert due(meeting, {"announce"}, starts + timedelta(minutes=1)) == [
        "start"
    ]  # no late reminder
    assert due(meeting, {"announce", "start"}, starts + timedelta(hours=2)) == []
    edited = _meeting(version=3)
    assert due(edited, {"announce", "update:2"}, NOW) == ["update:3"]
    cancelled = _meeting(state=MeetingState.CANCELLED)
    assert due(cancelled, {"announce"}, NOW) == ["cancel"]
    assert due(cancelled, set(), NOW) == []  # never announced: nobody to tell
    held = _meeting(minutes_version=2)
    assert due(held, {"announce", "start", "minutes:1"}, starts + timedelta(days=1)) == [
        "minutes:2"
    ]
