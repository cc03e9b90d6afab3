"""The reconciler against the real Synapse, checked from people's own Matrix clients."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from nio import AsyncClient, JoinedRoomsResponse, LoginResponse, RoomSendResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.db.models import (
    EnrolmentRole,
    ManagedRoom,
    Person,
    Region,
    Role,
    School,
    SchoolClass,
)
from provisioning.reconciler.run import RunReport, reconcile
from provisioning.reconciler.state import UserID
from provisioning.services import schools as svc
from tests.harness.region import region_session
from tests.harness.waiting import eventually

PASSWORD = "lesson-password-1"


@pytest.fixture(scope="module")
def db(region: LocalDeployment) -> Iterator[Session]:
    with region_session(region) as session:
        yield session


@dataclass
class LiveSchool:
    school: School
    classes: dict[str, SchoolClass]
    people: dict[str, Person]
    tag: str

    def mxid(self, key: str) -> str:
        return str(self.people[key].matrix_user_id)


async def run(region: LocalDeployment, db: Session, **kwargs: bool) -> RunReport:
    """One run; it waits for a run of the region's own service (or a killed one's lease)."""
    s = region.settings
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as client:
        return await reconcile(
            db, client, server_name=s.server_name, bot=UserID(s.bot_user_id), wait_s=120,
            call_widget_url=s.call_widget_url,
            documents_widget_url=s.documents_widget_url,
            **kwargs,
        )  # fmt: skip


@pytest.fixture(scope="module")
async def live(region: LocalDeployment, db: Session) -> LiveSchool:
    tag = secrets.token_hex(3)
    region_row = db.scalar(select(Region))
    assert region_row is not None
    school = svc.create_school(db, region_row, f"Школа {tag}", academic_year=2026)
    classes = {
        label: svc.add_class(db, school, int(label[:-1]), label[-1])
        for label in ("5А", "5Б", "11А")
    }
    server = region.settings.server_name
    people = {
        key: svc.add_person(db, name, f"@{key}-{tag}:{server}")
        for key, name in {
            "olga": "Ольга Сергеевна",
            "ivan": "Иван Петров",
            "anna": "Анна Петрова",
            "petr": "Пётр Сидоров",
        }.items()
    }
    svc.grant_school_role(db, people["olga"], school, Role.TEACHER)
    svc.enrol(db, people["olga"], classes["5А"], EnrolmentRole.CLASS_TEACHER)
    svc.enrol(db, people["ivan"], classes["5А"], EnrolmentRole.PUPIL)
    svc.enrol(db, people["petr"], classes["11А"], EnrolmentRole.PUPIL)
    svc.link_parent(db, people["anna"], people["ivan"])
    db.commit()
    first = await run(region, db)
    assert first.applied.done == len(first.plan) > 0
    s = region.settings
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as client:
        for person in people.values():  # accounts are created without a password
            await client.admin_put_user(str(person.matrix_user_id), {"password": PASSWORD})
    return LiveSchool(school, classes, people, tag)


def room_id(db: Session, alias: str) -> str:
    record = db.get(ManagedRoom, alias)
    assert record is not None and record.room_id, alias
    return record.room_id


def alias_of(live: LiveSchool, suffix: str = "") -> str:
    return f"school-{live.school.slug}{suffix}"


class Devices:
    """One logged-in session per person for the whole module, as a real client keeps one
    (Synapse limits logins per account: five quickly, then one every few minutes)."""

    def __init__(self, region: LocalDeployment, live: LiveSchool) -> None:
        self.region, self.live = region, live
        self.clients: dict[str, AsyncClient] = {}

    async def __call__(self, key: str) -> AsyncClient:
        if key not in self.clients:
            client = AsyncClient(self.region.settings.homeserver_url, self.live.mxid(key))
            assert isinstance(await client.login(PASSWORD), LoginResponse)
            self.clients[key] = client
        return self.clients[key]


@pytest.fixture(scope="module")
async def device(region: LocalDeployment, live: LiveSchool) -> AsyncIterator[Devices]:
    devices = Devices(region, live)
    yield devices
    for client in devices.clients.values():
        await client.close()


async def joined_rooms(client: AsyncClient) -> set[str]:
    answer = await client.joined_rooms()
    assert isinstance(answer, JoinedRoomsResponse), answer
    return set(answer.rooms)


async def can_post(client: AsyncClient, room: str) -> bool:
    answer = await client.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "Привет"})
    return isinstance(answer, RoomSendResponse)


async def test_each_person_sees_exactly_their_rooms(
    region: LocalDeployment, db: Session, live: LiveSchool, device: Devices
) -> None:
    a5 = alias_of(live, "-2033a")
    school_wide = {
        alias_of(live, suffix) for suffix in ("", "-announcements", "-materials", "-events")
    }
    expected = {
        "ivan": school_wide | {a5, f"{a5}-chat", f"{a5}-channel"},
        "anna": school_wide | {a5, f"{a5}-channel", f"{a5}-parents"},
        "olga": school_wide
        | {alias_of(live, "-staff"), a5, f"{a5}-chat", f"{a5}-channel", f"{a5}-parents"},
    }
    for key, aliases in expected.items():
        client = await device(key)
        assert await joined_rooms(client) == {room_id(db, a) for a in aliases}, key


async def test_pupils_talk_in_the_chat_and_only_teachers_post_in_the_channel(
    region: LocalDeployment, db: Session, live: LiveSchool, device: Devices
) -> None:
    a5 = alias_of(live, "-2033a")
    pupil = await device("ivan")
    teacher = await device("olga")
    assert await can_post(pupil, room_id(db, f"{a5}-chat"))
    assert not await can_post(pupil, room_id(db, f"{a5}-channel"))
    assert not await can_post(pupil, room_id(db, alias_of(live, "-announcements")))
    assert await can_post(teacher, room_id(db, f"{a5}-channel"))
    # The teacher moderates: removes a pupil's message from the class chat.
    sent = await pupil.room_send(
        room_id(db, f"{a5}-chat"), "m.room.message", {"msgtype": "m.text", "body": "спам"}
    )
    assert isinstance(sent, RoomSendResponse)
    redacted = await teacher.room_redact(room_id(db, f"{a5}-chat"), sent.event_id)
    assert type(redacted).__name__ == "RoomRedactResponse", redacted


async def test_a_run_with_nothing_changed_plans_nothing_and_calls_almost_nothing(
    region: LocalDeployment, db: Session, live: LiveSchool, device: Devices
) -> None:

    async def idle() -> RunReport | None:
        # Synapse delivers the first run's events to the bridge in the background; until it
        # has, a run may still see them arrive. Once settled, a run changes nothing.
        report = await run(region, db)
        return report if report.plan == [] and report.calls <= 3 else None

    await eventually(idle, "a run with nothing to do", within=60, every=1)
    full = await run(region, db, full=True)
    assert full.plan == []  # Synapse really holds what the records say


async def test_a_moved_pupil_leaves_the_old_class_and_joins_the_new(
    region: LocalDeployment, db: Session, live: LiveSchool, device: Devices
) -> None:
    svc.move_pupil(db, live.people["ivan"], live.classes["5Б"])
    db.commit()
    moved = await run(region, db)
    kinds = {type(a).__name__ for a in moved.plan}
    assert kinds <= {"Join", "Kick"}
    assert moved.calls < 20, moved.calls
    client = await device("ivan")
    rooms = await joined_rooms(client)
    b5, a5 = alias_of(live, "-2033b"), alias_of(live, "-2033a")
    assert room_id(db, f"{b5}-chat") in rooms
    assert room_id(db, f"{a5}-chat") not in rooms
    svc.move_pupil(db, live.people["ivan"], live.classes["5А"])
    db.commit()
    assert (await run(region, db)).plan  # moved back for the other tests


async def test_drift_made_by_hand_is_repaired(
    region: LocalDeployment, db: Session, live: LiveSchool, device: Devices
) -> None:
    chat = f"{alias_of(live, '-2033a')}-chat"
    pupil = await device("ivan")
    await pupil.room_leave(room_id(db, chat))

    async def marked_dirty() -> bool:
        # The bridge marks the room when Synapse delivers the leave, in the background.
        db.expire_all()
        return bool(db.get(ManagedRoom, chat).dirty)  # type: ignore[union-attr]

    await eventually(marked_dirty, f"the bridge to mark {chat} as changed", every=0.2)
    repaired = await run(region, db)
    assert [type(a).__name__ for a in repaired.plan] == ["Join"]
    client = await device("ivan")
    assert room_id(db, chat) in await joined_rooms(client)


async def test_promotion_renames_and_archives_read_only(
    region: LocalDeployment, db: Session, live: LiveSchool, device: Devices
) -> None:
    svc.promote(db, live.school, live.school.academic_year + 1)
    db.commit()
    promoted = await run(region, db)
    assert {type(a).__name__ for a in promoted.plan} <= {
        "SetName",
        "SetTopic",
        "SetPowerLevels",
        "SetJoinRule",
        "SetWidget",  # a graduated class has no more lessons: its chat loses the call,
        # and its rooms, read-only now, the documents widget
        "Kick",
    }
    graduate = await device("petr")
    archived_chat = room_id(db, f"{alias_of(live, '-2027a')}-chat")
    assert archived_chat in await joined_rooms(graduate)  # history stays with them
    assert not await can_post(graduate, archived_chat)
    state = await graduate.room_get_state_event(archived_chat, "m.room.name")
    assert getattr(state, "content", {}).get("name") == "11А — чат класса (архив)"
    widget = await graduate.room_get_state_event(
        archived_chat, "im.vector.modular.widgets", "parta-call"
    )
    assert not getattr(widget, "content", {}).get("url")  # removed (empty content)
    pupil = await device("ivan")
    name = await pupil.room_get_state_event(
        room_id(db, f"{alias_of(live, '-2033a')}-chat"), "m.room.name"
    )
    assert getattr(name, "content", {}).get("name") == "6А — чат класса"
    # The class chat carries the call widget, pointing at this region's widget service.
    widget = await pupil.room_get_state_event(
        room_id(db, f"{alias_of(live, '-2033a')}-chat"), "im.vector.modular.widgets", "parta-call"
    )
    content = getattr(widget, "content", {})
    assert content.get("url") == region.settings.call_widget_url
    assert content.get("name") == "Урок" and content.get("type") == "m.custom"
    # So do the class chat and channel the documents widget; the graduated chat lost it.
    for suffix in ("chat", "channel"):
        documents = await pupil.room_get_state_event(
            room_id(db, f"{alias_of(live, '-2033a')}-{suffix}"),
            "im.vector.modular.widgets",
            "parta-documents",
        )
        content = getattr(documents, "content", {})
        assert content.get("url") == region.settings.documents_widget_url
        assert content.get("name") == "Материалы" and content.get("id") == "parta-documents"
    gone = await graduate.room_get_state_event(
        archived_chat, "im.vector.modular.widgets", "parta-documents"
    )
    assert not getattr(gone, "content", {}).get("url")
