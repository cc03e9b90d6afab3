"""build_desired over real rows (SQLite and PostgreSQL): who is where, who may post."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.base import utcnow
from provisioning.db.models import (
    EnrolmentRole,
    ManagedRoom,
    ParentLink,
    Person,
    Region,
    Role,
    RoomKind,
    School,
    SchoolClass,
)
from provisioning.reconciler.desired import build_desired
from provisioning.reconciler.state import (
    DOCUMENTS_WIDGET_ID,
    DesiredState,
    RoomAlias,
    RoomWidget,
    UserID,
)
from provisioning.services import schools as svc

BOT = UserID("@parta:hs")


@pytest.fixture
def session(migrated_session: Session) -> Session:
    return migrated_session  # SQLite, then PostgreSQL (tests/conftest.py)


@dataclass
class School57:
    people: dict[str, Person]
    classes: dict[str, SchoolClass]


def _school(session: Session) -> School57:
    region = Region(server_name="hs", name="Регион")
    session.add(region)
    session.flush()
    school = svc.create_school(session, region, "Школа № 57", academic_year=2026)
    classes = {
        label: svc.add_class(session, school, int(label[:-1]), label[-1])
        for label in ("5А", "5Б", "11А")
    }
    people = {
        key: svc.add_person(session, name, f"@{key}:hs")
        for key, name in {
            "director": "Директор",
            "olga": "Ольга Сергеевна",
            "pavel": "Павел Ильич",
            "ivan": "Иван",
            "maria": "Мария",
            "petr": "Пётр",
            "anna": "Анна (мама Ивана)",
        }.items()
    }
    svc.grant_school_role(session, people["director"], school, Role.SCHOOL_ADMIN)
    for teacher in ("olga", "pavel"):
        svc.grant_school_role(session, people[teacher], school, Role.TEACHER)
    math = svc.add_subject(session, school, "Математика")
    svc.enrol(session, people["olga"], classes["5А"], EnrolmentRole.CLASS_TEACHER)
    for label in ("5А", "5Б"):
        svc.enrol(
            session, people["pavel"], classes[label], EnrolmentRole.SUBJECT_TEACHER, subject=math
        )
    svc.enrol(session, people["ivan"], classes["5А"], EnrolmentRole.PUPIL)
    svc.enrol(session, people["maria"], classes["5Б"], EnrolmentRole.PUPIL)
    svc.enrol(session, people["petr"], classes["11А"], EnrolmentRole.PUPIL)
    svc.link_parent(session, people["anna"], people["ivan"])
    session.commit()
    return School57(people, classes)


def rooms_of(desired: DesiredState, user: str) -> set[str]:
    return {alias for alias, room in desired.rooms.items() if UserID(f"@{user}:hs") in room.members}


def level(desired: DesiredState, alias: str, user: str) -> int:
    return dict(desired.rooms[RoomAlias(alias)].power_levels.users).get(UserID(f"@{user}:hs"), 0)


S = "school-shkola-57"
A5 = f"{S}-2033a"  # 5А in 2026/27 graduates in 2033
B5 = f"{S}-2033b"
A11 = f"{S}-2027a"


def test_each_person_is_exactly_where_the_school_puts_them(session: Session) -> None:
    _school(session)
    desired = build_desired(session, BOT)
    suffixes = ("", "-chat", "-channel", "-parents")
    class_rooms = {f"{c}{suffix}" for c in (A5, B5, A11) for suffix in suffixes}
    assert set(desired.rooms) == {
        S,
        f"{S}-announcements",
        f"{S}-materials",
        f"{S}-events",
        f"{S}-staff",
        *class_rooms,
    }
    school_wide = {S, f"{S}-announcements", f"{S}-materials", f"{S}-events"}
    assert rooms_of(desired, "ivan") == school_wide | {A5, f"{A5}-chat", f"{A5}-channel"}
    assert rooms_of(desired, "anna") == school_wide | {A5, f"{A5}-channel", f"{A5}-parents"}
    assert rooms_of(desired, "olga") == school_wide | {
        f"{S}-staff",
        A5,
        f"{A5}-chat",
        f"{A5}-channel",
        f"{A5}-parents",
    }
    assert rooms_of(desired, "pavel") == school_wide | {f"{S}-staff"} | {
        f"{c}{s}" for c in (A5, B5) for s in ("", "-chat", "-channel")
    }
    assert rooms_of(desired, "director") == school_wide | {f"{S}-staff"}
    # The bot is in every room it manages.
    assert rooms_of(desired, "parta") == set(desired.rooms)


def test_power_levels_follow_roles(session: Session) -> None:
    _school(session)
    desired = build_desired(session, BOT)
    assert level(desired, f"{A5}-chat", "olga") == 50
    assert level(desired, f"{A5}-chat", "ivan") == 0
    assert level(desired, f"{A5}-chat", "director") == 100
    assert level(desired, f"{B5}-chat", "olga") == 0  # not her class
    channel = desired.rooms[RoomAlias(f"{A5}-channel")].power_levels
    chat = desired.rooms[RoomAlias(f"{A5}-chat")].power_levels
    announcements = desired.rooms[RoomAlias(f"{S}-announcements")].power_levels
    assert (channel.events_default, chat.events_default, announcements.events_default) == (
        50,
        0,
        50,
    )
    assert dict(chat.events)["m.room.power_levels"] == 100  # only the bot changes power levels
    assert desired.rooms[RoomAlias(A5)].join_rule.rule == "knock"  # join requests
    assert desired.rooms[RoomAlias(f"{A5}-chat")].join_rule.rule == "invite"
    assert desired.rooms[RoomAlias(f"{A5}-channel")].join_rule.allow_spaces == (A5,)
    assert desired.rooms[RoomAlias(f"{A5}-chat")].history_visibility == "shared"


def test_in_channels_everyone_answers_polls_and_reacts_but_only_moderators_post(
    session: Session,
) -> None:
    school = _school(session)
    svc.promote(session, school.classes["5А"].school, 2027)  # 11А graduates: its rooms archive
    session.commit()
    desired = build_desired(session, BOT)
    answers = {
        "org.matrix.msc3381.poll.response": 0,
        "m.poll.response": 0,
        "m.reaction": 0,
        "m.room.redaction": 0,  # taking one's own reaction back
    }
    for alias in (f"{A5}-channel", f"{S}-announcements", f"{S}-materials"):
        levels = desired.rooms[RoomAlias(alias)].power_levels
        assert dict(levels.events).items() >= answers.items(), alias
        assert levels.events_default == 50  # messages, and starting or ending a poll
        assert "org.matrix.msc3381.poll.start" not in dict(levels.events)
    # A graduated class's channel stays read-only; chats need no entries (everyone posts).
    for alias in (f"{A11}-channel", f"{A5}-chat", f"{A5}-parents", A5, S, f"{S}-staff"):
        assert "m.reaction" not in dict(desired.rooms[RoomAlias(alias)].power_levels.events)
    assert desired.rooms[RoomAlias(f"{A11}-channel")].power_levels.events_default == 100


def test_a_moved_pupil_and_their_parent_change_class(session: Session) -> None:
    school = _school(session)
    svc.move_pupil(session, school.people["ivan"], school.classes["5Б"])
    session.commit()
    desired = build_desired(session, BOT)
    assert A5 not in rooms_of(desired, "ivan") and f"{B5}-chat" in rooms_of(desired, "ivan")
    assert f"{B5}-parents" in rooms_of(desired, "anna")
    assert f"{A5}-parents" not in rooms_of(desired, "anna")


def test_a_teacher_who_leaves_loses_every_room_but_keeps_the_account(session: Session) -> None:
    school = _school(session)
    school57 = school.classes["5А"].school
    svc.teacher_leaves(session, school.people["pavel"], school57)
    session.commit()
    desired = build_desired(session, BOT)
    assert rooms_of(desired, "pavel") == set()
    assert UserID("@pavel:hs") in desired.users


def test_promotion_renames_keeps_aliases_and_archives_the_last_grade(session: Session) -> None:
    school = _school(session)
    before = build_desired(session, BOT)
    promoted_school = school.classes["5А"].school
    graduated = svc.promote(session, promoted_school, promoted_school.academic_year + 1)
    session.commit()
    after = build_desired(session, BOT)
    assert [c.label for c in graduated] == ["11А"]
    assert set(after.rooms) == set(before.rooms)  # no alias changes, no room lost
    assert after.rooms[RoomAlias(f"{A5}-chat")].name == "6А — чат класса"
    archived = after.rooms[RoomAlias(f"{A11}-chat")]
    assert archived.name == "11А — чат класса (архив)"
    assert archived.power_levels.events_default == 100  # read-only
    assert dict(archived.power_levels.users) == {}  # only the creating bot may post
    assert UserID("@petr:hs") in archived.members  # history stays with its members
    assert "petr" not in {u[1:].split(":")[0] for u in after.rooms[RoomAlias(S)].members}


def test_domain_errors_are_explained(session: Session) -> None:
    school = _school(session)
    with pytest.raises(svc.DomainError, match="move them instead"):
        svc.enrol(session, school.people["ivan"], school.classes["5Б"], EnrolmentRole.PUPIL)
    with pytest.raises(svc.DomainError, match="outside 1–11"):
        svc.add_class(session, school.classes["5А"].school, 12, "А")


def test_an_unconfirmed_pupil_is_placed_nowhere_and_a_confirming_parent_gets_a_family_room(
    session: Session,
) -> None:
    school = _school(session)
    newcomer = svc.add_person(session, "Тимур", "@timur:hs")
    mother = svc.add_person(session, "Ольга (мама Тимура)", "@olga.mother:hs")
    svc.enrol(session, newcomer, school.classes["5А"], EnrolmentRole.PUPIL, confirmed=False)
    svc.link_parent(session, mother, newcomer)
    session.commit()
    desired = build_desired(session, BOT)
    assert rooms_of(desired, "timur") == set()
    assert rooms_of(desired, "olga.mother") == set()  # a parent follows the child

    assert svc.confirm_pupil(session, newcomer, parent=mother)
    assert not svc.confirm_pupil(session, newcomer, parent=mother)  # once is enough
    session.commit()
    desired = build_desired(session, BOT)
    family = f"family-{mother.id}-{newcomer.id}"
    assert family in rooms_of(desired, "timur") & rooms_of(desired, "olga.mother")
    assert desired.rooms[RoomAlias(family)].members == {BOT, UserID("@timur:hs"),
                                                         UserID("@olga.mother:hs")}  # fmt: skip
    assert f"{A5}-chat" in rooms_of(desired, "timur")
    assert f"{A5}-parents" in rooms_of(desired, "olga.mother")
    # Anna, who never confirmed Ivan in Parta, has no family room: rosters make none.
    assert not any(alias.startswith("family-") for alias in rooms_of(desired, "anna"))


def test_a_room_the_school_opened_to_other_regions_is_desired_open(session: Session) -> None:
    _school(session)
    school = session.scalars(select(School)).one()
    for alias, kind in ((f"{S}-staff", RoomKind.STAFF_ROOM), (f"{A5}-chat", RoomKind.CLASS_CHAT)):
        session.add(ManagedRoom(alias=alias, kind=kind, school_id=school.id, dirty=False))
    session.flush()
    svc.set_room_federation(session, school, f"{S}-staff", True, actor="@director:hs")
    session.commit()
    desired = build_desired(session, BOT)
    assert [a for a, room in desired.rooms.items() if room.federated] == [f"{S}-staff"]
    # Closing it again makes the next run read the room, to remove the guests.
    svc.set_room_federation(session, school, f"{S}-staff", False, actor="@director:hs")
    assert session.get(ManagedRoom, f"{S}-staff").dirty  # type: ignore[union-attr]
    assert not any(room.federated for room in build_desired(session, BOT).rooms.values())
    with pytest.raises(svc.DomainError):
        svc.set_room_federation(session, school, f"{B5}-chat", True)  # not made yet


def test_class_chats_and_parents_chats_get_the_call_widget(session: Session) -> None:
    _school(session)
    assert not any(room.call_widget for room in build_desired(session, BOT).rooms.values())
    url = "https://w.example/call/?room_id=$matrix_room_id"
    desired = build_desired(session, BOT, call_widget_url=url)
    with_calls = {a: room.call_widget for a, room in desired.rooms.items() if room.call_widget}
    assert set(with_calls) == {f"{c}-{kind}" for c in (A5, B5, A11) for kind in ("chat", "parents")}
    assert {w.url for w in with_calls.values()} == {url}
    assert with_calls[RoomAlias(f"{A5}-chat")].name == "Урок"
    assert with_calls[RoomAlias(f"{A5}-parents")].name == "Родительское собрание"


def test_rooms_with_files_get_the_documents_widget(session: Session) -> None:
    school = _school(session)
    assert not any(room.documents_widget for room in build_desired(session, BOT).rooms.values())
    url = "https://w.example/documents/?room_id=$matrix_room_id"
    desired = build_desired(session, BOT, documents_widget_url=url)
    with_files = {a for a, room in desired.rooms.items() if room.documents_widget}
    classes = {f"{c}-{kind}" for c in (A5, B5, A11) for kind in ("chat", "channel")}
    assert with_files == classes | {f"{S}-staff", f"{S}-materials"}
    widget = desired.rooms[RoomAlias(f"{A5}-channel")].documents_widget
    assert widget == RoomWidget(url, "Материалы", DOCUMENTS_WIDGET_ID)
    assert widget.content(BOT)["id"] == "parta-documents"
    # A graduated class keeps its files, read-only: its rooms lose the widget.
    promoted_school = school.classes["5А"].school
    svc.promote(session, promoted_school, promoted_school.academic_year + 1)
    after = build_desired(session, BOT, documents_widget_url=url)
    assert after.rooms[RoomAlias(f"{A11}-chat")].documents_widget is None
    assert after.rooms[RoomAlias(f"{A11}-channel")].documents_widget is None
    assert after.rooms[RoomAlias(f"{A5}-chat")].documents_widget == widget


def test_a_link_naming_a_pupil_as_a_parent_places_nobody(session: Session) -> None:
    """Links made before link_parent refused them (issue 18): a pupil of 5Б recorded as a
    «parent» of Ivan (5А), confirmed even, is in neither 5А's parents chat nor a family room."""
    school = _school(session)
    session.add(
        ParentLink(
            parent_id=school.people["maria"].id,
            child_id=school.people["ivan"].id,
            confirmed_at=utcnow(),
        )
    )
    session.commit()
    desired = build_desired(session, BOT)
    school_wide = {S, f"{S}-announcements", f"{S}-materials", f"{S}-events"}
    assert rooms_of(desired, "maria") == school_wide | {B5, f"{B5}-chat", f"{B5}-channel"}
    assert not any(alias.startswith("family-") for alias in desired.rooms)
