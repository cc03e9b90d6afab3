"""The rules of «это не я», on a migrated database (SQLite, then PostgreSQL): only a
personal link, once, with a bounded comment; suspended at once; listed to its own school;
re-issued under a corrected name or dismissed."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.base import Base
from provisioning.db.models import AuditEvent, EnrolmentRole, InviteLink, Person, Region, Role
from provisioning.services import invites, limits, not_me
from provisioning.services import schools as svc
from provisioning.services.schools import DomainError


def test_the_migration_matches_the_model(migrated_session: Session) -> None:
    context = MigrationContext.configure(migrated_session.connection())
    diff = [
        d
        for d in compare_metadata(context, Base.metadata)
        if "invite_reports" in str(d) or "channel" in str(d)
    ]
    assert diff == []


def _setup(session: Session) -> tuple[InviteLink, InviteLink, int]:
    region = Region(server_name="hs", name="Регион")
    session.add(region)
    session.flush()
    school = svc.create_school(session, region, "Школа № 57", academic_year=2026)
    other = svc.create_school(session, region, "Школа № 2", academic_year=2026)
    a5 = svc.add_class(session, school, 5, "А")
    pupil = svc.add_person(session, "Вера Ошибкина", None)
    svc.enrol(session, pupil, a5, EnrolmentRole.PUPIL)
    personal = invites.create_invite(session, school, Role.PUPIL, school_class=a5, person=pupil,
                                     created_by=None, actor="system")  # fmt: skip
    class_link = invites.create_invite(session, school, Role.PUPIL, school_class=a5,
                                       created_by=None, actor="system")  # fmt: skip
    session.commit()
    return personal, class_link, other.id


def test_a_report_suspends_the_link_once(migrated_session: Session) -> None:
    personal, class_link, other_school = _setup(migrated_session)
    with pytest.raises(DomainError, match="at most 500"):
        not_me.report(migrated_session, personal, "я" * 501, origin="192.0.2.1")
    with pytest.raises(DomainError, match="one named person"):
        not_me.report(migrated_session, class_link, "", origin="192.0.2.1")
    not_me.report(migrated_session, personal, "  лист\n перепутали ", origin="192.0.2.1")
    migrated_session.commit()
    with pytest.raises(invites.InviteUnusable, match="suspended") as refused:
        invites.find_usable(migrated_session, personal.token)
    assert "Ask the school" in refused.value.template
    with pytest.raises(invites.InviteUnusable):
        invites.take_use(migrated_session, personal)
    with pytest.raises(DomainError, match="reported already"):
        not_me.report(migrated_session, personal, "", origin="192.0.2.1")
    (pending,) = not_me.pending(migrated_session, personal.school_id)
    assert (pending.name, pending.class_label, pending.comment) == (
        "Вера Ошибкина",
        "5А",
        "лист перепутали",
    )
    assert not_me.pending(migrated_session, other_school) == []
    with pytest.raises(DomainError, match="no such request"):
        not_me.open_report(migrated_session, other_school, pending.id)
    assert migrated_session.scalar(select(AuditEvent).where(AuditEvent.action == "invite.not_me"))


def test_reissue_corrects_the_name_and_dismiss_closes(migrated_session: Session) -> None:
    personal, _, _ = _setup(migrated_session)
    row = not_me.report(migrated_session, personal, "", origin=None)
    migrated_session.commit()
    with pytest.raises(limits.FieldRefused):
        not_me.reissue(migrated_session, row, "В", created_by=None, actor="@director:hs")
    migrated_session.rollback()
    new = not_me.reissue(migrated_session, row, " Вера  Правкина ", created_by=None,
                         actor="@director:hs")  # fmt: skip
    migrated_session.commit()
    assert new.person_id == personal.person_id and new.class_id == personal.class_id
    assert new.max_uses == 1 and invites.find_usable(migrated_session, new.token) == new
    assert not_me.pending(migrated_session, personal.school_id) == []
    person = migrated_session.get(Person, personal.person_id)
    assert person is not None and person.display_name == "Вера Правкина"
    with pytest.raises(DomainError, match="no such request"):  # decided already
        not_me.open_report(migrated_session, personal.school_id, row.id)
    second = not_me.report(migrated_session, new, "", origin=None)
    not_me.dismiss(migrated_session, second, actor="@director:hs")
    migrated_session.commit()
    assert not_me.pending(migrated_session, personal.school_id) == []
    with pytest.raises(invites.InviteUnusable, match="suspended"):
        invites.find_usable(migrated_session, new.token)
