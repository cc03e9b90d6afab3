"""Which account a verified phone number or e-mail belongs to (`services.sign_on`)."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from provisioning.db.base import Base
from provisioning.db.engine import make_session_factory
from provisioning.db.migrate import alembic_config
from provisioning.db.models import Enrolment, EnrolmentRole, Person, Region
from provisioning.services import schools as svc
from provisioning.services.sign_on import account_for_claim, e164


def _person(session: Session, name: str, user_id: str | None, **contact: str) -> None:
    session.add(Person(display_name=name, matrix_user_id=user_id, **contact))
    session.flush()


def test_a_phone_typed_any_way_finds_its_one_account(migrated_session: Session) -> None:
    _person(migrated_session, "Анна", "@anna:localhost", phone="8 (912) 345-67-89")
    _person(migrated_session, "Борис", "@boris:localhost", phone="+7 912 345-67-88")
    for claimed in ("+79123456789", "+7 (912) 345 67 89", "89123456789"):
        assert account_for_claim(migrated_session, "phone_number", claimed) == "@anna:localhost"
    assert account_for_claim(migrated_session, "phone_number", "+79123456700") is None
    assert account_for_claim(migrated_session, "phone_number", "not a phone") is None


def test_a_shared_phone_links_nobody(migrated_session: Session) -> None:
    """A parent's number given for their child too: guessing could open the wrong chats."""
    _person(migrated_session, "Мама", "@mama:localhost", phone="+79120000011")
    _person(migrated_session, "Сын", "@son:localhost", phone="8 912 000-00-11")
    assert account_for_claim(migrated_session, "phone_number", "+79120000011") is None


def test_e_mail_matches_without_case_and_people_without_accounts_are_skipped(
    migrated_session: Session,
) -> None:
    _person(migrated_session, "Вера", "@vera:localhost", email="Vera.Teacher@School.example")
    _person(migrated_session, "Без аккаунта", None, email="nobody@school.example")
    assert (
        account_for_claim(migrated_session, "email", "vera.teacher@school.example")
        == "@vera:localhost"
    )
    assert account_for_claim(migrated_session, "email", "nobody@school.example") is None
    assert account_for_claim(migrated_session, "email", "x" * 400) is None


def test_e164() -> None:
    assert e164("8 (912) 345-67-89") == "+79123456789"
    assert e164("+44 20 7946 0958") == "+442079460958"
    assert e164("12") is None


def test_a_roster_id_finds_its_account_exactly(migrated_session: Session) -> None:
    _person(migrated_session, "Глеб", "@gleb:localhost", roster_id="RU-77-000123")
    _person(migrated_session, "Нет аккаунта", None, roster_id="RU-77-000124")
    assert account_for_claim(migrated_session, "roster_id", "RU-77-000123") == "@gleb:localhost"
    assert account_for_claim(migrated_session, "roster_id", " RU-77-000123 ") == "@gleb:localhost"
    for other in ("ru-77-000123", "RU-77-000124", "RU-77-0001", "x" * 400, ""):
        assert account_for_claim(migrated_session, "roster_id", other) is None, other


def test_migration_0022_matches_the_model_and_keeps_everyone_s_rows(
    migrated_session: Session, migrated_engine: Engine
) -> None:
    """people.roster_id as the model says, and one step down and up again loses no person
    and no enrolment (a batch copy of `people` on SQLite would cascade-delete them)."""
    context = MigrationContext.configure(migrated_session.connection())
    assert [d for d in compare_metadata(context, Base.metadata) if "roster_id" in str(d)] == []
    region = Region(server_name="hs", name="Регион")
    migrated_session.add(region)
    migrated_session.flush()
    school = svc.create_school(migrated_session, region, "Школа", academic_year=2026)
    pupil = svc.add_person(migrated_session, "Глеб", "@gleb:hs", roster_id="RU-1")
    fifth = svc.add_class(migrated_session, school, 5, "А")
    svc.enrol(migrated_session, pupil, fifth, EnrolmentRole.PUPIL)
    migrated_session.commit()
    config = alembic_config(migrated_engine)
    command.downgrade(config, "-1")
    command.upgrade(config, "head")
    with make_session_factory(migrated_engine)() as session:
        assert session.scalar(select(func.count()).select_from(Enrolment)) == 1
        assert session.scalar(select(Person.roster_id).where(Person.id == pupil.id)) is None
