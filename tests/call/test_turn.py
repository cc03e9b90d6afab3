"""TURN for call pages behind NAT: credentials only for verified pages, and a relayed call.

The credentials follow coturn's REST-API scheme; the test computes the HMAC itself. The
live test starts Debian's `turnserver` on loopback with the rendered configuration and
connects a relay-only aiortc page to the SFU through it, with the credentials its offer
brought: if media arrives, it came through coturn.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aioice import stun
from aioice.ice import get_host_addresses
from aioice.turn import create_turn_endpoint
from aiortc import RTCIceServer, RTCSessionDescription
from pydantic import SecretStr
from websockets.asyncio.client import connect

from foundation.settings import Settings
from parta.deployment import LocalDeployment
from parta.render import render_synapse_config
from tests.call.conftest import WAIT_S, Lesson, serving, until
from tests.call.test_call_service_live import receive, refused
from tests.call.test_sfu import Client
from tests.harness.ports import free_ports
from tests.harness.processes import stop
from widgets.app import create_app
from widgets.call.sfu import new_peer_connection
from widgets.call.turn import TurnIssuer, is_valid, sign

SECRET = "a-turn-secret-for-the-tests-0123456789"


def expected_credential(secret: str, username: str) -> str:
    """coturn's check, written out independently: base64(HMAC-SHA1(secret, username))."""
    mac = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


# --- the credentials --------------------------------------------------------------------


def test_credentials_are_coturns_rest_api_scheme_and_expire() -> None:
    now = [1_800_000_000.0]
    uris = ("turn:turn.example.org:3478?transport=udp",)
    issuer = TurnIssuer(SECRET, uris, lifetime_s=3600, clock=lambda: now[0])
    issued = issuer.issue("@ivan:school.example.org")
    assert issued.username == "1800003600:@ivan:school.example.org"
    assert issued.expires_at == 1_800_003_600
    assert issued.credential == expected_credential(SECRET, issued.username)
    assert issued.ice_server() == {
        "urls": list(uris),
        "username": issued.username,
        "credential": issued.credential,
    }
    assert is_valid(SECRET, issued.username, issued.credential, now=now[0] + 3599)
    assert not is_valid(SECRET, issued.username, issued.credential, now=now[0] + 3600)
    assert not is_valid("another secret", issued.username, issued.credential, now=now[0])
    # A later expiry written into the name does not verify with the old credential.
    forged = issued.username.replace("1800003600", "1900000000")
    assert not is_valid(SECRET, forged, issued.credential, now=now[0])
    assert not is_valid(SECRET, "@ivan:school.example.org", sign(SECRET, "x"), now=now[0])


def test_no_issuer_without_turn_and_none_without_its_secret() -> None:
    assert TurnIssuer.from_settings(Settings()) is None
    with pytest.raises(ValueError, match="PARTA_TURN_SHARED_SECRET is empty"):
        TurnIssuer.from_settings(Settings(turn_host="turn.example.org"))
    issuer = TurnIssuer.from_settings(
        Settings(turn_host="turn.example.org", turn_shared_secret=SecretStr(SECRET))
    )
    assert issuer is not None and issuer.lifetime_s == 8 * 3600
    assert issuer.uris == (
        "turn:turn.example.org:3478?transport=udp",
        "turn:turn.example.org:3478?transport=tcp",
    )


# --- the widget service hands them out ------------------------------------------------------


def with_turn(region: LocalDeployment, **turn: object) -> Settings:
    """The test region's settings with TURN configured (the secret from its secrets.env)."""
    assert region.settings.turn_shared_secret.get_secret_value()  # generated at deploy time
    return region.settings.model_copy(update=turn)


async def test_only_a_verified_page_gets_turn_credentials(
    region: LocalDeployment, lesson: Lesson
) -> None:
    settings = with_turn(region, turn_host="turn.example.org")
    secret = settings.turn_shared_secret.get_secret_value()
    async with serving(create_app(settings)) as base:
        url = base.replace("http://", "ws://") + "/call/ws"
        # Anonymous: the public config has no credentials, and no join means no offer.
        async with httpx.AsyncClient() as http:
            config = (await http.get(f"{base}/call/config.json")).json()
        assert "username" not in json.dumps(config) and "credential" not in json.dumps(config)
        forged = {**lesson.tokens["pupil"], "access_token": "made-up"}
        room = lesson.room_id
        assert await refused(url, {"type": "join", "room_id": room}) == ("bad_join", 1008)
        hello = {"type": "join", "room_id": room, "openid": forged}
        assert (await refused(url, hello))[0] == "invalid_token"
        outsider = {"type": "join", "room_id": room, "openid": lesson.tokens["outsider"]}
        assert (await refused(url, outsider))[0] == "not_a_member"

        # A member signed in with a real token: the offer brings credentials for them.
        async with connect(url) as socket:
            hello = {"type": "join", "room_id": room, "openid": lesson.tokens["pupil"]}
            await socket.send(json.dumps(hello))
            before = int(time.time())
            offer = await receive(socket, "offer")
        (server,) = offer["ice_servers"]
        assert server["urls"] == settings.turn_server_uris
        expiry, _, user = server["username"].partition(":")
        assert user == lesson.users["pupil"]
        assert before + 8 * 3600 - 5 <= int(expiry) <= int(time.time()) + 8 * 3600
        assert server["credential"] == expected_credential(secret, server["username"])

    # Without TURN configured, the offer has no ICE servers.
    async with AsyncExitStack() as stack:
        base = await stack.enter_async_context(serving(create_app(region.settings)))
        socket = await stack.enter_async_context(connect(base.replace("http", "ws") + "/call/ws"))
        hello = {"type": "join", "room_id": room, "openid": lesson.tokens["pupil"]}
        await socket.send(json.dumps(hello))
        assert (await receive(socket, "offer"))["ice_servers"] == []


# --- a call relayed through coturn -------------------------------------------------------


@dataclass
class Relay:
    settings: Settings
    log: Path


@pytest.fixture
def relay(region: LocalDeployment, tmp_path: Path) -> Iterator[Relay]:
    """Debian's coturn on loopback, with Parta's rendered config and test-only overrides."""
    turnserver = shutil.which("turnserver")
    if turnserver is None:
        pytest.skip(
            "Debian's coturn is not installed (apt-get install coturn; deploy.sh test does)"
        )
    sfu_addresses = get_host_addresses(use_ipv4=True, use_ipv6=False)
    if not sfu_addresses:
        pytest.skip("this machine has no non-loopback IPv4 address for the SFU's candidates")
    (port,) = free_ports(1)
    low = 40_000 + port % 20_000  # a relay range of its own, away from other tests' ports
    settings = with_turn(
        region,
        turn_host="127.0.0.1",
        turn_port=port,
        turn_relay_min_port=low,
        turn_relay_max_port=low + 200,
        # The SFU's host candidates are on this machine's private address: allowed, as an
        # operator allows the SFU's own address; every other private range stays refused.
        turn_allowed_peer_ips=sfu_addresses,
    )
    conf = next(f for f in render_synapse_config(settings) if f.path.name == "turnserver.conf")
    log = tmp_path / "turnserver.log"
    # Test-only: clients on loopback, relayed from the machine's address, a log of our own.
    overrides = [
        "listening-ip=127.0.0.1",
        f"relay-ip={sfu_addresses[0]}",
        f"log-file={log}",
        f"pidfile={tmp_path / 'turnserver.pid'}",
    ]
    lines = [line for line in conf.content.splitlines() if line != "syslog"]
    path = tmp_path / "turnserver.conf"
    path.write_text("\n".join([*lines, *overrides, ""]), encoding="utf-8")
    process = subprocess.Popen(
        [turnserver, "-c", str(path), "--no-stdout-log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while not _answers_stun(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"turnserver did not start:\n{_tail(log)}")
            time.sleep(0.1)
        yield Relay(settings, log)
    finally:
        stop(process)


def _answers_stun(port: int) -> bool:
    """Does a STUN binding request on 127.0.0.1:port get an answer?"""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        probe.sendto(bytes(request), ("127.0.0.1", port))
        try:
            answer = stun.parse_message(probe.recvfrom(2048)[0])
        except (TimeoutError, ConnectionError, ValueError):
            return False
    return answer.transaction_id == request.transaction_id


def _tail(log: Path) -> str:
    if not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-30:])


def ice_servers_of(offer: dict[str, Any]) -> list[RTCIceServer]:
    return [
        RTCIceServer(urls=s["urls"], username=s["username"], credential=s["credential"])
        for s in offer["ice_servers"]
    ]


async def test_a_page_that_can_only_relay_gets_the_lesson_through_coturn(
    relay: Relay, lesson: Lesson
) -> None:
    pages: list[Client] = []
    sockets = {}
    async with AsyncExitStack() as stack, serving(create_app(relay.settings)) as base:
        url = base.replace("http://", "ws://") + "/call/ws"
        for key in ("teacher", "pupil"):
            socket = sockets[key] = await stack.enter_async_context(connect(url))
            hello = {"type": "join", "room_id": lesson.room_id, "openid": lesson.tokens[key]}
            await socket.send(json.dumps(hello))
            offer = await receive(socket, "offer")
            # The pupil is behind a NAT that lets nothing in: only relayed candidates.
            pc = new_peer_connection(ice_servers_of(offer), relay_only=key == "pupil")
            page = Client(lesson.users[key], pc=pc)
            pages.append(page)
            sdp = await page.answer(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
            await socket.send(json.dumps({"type": "answer", "sdp": sdp}))
        try:
            teacher_id = lesson.users["teacher"]
            async with asyncio.timeout(WAIT_S):
                while True:
                    state = await receive(sockets["pupil"], "state")
                    shown = {
                        f"{v['user_id']}/{v['source']}": mid for mid, v in state["slots"].items()
                    }
                    if f"{teacher_id}/camera" in shown:
                        break
            camera = shown[f"{teacher_id}/camera"]
            pupil = pages[1]
            await until(lambda: pupil.frames.get(camera, 0) >= 10, "the teacher's video, relayed")
            # Every candidate the pupil's side has is a relay on coturn: media came that way.
            ice = pupil.pc.getTransceivers()[0].receiver.transport.transport
            candidates = ice.iceGatherer.getLocalCandidates()
            assert candidates and {c.type for c in candidates} == {"relay"}
            assert {c.ip for c in candidates} <= set(relay.settings.turn_allowed_peer_ips)
            s = relay.settings
            assert all(s.turn_relay_min_port <= c.port <= s.turn_relay_max_port for c in candidates)
        finally:
            await asyncio.gather(*(p.close() for p in pages))


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received.append(data)


async def test_coturn_relays_for_fresh_signed_names_only_and_not_inwards(relay: Relay) -> None:
    settings = relay.settings
    server = ("127.0.0.1", settings.turn_port)
    issuer = TurnIssuer.from_settings(settings)
    assert issuer is not None
    loop = asyncio.get_running_loop()
    sfu_side, sfu_inbox = await loop.create_datagram_endpoint(
        Inbox, local_addr=(settings.turn_allowed_peer_ips[0], 0)
    )
    internal, internal_inbox = await loop.create_datagram_endpoint(
        Inbox, local_addr=("127.0.0.1", 0)
    )
    fresh = issuer.issue("@ivan:localhost")
    transport, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol, server, fresh.username, fresh.credential
    )
    try:
        _, relayed_port = transport.get_extra_info("sockname")
        assert settings.turn_relay_min_port <= relayed_port <= settings.turn_relay_max_port
        # The SFU's address is reachable through the relay; loopback (the host's internal
        # services) is not, although the relay runs on this very machine.
        for _ in range(20):
            transport.sendto(b"to the SFU", sfu_side.get_extra_info("sockname"))
            transport.sendto(b"to an internal service", internal.get_extra_info("sockname"))
            await asyncio.sleep(0.1)
            if sfu_inbox.received:
                break
        assert b"to the SFU" in sfu_inbox.received
        await asyncio.sleep(0.5)
        assert internal_inbox.received == []
    finally:
        transport.close()
        sfu_side.close()
        internal.close()

    # Signed with the right secret but expired, or signed with another secret: refused.
    expired = TurnIssuer(issuer.secret, issuer.uris, 60, clock=lambda: time.time() - 3600)
    wrong = TurnIssuer("not the region's secret", issuer.uris, 3600)
    for credentials in (expired.issue("@ivan:localhost"), wrong.issue("@ivan:localhost")):
        with pytest.raises(stun.TransactionFailed) as refusal:
            await create_turn_endpoint(
                asyncio.DatagramProtocol, server, credentials.username, credentials.credential
            )
        assert refusal.value.response.attributes["ERROR-CODE"][0] == 401
