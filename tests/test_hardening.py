"""The homeserver's hardening, seen from a client: what a stranger or a pupil cannot do."""

from __future__ import annotations

import asyncio

import httpx
from nio import Api, AsyncClient, RegisterResponse, RoomCreateResponse, RoomVisibility

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from tests.matrix_users import logged_in, new_person


def test_open_registration_is_refused(region: LocalDeployment) -> None:
    response = httpx.post(
        f"{region.settings.homeserver_url}/_matrix/client/v3/register",
        json={
            "username": "intruder",
            "password": "intruder-pass-1",
            "auth": {"type": "m.login.dummy"},
        },
        timeout=10,
    )
    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"


async def test_nio_registration_is_refused(region: LocalDeployment) -> None:
    client = AsyncClient(region.settings.homeserver_url, "intruder2")
    try:
        assert not isinstance(
            await client.register("intruder2", "intruder-pass-2"), RegisterResponse
        )
    finally:
        await client.close()


def test_guest_access_is_refused(region: LocalDeployment) -> None:
    response = httpx.post(
        f"{region.settings.homeserver_url}/_matrix/client/v3/register",
        params={"kind": "guest"},
        json={},
        timeout=10,
    )
    assert response.status_code == 403


def test_public_room_list_needs_a_login(region: LocalDeployment) -> None:
    response = httpx.get(
        f"{region.settings.homeserver_url}/_matrix/client/v3/publicRooms", timeout=10
    )
    assert response.status_code == 401


async def test_user_directory_and_profiles_hide_strangers(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    pupil_id, pupil_password = await new_person(bot, region, "pupil")
    stranger_id, stranger_password = await new_person(bot, region, "stranger")
    stranger_localpart = stranger_id[1:].split(":")[0]
    async with logged_in(region, pupil_id, pupil_password) as pupil:
        token = pupil.access_token
        async with httpx.AsyncClient(
            base_url=region.settings.homeserver_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ) as http:
            found = (
                await http.post(
                    "/_matrix/client/v3/user_directory/search",
                    json={"search_term": stranger_localpart},
                )
            ).json()["results"]
            assert found == []
            assert (await http.get(f"/_matrix/client/v3/profile/{stranger_id}")).status_code == 403

            # Once they share a room, the same search finds them: the test can fail.
            room = await pupil.room_create(invite=[stranger_id])
            assert isinstance(room, RoomCreateResponse)
            async with logged_in(region, stranger_id, stranger_password) as stranger:
                await stranger.join(room.room_id)
            results: list[dict[str, str]] = []
            for _ in range(50):
                results = (
                    await http.post(
                        "/_matrix/client/v3/user_directory/search",
                        json={"search_term": stranger_localpart},
                    )
                ).json()["results"]
                if results:
                    break
                await asyncio.sleep(0.1)
            assert [r["user_id"] for r in results] == [stranger_id]
            assert (await http.get(f"/_matrix/client/v3/profile/{stranger_id}")).status_code == 200


async def test_people_cannot_publish_rooms_but_the_bot_can(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    user_id, password = await new_person(bot, region, "teacher")
    # The same request as the person's below; the publication rules allow it for the bot.
    bots_room = await bot.call_api(
        Api.room_create("", visibility=RoomVisibility.public, name="Новости региона")
    )
    async with (
        logged_in(region, user_id, password) as person,
        httpx.AsyncClient(
            base_url=region.settings.homeserver_url,
            headers={"Authorization": f"Bearer {person.access_token}"},
            timeout=10,
        ) as http,
    ):
        # Asking for a public room is refused by the school policy module, before any
        # room exists; publishing an existing one is refused too.
        public = await http.post(
            "/_matrix/client/v3/createRoom", json={"visibility": "public", "name": "Наш класс"}
        )
        assert public.status_code == 403, public.text
        assert public.json()["errcode"] == "M_FORBIDDEN"
        assert "каталоге" in public.json()["error"]  # the region's language: Russian
        private = await person.room_create(name="Наш класс 2")
        assert isinstance(private, RoomCreateResponse)
        publish = await http.put(
            f"/_matrix/client/v3/directory/list/room/{private.room_id}",
            json={"visibility": "public"},
        )
        assert publish.status_code == 403
        assert publish.json()["errcode"] == "M_FORBIDDEN"

        listed = (await http.get("/_matrix/client/v3/publicRooms")).json()["chunk"]
        listed_ids = {room["room_id"] for room in listed}
        assert bots_room["room_id"] in listed_ids
        assert private.room_id not in listed_ids


def test_servers_off_the_allow_list_are_refused(region: LocalDeployment) -> None:
    """Synapse checks the allow-list before it verifies signatures: no network is needed."""
    forged = (
        'X-Matrix origin="outsider.example",destination="localhost",'
        'key="ed25519:a_abcd",sig="c2lnbmF0dXJl"'
    )
    response = httpx.get(
        f"{region.settings.homeserver_url}/_matrix/federation/v1/query/profile",
        params={"user_id": region.settings.region_admin_user_id},
        headers={"Authorization": forged},
        timeout=10,
    )
    assert response.status_code == 403, response.text
    assert "outsider.example" in response.json()["error"]
