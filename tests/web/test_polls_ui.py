"""Polls end to end: started in the admin UI in real Chromium, answered from matrix-nio
through the real Synapse, counted by the bridge and shown (and downloaded) in the UI.

Most answers are given in the class's parents chat, where parents may post anyway; one
test polls the class channel, where pupils may answer polls but not post (the school
policy module lets the answers through, issue 21).
"""

from __future__ import annotations

import csv
import io
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from nio import RoomGetEventResponse, RoomSendError, RoomSendResponse
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from matrix import polls as msc3381
from parta.deployment import LocalDeployment
from provisioning.db.models import EnrolmentRole, ManagedRoom, Region, Role, RoomKind
from provisioning.db.polls import Poll, PollEnd, PollResponse
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from tests.harness.waiting import wait_until
from tests.matrix_users import logged_in
from tests.web.conftest import screenshot
from tests.web.test_admin_ui import db_session, run_async, run_async_value, sign_in
from tests.web.test_invites_ui import NEW_PASSWORD, admin_page, class_rooms, wait_until_placed
from tests.web.test_requests_ui import _set_password

BRIDGE_WITHIN = 60  # seconds for Synapse to hand an event to the bridge, and it to store it


@dataclass(frozen=True)
class PollSchool:
    school_id: int
    class_id: int
    other_class_id: int
    teacher: str
    other_teacher: str
    parent_one: str
    parent_two: str
    parent_names: tuple[str, str]
    parents_room: str
    parents_alias: str
    pupils: tuple[str, str]
    channel_room: str
    channel_alias: str


def _person(session: Any, region: LocalDeployment, name: str) -> Any:
    user_id = LocalpartAllocator(session, region.settings.server_name).user_id(name)
    return svc.add_person(session, name, matrix_user_id=user_id)


@pytest.fixture(scope="module")
def setup(region: LocalDeployment) -> PollSchool:
    """5А with its class teacher, two pupils and two parents; 6Б with another teacher."""
    tag = secrets.token_hex(3)
    with db_session(region) as session:
        region_row = session.scalar(select(Region))
        assert region_row is not None
        school = svc.create_school(session, region_row, f"Школа опросов {tag}", slug=f"p-{tag}",
                                   academic_year=2026)  # fmt: skip
        own, other = svc.add_class(session, school, 5, "А"), svc.add_class(session, school, 6, "Б")
        people = {
            "teacher": _person(session, region, f"Ирина Классная {tag}"),
            "other_teacher": _person(session, region, f"Олег Чужой {tag}"),
            "pupil": _person(session, region, f"Петя Ученик {tag}"),
            "pupil_two": _person(session, region, f"Маша Ученица {tag}"),
            "parent_one": _person(session, region, f"Анна Мама {tag}"),
            "parent_two": _person(session, region, f"Борис Папа {tag}"),
        }
        for key, school_class in (("teacher", own), ("other_teacher", other)):
            svc.grant_school_role(session, people[key], school, Role.TEACHER)
            svc.enrol(session, people[key], school_class, EnrolmentRole.CLASS_TEACHER)
        svc.enrol(session, people["pupil"], own, EnrolmentRole.PUPIL)
        svc.enrol(session, people["pupil_two"], own, EnrolmentRole.PUPIL)
        svc.link_parent(session, people["parent_one"], people["pupil"])
        svc.link_parent(session, people["parent_two"], people["pupil"])
        session.commit()
        ids = {key: str(person.matrix_user_id) for key, person in people.items()}
        names = {key: person.display_name for key, person in people.items()}
        school_id, class_id, other_id = school.id, own.id, other.id
    for key in ids:
        run_async(_set_password(region, ids[key], names[key]))
    with httpx.Client() as http:  # the service places people after changes made through it
        http.post(
            f"{region.settings.provisioning_url}/internal/reconcile",
            headers={"Authorization": f"Bearer {region.settings.as_token.get_secret_value()}"},
        ).raise_for_status()
    rooms = class_rooms(region, class_id)
    parents_room, channel = rooms[RoomKind.CLASS_PARENTS], rooms[RoomKind.CLASS_CHANNEL]
    for key in ("teacher", "parent_one", "parent_two"):
        wait_until_placed(region, ids[key], {parents_room})
    for key in ("teacher", "pupil", "pupil_two"):
        wait_until_placed(region, ids[key], {channel})
    with db_session(region) as session:
        alias, channel_alias = (
            session.scalar(select(ManagedRoom.alias).where(ManagedRoom.room_id == room_id))
            for room_id in (parents_room, channel)
        )
    return PollSchool(
        school_id, class_id, other_id, ids["teacher"], ids["other_teacher"], ids["parent_one"],
        ids["parent_two"], (names["parent_one"], names["parent_two"]), parents_room, str(alias),
        (ids["pupil"], ids["pupil_two"]), channel, str(channel_alias),
    )  # fmt: skip


@pytest.fixture
def teacher_page(region: LocalDeployment, context: BrowserContext, setup: PollSchool) -> Page:
    page = context.new_page()
    sign_in(page, region.settings.provisioning_url, setup.teacher, NEW_PASSWORD)
    expect(page.locator("h1")).to_contain_text("Здравствуйте")
    return page


def start_poll_in_ui(
    page: Page,
    base: str,
    setup: PollSchool,
    question: str,
    answers: list[str],
    *,
    undisclosed: bool = False,
    room_alias: str | None = None,
) -> int:
    """From the class page, through its polls link, into the parents chat unless another
    room is named; the poll's ID in Parta."""
    page.goto(f"{base}/schools/{setup.school_id}/classes/{setup.class_id}")
    page.click("#polls-link")
    expect(page.locator("h1")).to_have_text("Опросы класса 5А")
    page.select_option("select[name=room]", room_alias or setup.parents_alias)
    page.fill("input[name=question]", question)
    page.fill("textarea[name=answers]", "\n".join(answers))
    if undisclosed:
        page.check("input[name=kind][value=undisclosed]")
        expect(page.locator("#poll-secrecy")).to_contain_text("не делают голосование тайным")
    page.click("#new-poll button[type=submit]")
    expect(page.locator("h1")).to_have_text(question)
    return int(page.url.rsplit("/", 1)[1])


def poll_event_id(region: LocalDeployment, poll_id: int) -> str:
    with db_session(region) as session:
        poll = session.get(Poll, poll_id)
        assert poll is not None
        return poll.event_id


async def _send(region: LocalDeployment, user_id: str, room_id: str, kind: str,
                content: dict[str, Any]) -> str:  # fmt: skip
    async with logged_in(region, user_id, NEW_PASSWORD) as client:
        sent = await client.room_send(room_id, kind, content)
        assert isinstance(sent, RoomSendResponse), sent
        return str(sent.event_id)


def answer(region: LocalDeployment, user_id: str, room_id: str, poll: str, *ids: str) -> str:
    """Vote as Element does, from the person's own matrix-nio client."""
    content = msc3381.response_content(poll, ids)
    return run_async_value(_send(region, user_id, room_id, msc3381.RESPONSE, content))


def recorded(region: LocalDeployment, model: type[PollResponse | PollEnd], event_id: str) -> None:
    """Wait until the bridge has stored this event (bounded)."""

    def stored() -> bool:
        with db_session(region) as session:
            return session.scalar(select(model.id).where(model.event_id == event_id)) is not None

    wait_until(stored, f"the bridge to record {event_id}", within=BRIDGE_WITHIN)


def counts_shown(page: Page, url: str, expected: dict[str, str]) -> None:
    """Reload the poll's page until it shows these counts per answer (bounded)."""

    def shown() -> bool:
        page.goto(url)
        rows = page.locator("table.poll-results tbody tr")
        found: dict[str, str] = {}
        for i in range(rows.count()):
            cells = rows.nth(i).locator("td")
            found[cells.nth(0).inner_text()] = cells.nth(1).inner_text()
        return found == expected

    wait_until(shown, f"the counts {expected}", within=BRIDGE_WITHIN, every=1)


def test_a_poll_started_in_the_ui_is_answered_in_matrix_and_counted(
    region: LocalDeployment, teacher_page: Page, setup: PollSchool
) -> None:
    base, page, room = region.settings.provisioning_url, teacher_page, setup.parents_room
    question = f"Когда провести собрание? {secrets.token_hex(2)}"
    # An answer a spreadsheet would run as a formula, to see the CSV keep it as text.
    poll_id = start_poll_in_ui(page, base, setup, question, ["Во вторник", "В среду", "=1+1"])
    url = page.url
    poll = poll_event_id(region, poll_id)
    with db_session(region) as session:
        row = session.get(Poll, poll_id)
        assert row is not None and row.creator == setup.teacher  # sent as the teacher
        assert row.kind == msc3381.PollKind.DISCLOSED.value

    async def read_start() -> Any:
        async with logged_in(region, setup.parent_one, NEW_PASSWORD) as client:
            return await client.room_get_event(room, poll)

    got = run_async_value(read_start())
    assert isinstance(got, RoomGetEventResponse), got
    start = got.event.source
    assert start["type"] == msc3381.START and start["sender"] == setup.teacher
    fallback = start["content"][msc3381.TEXT]
    assert fallback.startswith(f"Опрос: {question}\n1. Во вторник\n2. В среду\n3. =1+1")

    # Anna votes Tuesday, then changes her mind; Boris votes Tuesday.
    answer(region, setup.parent_one, room, poll, "a1")
    answer(region, setup.parent_two, room, poll, "a1")
    last = answer(region, setup.parent_one, room, poll, "a2")
    recorded(region, PollResponse, last)
    counts_shown(page, url, {"Во вторник": "1", "В среду": "1", "=1+1": "0"})
    expect(page.locator("#voters")).to_contain_text("2")
    who = page.locator("#who")
    expect(who.locator("tr", has_text=setup.parent_names[0])).to_contain_text("В среду")
    expect(who.locator("tr", has_text=setup.parent_names[1])).to_contain_text("Во вторник")
    screenshot(page, "ru-poll-results")

    # An answer the poll does not have spoils that vote (as in Element): Boris's is withdrawn.
    spoiled = answer(region, setup.parent_two, room, poll, "a9")
    recorded(region, PollResponse, spoiled)
    counts_shown(page, url, {"Во вторник": "0", "В среду": "1", "=1+1": "0"})
    answer(region, setup.parent_two, room, poll, "a1")  # and back

    # Boris is no moderator of the parents chat: his end is kept and ignored.
    end_content = msc3381.end_content(poll, fallback="Опрос завершён")
    ignored = run_async_value(_send(region, setup.parent_two, room, msc3381.END, end_content))
    recorded(region, PollEnd, ignored)
    counts_shown(page, url, {"Во вторник": "1", "В среду": "1", "=1+1": "0"})
    expect(page.locator("#poll-state")).to_contain_text("идёт")

    csv_answer = page.request.get(f"{url}/results.csv")
    assert csv_answer.status == 200 and csv_answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_answer.body().decode("utf-8-sig"))))
    assert rows[0] == ["Вопрос", question]
    assert rows[2:6] == [["Ответ", "Голоса"], ["Во вторник", "1"], ["В среду", "1"], ["'=1+1", "0"]]
    assert rows[7] == ["Человек", "Matrix ID", "Выбор"]
    # A Matrix ID starts with `@`, which spreadsheets evaluate: it is marked as text too.
    assert sorted(rows[8:]) == sorted([
        [setup.parent_names[0], f"'{setup.parent_one}", "В среду"],
        [setup.parent_names[1], f"'{setup.parent_two}", "Во вторник"],
    ])  # fmt: skip

    # The teacher ends it from the page: sent as her, so it counts.
    page.click("#end button[type=submit]")
    expect(page.locator("#poll-state")).to_contain_text("Опрос завершён")
    assert page.locator("#end").count() == 0
    late = answer(region, setup.parent_one, room, poll, "a1")  # after the end
    recorded(region, PollResponse, late)
    counts_shown(page, url, {"Во вторник": "1", "В среду": "1", "=1+1": "0"})
    with db_session(region) as session:
        ends = session.scalars(select(PollEnd).where(PollEnd.poll_event_id == poll)).all()
        assert {end.sender for end in ends} == {setup.parent_two, setup.teacher}

    page.goto(f"{base}/schools/{setup.school_id}/polls?class_id={setup.class_id}")
    expect(page.locator("table.polls tr", has_text=question)).to_contain_text("завершён")


def test_pupils_answer_a_poll_in_the_class_channel_where_they_cannot_post(
    region: LocalDeployment, teacher_page: Page, setup: PollSchool
) -> None:
    base, page, channel = region.settings.provisioning_url, teacher_page, setup.channel_room
    petya, masha = setup.pupils
    question = f"Куда поедем на экскурсию? {secrets.token_hex(2)}"
    poll_id = start_poll_in_ui(page, base, setup, question, ["В музей", "В планетарий"],
                               room_alias=setup.channel_alias)  # fmt: skip
    url, poll = page.url, poll_event_id(region, poll_id)
    with db_session(region) as session:
        row = session.get(Poll, poll_id)
        assert row is not None and row.room_id == channel and row.creator == setup.teacher

    # Petya answers the museum; Masha the planetarium, then changes her mind (latest counts).
    first = answer(region, petya, channel, poll, "a1")
    recorded(region, PollResponse, answer(region, masha, channel, poll, "a2"))
    recorded(region, PollResponse, first)
    counts_shown(page, url, {"В музей": "1", "В планетарий": "1"})
    recorded(region, PollResponse, answer(region, masha, channel, poll, "a1"))
    counts_shown(page, url, {"В музей": "2", "В планетарий": "0"})
    expect(page.locator("#voters")).to_contain_text("2")

    # Answering is open, posting is not: the pupil's message is refused by the school policy.
    async def post_as_pupil() -> Any:
        async with logged_in(region, petya, NEW_PASSWORD) as client:
            content = {"msgtype": "m.text", "body": "Экскурсию отменили!"}
            return await client.room_send(channel, "m.room.message", content)

    refused = run_async_value(post_as_pupil())
    assert isinstance(refused, RoomSendError), refused
    assert refused.status_code == "M_FORBIDDEN", refused
    counts_shown(page, url, {"В музей": "2", "В планетарий": "0"})  # and nothing else changed


def test_an_undisclosed_poll_hides_its_results_until_the_end(
    region: LocalDeployment, teacher_page: Page, browser: Browser, setup: PollSchool
) -> None:
    base, page, room = region.settings.provisioning_url, teacher_page, setup.parents_room
    question = f"Нужна ли экскурсия? {secrets.token_hex(2)}"
    poll_id = start_poll_in_ui(page, base, setup, question, ["Да", "Нет"], undisclosed=True)
    url, poll = page.url, poll_event_id(region, poll_id)
    recorded(region, PollResponse, answer(region, setup.parent_one, room, poll, "a2"))
    page.goto(url)
    expect(page.locator("#hidden-results")).to_contain_text("не тайные")
    expect(page.locator("#voters")).to_contain_text("1")  # how many, never what
    assert page.locator("table.poll-results").count() == 0
    assert page.request.get(f"{url}/results.csv").status == 409

    # The region's administrator ends it (someone else's poll: the bot sends the end).
    admin_context = browser.new_context(locale="ru-RU")
    try:
        admin = admin_page(region, admin_context)
        admin.goto(url)
        expect(admin.locator("#hidden-results")).to_be_visible()  # hidden from staff too
        admin.click("#end button[type=submit]")
        expect(admin.locator("#poll-state")).to_contain_text("Опрос завершён")
    finally:
        admin_context.close()
    counts_shown(page, url, {"Да": "0", "Нет": "1"})
    assert page.locator("#who").count() == 0  # undisclosed: counts, not who chose what
    assert page.request.get(f"{url}/results.csv").status == 200
    with db_session(region) as session:
        sender = session.scalar(select(PollEnd.sender).where(PollEnd.poll_event_id == poll))
        assert sender == region.settings.bot_user_id


def test_a_teacher_of_another_class_neither_polls_nor_sees_this_class(
    region: LocalDeployment, browser: Browser, teacher_page: Page, setup: PollSchool
) -> None:
    base = region.settings.provisioning_url
    poll_id = start_poll_in_ui(teacher_page, base, setup, f"Секрет? {secrets.token_hex(2)}",
                               ["Да", "Нет"])  # fmt: skip
    context = browser.new_context(locale="ru-RU")
    try:
        other = context.new_page()
        sign_in(other, base, setup.other_teacher, NEW_PASSWORD)
        expect(other.locator("h1")).to_contain_text("Здравствуйте")
        other.goto(f"{base}/schools/{setup.school_id}/polls?class_id={setup.class_id}")
        assert other.locator("#new-poll").count() == 0  # nothing of 5А to poll
        expect(other.locator("#polls")).to_contain_text("Опросов пока нет")
        poll_url = f"{base}/schools/{setup.school_id}/polls/{poll_id}"
        response = other.goto(poll_url)
        assert response is not None and response.status == 403
        assert other.request.get(f"{poll_url}/results.csv").status == 403
        # Their own class's page has the form; a forged post into 5А's chat is refused.
        other.goto(f"{base}/schools/{setup.school_id}/polls?class_id={setup.other_class_id}")
        token = other.locator("input[name=csrf_token]").first.get_attribute("value") or ""
        forged = {"room": setup.parents_alias, "question": "Ну?", "answers": "Да\nНет",
                  "kind": "disclosed", "csrf_token": token}  # fmt: skip
        assert (
            other.request.post(f"{base}/schools/{setup.school_id}/polls", form=forged).status == 403
        )
        assert other.request.post(f"{poll_url}/end", form={"csrf_token": token}).status == 403
    finally:
        context.close()


def test_the_form_says_what_is_wrong(
    region: LocalDeployment, teacher_page: Page, setup: PollSchool
) -> None:
    base, page = region.settings.provisioning_url, teacher_page
    page.goto(f"{base}/schools/{setup.school_id}/polls?class_id={setup.class_id}")
    page.fill("input[name=question]", "Один ответ?")
    page.fill("textarea[name=answers]", "Только один")
    page.click("#new-poll button[type=submit]")
    expect(page.locator("#poll-error")).to_contain_text("от 2 до 20 ответов")
    expect(page.locator("input[name=question]")).to_have_value("Один ответ?")  # kept
    page.fill("textarea[name=answers]", "Да\nда")
    page.click("#new-poll button[type=submit]")
    expect(page.locator("#poll-error")).to_contain_text("совпадают")
    page.fill("textarea[name=answers]", "\n".join(f"Ответ {n}" for n in range(21)))
    page.click("#new-poll button[type=submit]")
    expect(page.locator("#poll-error")).to_contain_text("от 2 до 20 ответов")
