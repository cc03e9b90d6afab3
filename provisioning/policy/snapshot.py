"""The policy snapshot: who is who, written for Synapse's school policy module to read.

The module (synapse-config/modules/school_policy) decides every invite, join and post
inside Synapse and must not wait on provisioning, so provisioning hands it the facts as
a file: schools with their administration and teachers, classes with their teachers and
confirmed pupils, pupils not confirmed yet, parents with their children, and the rooms
Parta manages. The file is replaced atomically, only when its content changes; otherwise
it is touched, since the module reads an old file as "provisioning has stopped" and then
refuses decisions about pupils (fail closed).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.db.models import (
    Enrolment,
    EnrolmentRole,
    ManagedRoom,
    ParentLink,
    Person,
    Role,
    RoleAssignment,
    SchoolClass,
    pupil_ids,
)

SNAPSHOT_FORMAT = 1  # school_policy.directory.SNAPSHOT_FORMAT


def build_snapshot(session: Session, bot: str) -> dict[str, Any]:
    """Read the facts the policy decides from, in a few bulk queries."""
    mxid = {
        person_id: str(user_id)
        for person_id, user_id in session.execute(
            select(Person.id, Person.matrix_user_id).where(Person.matrix_user_id.is_not(None))
        )
    }
    region_admins: set[str] = set()
    schools: dict[int, dict[str, set[str]]] = defaultdict(
        lambda: {"admins": set(), "teachers": set()}
    )
    for person_id, role, school_id in session.execute(
        select(RoleAssignment.person_id, RoleAssignment.role, RoleAssignment.school_id)
    ):
        user = mxid.get(person_id)
        if user is None:
            continue
        if role is Role.REGION_ADMIN:
            region_admins.add(user)
        elif role is Role.SCHOOL_ADMIN and school_id is not None:
            schools[school_id]["admins"].add(user)
        elif role is Role.TEACHER and school_id is not None:
            schools[school_id]["teachers"].add(user)

    active = {
        class_id: school_id
        for class_id, school_id in session.execute(
            select(SchoolClass.id, SchoolClass.school_id).where(SchoolClass.archived_at.is_(None))
        )
    }
    classes: dict[int, dict[str, Any]] = {
        class_id: {"school": school_id, "teachers": set(), "class_teachers": set(), "pupils": set()}
        for class_id, school_id in active.items()
    }
    unplaced: set[str] = set()
    for person_id, class_id, place, confirmed_at in session.execute(
        select(Enrolment.person_id, Enrolment.class_id, Enrolment.role, Enrolment.confirmed_at)
    ):
        user = mxid.get(person_id)
        if user is None or class_id not in classes:
            continue
        if place is not EnrolmentRole.PUPIL:
            classes[class_id]["teachers"].add(user)
            if place is EnrolmentRole.CLASS_TEACHER:
                classes[class_id]["class_teachers"].add(user)
            schools[active[class_id]]["teachers"].add(user)  # whoever teaches a class is staff
        elif confirmed_at is None:
            unplaced.add(user)  # a child still, protected, though not of the school yet
        else:
            classes[class_id]["pupils"].add(user)
    for school_class in classes.values():
        unplaced -= school_class["pupils"]

    parents: dict[str, set[str]] = defaultdict(set)
    for parent_id, child_id in session.execute(
        select(ParentLink.parent_id, ParentLink.child_id).where(
            ParentLink.parent_id.not_in(pupil_ids())  # a pupil is nobody's parent
        )
    ):
        if parent_id in mxid and child_id in mxid:
            parents[mxid[parent_id]].add(mxid[child_id])

    rooms = {
        room_id: {
            "kind": kind.value,
            "school": school_id,
            "class": class_id,
            "federated": federated,
        }
        for room_id, kind, school_id, class_id, federated in session.execute(
            select(
                ManagedRoom.room_id,
                ManagedRoom.kind,
                ManagedRoom.school_id,
                ManagedRoom.class_id,
                ManagedRoom.federated,
            ).where(ManagedRoom.room_id.is_not(None))
        )
    }
    return {
        "format": SNAPSHOT_FORMAT,
        "bot": bot,
        "region_admins": sorted(region_admins),
        "schools": {
            str(i): {k: sorted(v) for k, v in people.items()}
            for i, people in sorted(schools.items())
        },
        "classes": {
            str(i): {
                "school": c["school"],
                "teachers": sorted(c["teachers"]),
                "class_teachers": sorted(c["class_teachers"]),
                "pupils": sorted(c["pupils"]),
            }
            for i, c in sorted(classes.items())
        },
        "unplaced_pupils": sorted(unplaced),
        "parents": {parent: sorted(kids) for parent, kids in sorted(parents.items())},
        "rooms": dict(sorted(rooms.items())),
    }


def write_snapshot(path: Path, snapshot: dict[str, Any]) -> bool:
    """Replace the file atomically if its content changed, else touch it; True if replaced."""
    content = json.dumps(snapshot, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        if path.read_bytes() == content:
            os.utime(path)  # still current: tell the module provisioning is alive
            return False
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".snapshot-", delete=False) as tmp:
        tmp.write(content)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.chmod(tmp.name, 0o600)  # who is whose child: for Synapse's eyes only
    os.replace(tmp.name, path)
    return True


def refresh_snapshot(session: Session, path: Path, bot: str) -> bool:
    return write_snapshot(path, build_snapshot(session, bot))
