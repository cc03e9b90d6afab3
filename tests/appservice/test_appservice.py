"""The bridge as Synapse's appservice: token checks, ping, transactions processed once."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from nio import Api
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.appservice.store import AppserviceTransaction, InboxEvent
from tests.harness.region import region_session
from tests.matrix_users import logged_in, new_person


@pytest.fixture
def db(region: LocalDeployment) -> Iterator[Session]:
    with region_session(region) as session:
        yield session


def _as_homeserver(region: LocalDeployment, token: str | None = None) -> httpx.Client:
    hs_token = region.settings.hs_token.get_secret_value() if token is None else token
    headers = {"Authorization": f"Bearer {hs_token}"} if hs_token else {}
    return httpx.Client(base_url=region.settings.bridge_url, headers=headers, timeout=10)


def test_bridge_became_healthy_through_a_ping_round_trip(region: LocalDeployment) -> None:
    health = httpx.get(f"{region.settings.bridge_url}/healthz", timeout=5).json()
    assert health["status"] == "ok"
    assert isinstance(health["appservice_ping_ms"], int)


async def test_homeserver_pings_the_bridge(bot: MatrixClient, region: LocalDeployment) -> None:
    duration = await bot.appservice_ping(region.settings.appservice_id, "test-ping-1")
    assert 0 <= duration < 5000


@pytest.mark.parametrize(
    ("token", "status", "errcode"), [("", 401, "M_UNAUTHORIZED"), ("wrong", 403, "M_FORBIDDEN")]
)
def test_bridge_refuses_callers_without_the_hs_token(
    region: LocalDeployment, token: str, status: int, errcode: str
) -> None:
    with _as_homeserver(region, token) as http:
        for response in (
            http.put("/_matrix/app/v1/transactions/forged", json={"events": []}),
            http.post("/_matrix/app/v1/ping", json={}),
            http.get(f"/_matrix/app/v1/users/{region.settings.bot_user_id}"),
        ):
            assert response.status_code == status
            assert response.json()["errcode"] == errcode


def test_user_and_alias_queries(region: LocalDeployment) -> None:
    with _as_homeserver(region) as http:
        assert http.get(f"/_matrix/app/v1/users/{region.settings.bot_user_id}").status_code == 200
        missing = http.get("/_matrix/app/v1/users/@parta-nobody:localhost")
        assert (missing.status_code, missing.json()["errcode"]) == (404, "M_NOT_FOUND")
        alias = http.get("/_matrix/app/v1/rooms/%23school-unknown:localhost")
        assert alias.status_code == 404


def test_a_retried_transaction_is_processed_once(region: LocalDeployment, db: Session) -> None:
    txn_id = f"test-{secrets.token_hex(4)}"
    member = {
        "event_id": f"$member-{txn_id}",
        "room_id": "!someroom",
        "type": "m.room.member",
        "state_key": "@pupil:localhost",
        "sender": "@pupil:localhost",
        "origin_server_ts": 1_700_000_000_000,
        "content": {"membership": "knock"},
    }
    message = {
        "event_id": f"$message-{txn_id}",
        "room_id": "!someroom",
        "type": "m.room.message",
        "sender": "@pupil:localhost",
        "origin_server_ts": 1_700_000_000_001,
        "content": {"msgtype": "m.text", "body": "private words"},
    }
    with _as_homeserver(region) as http:
        for _ in range(3):
            response = http.put(
                f"/_matrix/app/v1/transactions/{txn_id}", json={"events": [member, message]}
            )
            assert (response.status_code, response.json()) == (200, {})
        bad = http.put("/_matrix/app/v1/transactions/bad", json={"events": "nope"})
        assert (bad.status_code, bad.json()["errcode"]) == (400, "M_BAD_JSON")
    assert (
        db.scalar(
            select(func.count())
            .select_from(AppserviceTransaction)
            .where(AppserviceTransaction.txn_id == txn_id)
        )
        == 1
    )
    kept = db.scalars(select(InboxEvent).where(InboxEvent.txn_id == txn_id)).all()
    # The knock is kept once; the message body never reaches Parta's database.
    assert [(e.event_id, e.content) for e in kept] == [
        (member["event_id"], {"membership": "knock"})
    ]


def test_a_reused_transaction_id_with_other_events_is_a_new_transaction(
    region: LocalDeployment, db: Session
) -> None:
    """Synapse on SQLite numbers transactions from 1 again after a restart."""
    txn_id = f"test-reused-{secrets.token_hex(4)}"

    def knock(who: str) -> dict[str, object]:
        return {
            "event_id": f"$knock-{who}-{txn_id}", "room_id": "!someroom",
            "type": "m.room.member", "state_key": f"@{who}:localhost",
            "sender": f"@{who}:localhost", "origin_server_ts": 1_700_000_000_000,
            "content": {"membership": "knock"},
        }  # fmt: skip

    with _as_homeserver(region) as http:
        for events in ([knock("before")], [knock("before")], [knock("after")]):
            response = http.put(f"/_matrix/app/v1/transactions/{txn_id}", json={"events": events})
            assert (response.status_code, response.json()) == (200, {})
    db.rollback()
    kept = db.scalars(select(InboxEvent.event_id).where(InboxEvent.txn_id == txn_id)).all()
    assert sorted(kept) == sorted([f"$knock-before-{txn_id}", f"$knock-after-{txn_id}"])


async def test_synapse_delivers_events_of_managed_rooms(
    region: LocalDeployment, bot: MatrixClient, db: Session
) -> None:
    alias_localpart = f"school-test-{secrets.token_hex(3)}"
    created = await bot.call_api(Api.room_create("", alias=alias_localpart, name="5А — чат класса"))
    room_id = created["room_id"]
    user_id, password = await new_person(bot, region, "pupil")
    await bot.call_api(Api.room_invite("", room_id, user_id))
    async with logged_in(region, user_id, password) as pupil:
        await pupil.join(room_id)

    # Synapse pushes transactions in the background and backs off after a slow answer:
    # allow for a loaded machine.
    deadline = time.monotonic() + 90
    memberships: list[str] = []
    while time.monotonic() < deadline:
        db.rollback()  # a fresh snapshot: see what the bridge committed since
        memberships = [
            e.content.get("membership", "")
            for e in db.scalars(
                select(InboxEvent)
                .where(InboxEvent.room_id == room_id, InboxEvent.state_key == user_id)
                .order_by(InboxEvent.origin_server_ts)
            )
        ]
        if "join" in memberships:
            break
        await asyncio.sleep(0.2)
    assert memberships == ["invite", "join"]
