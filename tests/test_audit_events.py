"""Audit events land in the log of the school they concern (SQLite, then PostgreSQL)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from provisioning.db.engine import make_session_factory
from provisioning.db.migrate import alembic_config
from provisioning.db.models import AuditEvent, EnrolmentRole, Region
from provisioning.services import schools as svc


def test_a_parent_link_is_in_the_log_of_the_childs_school(migrated_session: Session) -> None:
    session = migrated_session
    region = Region(server_name="hs", name="Регион")
    session.add(region)
    session.flush()
    school = svc.create_school(session, region, "Школа № 57", academic_year=2026)
    class_5a = svc.add_class(session, school, 5, "А")
    pupil = svc.add_person(session, "Иван", "@ivan:hs")
    svc.enrol(session, pupil, class_5a, EnrolmentRole.PUPIL)
    newcomer = svc.add_person(session, "Пётр", "@petr:hs")  # in no class yet
    svc.link_parent(session, svc.add_person(session, "Анна", "@anna:hs"), pupil)
    svc.link_parent(session, svc.add_person(session, "Ольга", "@olga:hs"), newcomer)
    session.commit()

    links = session.execute(
        select(AuditEvent.details, AuditEvent.school_id).where(AuditEvent.action == "parent.linked")
    ).all()
    assert sorted((d["child_name"], school_id) for d, school_id in links) == [
        ("Иван", school.id),
        ("Пётр", None),  # the region's log keeps it until the child has a class
    ]


def test_migration_0012_puts_earlier_parent_links_in_the_childs_school(
    migrated_engine: Engine,
) -> None:
    with make_session_factory(migrated_engine)() as session:
        region = Region(server_name="hs", name="Регион")
        session.add(region)
        session.flush()
        school = svc.create_school(session, region, "Школа № 57", academic_year=2026)
        pupil = svc.add_person(session, "Иван", "@ivan:hs")
        svc.enrol(session, pupil, svc.add_class(session, school, 5, "А"), EnrolmentRole.PUPIL)
        svc.link_parent(session, svc.add_person(session, "Анна", "@anna:hs"), pupil)
        # As the code before 0012 recorded it: in no school's log.
        session.execute(update(AuditEvent).values(school_id=None).where(
            AuditEvent.action == "parent.linked"
        ))  # fmt: skip
        session.commit()
        school_id = school.id
    config = alembic_config(migrated_engine)
    command.downgrade(config, "0011")
    command.upgrade(config, "head")
    with make_session_factory(migrated_engine)() as session:
        linked = session.scalars(
            select(AuditEvent.school_id).where(AuditEvent.action == "parent.linked")
        ).all()
    assert linked == [school_id]
