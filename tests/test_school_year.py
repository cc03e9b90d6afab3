"""The school year's services: a promotion happens once per school year (SQLite, PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisioning.db.engine import make_session_factory
from provisioning.db.models import (
    AuditEvent,
    EnrolmentRole,
    ParentLink,
    Person,
    Region,
    Role,
    School,
    SchoolClass,
    SchoolPromotion,
)
from provisioning.reconciler.desired import build_desired
from provisioning.reconciler.state import RoomAlias, UserID
from provisioning.services import school_changes as changes
from provisioning.services import schools as svc
from provisioning.services.preview import preview


def _school_with_classes(session: Session) -> int:
    region = Region(server_name="hs", name="Регион")
    session.add(region)
    session.flush()
    school = svc.create_school(session, region, "Школа № 57", academic_year=2026)
    svc.add_class(session, school, 10, "А")
    svc.add_class(session, school, 11, "А")
    session.commit()
    return school.id


@pytest.mark.parametrize(
    ("text", "year"),
    [
        ("2027/2028", 2027),
        (" 2027/2028 ", 2027),
        ("2027/2029", None),
        ("2027", None),
        ("２０２７/２０２８", None),
        ("27/28", None),
        ("", None),
    ],
)
def test_a_school_year_is_written_as_schools_write_it(text: str, year: int | None) -> None:
    assert svc.parse_school_year(text) == year


def test_a_repeated_promotion_is_refused_and_changes_nothing(migrated_session: Session) -> None:
    session = migrated_session
    school_id = _school_with_classes(session)
    school = session.get_one(School, school_id)
    graduated = svc.promote(session, school, 2027)
    session.commit()
    assert [c.label for c in graduated] == ["11А"]
    with pytest.raises(svc.AlreadyExists, match="2027/2028 already"):
        svc.promote(session, school, 2027)  # the retried request
    with pytest.raises(svc.DomainError, match="Only the next school year, 2028/2029"):
        svc.promote(session, school, 2029)
    session.rollback()
    live = session.scalars(
        select(SchoolClass.grade).where(
            SchoolClass.school_id == school_id, SchoolClass.archived_at.is_(None)
        )
    ).all()
    assert (school.academic_year, live) == (2027, [11])  # 10А became 11А and stays


def test_of_two_concurrent_promotions_one_wins(migrated_engine: Engine) -> None:
    """Both requests read the school in 2026/2027 before either writes: the unique
    (school, year) row lets only one of them commit, on SQLite and on PostgreSQL."""
    sessions = make_session_factory(migrated_engine)
    with sessions() as session:
        school_id = _school_with_classes(session)
    both_read = threading.Barrier(2, timeout=30)
    outcomes: list[str] = []

    def promote() -> None:
        with sessions() as session:
            school = session.get_one(School, school_id)
            assert school.academic_year == 2026
            both_read.wait()
            try:
                svc.promote(session, school, 2027)
                session.commit()
                outcomes.append("promoted")
            except (IntegrityError, svc.AlreadyExists):
                session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=promote) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["promoted", "refused"]
    with sessions() as session:
        archived = session.scalar(
            select(func.count()).where(
                SchoolClass.school_id == school_id, SchoolClass.archived_at.is_not(None)
            )
        )
        promotions = session.scalar(select(func.count()).select_from(SchoolPromotion))
        assert (archived, promotions) == (1, 1)


# --- Changes during the year, and their previews ---------------------------------------


def _people_school(session: Session) -> tuple[School, dict[str, Person], dict[str, SchoolClass]]:
    region = Region(server_name="hs", name="Регион")
    session.add(region)
    session.flush()
    school = svc.create_school(session, region, "Школа № 57", academic_year=2026)
    classes = {label: svc.add_class(session, school, 5, label[1]) for label in ("5А", "5Б")}
    people = {
        name: svc.add_person(session, name, f"@{key}:hs")
        for name, key in (("Иван", "ivan"), ("Анна", "anna"), ("Мария", "maria"), ("Олег", "oleg"))
    }
    svc.enrol(session, people["Иван"], classes["5А"], EnrolmentRole.PUPIL)
    svc.link_parent(session, people["Анна"], people["Иван"])
    for teacher, label in (("Мария", "5А"), ("Олег", "5Б")):
        svc.grant_school_role(session, people[teacher], school, Role.TEACHER)
        svc.enrol(session, people[teacher], classes[label], EnrolmentRole.CLASS_TEACHER)
    session.commit()
    return school, people, classes


def _audit_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def test_moving_a_pupil_is_previewed_in_rooms_and_nothing_changes(
    migrated_session: Session,
) -> None:
    session = migrated_session
    _, people, classes = _people_school(session)
    events = _audit_count(session)
    pupil_id, to_class_id = people["Иван"].id, classes["5Б"].id

    def move(scratch: Session) -> None:
        svc.move_pupil(
            scratch,
            scratch.get_one(Person, pupil_id),
            scratch.get_one(SchoolClass, to_class_id),
            actor="@admin:hs",
        )

    seen = preview(session, move)
    by_name = {row.name: row for row in seen.people}
    assert set(by_name) == {"Иван", "Анна"}
    assert set(by_name["Иван"].joins) == {"5Б — канал класса", "5Б — чат класса", "5Б класс"}
    assert set(by_name["Иван"].leaves) == {"5А — канал класса", "5А — чат класса", "5А класс"}
    assert "5Б — родители" in by_name["Анна"].joins
    assert "5А — родители" in by_name["Анна"].leaves
    session.expire_all()
    assert svc.pupil_enrolment(session, people["Иван"]).class_id == classes["5А"].id  # type: ignore[union-attr]
    assert _audit_count(session) == events  # the preview's audit entry was rolled back


def test_a_renamed_class_keeps_its_rooms_and_a_new_class_gets_its_own(
    migrated_session: Session,
) -> None:
    session = migrated_session
    school, _, classes = _people_school(session)
    aliases = {room for room in build_desired(session, UserID("@bot:hs")).rooms}
    seen = preview(
        session,
        lambda scratch: changes.rename_class(
            scratch, scratch.get_one(SchoolClass, classes["5А"].id), 5, "в", actor="@admin:hs"
        ),
    )
    assert ("5А — чат класса", "5В — чат класса") in seen.renamed_rooms
    assert not seen.people  # nobody joins or leaves
    changes.rename_class(session, classes["5А"], 5, "в", actor="@admin:hs")
    new_5a = svc.add_class(session, school, 5, "А")  # the letter is free again
    session.commit()
    after = build_desired(session, UserID("@bot:hs"))
    assert aliases <= set(after.rooms)  # 5В kept the rooms 5А had
    assert after.rooms[RoomAlias(f"school-{school.slug}-{classes['5А'].alias_key}-chat")].name == (
        "5В — чат класса"
    )
    assert new_5a.alias_key == f"{classes['5А'].alias_key}-2"
    with pytest.raises(svc.DomainError, match="only with the school year"):
        changes.rename_class(session, classes["5Б"], 6, "Б", actor="@admin:hs")
    with pytest.raises(svc.AlreadyExists, match="5В exists already"):
        changes.rename_class(session, classes["5Б"], 5, "В", actor="@admin:hs")


def test_archiving_appointing_removing_and_editing(migrated_session: Session) -> None:
    session = migrated_session
    school, people, classes = _people_school(session)
    with pytest.raises(svc.DomainError, match=r"Class 5А still has pupils \(1\)"):
        changes.archive_class(session, classes["5А"], actor="@admin:hs")
    seen = preview(
        session,
        lambda scratch: changes.archive_class(
            scratch, scratch.get_one(SchoolClass, classes["5Б"].id), actor="@admin:hs"
        ),
    )
    assert "5Б — чат класса (архив)" in seen.read_only_rooms

    seen = preview(
        session,
        lambda scratch: changes.appoint_class_teacher(
            scratch,
            scratch.get_one(SchoolClass, classes["5А"].id),
            scratch.get_one(Person, people["Олег"].id),
            actor="@admin:hs",
        ),
    )
    by_name = {row.name: row for row in seen.people}
    class_rooms = {"5А — родители", "5А — канал класса", "5А — чат класса", "5А класс"}
    assert set(by_name["Олег"].joins) == class_rooms
    assert set(by_name["Мария"].leaves) == class_rooms
    with pytest.raises(svc.DomainError, match="not a teacher of this school"):
        changes.appoint_class_teacher(session, classes["5А"], people["Анна"], actor="@admin:hs")

    seen = preview(
        session,
        lambda scratch: changes.update_person(
            scratch,
            scratch.get_one(Person, people["Иван"].id),
            school,
            display_name="Иван Петров",
            phone=None,
            email=None,
            roster_id=None,
            actor="@admin:hs",
        ),
    )
    assert seen.renamed_people == (("Иван", "Иван Петров"),)

    changes.remove_from_school(session, people["Иван"], school, actor="@admin:hs")
    session.commit()
    assert svc.pupil_enrolment(session, people["Иван"]) is None
    assert session.scalar(select(func.count()).select_from(ParentLink)) == 0
    with pytest.raises(svc.DomainError, match="not in this school"):
        changes.remove_from_school(session, people["Иван"], school, actor="@admin:hs")
    actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id.desc())).first()
    assert actions == "person.removed"
