"""REST API /api/v1 on the running provisioning service, called with real Matrix tokens."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from nio import AsyncClient, JoinedRoomsResponse, LoginResponse
from sqlalchemy import func, select

from matrix.client import MatrixClient, path
from parta.deployment import LocalDeployment
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.models import ManagedRoom, ParentLink, Person
from tests.harness.api import sync_now
from tests.harness.waiting import eventually

PASSWORD = "school-admin-password"


async def token_for(region: LocalDeployment, user_id: str, password: str) -> str:
    client = AsyncClient(region.settings.homeserver_url, user_id)
    try:
        response = await client.login(password)
        assert isinstance(response, LoginResponse), response
        return response.access_token
    finally:
        await client.close()


@dataclass
class Api:
    region_admin: httpx.AsyncClient
    base: str

    def as_token(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )


@pytest.fixture(scope="module")
async def api(region: LocalDeployment) -> AsyncIterator[Api]:
    s = region.settings
    token = await token_for(
        region, s.region_admin_user_id, s.region_admin_password.get_secret_value()
    )
    base = s.provisioning_url
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield Api(client, base)


async def new_school(api: Api) -> dict[str, object]:
    tag = secrets.token_hex(3)
    response = await api.region_admin.post(
        "/api/v1/schools",
        json={"name": f"Лицей {tag}", "slug": f"api-{tag}", "academic_year": 2026},
    )
    assert response.status_code == 201, response.text
    school: dict[str, object] = response.json()
    return school


async def test_callers_without_a_valid_token_are_refused(region: LocalDeployment) -> None:
    base = region.settings.provisioning_url
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        missing = await http.get("/api/v1/schools")
        assert (missing.status_code, missing.json()["errcode"]) == (401, "M_MISSING_TOKEN")
        bad = await http.get("/api/v1/schools", headers={"Authorization": "Bearer nope"})
        assert (bad.status_code, bad.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_a_school_admin_manages_only_their_school(
    region: LocalDeployment, api: Api, bot: MatrixClient
) -> None:
    mine, other = await new_school(api), await new_school(api)
    created = await api.region_admin.post(
        f"/api/v1/schools/{mine['id']}/people",
        json={"display_name": "Директор Школы", "role": "school_admin"},
    )
    assert created.status_code == 201, created.text
    director = created.json()["matrix_user_id"]
    await bot.admin_put_user(director, {"password": PASSWORD, "displayname": "Директор Школы"})
    token = await token_for(region, director, PASSWORD)
    async with api.as_token(token) as http:
        listed = (await http.get("/api/v1/schools")).json()
        assert [s["id"] for s in listed] == [mine["id"]]
        assert (await http.get(f"/api/v1/schools/{mine['id']}")).status_code == 200
        for response in (
            await http.get(f"/api/v1/schools/{other['id']}"),
            await http.post(f"/api/v1/schools/{other['id']}/classes", json={"label": "5А"}),
            await http.post("/api/v1/schools", json={"name": "Своя школа"}),
            await http.put(
                f"/api/v1/schools/{other['id']}/rooms/school-{other['slug']}/federation",
                json={"federated": True},
            ),
        ):
            assert (response.status_code, response.json()["errcode"]) == (403, "M_FORBIDDEN")
        assert (
            await http.post(f"/api/v1/schools/{mine['id']}/classes", json={"label": "7Б"})
        ).status_code == 201


async def test_only_a_region_administrator_starts_a_region_wide_sync(
    region: LocalDeployment, api: Api, bot: MatrixClient
) -> None:
    school = await new_school(api)
    created = await api.region_admin.post(
        f"/api/v1/schools/{school['id']}/people",
        json={"display_name": "Директор Синхронизации", "role": "school_admin"},
    )
    assert created.status_code == 201, created.text
    director = created.json()["matrix_user_id"]
    await bot.admin_put_user(director, {"password": PASSWORD})
    async with api.as_token(await token_for(region, director, PASSWORD)) as http:
        refused = await http.post("/api/v1/sync")
    assert (refused.status_code, refused.json()["errcode"]) == (403, "M_FORBIDDEN")
    assert "region administrator" in refused.json()["error"]
    assert "within seconds" in refused.json()["error"]  # and what happens to their changes
    await sync_now(api.region_admin)  # runs (asked again while a run of the service holds it)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/schools", {"name": ""}),
        ("/api/v1/schools", {"name": "Школа", "slug": "Not A Slug!"}),
        ("/api/v1/schools", {"name": "Школа", "unexpected": 1}),
        ("/api/v1/schools", ["not", "an", "object"]),
        ("/api/v1/schools/{id}/classes", {"label": "пятый"}),
        ("/api/v1/schools/{id}/classes", {"label": "13А"}),
        ("/api/v1/schools/{id}/people", {"display_name": "Иван", "role": "wizard"}),
        ("/api/v1/schools/{id}/people", {"display_name": "Иван", "role": "pupil"}),
        (
            "/api/v1/schools/{id}/people",
            {"display_name": "Иван", "role": "pupil", "class_label": "9Я"},
        ),
        (
            "/api/v1/schools/{id}/people",
            {"display_name": "Анна", "role": "parent", "children": [999999]},
        ),
        ("/api/v1/schools/{id}/people", {"display_name": "Анна", "role": "teacher", "email": "x"}),
        ("/api/v1/schools/999999/classes", {"label": "5А"}),
        ("/api/v1/schools/{id}/pupils/999999/move", {"class_label": "5А"}),
    ],
)
async def test_bad_input_gets_a_clear_error_and_never_a_500(
    api: Api, path: str, body: object
) -> None:
    school = await new_school(api)
    response = await api.region_admin.post(path.format(id=school["id"]), json=body)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()
    assert set(error) == {"errcode", "error"} and error["error"]


async def test_roster_import_is_all_or_nothing_repeatable_and_moves_pupils(
    region: LocalDeployment, api: Api
) -> None:
    school = await new_school(api)
    url = f"/api/v1/schools/{school['id']}/import"
    roster = (
        "класс;роль;ФИО;телефон;почта;родитель ученика\n"
        "5А;ученик;Иван Петров;;;\n"
        "5А;ученик;Мария Орлова;;;\n"
        "5Б;ученик;Пётр Зайцев;;;\n"
        "5А;родитель;Анна Петрова;;anna@example.org;Иван Петров\n"
        "5А;классный руководитель;Ольга Смирнова;;;\n"
    )
    headers = {"Content-Type": "text/csv"}
    unasked = await api.region_admin.post(url, content=roster.encode(), headers=headers)
    assert unasked.status_code == 400  # a class is created only when the caller says so
    assert "row 2: the school has no class 5А" in unasked.json()["error"]
    url += "?create_classes=5А,5Б"
    first = await api.region_admin.post(url, content=roster.encode(), headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "created": 5,
        "moved": 0,
        "unchanged": 0,
        "classes_created": ["5А", "5Б"],
    }
    again = await api.region_admin.post(url, content=roster.encode(), headers=headers)
    assert again.json() == {"created": 0, "moved": 0, "unchanged": 5, "classes_created": []}

    engine = make_engine(region.settings.sqlalchemy_url)
    try:
        with make_session_factory(engine)() as session:
            people_before = session.scalar(select(func.count()).select_from(Person))
            bad = roster + "5В;ученик;;;;\n" + "5А;завуч;Кто-то;;;\n"
            rejected = await api.region_admin.post(url, content=bad.encode(), headers=headers)
            assert rejected.status_code == 400
            error = rejected.json()
            assert error["errcode"] == "PARTA_BAD_ROSTER"
            assert "row 7: the name is empty or too short" in error["error"]
            assert "row 8: unknown role «завуч»" in error["error"]
            assert session.scalar(select(func.count()).select_from(Person)) == people_before
    finally:
        engine.dispose()

    moved = roster.replace("5А;ученик;Мария Орлова", "5Б;ученик;Мария Орлова")
    result = await api.region_admin.post(url, content=moved.encode(), headers=headers)
    assert result.json()["moved"] == 1
    people = (await api.region_admin.get(f"/api/v1/schools/{school['id']}/people")).json()
    maria = next(p for p in people if p["display_name"] == "Мария Орлова")
    assert maria["roles"] == ["pupil:5Б"]


async def test_changes_through_the_api_are_reconciled_by_the_service(
    region: LocalDeployment, api: Api, bot: MatrixClient
) -> None:
    school = await new_school(api)
    await api.region_admin.post(f"/api/v1/schools/{school['id']}/classes", json={"label": "3В"})
    added = await api.region_admin.post(
        f"/api/v1/schools/{school['id']}/people",
        json={"display_name": "Вера Новикова", "role": "pupil", "class_label": "3В"},
    )
    assert added.status_code == 201, added.text
    pupil = added.json()["matrix_user_id"]
    chat = f"school-{school['slug']}-{2026 + 1 + 11 - 3}v-chat"
    engine = make_engine(region.settings.sqlalchemy_url)

    async def placed() -> str | None:
        with make_session_factory(engine)() as session:
            record = session.get(ManagedRoom, chat)
            if record is not None and pupil in record.applied.get("members", []):
                return record.room_id
        return None

    try:  # the service reconciles a moment after the change
        room_id = await eventually(placed, "the service to place the new pupil", within=120)
    finally:
        engine.dispose()
    await bot.admin_put_user(pupil, {"password": PASSWORD})
    client = AsyncClient(region.settings.homeserver_url, pupil)
    try:
        assert isinstance(await client.login(PASSWORD), LoginResponse)
        joined = await client.joined_rooms()
        assert isinstance(joined, JoinedRoomsResponse) and room_id in joined.rooms
    finally:
        await client.close()
    synced = await api.region_admin.post("/api/v1/sync")
    assert synced.status_code == 200 and synced.json()["actions"] == 0


async def test_openapi_is_served(region: LocalDeployment) -> None:
    async with httpx.AsyncClient(base_url=region.settings.provisioning_url, timeout=10) as http:
        spec = (await http.get("/openapi.json")).json()
    assert "/api/v1/schools/{school_id}/import" in spec["paths"]


async def test_a_parent_link_is_confirmed_for_pupils_only(api: Api) -> None:
    school = await new_school(api)
    sid = school["id"]
    await api.region_admin.post(f"/api/v1/schools/{sid}/classes", json={"label": "2А"})
    pupil = (
        await api.region_admin.post(
            f"/api/v1/schools/{sid}/people",
            json={"display_name": "Ева Морозова", "role": "pupil", "class_label": "2А"},
        )
    ).json()
    teacher = (
        await api.region_admin.post(
            f"/api/v1/schools/{sid}/people",
            json={"display_name": "Игорь Морозов", "role": "teacher"},
        )
    ).json()
    linked = await api.region_admin.post(
        f"/api/v1/schools/{sid}/parent-links",
        json={"parent_id": teacher["id"], "child_id": pupil["id"]},
    )
    assert linked.status_code == 201, linked.text
    assert "parent" in linked.json()["roles"]
    not_a_pupil = await api.region_admin.post(
        f"/api/v1/schools/{sid}/parent-links",
        json={"parent_id": pupil["id"], "child_id": teacher["id"]},
    )
    assert (not_a_pupil.status_code, not_a_pupil.json()["errcode"]) == (400, "M_INVALID_PARAM")
    teachers_parent = await api.region_admin.post(
        f"/api/v1/schools/{sid}/people",
        json={"display_name": "Анна Морозова", "role": "parent", "children": [teacher["id"]]},
    )
    assert teachers_parent.status_code == 400, teachers_parent.text
    assert "is not a pupil here" in teachers_parent.json()["error"]


async def test_a_school_opens_one_room_to_other_regions_and_the_policy_learns_it(
    region: LocalDeployment, api: Api
) -> None:
    school = await new_school(api)
    await api.region_admin.post(f"/api/v1/schools/{school['id']}/classes", json={"label": "8А"})
    chat = f"school-{school['slug']}-{2026 + 1 + 11 - 8}a-chat"

    async def created() -> list[dict[str, object]] | None:
        rooms = (await api.region_admin.get(f"/api/v1/schools/{school['id']}/rooms")).json()
        return rooms if any(r["alias"] == chat and r["room_id"] for r in rooms) else None

    # The service creates the class's rooms a moment later.
    rooms = await eventually(created, f"the service to create {chat}", within=120)
    by_alias = {r["alias"]: r for r in rooms}
    assert by_alias[chat]["room_id"] and not any(r["federated"] for r in rooms)
    url = f"/api/v1/schools/{school['id']}/rooms/{chat}/federation"
    opened = await api.region_admin.put(url, json={"federated": True})
    assert opened.status_code == 200 and opened.json()["federated"] is True, opened.text
    missing = await api.region_admin.put(
        f"/api/v1/schools/{school['id']}/rooms/school-nope/federation", json={"federated": True}
    )
    assert (missing.status_code, missing.json()["errcode"]) == (404, "M_NOT_FOUND")
    bad = await api.region_admin.put(url, json={"federated": "maybe"})
    assert bad.status_code == 400
    snapshot = region.settings.policy_snapshot_path
    room_id = str(by_alias[chat]["room_id"])

    async def open_in_snapshot() -> bool:
        return bool(json.loads(snapshot.read_bytes())["rooms"].get(room_id, {}).get("federated"))

    # The service's run after the change rewrites the snapshot.
    await eventually(open_in_snapshot, "the policy snapshot to show the room as open")


async def test_a_pupil_is_nobodys_parent_not_even_in_another_school(
    region: LocalDeployment, api: Api, bot: MatrixClient
) -> None:
    """The issue's scenario: a director linked a pupil of another school as a «parent»,
    and after a sync that pupil sat in the first school's parents chat."""
    mine, other = await new_school(api), await new_school(api)
    await api.region_admin.post(f"/api/v1/schools/{mine['id']}/classes", json={"label": "5А"})
    await api.region_admin.post(f"/api/v1/schools/{other['id']}/classes", json={"label": "7Б"})

    async def add(school: dict[str, object], body: dict[str, object]) -> dict[str, object]:
        added = await api.region_admin.post(f"/api/v1/schools/{school['id']}/people", json=body)
        assert added.status_code == 201, added.text
        person: dict[str, object] = added.json()
        return person

    vanya = await add(mine, {"display_name": "Ваня Первый", "role": "pupil", "class_label": "5А"})
    petya = await add(other, {"display_name": "Петя Чужой", "role": "pupil", "class_label": "7Б"})
    director = await add(mine, {"display_name": "Директор Первой", "role": "school_admin"})
    await bot.admin_put_user(str(director["matrix_user_id"]), {"password": PASSWORD})
    token = await token_for(region, str(director["matrix_user_id"]), PASSWORD)
    async with api.as_token(token) as http:
        linked = await http.post(
            f"/api/v1/schools/{mine['id']}/parent-links",
            json={"parent_id": petya["id"], "child_id": vanya["id"]},
        )
    assert (linked.status_code, linked.json()["errcode"]) == (400, "M_INVALID_PARAM"), linked.text
    assert "is a pupil" in linked.json()["error"]

    # A link made before this rule, still in the database, places nobody.
    engine = make_engine(region.settings.sqlalchemy_url)
    try:
        with make_session_factory(engine)() as session:
            session.add(ParentLink(parent_id=int(str(petya["id"])), child_id=int(str(vanya["id"]))))
            session.commit()
        await sync_now(api.region_admin)
        parents_chat = f"school-{mine['slug']}-{2026 + 1 + 11 - 5}a-parents"
        with make_session_factory(engine)() as session:
            record = session.get(ManagedRoom, parents_chat)
            assert record is not None and record.room_id
            assert petya["matrix_user_id"] not in record.applied.get("members", [])
            room_id = record.room_id
    finally:
        engine.dispose()
    members = await bot.request("GET", path("rooms", room_id, "members"))
    assert petya["matrix_user_id"] not in {event["state_key"] for event in members["chunk"]}
    snapshot = json.loads(region.settings.policy_snapshot_path.read_text())
    assert petya["matrix_user_id"] not in snapshot["parents"]
