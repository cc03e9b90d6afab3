"""Who is who in the region, as provisioning last described it: the policy's only data.

Provisioning writes a snapshot file (`provisioning/policy/snapshot.py`); this module reads
it into indexes shaped for the questions the rules ask, so that a decision is a handful of
dictionary and set look-ups. Nothing here touches Synapse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SNAPSHOT_FORMAT = 1

# Room kinds, as provisioning names them (provisioning.db.models.RoomKind).
SCHOOL_SPACE = "school_space"
ANNOUNCEMENTS = "announcements"
STAFF_ROOM = "staff_room"
CLASS_SPACE = "class_space"
CLASS_CHAT = "class_chat"
CLASS_CHANNEL = "class_channel"
CLASS_PARENTS = "class_parents"
FAMILY = "family"
SCHOOL_MATERIALS = "school_materials"
SCHOOL_EVENTS = "school_events"
CHANNELS = frozenset({ANNOUNCEMENTS, CLASS_CHANNEL, SCHOOL_MATERIALS, SCHOOL_EVENTS})
SPACES = frozenset({SCHOOL_SPACE, CLASS_SPACE})
PUPIL_ROOMS = frozenset(
    {
        SCHOOL_SPACE,
        ANNOUNCEMENTS,
        SCHOOL_MATERIALS,
        SCHOOL_EVENTS,
        CLASS_SPACE,
        CLASS_CHAT,
        CLASS_CHANNEL,
        FAMILY,
    }
)


class SnapshotError(ValueError):
    """The snapshot cannot be used; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class ManagedRoom:
    """A room provisioning manages: its kind and whose it is."""

    kind: str
    school: int | None
    school_class: int | None = None
    federated: bool = False  # the school let people of other regions join this room

    @property
    def has_pupils(self) -> bool:
        return self.kind in PUPIL_ROOMS


@dataclass(frozen=True, slots=True)
class Pupil:
    school: int | None  # None: registered but not confirmed yet, so placed nowhere
    school_class: int | None


@dataclass
class Directory:
    """The region's people and managed rooms, indexed for the rules."""

    bot: str
    region_admins: frozenset[str] = frozenset()
    school_admins: dict[str, frozenset[int]] = field(default_factory=dict)
    staff: dict[str, frozenset[int]] = field(default_factory=dict)  # admins and teachers
    teaches: dict[str, frozenset[int]] = field(default_factory=dict)  # class IDs
    # Schools in which a person is the class teacher (классный руководитель) of a class.
    leads_in: dict[str, frozenset[int]] = field(default_factory=dict)
    pupils: dict[str, Pupil] = field(default_factory=dict)
    children: dict[str, frozenset[str]] = field(default_factory=dict)
    parents: dict[str, frozenset[str]] = field(default_factory=dict)
    rooms: dict[str, ManagedRoom] = field(default_factory=dict)

    # --- questions the rules ask ----------------------------------------------------------

    def is_pupil(self, user: str) -> bool:
        return user in self.pupils

    def is_staff_of(self, user: str, school: int | None) -> bool:
        return user in self.region_admins or (
            school is not None and school in self.staff.get(user, ())
        )

    def is_admin_of(self, user: str, school: int | None) -> bool:
        return user in self.region_admins or (
            school is not None and school in self.school_admins.get(user, ())
        )

    def is_class_teacher_in(self, user: str, school: int | None) -> bool:
        return school is not None and school in self.leads_in.get(user, ())

    def teaches_class(self, user: str, school_class: int | None) -> bool:
        return school_class is not None and school_class in self.teaches.get(user, ())

    def schools_of(self, user: str) -> frozenset[int]:
        """Every school a person belongs to, in any role (a parent: their children's)."""
        schools = set(self.staff.get(user, ()))
        pupil = self.pupils.get(user)
        if pupil is not None and pupil.school is not None:
            schools.add(pupil.school)
        for child in self.children.get(user, ()):
            child_place = self.pupils.get(child)
            if child_place is not None and child_place.school is not None:
                schools.add(child_place.school)
        return frozenset(schools)

    def classes_of_children(self, parent: str) -> frozenset[int]:
        return frozenset(
            place.school_class
            for child in self.children.get(parent, ())
            if (place := self.pupils.get(child)) is not None and place.school_class is not None
        )

    def belongs_to(self, user: str, school: int | None) -> bool:
        return user in self.region_admins or (
            school is not None and school in self.schools_of(user)
        )


def _str_set(values: Iterable[Any]) -> frozenset[str]:
    return frozenset(str(v) for v in values)


def load_directory(raw: bytes | str) -> Directory:
    """Parse a snapshot file's content.

    Raises:
        SnapshotError: not JSON, another format, or a field of the wrong shape.
    """
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"the snapshot is not JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"the snapshot is not of format {SNAPSHOT_FORMAT}")
    try:
        return _directory(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"the snapshot is malformed ({type(exc).__name__}: {exc})") from exc


def _directory(data: Mapping[str, Any]) -> Directory:
    staff: dict[str, set[int]] = {}
    admins: dict[str, set[int]] = {}
    for school_id, school in data["schools"].items():
        for user in school["admins"]:
            admins.setdefault(user, set()).add(int(school_id))
            staff.setdefault(user, set()).add(int(school_id))
        for user in school["teachers"]:
            staff.setdefault(user, set()).add(int(school_id))
    teaches: dict[str, set[int]] = {}
    leads_in: dict[str, set[int]] = {}
    pupils: dict[str, Pupil] = {}
    for class_id, school_class in data["classes"].items():
        for user in school_class["teachers"]:
            teaches.setdefault(user, set()).add(int(class_id))
        # Absent from snapshots written before school events existed: nobody leads.
        for user in school_class.get("class_teachers", ()):
            leads_in.setdefault(user, set()).add(int(school_class["school"]))
        for user in school_class["pupils"]:
            pupils[user] = Pupil(int(school_class["school"]), int(class_id))
    for user in data.get("unplaced_pupils", []):
        pupils.setdefault(user, Pupil(None, None))
    children = {parent: _str_set(kids) for parent, kids in data["parents"].items()}
    parents: dict[str, set[str]] = {}
    for parent, kids in children.items():
        for child in kids:
            parents.setdefault(child, set()).add(parent)
    rooms = {
        room_id: ManagedRoom(
            kind=str(room["kind"]),
            school=None if room.get("school") is None else int(room["school"]),
            school_class=None if room.get("class") is None else int(room["class"]),
            federated=bool(room.get("federated", False)),
        )
        for room_id, room in data["rooms"].items()
    }
    return Directory(
        bot=str(data["bot"]),
        region_admins=_str_set(data.get("region_admins", [])),
        school_admins={u: frozenset(s) for u, s in admins.items()},
        staff={u: frozenset(s) for u, s in staff.items()},
        teaches={u: frozenset(c) for u, c in teaches.items()},
        leads_in={u: frozenset(s) for u, s in leads_in.items()},
        pupils=pupils,
        children=children,
        parents={c: frozenset(p) for c, p in parents.items()},
        rooms=rooms,
    )
