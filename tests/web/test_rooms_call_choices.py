"""A school's call choices over real rows (SQLite and PostgreSQL), into desired state and plan."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.base import utcnow
from provisioning.db.models import AuditEvent, ManagedRoom, Region, RoomKind, School
from provisioning.reconciler.actions import SetWidget
from provisioning.reconciler.desired import build_desired, class_key, school_alias
from provisioning.reconciler.plan import compute_plan
from provisioning.reconciler.state import (
    CALL_WIDGET_ID,
    DesiredState,
    ObservedRoom,
    ObservedState,
    RoomAlias,
    RoomWidget,
    UserID,
)
from provisioning.services import calls
from provisioning.services import schools as svc
from provisioning.services.schools import DomainError

BOT = UserID("@parta:hs")
URL = "https://w.example/call/?room_id=$matrix_room_id"


@pytest.fixture
def session(migrated_session: Session) -> Session:
    return migrated_session  # SQLite, then PostgreSQL (tests/conftest.py)


def _rooms(session: Session) -> tuple[School, dict[str, ManagedRoom]]:
    """A school with a current class and a graduated one, and their managed-room rows."""
    region = Region(server_name="hs", name="Регион")
    session.add(region)
    session.flush()
    school = svc.create_school(session, region, "Школа 9", slug="s9", academic_year=2026)
    current = svc.add_class(session, school, 5, "А")
    graduated = svc.add_class(session, school, 11, "Б")
    graduated.archived_at = utcnow()
    rows = {
        "space": ManagedRoom(alias=school_alias("s9"), kind=RoomKind.SCHOOL_SPACE),
        "staff": ManagedRoom(alias=school_alias("s9", "staff"), kind=RoomKind.STAFF_ROOM),
        "channel": ManagedRoom(
            alias=f"{school_alias('s9', class_key(current))}-channel",
            kind=RoomKind.CLASS_CHANNEL, class_id=current.id,
        ),
        "chat": ManagedRoom(
            alias=f"{school_alias('s9', class_key(current))}-chat",
            kind=RoomKind.CLASS_CHAT, class_id=current.id,
        ),
        "old_channel": ManagedRoom(
            alias=f"{school_alias('s9', class_key(graduated))}-channel",
            kind=RoomKind.CLASS_CHANNEL, class_id=graduated.id,
        ),
    }  # fmt: skip
    for row in rows.values():
        row.school_id = school.id
        row.dirty = False
        session.add(row)
    session.flush()
    return school, rows


def _widgets(desired: DesiredState) -> dict[str, RoomWidget | None]:
    return {alias: room.call_widget for alias, room in desired.rooms.items()}


def test_the_schools_choices_add_and_remove_calls_beyond_the_defaults(session: Session) -> None:
    school, rows = _rooms(session)
    before = _widgets(build_desired(session, BOT, call_widget_url=URL))
    assert before[rows["chat"].alias] == RoomWidget(URL, "Урок")  # the default
    assert before[rows["staff"].alias] is None
    assert before[rows["channel"].alias] is None

    director = "@director:hs"
    calls.set_room_call(session, rows["staff"], True, actor=director)
    calls.set_room_call(session, rows["channel"], True, name="Собрание 5А", actor=director)
    calls.set_room_call(session, rows["chat"], False, actor=director)
    calls.set_room_call(session, rows["old_channel"], True, actor=director)
    session.commit()
    after = _widgets(build_desired(session, BOT, call_widget_url=URL))
    assert after[rows["staff"].alias] == RoomWidget(URL, "Звонок")
    assert after[rows["channel"].alias] == RoomWidget(URL, "Собрание 5А")
    assert after[rows["chat"].alias] is None  # the school took the lessons' call out
    assert after[rows["old_channel"].alias] is None  # a graduated class stays read-only
    # Without a widget service there are no calls at all, chosen or not.
    assert not any(_widgets(build_desired(session, BOT, call_widget_url=None)).values())
    assert [calls.has_call(rows[k]) for k in ("staff", "channel", "chat")] == [True, True, False]

    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.school_id == school.id,
                                        AuditEvent.action.like("room.call%"))
        .order_by(AuditEvent.id)
    ).all()  # fmt: skip
    assert actions == ["room.call_added", "room.call_added", "room.call_removed", "room.call_added"]
    # Choosing again what is already chosen changes nothing, and is not logged again.
    calls.set_room_call(session, rows["staff"], True, actor=director)
    session.commit()
    count = session.scalars(select(AuditEvent).where(AuditEvent.action.like("room.call%"))).all()
    assert len(count) == 4


def test_spaces_and_other_schools_rooms_are_refused(session: Session) -> None:
    school, rows = _rooms(session)
    with pytest.raises(DomainError, match="space"):
        calls.set_room_call(session, rows["space"], True, actor="@director:hs")
    assert rows["space"].call_widget is None
    other = svc.create_school(
        session, session.scalars(select(Region)).one(), "Другая", slug="o1", academic_year=2026
    )
    with pytest.raises(DomainError, match="no room"):
        calls.school_room(session, other, rows["staff"].alias)
    assert calls.school_room(session, school, rows["staff"].alias) is rows["staff"]


def test_a_removed_choice_takes_the_widget_out_of_the_room(session: Session) -> None:
    """Removal needs no new action: the plan compares the widget and puts an empty one."""
    _, rows = _rooms(session)
    calls.set_room_call(session, rows["staff"], True, actor="@director:hs")
    with_call = build_desired(session, BOT, call_widget_url=URL)
    calls.set_room_call(session, rows["staff"], False, actor="@director:hs")
    without = build_desired(session, BOT, call_widget_url=URL)

    def observed(desired: DesiredState) -> ObservedState:
        rooms = {
            alias: ObservedRoom(
                alias=alias, room_id=f"!{alias}", name=room.name, topic=room.topic,
                join_rule=room.join_rule, power_levels=room.power_levels,
                history_visibility=room.history_visibility, members=room.members,
                children=frozenset(a for a, r in desired.rooms.items() if r.parent == alias),
                parent=room.parent, call_widget=room.call_widget,
            )
            for alias, room in desired.rooms.items()
        }  # fmt: skip
        return ObservedState(users=frozenset(desired.users), rooms=rooms)

    staff = RoomAlias(rows["staff"].alias)
    assert compute_plan(observed(with_call), without) == [SetWidget(staff, CALL_WIDGET_ID, None)]
    assert compute_plan(observed(without), with_call) == [
        SetWidget(staff, CALL_WIDGET_ID, RoomWidget(URL, "Звонок"))
    ]
    assert compute_plan(observed(without), without) == []
