"""Production mode on this machine: Synapse's workers over Redis on PostgreSQL, behind nginx
with TLS, run by Parta's supervisor (CI has no systemd), as `./deploy.sh production` runs it.

The certificate comes from a CA the fixture makes (trustme); clients trust that CA only.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from nio import AsyncClient, JoinedMembersResponse, LoginResponse, RoomSendResponse, SyncResponse
from playwright.sync_api import BrowserContext, expect
from sqlalchemy import select

from matrix.client import MatrixClient, path
from parta.deployment import SOURCE_ROOT
from parta.topology import topology, widget_processes
from provisioning.db.models import EnrolmentRole, Region, Role
from provisioning.reconciler.run import reconcile_region
from provisioning.services import schools as svc
from provisioning.web.qr import qr_data_uri
from tests.harness.postgres import PostgresServer
from tests.harness.production import Production, chromium_trusting, production_deployment
from tests.harness.region import region_session
from tests.harness.waiting import eventually, policy_loaded_snapshot, wait_until

pytestmark = pytest.mark.postgres

PASSWORD = "production-password-1"


@pytest.fixture(scope="module")
def production(
    production_postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Production]:
    workdir = tmp_path_factory.mktemp("production")
    with production_deployment(production_postgres, workdir) as running:
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
    with chromium_trusting(production) as browser:
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


def test_production_again_with_nothing_changed_changes_nothing(production: Production) -> None:
    assert "wrote " in production.output and "created PostgreSQL database" in production.output
    assert "Password:" in production.output
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "parta",
            "production",
            "--var-dir",
            str(production.settings.var_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=SOURCE_ROOT,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Nothing changed" in again.stdout
    assert "created PostgreSQL" not in again.stdout and "wrote " not in again.stdout
    production_env = production.settings.var_dir / "production.env"
    assert stat.S_IMODE(production_env.stat().st_mode) == 0o600  # it holds passwords


def test_logs_rotate(production: Production, tmp_path: Path) -> None:
    config = production.logrotate.read_text()
    assert f"{production.settings.log_dir}/nginx.access.log" in config and "copytruncate" in config
    state = tmp_path / "state"
    command = ["/usr/sbin/logrotate", "--debug", "--state", str(state), str(production.logrotate)]
    checked = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert "error:" not in checked.stderr, checked.stderr
    assert "nginx.access.log" in checked.stderr  # it found the files it will rotate


def test_the_welcome_page_gives_the_public_address(
    production: Production, people: dict[str, str]
) -> None:
    user = people["ivan"]
    answer = httpx.get(
        f"{production.origin}/welcome", params={"user": user}, verify=production.tls(), timeout=30
    )
    assert answer.status_code == 200
    assert f'<code id="homeserver">{production.origin}</code>' in answer.text
    # The QR code opens these instructions on the phone, at the public address.
    expected = qr_data_uri(f"{production.origin}/welcome?user={user}", scale=5)
    assert f'src="{expected}"' in answer.text


def test_the_documents_page_on_a_phone_over_tls(
    production: Production, people: dict[str, str]
) -> None:
    with chromium_trusting(production) as browser:
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, locale="ru-RU"
        )
        page = context.new_page()
        page.goto(f"{production.widgets_origin}/documents/?lang=en")
        page.locator("#login-form input[name=user]").fill(people["ivan"])
        page.locator("#login-form input[name=password]").fill(PASSWORD)
        page.locator("#login-form button[type=submit]").click()
        expect(page.locator("#files")).to_be_visible(timeout=30_000)
        expect(page.locator("#upload-label")).to_have_text("Upload")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, f"the page is {width} px wide on a 390 px phone"


async def test_metrics_on_loopback_only(production: Production) -> None:
    s = production.settings
    async with httpx.AsyncClient(timeout=30) as local:
        for port in (s.provisioning_port, s.bridge_port, s.widgets_port):
            assert (await local.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            metrics = await local.get(f"http://127.0.0.1:{port}/metrics")
            assert metrics.status_code == 200, port
            # Counted by route template, never by raw path.
            assert 'parta_http_requests_total{method="GET",route="/healthz",status="2xx"}' in (
                metrics.text
            ), port
            assert "process_resident_memory_bytes" in metrics.text
        worker = topology(s).workers[0]
        synapse = await local.get(f"http://127.0.0.1:{worker.port}/_synapse/metrics")
        assert synapse.status_code == 200 and "synapse_" in synapse.text
    async with production.https() as public:
        assert (await public.get("/metrics")).status_code == 404
        assert (await public.get("/_synapse/metrics")).status_code == 404
    # widgets.localhost, as Chromium reaches it (the system resolver does not know it).
    async with httpx.AsyncClient(verify=production.tls()) as widgets:
        for page, status in (("/metrics", 404), ("/documents/", 200)):
            answer = await widgets.get(
                f"https://127.0.0.1:{s.https_port}{page}",
                headers={"Host": f"widgets.localhost:{s.https_port}"},
                extensions={"sni_hostname": "widgets.localhost"},
            )
            assert answer.status_code == status, page


def test_status_and_logs_name_every_process(production: Production) -> None:
    command = [str(SOURCE_ROOT / "deploy.sh")]
    environment = {**os.environ, "PARTA_VAR_DIR": str(production.settings.var_dir)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=120, env=environment
        )

    status = run("status")
    assert status.returncode == 0, status.stdout + status.stderr
    for worker in topology(production.settings).workers:
        assert re.search(rf"^synapse-{worker.name} +running, pid \d+$", status.stdout, re.M)
    assert re.search(r"^nginx +running, pid \d+$", status.stdout, re.M)
    logs = run("logs", "synapse-client_reader1", "-n", "5")
    assert logs.returncode == 0 and "synapse-client_reader1.log <==" in logs.stdout
    unknown = run("logs", "nosuch")
    assert unknown.returncode == 1 and "synapse-synchrotron1" in unknown.stderr
