"""Production mode on this machine: Synapse's workers over Redis on PostgreSQL, behind nginx
with TLS, run by Parta's supervisor (CI has no systemd), as `./deploy.sh production` runs it.

The certificate comes from a CA the fixture makes (trustme); clients trust that CA only.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from nio import AsyncClient, JoinedMembersResponse, LoginResponse, RoomSendResponse, SyncResponse
from playwright.sync_api import BrowserContext, expect, sync_playwright
from sqlalchemy import select

from matrix.client import MatrixClient, path
from parta.topology import topology, widget_processes
from provisioning.db.models import EnrolmentRole, Region, Role
from provisioning.reconciler.run import reconcile_region
from provisioning.services import schools as svc
from tests.harness.postgres import PostgresServer
from tests.harness.production import Production, production_deployment
from tests.harness.region import region_session
from tests.harness.waiting import eventually, policy_loaded_snapshot, wait_until
from tests.web.conftest import CHROMIUM

pytestmark = pytest.mark.postgres

PASSWORD = "production-password-1"


@pytest.fixture(scope="module")
def production(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Production]:
    with production_deployment(postgres, tmp_path_factory.mktemp("production")) as running:
        yield running


def test_every_synapse_process_runs_and_answers(production: Production) -> None:
    top = topology(production.settings)
    roles = {w.role for w in top.workers}
    assert len(top.of("event_persister")) >= 2  # the events stream is sharded
    assert roles >= {"synchrotron", "client_reader", "federation_reader", "federation_sender"}
    assert roles >= {"media", "appservice", "pusher", "background", "streams"}
    status = production.deployment.status()
    expected = {"synapse", "nginx", "provisioning", "bridge"}
    expected |= {p.name for p in widget_processes(production.settings)}
    expected |= {f"synapse-{w.name}" for w in top.workers}
    assert set(status) == expected
    assert all(status.values()), status
    for worker in top.workers:
        answer = httpx.get(f"http://127.0.0.1:{worker.port}/health", timeout=10)
        assert answer.text == "OK", worker.name


async def test_nginx_serves_tls_well_known_and_redirects(production: Production) -> None:
    s = production.settings
    async with production.https() as http:
        server = (await http.get("/.well-known/matrix/server")).json()
        assert server == {"m.server": f"localhost:{s.https_port}"}
        client = await http.get("/.well-known/matrix/client")
        assert client.json()["m.homeserver"]["base_url"] == production.origin
        assert client.headers["access-control-allow-origin"] == "*"
        assert "max-age=63072000" in client.headers["strict-transport-security"]
        versions = await http.get("/_matrix/client/versions")
        assert versions.status_code == 200 and "v1.1" in versions.json()["versions"]
        # Synapse's admin API is not served to the internet.
        assert (await http.get("/_synapse/admin/v1/server_version")).status_code == 404
        # The admin UI is the region's home page.
        assert (await http.get("/login")).status_code == 200
    async with httpx.AsyncClient() as plain:
        answer = await plain.get(f"http://localhost:{s.http_port}/login?next=/")
        assert answer.status_code == 301
        assert answer.headers["location"] == f"{production.origin}/login?next=/"
    # A client that does not trust the region's CA is refused.
    async with httpx.AsyncClient(base_url=production.origin) as stranger:
        with pytest.raises(httpx.ConnectError):
            await stranger.get("/_matrix/client/versions")


def _requests_in_log(production: Production, process: str, pattern: str) -> list[str]:
    """Synapse's access lines matching `pattern` in one process's log (`synapse` the main)."""
    name = "synapse" if process == "synapse" else f"synapse-{process}"
    log = production.settings.log_dir / f"{name}.log"
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return [line for line in text.splitlines() if re.search(pattern, line)]


@pytest.fixture(scope="module")
async def people(production: Production) -> dict[str, str]:
    """A school's pupil and teacher, another school's teacher, placed by provisioning."""
    s = production.settings
    tag = secrets.token_hex(3)
    with region_session(production.deployment) as db:
        region = db.scalar(select(Region))
        assert region is not None
        first = svc.create_school(db, region, f"Школа {tag}", academic_year=2026)
        other = svc.create_school(db, region, f"Другая школа {tag}", academic_year=2026)
        a5 = svc.add_class(db, first, 5, "А")
        names = {"ivan": "Иван Ученик", "masha": "Маша Ученица", "olga": "Ольга Учитель",
                 "tanya": "Таня Учитель"}  # fmt: skip
        people = {k: svc.add_person(db, n, f"@{k}-{tag}:{s.server_name}") for k, n in names.items()}
        svc.grant_school_role(db, people["olga"], first, Role.TEACHER)
        svc.enrol(db, people["olga"], a5, EnrolmentRole.CLASS_TEACHER)
        svc.grant_school_role(db, people["tanya"], other, Role.TEACHER)
        svc.enrol(db, people["ivan"], a5, EnrolmentRole.PUPIL)
        svc.enrol(db, people["masha"], a5, EnrolmentRole.PUPIL)
        db.commit()
        async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as bot:
            report = await reconcile_region(db, bot, s, wait_s=180)
            assert not report.applied.failed
            for person in people.values():
                await bot.admin_put_user(str(person.matrix_user_id), {"password": PASSWORD})
        ids = {k: str(p.matrix_user_id) for k, p in people.items()}
    await policy_loaded_snapshot(production.deployment)
    return ids


@pytest.fixture
async def ivan(production: Production, people: dict[str, str]) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(production.origin, people["ivan"], ssl=production.tls())
    try:
        assert isinstance(await client.login(PASSWORD, device_name="phone"), LoginResponse)
        yield client
    finally:
        await client.close()


async def test_a_client_logs_in_over_tls_syncs_sends_and_receives(
    production: Production, people: dict[str, str], ivan: AsyncClient
) -> None:
    olga = AsyncClient(production.origin, people["olga"], ssl=production.tls())
    try:
        assert isinstance(await olga.login(PASSWORD, device_name="laptop"), LoginResponse)
        room = await olga.room_create(name="Кружок", invite=[people["ivan"]])
        room_id = room.room_id  # type: ignore[union-attr]
        await ivan.join(room_id)

        async def joined() -> bool:
            answer = await olga.joined_members(room_id)
            assert isinstance(answer, JoinedMembersResponse), answer
            return people["ivan"] in {m.user_id for m in answer.members}

        await eventually(joined, "Ivan's join", within=60)
        first = await ivan.sync(timeout=0)
        assert isinstance(first, SyncResponse), first
        text = f"Завтра кружок в 15:00 ({secrets.token_hex(3)})"
        sent = await olga.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})
        assert isinstance(sent, RoomSendResponse), sent

        async def seen() -> bool:
            answer = await ivan.sync(timeout=5000)
            assert isinstance(answer, SyncResponse), answer
            timeline = answer.rooms.join.get(room_id)
            return timeline is not None and any(
                getattr(e, "body", None) == text for e in timeline.timeline.events
            )

        await eventually(seen, "the message in Ivan's sync", within=60)
    finally:
        await olga.close()
    # The syncs went to a synchrotron, the message through a client reader.
    wait_until(
        lambda: _requests_in_log(production, "synchrotron1", r'"GET /_matrix/client/[^/]+/sync'),
        "sync requests in the synchrotron's log",
        within=30,
    )
    wait_until(
        lambda: _requests_in_log(production, "client_reader1", r'"PUT /_matrix/client/.*/send/'),
        "the send in the client reader's log",
        within=30,
    )
    assert not _requests_in_log(production, "synapse", r'"GET /_matrix/client/[^/]+/sync')


async def test_a_pupils_forbidden_invite_is_refused_on_a_worker(
    production: Production, people: dict[str, str], ivan: AsyncClient
) -> None:
    headers = {"Authorization": f"Bearer {ivan.access_token}"}
    async with production.https() as http:
        created = await http.post(
            "/_matrix/client/v3/createRoom", json={"name": "Наш чат"}, headers=headers
        )
        assert created.status_code == 200, created.text
        room_id = created.json()["room_id"]
        invite = path("rooms", room_id, "invite")
        refused = await http.post(invite, json={"user_id": people["tanya"]}, headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["errcode"] == "M_FORBIDDEN"
        assert "Ученик может общаться только" in refused.json()["error"]
        allowed = await http.post(invite, json={"user_id": people["masha"]}, headers=headers)
        assert allowed.status_code == 200, allowed.text
    # Both answers came from the client reader, where the school policy module runs too.
    invites = r'"POST /_matrix/client/v3/rooms/[^/ ]+/invite'
    wait_until(
        lambda: len(_requests_in_log(production, "client_reader1", invites)) >= 2,
        "both invites in the client reader's log",
        within=30,
    )
    assert not _requests_in_log(production, "synapse", invites)


def test_the_admin_ui_over_https_in_chromium(production: Production) -> None:
    s = production.settings
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                # Trust exactly the region's certificate (by its key), as a phone trusts a CA.
                f"--ignore-certificate-errors-spki-list={production.spki_hash()}",
            ],
        )
        try:
            context: BrowserContext = browser.new_context(
                viewport={"width": 390, "height": 844}, locale="ru-RU"
            )
            page = context.new_page()
            page.goto(f"{production.origin}/login")
            page.fill("input[name=login]", s.region_admin_localpart)
            page.fill("input[name=password]", s.region_admin_password.get_secret_value())
            page.click("form[action='/login'] button[type=submit]")
            expect(page.locator("h1")).to_contain_text("Здравствуйте")
            assert page.url.startswith(production.origin)
            cookies = context.cookies()
            assert cookies and all(c["secure"] for c in cookies), cookies
        finally:
            browser.close()
