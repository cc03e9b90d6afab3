"""Who an OpenID check may ask, and what one token may open (issue 18), with real tokens.

Before: any server name a caller wrote was resolved and asked, loopback and private
addresses included, ignoring the federation allow-list; each check asked the homeserver
again after 5 minutes at most; one token opened any number of documents sessions and
call sockets.
"""

from __future__ import annotations

import json
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from nio import RoomCreateResponse
from websockets.asyncio.client import ClientConnection, connect

from matrix.client import MatrixClient
from matrix.openid import OpenIDError, OpenIDVerifier, ServerResolver
from parta.deployment import LocalDeployment
from tests.call.test_auth_live import lying_homeserver as lying_homeserver
from tests.matrix_users import logged_in, new_person, openid_token

pytestmark = pytest.mark.timeout(300)


def resolver_for(region: LocalDeployment, **options: frozenset[str]) -> ServerResolver:
    s = region.settings
    return ServerResolver(local={s.server_name: s.homeserver_url}, **options)


async def test_only_our_server_and_the_allow_list_are_asked(
    region: LocalDeployment, lying_homeserver: str
) -> None:
    own_synapse = region.settings.homeserver_url.removeprefix("http://")
    liar = lying_homeserver.removeprefix("http://")
    verifier = OpenIDVerifier(resolver_for(region, federated=frozenset({"region2.example.org"})))
    for stranger in (own_synapse, "169.254.169.254", "[::1]:8448", "evil.example.org", liar):
        with pytest.raises(OpenIDError) as refused:
            await verifier.verify({"access_token": "abc", "matrix_server_name": stranger})
        assert refused.value.reason == "server_not_allowed", stranger
        assert "is not this region's server nor one it federates with" in str(refused.value)

    # On the allow-list but at a loopback address: refused unless the operator named it.
    verifier = OpenIDVerifier(
        resolver_for(region, federated=frozenset({liar, "10.0.0.7", "[::1]:8448"}))
    )
    for name in (liar, "10.0.0.7", "[::1]:8448"):
        with pytest.raises(OpenIDError) as private:
            await verifier.verify({"access_token": "abc", "matrix_server_name": name})
        assert private.value.reason == "private_address", name
    named = OpenIDVerifier(
        resolver_for(region, federated=frozenset({liar}), private_ok=frozenset({liar}))
    )
    with pytest.raises(OpenIDError) as asked:
        await named.verify({"access_token": "abc", "matrix_server_name": liar})
    # Asked now (over TLS, which this plain-HTTP fake does not speak).
    assert asked.value.reason == "unreachable"


async def test_the_widget_service_refuses_strangers_servers(region: LocalDeployment) -> None:
    own_synapse = region.settings.homeserver_url.removeprefix("http://")
    async with httpx.AsyncClient(base_url=region.settings.widgets_url, timeout=60) as http:
        answer = await http.post(
            "/documents/api/session",
            json={"openid": {"access_token": "abc", "matrix_server_name": own_synapse}},
        )
    assert answer.status_code == 401
    assert "is not this region's server nor one it federates with" in answer.json()["error"]


async def test_a_verified_token_is_remembered_for_its_lifetime(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    user, password = await new_person(bot, region, "reader")
    async with logged_in(region, user, password) as client:
        token = await openid_token(client)
    verifier = OpenIDVerifier(resolver_for(region))
    asked: list[str] = []
    ask = verifier._userinfo

    async def counted(*args: Any) -> str:
        asked.append("userinfo")
        return await ask(*args)

    verifier._userinfo = counted  # type: ignore[method-assign]
    for _ in range(5):
        assert await verifier.verify(token) == user
    assert asked == ["userinfo"]
    ((expires, _),) = verifier._cache.values()
    lifetime = float(str(token["expires_in"]))
    assert lifetime > 600  # Synapse's tokens live an hour: remembered that long, not 5 min
    assert expires - time.monotonic() > lifetime - 60


async def test_one_token_opens_at_most_three_documents_sessions(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    user, password = await new_person(bot, region, "reader")
    async with logged_in(region, user, password) as client:
        token = await openid_token(client)
        fresh = await openid_token(client)
    async with httpx.AsyncClient(base_url=region.settings.widgets_url, timeout=60) as http:
        for _ in range(3):
            opened = await http.post("/documents/api/session", json={"openid": token})
            assert opened.status_code == 200, opened.text
        refused = await http.post("/documents/api/session", json={"openid": token})
        assert refused.status_code == 429
        assert refused.json()["errcode"] == "PARTA_TOO_MANY_SESSIONS"
        assert "opened 3 documents sessions already" in refused.json()["error"]
        again = await http.post("/documents/api/session", json={"openid": fresh})
        assert again.status_code == 200, again.text


async def first_message(socket: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await socket.recv())
    return message


async def test_one_token_is_in_at_most_three_calls(
    region: LocalDeployment, bot: MatrixClient
) -> None:
    user, password = await new_person(bot, region, "teacher")
    async with logged_in(region, user, password) as client:
        rooms = []
        for number in range(4):
            created = await client.room_create(name=f"Кружок {number}")
            assert isinstance(created, RoomCreateResponse), created
            rooms.append(created.room_id)
        token = await openid_token(client)
    url = region.settings.widgets_url.replace("http://", "ws://") + "/call/ws"

    async def join(stack: AsyncExitStack, room: str) -> tuple[ClientConnection, dict[str, Any]]:
        socket = await stack.enter_async_context(connect(url, open_timeout=60))
        await socket.send(json.dumps({"type": "join", "room_id": room, "openid": token}))
        return socket, await first_message(socket)

    async with AsyncExitStack() as stack:
        held = [await join(stack, room) for room in rooms[:3]]
        assert [message["type"] for _, message in held] == ["offer"] * 3
        fourth, refused = await join(stack, rooms[3])
        assert refused == {"type": "error", "reason": "too_many_sockets"}
        await fourth.wait_closed()
        assert fourth.close_code == 1008
        # The same page rejoining one of its rooms replaces its socket: not a fourth.
        _, rejoined = await join(stack, rooms[0])
        assert rejoined["type"] == "offer"
        # One call left: a place for another room.
        await held[1][0].close()
        for _ in range(50):
            socket, message = await join(stack, rooms[3])
            if message["type"] == "offer":
                break
            await socket.close()
        assert message["type"] == "offer"
