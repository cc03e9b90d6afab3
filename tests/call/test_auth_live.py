"""Who may join a call: OpenID tokens verified at the real homeserver, and the room's say."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from nio import RoomCreateResponse

from matrix.client import MatrixClient
from matrix.openid import OpenIDError, OpenIDVerifier, ServerResolver, split_server_name
from parta.deployment import LocalDeployment
from tests.harness.ports import free_ports
from tests.matrix_users import logged_in, new_person, openid_token
from widgets.call.room_access import NoAccess, check_room_access


def test_server_names_are_split_as_the_spec_says() -> None:
    assert split_server_name("school.example.org") == ("school.example.org", None)
    assert split_server_name("school.example.org:8448") == ("school.example.org", 8448)
    assert split_server_name("127.0.0.1:8009") == ("127.0.0.1", 8009)
    assert split_server_name("[::1]:8448") == ("[::1]", 8448)
    for bad in ("", "http://x", "a b", "x:99999", "x:", "@user:x"):
        with pytest.raises(OpenIDError) as caught:
            split_server_name(bad)
        assert caught.value.reason == "bad_server_name"


async def test_ip_literals_and_explicit_ports_are_used_as_they_are() -> None:
    resolver = ServerResolver(
        local={"localhost": "http://127.0.0.1:8008/"},
        federated=frozenset({"10.1.2.3", "region2.example.org:8449"}),
    )
    assert (await resolver.resolve("localhost")).base_url == "http://127.0.0.1:8008"
    endpoint = await resolver.resolve("10.1.2.3")
    assert (endpoint.base_url, endpoint.tls_name) == ("https://10.1.2.3:8448", "10.1.2.3")
    endpoint = await resolver.resolve("region2.example.org:8449")
    assert endpoint.base_url == "https://region2.example.org:8449"


def verifier_for(region: LocalDeployment) -> OpenIDVerifier:
    s = region.settings
    return OpenIDVerifier(ServerResolver(local={s.server_name: s.homeserver_url}))


async def test_a_token_from_the_homeserver_names_its_user(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    user_id, password = await new_person(bot, region, "caller")
    async with logged_in(region, user_id, password) as client:
        token = await openid_token(client)
    verifier = verifier_for(region)
    assert token["matrix_server_name"] == region.settings.server_name
    assert await verifier.verify(token) == user_id
    assert await verifier.verify(token) == user_id  # the second answer comes from the cache
    forged = {**token, "access_token": "not-a-token-the-homeserver-made"}
    with pytest.raises(OpenIDError) as caught:
        await verifier.verify(forged)
    assert caught.value.reason == "invalid_token"
    for malformed in (None, "token", {"access_token": "x y", "matrix_server_name": "hs"}, {}):
        with pytest.raises(OpenIDError) as caught:
            await verifier.verify(malformed)
        assert caught.value.reason in ("bad_token", "bad_server_name")


@pytest.fixture
async def lying_homeserver() -> AsyncIterator[str]:
    """A homeserver that vouches for a user of another server: its word must not count."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps({"sub": "@director:school.example.org"}).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    (port,) = free_ports(1)
    server = await asyncio.start_server(answer, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_homeserver_speaks_only_for_its_own_users(lying_homeserver: str) -> None:
    verifier = OpenIDVerifier(ServerResolver(local={"liar.example.org": lying_homeserver}))
    token = {"access_token": "abc", "matrix_server_name": "liar.example.org", "expires_in": 60}
    with pytest.raises(OpenIDError) as caught:
        await verifier.verify(token)
    assert caught.value.reason == "wrong_server"


async def test_an_unreachable_homeserver_is_said_so() -> None:
    (port,) = free_ports(1)  # nothing listens there
    verifier = OpenIDVerifier(
        ServerResolver(local={"gone.example.org": f"http://127.0.0.1:{port}"})
    )
    with pytest.raises(OpenIDError) as caught:
        await verifier.verify({"access_token": "abc", "matrix_server_name": "gone.example.org"})
    assert caught.value.reason == "unreachable"


async def test_the_room_says_who_joins_its_call_and_who_moderates(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    teacher, teacher_password = await new_person(bot, region, "teacher")
    pupil, pupil_password = await new_person(bot, region, "pupil")
    outsider, _ = await new_person(bot, region, "outsider")
    # A room of people's own, without the bot: the SFU reads it through the admin API.
    async with logged_in(region, teacher, teacher_password) as client:
        created = await client.room_create(name="Кружок", invite=[pupil])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
    async with logged_in(region, pupil, pupil_password) as client:
        await client.join(room_id)
    access = await check_room_access(bot, room_id, teacher)
    assert access.moderator and access.display_name == "Teacher"
    assert not (await check_room_access(bot, room_id, pupil)).moderator
    with pytest.raises(NoAccess) as refused:
        await check_room_access(bot, room_id, outsider)
    assert refused.value.reason == "not_a_member"
    with pytest.raises(NoAccess) as unknown:
        await check_room_access(bot, "!nowhere:" + region.settings.server_name, teacher)
    assert unknown.value.reason == "unknown_room"
    # A room the bot is in (as in every room Parta manages): read event by event.
    own = await bot.request(
        "POST", "/_matrix/client/v3/createRoom",
        body={"invite": [teacher], "power_level_content_override": {"users": {teacher: 50}}},
    )  # fmt: skip
    async with logged_in(region, teacher, teacher_password) as client:
        await client.join(own["room_id"])
    assert (await check_room_access(bot, own["room_id"], teacher)).moderator
    with pytest.raises(NoAccess):
        await check_room_access(bot, own["room_id"], pupil)
