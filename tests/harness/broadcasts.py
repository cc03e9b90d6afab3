"""A school for the broadcast tests: two classes, their teachers, a director, placed on
the running region's Synapse; and pictures of any size to use as covers."""

from __future__ import annotations

import io
import secrets
import time
from dataclasses import dataclass

import httpx
from PIL import Image
from sqlalchemy import select

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.db.models import EnrolmentRole, ManagedRoom, Region, Role, RoomKind
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from tests.harness.region import region_session

PASSWORD = "broadcast-password-1"


@dataclass(frozen=True)
class BroadcastSchool:
    school_id: int
    director: str  # a school administrator
    teacher: str  # class teacher of 5А: a member of its chat
    other_teacher: str  # class teacher of 6Б only
    outsider: str  # a teacher of another school
    chat_alias: str  # 5А's class chat (localpart)
    chat_room_id: str
    other_chat_alias: str  # 6Б's class chat
    foreign_alias: str  # a room of the other school


def picture(width: int, height: int, kind: str = "JPEG") -> bytes:
    """A picture of the given size (a gradient, so JPEG has something to encode)."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    image.save(out, kind)
    return out.getvalue()


def login_of(user_id: str) -> str:
    return user_id[1:].partition(":")[0]


async def set_passwords(region: LocalDeployment, *user_ids: str) -> None:
    s = region.settings
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as client:
        for user_id in user_ids:
            await client.admin_put_user(user_id, {"password": PASSWORD})


def make_school(region: LocalDeployment) -> BroadcastSchool:
    """Create the school in the region's database, ask for a run, wait for its rooms.

    The caller sets the passwords (`set_passwords`) in its own event loop.
    """
    tag = secrets.token_hex(3)
    with region_session(region) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        school = svc.create_school(
            session, region_row, f"Гимназия трансляций {tag}", slug=f"b-{tag}", academic_year=2026
        )
        other = svc.create_school(
            session, region_row, f"Чужая гимназия {tag}", slug=f"bo-{tag}", academic_year=2026
        )
        first, second = (
            svc.add_class(session, school, 5, "А"),
            svc.add_class(session, school, 6, "Б"),
        )
        allocate = LocalpartAllocator(session, region.settings.server_name)
        ids: dict[str, str] = {}
        for key, name, where, school_class in (
            ("director", f"Директор {tag}", school, None),
            ("teacher", f"Учительница {tag}", school, first),
            ("other_teacher", f"Учитель {tag}", school, second),
            ("outsider", f"Чужой {tag}", other, None),
        ):
            person = svc.add_person(session, name, matrix_user_id=allocate.user_id(name))
            role = Role.SCHOOL_ADMIN if key == "director" else Role.TEACHER
            svc.grant_school_role(session, person, where, role)
            if school_class is not None:
                svc.enrol(session, person, school_class, EnrolmentRole.CLASS_TEACHER)
            ids[key] = str(person.matrix_user_id)
        session.commit()
        school_id, other_id = school.id, other.id
        first_id, second_id = first.id, second.id
    s = region.settings
    httpx.post(
        f"{s.provisioning_url}/internal/reconcile",
        headers={"Authorization": f"Bearer {s.as_token.get_secret_value()}"},
        timeout=10,
    ).raise_for_status()
    deadline = time.monotonic() + 180
    rooms: list[ManagedRoom] = []
    with region_session(region) as session:
        while time.monotonic() < deadline:
            session.rollback()  # see what the service's reconciler committed since
            rooms = list(
                session.scalars(
                    select(ManagedRoom).where(ManagedRoom.school_id.in_((school_id, other_id)))
                )
            )
            # Two schools of five rooms (space, announcements, materials, events, staff)
            # and two classes of four.
            if len(rooms) == 2 * 5 + 2 * 4 and all(room.room_id for room in rooms):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"the schools' rooms were not made: {[r.alias for r in rooms]}")
        chats = {room.class_id: room for room in rooms if room.kind is RoomKind.CLASS_CHAT}
        foreign = next(
            r for r in rooms if r.school_id == other_id and r.kind is RoomKind.STAFF_ROOM
        )
        return BroadcastSchool(
            school_id=school_id,
            director=ids["director"],
            teacher=ids["teacher"],
            other_teacher=ids["other_teacher"],
            outsider=ids["outsider"],
            chat_alias=chats[first_id].alias,
            chat_room_id=str(chats[first_id].room_id),
            other_chat_alias=chats[second_id].alias,
            foreign_alias=foreign.alias,
        )
