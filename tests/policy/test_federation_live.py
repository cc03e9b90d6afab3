"""The school policy across federation: two real regions on loopback (tests/harness/federation.py).

Region A has a school; region B is another region on A's allow-list, with a guest teacher.
People of B meet A's adults, never A's pupils, and enter only the rooms A's school opened.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from matrix.client import MatrixClient, path
from parta.deployment import LocalDeployment
from provisioning.db.models import EnrolmentRole, ManagedRoom, Region, Role, RoomKind, School
from provisioning.reconciler.run import reconcile_region
from provisioning.services import schools as svc
from tests.harness.federation import CERTIFICATE, federated_regions
from tests.harness.region import region_session
from tests.harness.waiting import policy_loaded_snapshot
from tests.matrix_users import new_person
from tests.policy.test_policy_live import Account, People, Person, ok, refused

PASSWORD = "federation-password-1"
REMOTE = "Люди с других серверов не могут общаться с учениками"
CLOSED = "закрыта для людей с других серверов"


@dataclass
class Federation:
    a: LocalDeployment
    b: LocalDeployment


@dataclass
class SchoolA:
    school_id: int
    people: dict[str, str]  # key -> user ID on region A
    rooms: dict[str, str]  # "staff", "chat" -> room ID
    aliases: dict[str, str]  # the same keys -> full alias
    guest: str  # a teacher of region B
    guest_password: str


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    base: Path = tmp_path_factory.mktemp("federation")
    with federated_regions(base) as (a, b):
        yield Federation(a, b)


@pytest.fixture(scope="module")
def db_a(federation: Federation) -> Iterator[Session]:
    with region_session(federation.a) as session:
        yield session


def bot_of(region: LocalDeployment) -> MatrixClient:
    s = region.settings
    return MatrixClient(s.homeserver_url, s.as_token.get_secret_value())


async def reconcile_a(federation: Federation, db: Session) -> None:
    async with bot_of(federation.a) as client:
        report = await reconcile_region(db, client, federation.a.settings, wait_s=120)
    assert not report.applied.failed
    await policy_loaded_snapshot(federation.a)  # the one the run wrote


@pytest.fixture(scope="module")
async def school(federation: Federation, db_a: Session) -> SchoolA:
    tag = secrets.token_hex(3)
    server = federation.a.settings.server_name
    region_row = db_a.scalar(select(Region))
    assert region_row is not None
    school = svc.create_school(db_a, region_row, f"Школа {tag}", academic_year=2026)
    a5 = svc.add_class(db_a, school, 5, "А")
    names = {
        "director": "Светлана Директор", "olga": "Ольга Учитель", "ivan": "Иван Ученик",
        "anna": "Анна Мама Ивана",
    }  # fmt: skip
    people = {k: svc.add_person(db_a, name, f"@{k}-{tag}:{server}") for k, name in names.items()}
    svc.grant_school_role(db_a, people["director"], school, Role.SCHOOL_ADMIN)
    svc.grant_school_role(db_a, people["olga"], school, Role.TEACHER)
    svc.enrol(db_a, people["olga"], a5, EnrolmentRole.CLASS_TEACHER)
    svc.enrol(db_a, people["ivan"], a5, EnrolmentRole.PUPIL)
    svc.link_parent(db_a, people["anna"], people["ivan"])
    db_a.commit()
    await reconcile_a(federation, db_a)
    async with bot_of(federation.a) as client:
        for person in people.values():
            await client.admin_put_user(str(person.matrix_user_id), {"password": PASSWORD})
    async with bot_of(federation.b) as client:
        guest, guest_password = await new_person(client, federation.b, "guest")
    rooms, aliases = {}, {}
    for record in db_a.scalars(select(ManagedRoom).where(ManagedRoom.school_id == school.id)):
        label = {RoomKind.STAFF_ROOM: "staff", RoomKind.CLASS_CHAT: "chat"}.get(record.kind)
        if label is not None:
            assert record.room_id is not None
            rooms[label], aliases[label] = record.room_id, f"#{record.alias}:{server}"
    return SchoolA(
        school.id, {k: str(p.matrix_user_id) for k, p in people.items()}, rooms, aliases,
        guest, guest_password,
    )  # fmt: skip


@pytest.fixture(scope="module")
async def person(federation: Federation, school: SchoolA) -> AsyncIterator[People]:
    """Logged-in clients: A's people on region A, the guest on region B."""

    def account(key: str) -> Account:
        if key == "guest":
            return federation.b.settings.homeserver_url, school.guest, school.guest_password
        return federation.a.settings.homeserver_url, school.people[key], PASSWORD

    people = People(account)
    yield people
    await people.close()


async def members_on_a(federation: Federation, room_id: str) -> set[str]:
    async with bot_of(federation.a) as client:
        answer = await client.request("GET", path("rooms", room_id, "joined_members"))
    return set(answer["joined"])


async def membership(viewer: Person, room_id: str, user_id: str) -> str | None:
    """A member's membership as someone in the room sees it (None: never a member)."""
    answer = await viewer.call("GET", path("rooms", room_id, "state", "m.room.member", user_id))
    return answer.json().get("membership") if answer.status_code == 200 else None


async def test_the_regions_reach_each_other(federation: Federation) -> None:
    """The premise of the other tests: each region serves federation over TLS at its name."""
    b_name = federation.b.settings.server_name
    trusted = ssl.create_default_context(cafile=federation.b.settings.synapse_dir / CERTIFICATE)
    async with httpx.AsyncClient(verify=trusted, timeout=10) as http:
        answer = await http.get(f"https://{b_name}/_matrix/key/v2/server")
    assert answer.status_code == 200 and answer.json()["server_name"] == b_name


async def test_a_guest_of_another_region_meets_the_adults(person: People, school: SchoolA) -> None:
    guest, olga = await person("guest"), await person("olga")
    # The guest writes to a teacher of A; the teacher answers.
    room = await guest.create_room(invite=[school.people["olga"]], is_direct=True)
    assert ok(room)
    room_id = room.json()["room_id"]
    assert ok(await olga.join(room_id))
    # A teacher of A invites the guest into her own room.
    own = (await olga.create_room(name="Методическое объединение")).json()["room_id"]
    assert ok(await olga.invite(own, school.guest))
    assert ok(await guest.join(own))


async def test_a_guest_of_another_region_never_reaches_a_pupil(
    federation: Federation, person: People, school: SchoolA
) -> None:
    guest, ivan = await person("guest"), await person("ivan")
    # An invitation from region B: region A refuses it, so it never reaches the child.
    room_id = (await guest.create_room(name="Олимпиада")).json()["room_id"]
    answer = await guest.invite(room_id, school.people["ivan"])
    assert answer.status_code == 403, answer.text
    assert await membership(guest, room_id, school.people["ivan"]) is None
    # A direct chat from B at creation time fails the same way.
    direct = await guest.create_room(invite=[school.people["ivan"]], is_direct=True)
    assert direct.status_code == 403, direct.text
    # The pupil cannot pull the guest in either: refused at home, in the region's language.
    own = (await ivan.create_room(name="Мой чат")).json()["room_id"]
    assert refused(await ivan.invite(own, school.guest), REMOTE)
    assert refused(await ivan.create_room(invite=[school.guest], is_direct=True), REMOTE)


async def test_a_guest_cannot_enter_a_class_by_its_address(
    federation: Federation, person: People, school: SchoolA
) -> None:
    guest, olga = await person("guest"), await person("olga")
    answer = await guest.join(school.aliases["chat"])  # resolved over federation, then refused
    assert answer.status_code == 403, answer.text
    assert school.guest not in await members_on_a(federation, school.rooms["chat"])
    # Not even a teacher of the class may bring the guest into the class chat: it has pupils.
    assert refused(await olga.invite(school.rooms["chat"], school.guest), CLOSED)


async def test_a_room_the_school_opens_takes_a_guest_until_it_is_closed(
    federation: Federation, db_a: Session, person: People, school: SchoolA
) -> None:
    guest, director = await person("guest"), await person("director")
    staff, staff_alias = school.rooms["staff"], school.aliases["staff"]
    school_row = db_a.get(School, school.school_id)
    assert school_row is not None
    alias = staff_alias[1:].split(":", 1)[0]
    # Closed (the default): not even the director can invite the guest into the staff room.
    assert refused(await director.invite(staff, school.guest), CLOSED)

    svc.set_room_federation(db_a, school_row, alias, True, actor=school.people["director"])
    db_a.commit()
    await reconcile_a(federation, db_a)
    assert ok(await director.invite(staff, school.guest))
    assert ok(await guest.join(staff_alias))
    assert school.guest in await members_on_a(federation, staff)
    # The reconciler leaves the guest of an open room in place, run after run.
    await reconcile_a(federation, db_a)
    assert school.guest in await members_on_a(federation, staff)

    svc.set_room_federation(db_a, school_row, alias, False, actor=school.people["director"])
    db_a.commit()
    await reconcile_a(federation, db_a)  # closing removes the guests
    assert school.guest not in await members_on_a(federation, staff)
    assert refused(await director.invite(staff, school.guest), CLOSED)


async def test_a_guest_cannot_join_a_pupils_open_room_from_another_server(
    federation: Federation, person: People, school: SchoolA
) -> None:
    """A pupil's own room with a public join rule, whose address the guest learned."""
    ivan, guest = await person("ivan"), await person("guest")
    name = f"games-{secrets.token_hex(3)}"
    created = await ivan.create_room(name="Игры", preset="public_chat", room_alias_name=name)
    assert ok(created)
    room_id = created.json()["room_id"]
    answer = await guest.join(f"#{name}:{federation.a.settings.server_name}")
    assert answer.status_code == 403, answer.text  # region A refused to make the join
    assert await membership(ivan, room_id, school.guest) is None
