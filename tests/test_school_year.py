"""The school year's services: a promotion happens once per school year (SQLite, PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisioning.db.engine import make_session_factory
from provisioning.db.models import Region, School, SchoolClass, SchoolPromotion
from provisioning.services import schools as svc


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
