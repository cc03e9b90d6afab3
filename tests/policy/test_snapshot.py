"""Provisioning's policy snapshot, read back by the module's loader (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from school_policy import rules
from school_policy.directory import load_directory
from school_policy.rules import Rules
from school_policy.snapshot_store import SnapshotStore
from sqlalchemy.orm import Session

from provisioning.db.base import utcnow
from provisioning.db.models import (
    EnrolmentRole,
    ManagedRoom,
    ParentLink,
    Region,
    Role,
    RoomKind,
)
from provisioning.policy.snapshot import build_snapshot, write_snapshot
from provisioning.services import schools as svc

BOT = "@parta:hs"
RULES = Rules(server_name="hs")


@pytest.fixture
def session(migrated_session: Session) -> Session:
    return migrated_session  # SQLite, then PostgreSQL (tests/conftest.py)


def _region(session: Session) -> None:
    region = Region(server_name="hs", name="Регион")
    session.add(region)
    session.flush()
    school = svc.create_school(session, region, "Школа № 57", academic_year=2026)
    other = svc.create_school(session, region, "Школа № 2", academic_year=2026)
    a5, b5, c11 = (svc.add_class(session, school, g, "А") for g in (5, 6, 11))
    x7 = svc.add_class(session, other, 7, "А")
    keys = ("director", "olga", "math", "ivan", "masha", "senior", "anna", "newbie", "tanya")
    p = {k: svc.add_person(session, k, f"@{k}:hs") for k in (*keys, "petya")}
    svc.grant_school_role(session, p["director"], school, Role.SCHOOL_ADMIN)
    svc.grant_school_role(session, p["olga"], school, Role.TEACHER)
    svc.enrol(session, p["olga"], a5, EnrolmentRole.CLASS_TEACHER)
    maths = svc.add_subject(session, school, "Математика")
    # A subject teacher with no school role recorded:
    svc.enrol(session, p["math"], b5, EnrolmentRole.SUBJECT_TEACHER, subject=maths)
    svc.grant_school_role(session, p["tanya"], other, Role.TEACHER)
    svc.enrol(session, p["ivan"], a5, EnrolmentRole.PUPIL)
    svc.enrol(session, p["masha"], b5, EnrolmentRole.PUPIL)
    svc.enrol(session, p["senior"], c11, EnrolmentRole.PUPIL)
    svc.enrol(session, p["petya"], x7, EnrolmentRole.PUPIL)
    svc.link_parent(session, p["anna"], p["ivan"])
    # Issue 18: a pupil of another school linked as a «parent» before link_parent refused it.
    session.add(ParentLink(parent_id=p["petya"].id, child_id=p["ivan"].id))
    session.flush()
    newbie = svc.enrol(session, p["newbie"], a5, EnrolmentRole.PUPIL)
    newbie.confirmed_at = None  # registered through a class link; waits for confirmation
    c11.archived_at = utcnow()  # graduated: its pupils are no longer the school's pupils
    session.add(ManagedRoom(alias="school-shkola-57-2033a-channel", kind=RoomKind.CLASS_CHANNEL,
                            school_id=school.id, class_id=a5.id, room_id="!channel"))  # fmt: skip
    session.add(ManagedRoom(alias="school-shkola-57-staff", kind=RoomKind.STAFF_ROOM,
                            school_id=school.id, room_id=None))  # not created yet  # fmt: skip
    session.commit()


def test_the_snapshot_says_who_is_who(session: Session) -> None:
    _region(session)
    d = load_directory(json.dumps(build_snapshot(session, BOT)))
    assert d.bot == BOT
    assert d.is_admin_of("@director:hs", 1) and d.is_staff_of("@olga:hs", 1)
    assert d.is_staff_of("@math:hs", 1)  # teaching a class makes one staff of its school
    assert d.teaches_class("@olga:hs", 1) and not d.teaches_class("@olga:hs", 2)
    assert d.pupils["@ivan:hs"].school == 1 and d.pupils["@petya:hs"].school == 2
    assert d.pupils["@newbie:hs"].school is None  # protected, placed nowhere
    assert "@senior:hs" not in d.pupils  # graduated
    assert d.parents["@ivan:hs"] == {"@anna:hs"}
    assert "@petya:hs" not in d.children  # a pupil, though once linked as a parent
    assert set(d.rooms) == {"!channel"} and d.rooms["!channel"].kind == "class_channel"
    # And the rules read it as the director would expect.
    assert rules.may_meet(d, RULES, "@ivan:hs", "@masha:hs")
    assert rules.may_meet(d, RULES, "@ivan:hs", "@tanya:hs").reason == "outsider"
    assert rules.may_meet(d, RULES, "@anna:hs", "@masha:hs").reason == "other_child"
    text = {"msgtype": "m.text", "body": "Завтра контрольная"}
    assert rules.may_post(d, RULES, "@olga:hs", "!channel", "m.room.message", text)
    assert rules.may_post(d, RULES, "@math:hs", "!channel", "m.room.message", text).reason == (
        "channel"
    )


def test_the_file_is_replaced_only_when_it_changes_and_touched_otherwise(tmp_path: Path) -> None:
    target = tmp_path / "policy" / "snapshot.json"
    snapshot = {"format": 1, "bot": BOT, "schools": {}, "classes": {}, "parents": {}, "rooms": {}}
    assert write_snapshot(target, snapshot)
    assert target.stat().st_mode & 0o777 == 0o600
    old = time.time() - 3600
    os.utime(target, (old, old))
    inode = target.stat().st_ino
    assert not write_snapshot(target, snapshot)  # same content: touched, not replaced
    assert target.stat().st_ino == inode and target.stat().st_mtime > old + 3000
    assert write_snapshot(target, {**snapshot, "region_admins": ["@admin:hs"]})
    assert target.stat().st_ino != inode  # a new file, moved into place atomically


def test_the_store_keeps_the_last_good_snapshot_and_knows_its_age(tmp_path: Path) -> None:
    target = tmp_path / "snapshot.json"
    now = [time.time()]
    store = SnapshotStore(target, max_age_s=600, clock=lambda: now[0])
    assert not store.reload_if_changed() and store.directory is None and not store.fresh()
    snapshot = {"format": 1, "bot": BOT, "schools": {}, "classes": {}, "parents": {}, "rooms": {}}
    write_snapshot(target, snapshot)
    assert store.reload_if_changed() and store.fresh()
    assert not store.reload_if_changed()  # unchanged: not parsed again
    target.write_text("{broken", encoding="utf-8")
    assert not store.reload_if_changed()
    assert store.directory is not None and store.directory.bot == BOT  # the good one stays
    now[0] += 601
    assert not store.fresh()  # provisioning stopped touching the file


def test_the_module_names_room_kinds_as_provisioning_does() -> None:
    """The module imports nothing of provisioning (Synapse loads it alone): its copy of the
    room kinds and the snapshot format must still agree with provisioning's."""
    from school_policy import directory
    from school_policy.directory import SNAPSHOT_FORMAT as MODULE_FORMAT

    from provisioning.policy.snapshot import SNAPSHOT_FORMAT

    module_kinds = {
        getattr(directory, kind.name) for kind in RoomKind if hasattr(directory, kind.name)
    }
    assert module_kinds == {kind.value for kind in RoomKind}
    assert MODULE_FORMAT == SNAPSHOT_FORMAT
