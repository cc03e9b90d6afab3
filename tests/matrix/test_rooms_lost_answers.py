"""The room helpers when an answer is lost: the homeserver acted, the answer never came,
the client retried and met the state the first attempt made. Simulated with an in-memory
transport that drops the first answer after "acting"."""

from __future__ import annotations

import json

import httpx
import pytest

from matrix import media, rooms
from matrix.client import MatrixClient, RetryPolicy, TokenClient
from matrix.errors import Forbidden, NotFound

ROOM = "!room:example.org"
USER = "@pupil:example.org"
BOT = "@bot:example.org"
FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.001, deadline=5.0)


class LossyHomeserver:
    """Answers like Synapse; the first request whose path contains `lose` is carried
    out but its answer is dropped (a read timeout)."""

    def __init__(self, *, lose: str, members: dict[str, str]) -> None:
        self.lose = lose
        self.members = members  # user ID -> membership, as the room holds it
        self.lost = False
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = request.url.path
        self.seen.append(f"{request.method} {url}")
        if request.method == "GET" and "/state/m.room.member/" in request.url.raw_path.decode():
            user = url.rsplit("/", 1)[1]
            if user not in self.members:
                return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no"})
            return httpx.Response(200, json={"membership": self.members[user]})
        if request.method == "GET" and url.endswith("/account/whoami"):
            return httpx.Response(200, json={"user_id": BOT})
        body = json.loads(request.content or b"{}")
        answer = self._act(request.method, url, body)
        if self.lose in url and not self.lost:
            self.lost = True
            raise httpx.ReadTimeout("answer lost", request=request)
        return answer

    def _act(self, method: str, url: str, body: dict[str, object]) -> httpx.Response:
        refused = httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "refused"})
        if url.startswith("/_synapse/admin/v1/join/"):
            user = str(body["user_id"])
            if self.members.get(user) == "join":
                return refused  # "… is already in the room"
            self.members[user] = "join"
        elif url.endswith("/kick"):
            user = str(body["user_id"])
            if self.members.get(user) != "join":
                return refused  # "… is not in the room"
            self.members[user] = "leave"
        elif url.endswith("/leave"):
            if self.members.get(BOT) != "join":
                return refused
            self.members[BOT] = "leave"
        elif url.endswith("/createRoom"):
            if self.members:
                return httpx.Response(400, json={"errcode": "M_ROOM_IN_USE", "error": "taken"})
            self.members[BOT] = "join"
            return httpx.Response(200, json={"room_id": ROOM})
        elif "/directory/room/" in url:
            if BOT not in self.members:
                return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no"})
            return httpx.Response(200, json={"room_id": ROOM})
        return httpx.Response(200, json={})


def _client(homeserver: LossyHomeserver) -> MatrixClient:
    return MatrixClient(
        "http://hs.test", "token", retry=FAST, transport=httpx.MockTransport(homeserver)
    )


async def test_a_join_whose_answer_was_lost_is_done() -> None:
    homeserver = LossyHomeserver(lose="/join/", members={BOT: "join"})
    async with _client(homeserver) as client:
        await rooms.admin_join(client, ROOM, USER)
    assert homeserver.lost and homeserver.members[USER] == "join"


async def test_a_kick_whose_answer_was_lost_is_done() -> None:
    homeserver = LossyHomeserver(lose="/kick", members={BOT: "join", USER: "join"})
    async with _client(homeserver) as client:
        await rooms.kick(client, ROOM, USER, reason="test")
    assert homeserver.lost and homeserver.members[USER] == "leave"


async def test_a_leave_whose_answer_was_lost_is_done() -> None:
    homeserver = LossyHomeserver(lose="/leave", members={BOT: "join"})
    async with _client(homeserver) as client:
        await rooms.leave(client, ROOM)
    assert homeserver.lost and homeserver.members[BOT] == "leave"


async def test_a_creation_whose_answer_was_lost_adopts_the_room() -> None:
    homeserver = LossyHomeserver(lose="/createRoom", members={})
    async with _client(homeserver) as client:
        ensured = await rooms.create_or_adopt(client, "school-x", "example.org", {})
    assert homeserver.lost
    assert ensured == rooms.EnsuredRoom(ROOM, created=False)


async def test_a_join_refused_for_another_reason_is_raised() -> None:
    homeserver = LossyHomeserver(lose="nothing", members={BOT: "join", USER: "ban"})

    def banned(request: httpx.Request) -> httpx.Response:
        if "/_synapse/admin/v1/join/" in request.url.path:
            return httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "banned"})
        return homeserver(request)

    transport = httpx.MockTransport(banned)
    async with MatrixClient("http://hs.test", "t", retry=FAST, transport=transport) as client:
        with pytest.raises(Forbidden):
            await rooms.admin_join(client, ROOM, USER)


async def test_a_token_client_raises_typed_errors_and_does_not_retry() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["Authorization"])
        return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "gone"})

    async with httpx.AsyncClient(
        base_url="http://hs.test", transport=httpx.MockTransport(handler)
    ) as http:
        with pytest.raises(NotFound):
            await rooms.read_event(TokenClient(http, "person-token"), ROOM, "$event")
    assert calls == ["Bearer person-token"]


def test_mxc_uris_split_into_server_and_media_id() -> None:
    assert media.split_mxc("mxc://example.org/abcDEF") == ("example.org", "abcDEF")
