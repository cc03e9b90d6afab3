"""The school policy from people's own Matrix clients (matrix-nio), against the real Synapse.

Each rule in both directions: what the school allows goes through; what it does not is
refused with 403 M_FORBIDDEN and a sentence in the region's language (Russian here).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from nio import AsyncClient, LoginResponse, SyncResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from matrix.client import MatrixClient, path
from parta.deployment import LocalDeployment
from provisioning.db.models import EnrolmentRole, ManagedRoom, Region, Role, RoomKind
from provisioning.reconciler.actions import SetPowerLevels
from provisioning.reconciler.desired import ANSWER_EVENTS
from provisioning.reconciler.run import reconcile_region
from provisioning.services import schools as svc
from tests.harness.region import region_session
from tests.harness.waiting import eventually, policy_loaded_snapshot, policy_reread
from tests.matrix_users import new_person

PASSWORD = "policy-password-1"


@dataclass
class Region2:
    people: dict[str, str]  # key -> user ID
    rooms: dict[str, str]  # "5А chat", "5А channel", … -> room ID
    aliases: dict[str, str]  # the same keys -> full alias
    stranger: str
    stranger_password: str


class Person:
    """One person's client: matrix-nio for what a client does, its raw HTTP for the answers."""

    def __init__(self, nio: AsyncClient, http: httpx.AsyncClient) -> None:
        self.nio, self.http = nio, http

    async def call(
        self, method: str, url: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        """The request, sent again after the wait Synapse asks for when it is throttled
        (people keep Synapse's default rate limits, which these tests reach when the machine
        runs them fast), as a real client does; at most a minute of such waits."""
        deadline = time.monotonic() + 60
        while True:
            answer = await self.http.request(method, url, json=body)
            if answer.status_code != 429 or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(answer.json().get("retry_after_ms", 1000) / 1000)

    async def create_room(self, **body: Any) -> httpx.Response:
        return await self.call("POST", "/_matrix/client/v3/createRoom", body)

    async def invite(self, room_id: str, user_id: str) -> httpx.Response:
        return await self.call("POST", path("rooms", room_id, "invite"), {"user_id": user_id})

    async def join(self, room_or_alias: str) -> httpx.Response:
        return await self.call("POST", path("join", room_or_alias), {})

    async def knock(self, room_id: str, reason: str | None = None) -> httpx.Response:
        body = {} if reason is None else {"reason": reason}
        return await self.call("POST", path("knock", room_id), body)

    async def put_state(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> httpx.Response:
        return await self.call("PUT", path("rooms", room_id, "state", event_type, ""), content)

    async def post(self, room_id: str, text: str) -> httpx.Response:
        return await self.send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})

    async def send(self, room_id: str, event_type: str, content: dict[str, Any]) -> httpx.Response:
        txn = secrets.token_hex(8)
        return await self.call("PUT", path("rooms", room_id, "send", event_type, txn), content)

    async def redact(self, room_id: str, event_id: str, **reason: str) -> httpx.Response:
        txn = secrets.token_hex(8)
        return await self.call("PUT", path("rooms", room_id, "redact", event_id, txn), reason)


def refused(response: httpx.Response, words: str) -> bool:
    """403 M_FORBIDDEN with the policy's own sentence (not Synapse's generic one)."""
    body = response.json()
    assert response.status_code == 403 and body.get("errcode") == "M_FORBIDDEN", response.text
    assert words in body.get("error", ""), body
    return True


def ok(response: httpx.Response) -> bool:
    assert response.status_code == 200, response.text
    return True


@pytest.fixture(scope="module")
def db(region: LocalDeployment) -> Iterator[Session]:
    with region_session(region) as session:
        yield session


@pytest.fixture(scope="module")
async def school(region: LocalDeployment, db: Session) -> Region2:
    """Two schools placed by provisioning; one stranger with an account Parta never made."""
    tag = secrets.token_hex(3)
    server = region.settings.server_name
    region_row = db.scalar(select(Region))
    assert region_row is not None
    first = svc.create_school(db, region_row, f"Школа {tag}", academic_year=2026)
    other = svc.create_school(db, region_row, f"Другая школа {tag}", academic_year=2026)
    a5, b5 = svc.add_class(db, first, 5, "А"), svc.add_class(db, first, 5, "Б")
    c7 = svc.add_class(db, other, 7, "В")
    names = {
        "director": "Светлана Директор", "olga": "Ольга Учитель", "boris": "Борис Учитель",
        "ivan": "Иван Ученик", "masha": "Маша Ученица", "kolya": "Коля Ученик",
        "anna": "Анна Мама Ивана", "pavel": "Павел Папа Маши",
        "tanya": "Таня Учитель Другой Школы", "petya": "Петя Ученик Другой Школы",
    }  # fmt: skip
    people = {k: svc.add_person(db, name, f"@{k}-{tag}:{server}") for k, name in names.items()}
    svc.grant_school_role(db, people["director"], first, Role.SCHOOL_ADMIN)
    for teacher, school_class in (("olga", a5), ("boris", b5)):
        svc.grant_school_role(db, people[teacher], first, Role.TEACHER)
        svc.enrol(db, people[teacher], school_class, EnrolmentRole.CLASS_TEACHER)
    svc.grant_school_role(db, people["tanya"], other, Role.TEACHER)
    svc.enrol(db, people["tanya"], c7, EnrolmentRole.CLASS_TEACHER)
    for pupil, school_class in (("ivan", a5), ("masha", a5), ("kolya", b5), ("petya", c7)):
        svc.enrol(db, people[pupil], school_class, EnrolmentRole.PUPIL)
    svc.link_parent(db, people["anna"], people["ivan"])
    svc.link_parent(db, people["pavel"], people["masha"])
    db.commit()
    s = region.settings
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as client:
        report = await reconcile_region(db, client, s, wait_s=120)
        assert not report.applied.failed
        for person in people.values():
            await client.admin_put_user(str(person.matrix_user_id), {"password": PASSWORD})
        stranger, stranger_password = await new_person(client, region, "stranger")
    rooms, aliases = {}, {}
    for record in db.scalars(select(ManagedRoom).where(ManagedRoom.school_id == first.id)):
        label = {
            RoomKind.SCHOOL_SPACE: "school", RoomKind.ANNOUNCEMENTS: "announcements",
            RoomKind.STAFF_ROOM: "staff", RoomKind.SCHOOL_MATERIALS: "materials",
            RoomKind.SCHOOL_EVENTS: "events",
        }.get(record.kind)  # fmt: skip
        if label is None:
            grade = "5А" if record.class_id == a5.id else "5Б"
            label = f"{grade} {record.kind.value.removeprefix('class_')}"
        assert record.room_id is not None
        rooms[label], aliases[label] = record.room_id, f"#{record.alias}:{server}"
    await policy_loaded_snapshot(region)  # the one provisioning just wrote
    return Region2(
        {k: str(p.matrix_user_id) for k, p in people.items()}, rooms, aliases, stranger,
        stranger_password,
    )  # fmt: skip


Account = tuple[str, str, str]  # homeserver URL, user ID, password


class People:
    """Each person's client, logged in on first use; `accounts` says where and as whom."""

    def __init__(self, accounts: Callable[[str], Account]) -> None:
        self.accounts = accounts
        self.open: dict[str, Person] = {}

    async def __call__(self, key: str) -> Person:
        if key not in self.open:
            homeserver, user, password = self.accounts(key)
            client = AsyncClient(homeserver, user)
            assert isinstance(
                await client.login(password, device_name="policy-tests"), LoginResponse
            )
            http = httpx.AsyncClient(
                base_url=homeserver,
                headers={"Authorization": f"Bearer {client.access_token}"},
                timeout=60,
            )
            self.open[key] = Person(client, http)
        return self.open[key]

    async def close(self) -> None:
        for person in self.open.values():
            await person.http.aclose()
            await person.nio.close()


@pytest.fixture(scope="module")
async def person(region: LocalDeployment, school: Region2) -> AsyncIterator[People]:
    def account(key: str) -> Account:
        password = school.stranger_password if key == "stranger" else PASSWORD
        return region.settings.homeserver_url, uid(school, key), password

    people = People(account)
    yield people
    await people.close()


def uid(school: Region2, key: str) -> str:
    return school.stranger if key == "stranger" else school.people[key]


@pytest.mark.parametrize(
    ("sender", "target", "words"),
    [
        ("ivan", "masha", ""),  # classmates
        ("ivan", "kolya", ""),  # schoolmates
        ("ivan", "olga", ""),  # a pupil writes to their teacher
        ("olga", "ivan", ""),  # ... and back
        ("ivan", "anna", ""),  # a pupil and their own parent
        ("anna", "ivan", ""),
        ("anna", "olga", ""),  # a parent and the child's teacher
        ("anna", "pavel", ""),  # parents of one class
        ("director", "pavel", ""),  # the administration and a parent
        ("ivan", "tanya", "Ученик может общаться только"),  # another school's teacher
        ("tanya", "ivan", "Ученик может общаться только"),
        ("ivan", "petya", "Ученик может общаться только"),  # another school's pupil
        ("stranger", "ivan", "Ученик может общаться только"),
        ("ivan", "stranger", "Ученик может общаться только"),
        ("anna", "masha", "не чужим детям"),  # another child
        ("pavel", "ivan", "не чужим детям"),
    ],
)
async def test_direct_chats_follow_the_schools_relationships(
    person: People, school: Region2, sender: str, target: str, words: str
) -> None:
    answer = await (await person(sender)).create_room(
        invite=[uid(school, target)], is_direct=True, preset="trusted_private_chat"
    )
    assert refused(answer, words) if words else ok(answer)


async def test_invites_into_a_group_chat_keep_outsiders_away_from_pupils(
    person: People, school: Region2
) -> None:
    olga = await person("olga")
    group = (await olga.create_room(name="Кружок робототехники")).json()["room_id"]
    assert ok(await olga.invite(group, uid(school, "ivan")))
    assert ok(await olga.invite(group, uid(school, "boris")))  # staff of the school
    # Ivan is in the room now (invited): a stranger or another school's teacher may not be.
    assert refused(await olga.invite(group, school.stranger), "Ученик может общаться только")
    assert refused(await olga.invite(group, uid(school, "tanya")), "Ученик может общаться только")
    # Someone's own room: a stranger cannot pull a pupil in by a direct /invite.
    stranger = await person("stranger")
    own = (await stranger.create_room(name="Игры")).json()["room_id"]
    assert refused(await stranger.invite(own, uid(school, "ivan")), "Ученик может общаться только")
    assert ok(await stranger.invite(own, uid(school, "tanya")))  # adults among themselves


async def test_nobody_outside_joins_the_schools_rooms_by_id_or_alias(
    person: People, school: Region2
) -> None:
    stranger, tanya = await person("stranger"), await person("tanya")
    for target in (school.rooms["5А chat"], school.aliases["5А chat"], school.rooms["school"]):
        assert refused(await stranger.join(target), "не из этой школы")
    assert refused(await tanya.join(school.rooms["announcements"]), "не из этой школы")
    # Someone of the school may: Kolya (5Б) joins the school's announcements he is in already.
    kolya = await person("kolya")
    assert ok(await kolya.join(school.rooms["announcements"]))
    # An invited pupil joins a classmate's group chat.
    ivan, masha = await person("ivan"), await person("masha")
    group = (await ivan.create_room(name="Домашка", invite=[uid(school, "masha")])).json()[
        "room_id"
    ]
    assert ok(await masha.join(group))


async def test_a_knock_is_for_the_schools_own_people_and_carries_no_text(
    person: People, school: Region2
) -> None:
    # Issue 18: an account of no school and a teacher of another school knocked (200) on a
    # class space and the school space, with a text for the pupils there to read.
    tanya, stranger = await person("tanya"), await person("stranger")
    for room in (school.rooms["5А space"], school.rooms["school"]):
        assert refused(await tanya.knock(room), "только человек этой школы")
        assert refused(await stranger.knock(room), "только человек этой школы")
        assert refused(await stranger.knock(room, "Напиши мне в telegram"), "этой школы")
    petya = await person("petya")  # a pupil of the other school
    assert refused(await petya.knock(school.rooms["5А space"]), "только человек этой школы")
    kolya = await person("kolya")  # 5Б: a person of the school
    space = school.rooms["5А space"]
    assert refused(await kolya.knock(space, "Напиши мне в telegram"), "без текста")
    assert ok(await kolya.knock(space, "   "))  # blank is no text
    assert ok(await kolya.knock(space))
    # Only the class's staff answer; a pupil of 5А admits nobody.
    ivan = await person("ivan")
    assert (await ivan.invite(space, uid(school, "kolya"))).status_code == 403


async def test_only_the_bot_changes_the_settings_of_managed_rooms(
    person: People, school: Region2, bot: MatrixClient
) -> None:
    # The director holds 100 in the announcements: only the policy stops these changes.
    director = await person("director")
    chat = school.rooms["announcements"]
    levels = await bot.request("GET", path("rooms", chat, "state", "m.room.power_levels", ""))
    levels["users"][uid(school, "ivan")] = 100
    assert refused(
        await director.put_state(chat, "m.room.power_levels", levels), "меняет только Parta"
    )
    closed = {"join_rule": "public"}
    assert refused(
        await director.put_state(chat, "m.room.join_rules", closed), "меняет только Parta"
    )
    history = {"history_visibility": "world_readable"}
    answer = await director.put_state(chat, "m.room.history_visibility", history)
    assert refused(answer, "меняет только Parta")
    assert ok(await director.put_state(chat, "m.room.topic", {"topic": "Расписание на четверть"}))
    # In the director's own room, the director's own power levels decide.
    own = (await director.create_room(name="Совещание")).json()["room_id"]
    assert ok(await director.put_state(own, "m.room.join_rules", {"join_rule": "invite"}))


async def test_only_moderators_post_in_channels_whatever_the_power_levels_say(
    person: People, school: Region2, bot: MatrixClient
) -> None:
    channel = school.rooms["5А channel"]
    olga, ivan = await person("olga"), await person("ivan")
    assert ok(await olga.post(channel, "Завтра контрольная"))
    # Someone gave the pupil 100 by hand (here the bot, the only one who can): still refused.
    state = path("rooms", channel, "state", "m.room.power_levels", "")
    levels = await bot.request("GET", state)
    raised = {**levels, "users": {**levels["users"], uid(school, "ivan"): 100}}
    await bot.request("PUT", state, body=raised)
    try:
        assert refused(await ivan.post(channel, "Отмена контрольной!"), "пишут только учителя")
    finally:
        await bot.request("PUT", state, body=levels)
    # The announcements: the administration only.
    assert ok(
        await (await person("director")).post(school.rooms["announcements"], "Линейка в 9:00")
    )
    assert refused(
        await olga.post(school.rooms["announcements"], "Линейка"), "только администрация"
    )
    # The school's materials: every teacher of the school posts, not pupils (in the room to
    # read them), even given power by hand.
    materials = school.rooms["materials"]
    assert ok(await olga.post(materials, "Конспект урока"))
    assert ok(await (await person("boris")).post(materials, "Задачи на неделю"))
    state = path("rooms", materials, "state", "m.room.power_levels", "")
    levels = await bot.request("GET", state)
    raised = {**levels, "users": {**levels["users"], uid(school, "ivan"): 100}}
    await bot.request("PUT", state, body=raised)
    try:
        assert refused(await ivan.post(materials, "Мой конспект"), "только учителя и администрация")
    finally:
        await bot.request("PUT", state, body=levels)


async def test_class_teachers_and_the_administration_report_the_school_s_events(
    person: People, school: Region2
) -> None:
    events = school.rooms["events"]
    assert ok(await (await person("olga")).post(events, "Фотоотчёт: последний звонок в 5А"))
    assert ok(await (await person("director")).post(events, "День знаний: как это было"))
    for reader in ("ivan", "anna"):  # everyone of the school reads, nobody else reports
        answer = await (await person(reader)).post(events, "Мой отчёт")
        assert refused(answer, "только классные руководители и администрация")


POLL = "org.matrix.msc3381.poll"  # the unstable types Element Web and Element X send


def poll_start(question: str, *answers: str) -> dict[str, Any]:
    choices = [{"id": f"a{i}", "org.matrix.msc1767.text": text} for i, text in enumerate(answers)]
    return {
        f"{POLL}.start": {
            "question": {"org.matrix.msc1767.text": question},
            "kind": f"{POLL}.disclosed",
            "max_selections": 1,
            "answers": choices,
        },
        "org.matrix.msc1767.text": question,
    }


def poll_response(poll_id: str, *answers: str, **more: Any) -> dict[str, Any]:
    relation = {"rel_type": "m.reference", "event_id": poll_id}
    return {"m.relates_to": relation, f"{POLL}.response": {"answers": list(answers)}, **more}


def reaction(event_id: str, key: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}


def event_id(response: httpx.Response) -> str:
    assert ok(response)
    return str(response.json()["event_id"])


async def seen_in_sync(person: Person, room_id: str, wanted: str) -> dict[str, Any]:
    """The event as `person`'s client receives it from /sync, within a bounded time."""

    async def arrived() -> dict[str, Any] | None:
        answer = await person.nio.sync(timeout=3000)
        assert isinstance(answer, SyncResponse), answer
        room = answer.rooms.join.get(room_id)
        events = [] if room is None else room.timeline.events
        return next((e.source for e in events if e.event_id == wanted), None)

    return await eventually(arrived, f"{wanted} in {room_id} by sync", within=60, every=0)


async def test_in_a_channel_pupils_and_parents_answer_polls_and_react_and_nothing_more(
    person: People, school: Region2
) -> None:
    channel = school.rooms["5А channel"]
    olga, ivan, anna = await person("olga"), await person("ivan"), await person("anna")
    assert isinstance(await olga.nio.sync(timeout=0), SyncResponse)  # from here on
    poll = event_id(
        await olga.send(channel, f"{POLL}.start", poll_start("Экскурсия?", "Да", "Нет"))
    )
    # The pupil answers the teacher's poll, and the teacher's client receives the answer.
    answer = event_id(await ivan.send(channel, f"{POLL}.response", poll_response(poll, "a0")))
    received = await seen_in_sync(olga, channel, answer)
    assert received["sender"] == uid(school, "ivan")
    assert received["content"][f"{POLL}.response"] == {"answers": ["a0"]}
    # A changed mind is a new response (the latest counts); the stable type is open too.
    stable = {"m.relates_to": {"rel_type": "m.reference", "event_id": poll}, "m.selections": ["a1"]}
    assert ok(await ivan.send(channel, "m.poll.response", stable))
    # A parent reacts to the teacher's post, and takes the reaction back.
    post = event_id(await olga.post(channel, "Завтра экскурсия в музей"))
    thumbs = event_id(await anna.send(channel, "m.reaction", reaction(post, "👍")))
    assert ok(await ivan.send(channel, "m.reaction", reaction(post, "🎉")))
    assert ok(await anna.redact(channel, thumbs))
    # Everything else stays with the class's teachers and the administration.
    assert refused(await ivan.post(channel, "Экскурсию отменили!"), "пишут только учителя")
    assert refused(
        await ivan.send(channel, f"{POLL}.start", poll_start("Отменим урок?", "Да")),
        "пишут только учителя",
    )
    close = {"m.relates_to": {"rel_type": "m.reference", "event_id": poll}, f"{POLL}.end": {}}
    assert refused(await anna.send(channel, f"{POLL}.end", close), "пишут только учителя")
    dressed = poll_response(poll, "a0", body="Экскурсию отменили!", msgtype="m.text")
    assert refused(
        await ivan.send(channel, f"{POLL}.response", dressed), "только выбранные варианты"
    )
    paragraph = ("Экскурсию отменили, все идём домой! " * 6)[:200]
    assert refused(
        await ivan.send(channel, "m.reaction", reaction(post, paragraph)),
        "эмодзи или несколько символов",
    )
    again = event_id(await anna.send(channel, "m.reaction", reaction(post, "❤️")))
    assert refused(
        await anna.redact(channel, again, reason="Всем родителям: собрание в 18:00"),
        "без указания причины",
    )
    # Taking back is for one's own: the teacher's post stays (Synapse's `redact` level).
    assert (await anna.redact(channel, post)).status_code == 403
    assert ok(await olga.send(channel, f"{POLL}.end", close))  # the teacher closes the poll
    # The announcements: the administration posts, everyone of the school reacts.
    notice = event_id(
        await (await person("director")).post(school.rooms["announcements"], "Линейка")
    )
    assert ok(await ivan.send(school.rooms["announcements"], "m.reaction", reaction(notice, "👍")))


async def test_the_reconciler_opens_answers_in_a_channel_made_before_them_once(
    db: Session, person: People, school: Region2, region: LocalDeployment, bot: MatrixClient
) -> None:
    channel = school.rooms["5А channel"]
    record = db.scalar(select(ManagedRoom).where(ManagedRoom.room_id == channel))
    assert record is not None
    state = path("rooms", channel, "state", "m.room.power_levels", "")
    levels = await bot.request("GET", state)
    assert {levels["events"][t] for t in ANSWER_EVENTS} == {0}  # a new channel has them
    post = event_id(await (await person("olga")).post(channel, "Домашнее задание на сайте"))
    # The channel as it was before answering opened: in Synapse, where the homeserver's own
    # rules then stop the pupil (the policy would let her), and in the reconciler's record.
    events = {t: level for t, level in levels["events"].items() if t not in ANSWER_EVENTS}
    await bot.request("PUT", state, body={**levels, "events": events})
    masha = await person("masha")
    shut = await masha.send(channel, "m.reaction", reaction(post, "👍"))
    assert shut.status_code == 403, shut.text
    record.applied = {**record.applied, "power_levels": {**levels, "events": events}}
    db.commit()
    first = await reconcile_region(db, bot, region.settings, wait_s=120)
    assert not first.applied.failed
    opened = await bot.request("GET", state)
    assert {opened["events"][t] for t in ANSWER_EVENTS} == {0}
    assert opened["events_default"] == 50 and opened["events"]["m.room.power_levels"] == 100
    assert ok(await masha.send(channel, "m.reaction", reaction(post, "👍")))
    # Once is enough: a second run, reading Synapse itself, finds nothing to change.
    second = await reconcile_region(db, bot, region.settings, full=True, wait_s=120)
    assert not [a for a in second.plan if isinstance(a, SetPowerLevels)], second.plan


async def test_school_rooms_never_go_to_the_directory(person: People, school: Region2) -> None:
    olga = await person("olga")
    assert refused(await olga.create_room(visibility="public", name="Открытый класс"), "каталоге")
    answer = await olga.call(
        "PUT", path("directory", "list", "room", school.rooms["5А chat"]), {"visibility": "public"}
    )
    assert answer.status_code == 403 and answer.json()["errcode"] == "M_FORBIDDEN"


async def test_only_staff_add_rooms_to_the_schools_spaces(person: People, school: Region2) -> None:
    space = school.rooms["5А space"]
    parent = [{"type": "m.space.parent", "state_key": space, "content": {"via": ["localhost"]}}]
    olga, anna = await person("olga"), await person("anna")
    committee = await olga.create_room(name="Родительский комитет", initial_state=parent)
    assert ok(committee)
    child = path("rooms", space, "state", "m.space.child", committee.json()["room_id"])
    assert ok(await olga.call("PUT", child, {"via": ["localhost"]}))  # now shown in 5А's space
    answer = await anna.create_room(name="Наш комитет", initial_state=parent)
    assert refused(answer, "только её сотрудники")
    theirs = (await anna.create_room(name="Наш комитет")).json()["room_id"]
    child = path("rooms", space, "state", "m.space.child", theirs)
    assert refused(await anna.call("PUT", child, {"via": ["localhost"]}), "только её сотрудники")


async def test_without_fresh_data_pupils_are_refused_and_staff_keep_working(
    region: LocalDeployment, person: People, school: Region2
) -> None:
    snapshot = region.settings.policy_snapshot_path
    # The service reconciles after the join requests of the tests above (a second or two
    # later), and each run rewrites or touches the snapshot: let that run start, then wait
    # until the file has been left alone for a while.
    await asyncio.sleep(5)
    deadline = time.monotonic() + 120
    while time.time() - snapshot.stat().st_mtime < 5:
        assert time.monotonic() < deadline, "the service kept rewriting the policy snapshot"
        await asyncio.sleep(0.5)
    hour_ago = time.time() - 2 * 3600
    changed = time.time()
    os.utime(snapshot, (hour_ago, hour_ago))  # as if provisioning had stopped two hours ago
    try:
        await policy_reread(region, changed)
        answer = await (await person("ivan")).create_room(
            invite=[uid(school, "masha")], is_direct=True
        )
        assert refused(answer, "не может проверить правила школы")
        assert ok(await (await person("olga")).create_room(invite=[uid(school, "boris")]))
        # A snapshot that cannot be read is ignored; the last good one stays in use.
        good = snapshot.read_bytes()
        snapshot.write_bytes(b"{not json")
        await policy_loaded_snapshot(region)  # read, found unreadable, the last good one kept
        answer = await (await person("ivan")).create_room(
            invite=[uid(school, "masha")], is_direct=True
        )
        assert ok(answer)  # fresh (just written), and the old data still decides
        snapshot.write_bytes(good)
    finally:
        os.utime(snapshot, (time.time(), time.time()))
    await policy_loaded_snapshot(region)
