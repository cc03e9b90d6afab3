"""`parta move-to-postgresql`: a local SQLite deployment with a school moves onto PostgreSQL.

Real parts throughout: a running deployment, a school placed by the reconciler, people
who log in with matrix-nio, Synapse's own `synapse_port_db`, a real PostgreSQL server.
The tests run in order on one deployment: refusals first (nothing may change), then a
failure halfway (SQLite stays in use), then the move, then a second run.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from nio import AsyncClient, LoginResponse, RoomMessagesResponse, RoomMessageText
from psycopg2 import sql
from pydantic import SecretStr
from sqlalchemy import func, inspect, select
from typer.testing import CliRunner

from foundation.settings import CONFIG_FILE_NAME, Settings
from matrix.client import MatrixClient
from parta.cli import app
from parta.deployment import LocalDeployment
from parta.move_db import MOVED_SUFFIX, SETTINGS_BACKUP_NAME, Target, switch_settings
from provisioning.db.models import EnrolmentRole, ManagedRoom, Region, Role, RoomKind, Subject
from provisioning.reconciler.run import reconcile_region
from provisioning.services import schools as svc
from tests.harness.postgres import PostgresServer, scratch_database
from tests.harness.region import new_deployment, region_session

pytestmark = pytest.mark.postgres

PASSWORD = "move-password-1"
MESSAGE = "Домашнее задание на завтра: §12"


@dataclass
class Placed:
    teacher: str
    pupils: list[str]
    chat_room_id: str
    event_id: str


@pytest.fixture(scope="module")
def databases(postgres: PostgresServer) -> Iterator[Callable[[str], str]]:
    """Scratch databases (C collation) that outlive the deployment using them."""
    with ExitStack() as stack:
        yield lambda prefix: stack.enter_context(scratch_database(postgres, prefix))


@pytest.fixture(scope="module")
def local(
    databases: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalDeployment]:
    deployment = new_deployment(tmp_path_factory.mktemp("move") / "var")
    try:
        deployment.up()
        yield deployment
    finally:
        # Stops what runs now, on SQLite or on PostgreSQL (the same supervisor's state).
        LocalDeployment(Settings.load(deployment.settings.var_dir)).stop()


@pytest.fixture(scope="module")
async def placed(local: LocalDeployment) -> Placed:
    """A school placed by provisioning, people with passwords, a message in a class chat."""
    tag = secrets.token_hex(3)
    server = local.settings.server_name
    with region_session(local) as db:
        region = db.scalar(select(Region))
        assert region is not None
        school = svc.create_school(db, region, f"Школа {tag}", academic_year=2026)
        a7 = svc.add_class(db, school, 7, "А")
        teacher = svc.add_person(db, "Ольга Учитель", f"@olga-{tag}:{server}")
        svc.grant_school_role(db, teacher, school, Role.TEACHER)
        svc.enrol(db, teacher, a7, EnrolmentRole.CLASS_TEACHER)
        pupils = [
            svc.add_person(db, name, f"@{key}-{tag}:{server}")
            for key, name in (("ivan", "Иван Ученик"), ("masha", "Маша Ученица"))
        ]
        for pupil in pupils:
            svc.enrol(db, pupil, a7, EnrolmentRole.PUPIL)
        db.commit()
        s = local.settings
        async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as client:
            report = await reconcile_region(db, client, s, wait_s=120)
            assert not report.applied.failed
            for person in (teacher, *pupils):
                await client.admin_put_user(str(person.matrix_user_id), {"password": PASSWORD})
        chat = db.scalar(
            select(ManagedRoom).where(
                ManagedRoom.class_id == a7.id, ManagedRoom.kind == RoomKind.CLASS_CHAT
            )
        )
        assert chat is not None and chat.room_id is not None
        user_ids = [str(p.matrix_user_id) for p in (teacher, *pupils)]
    async with logged_in(local.settings, user_ids[0]) as olga:
        sent = await olga.room_send(
            chat.room_id, "m.room.message", {"msgtype": "m.text", "body": MESSAGE}
        )
        event_id = getattr(sent, "event_id", None)
        assert event_id, sent
    return Placed(user_ids[0], user_ids[1:], chat.room_id, event_id)


@asynccontextmanager
async def logged_in(settings: Settings, user_id: str) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(settings.homeserver_url, user_id)
    try:
        response = await client.login(PASSWORD, device_name="move-tests")
        assert isinstance(response, LoginResponse), response
        yield client
    finally:
        await client.close()


async def run_move(
    local: LocalDeployment, postgres: PostgresServer, synapse_db: str, url: str
) -> str:
    """`parta move-to-postgresql` as the operator runs it; returns its exit code and output.

    In a thread: the command runs event loops of its own, as it does from the shell.
    """
    return await asyncio.to_thread(
        cli,
        [
            "move-to-postgresql",
            "--var-dir", str(local.settings.var_dir),
            "--synapse-host", postgres.host,
            "--synapse-port", str(postgres.port),
            "--synapse-user", postgres.user,
            "--synapse-db", synapse_db,
            "--database-url", url,
        ],
    )  # fmt: skip


def cli(argv: list[str]) -> str:
    result = CliRunner().invoke(app, argv)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return f"{result.exit_code}\n{result.output}"


def snapshot(local: LocalDeployment) -> dict[str, object]:
    """What a refused or failed move must leave exactly as it was."""
    var = local.settings.var_dir
    return {
        "settings": (var / CONFIG_FILE_NAME).read_bytes(),
        "homeserver.yaml": (local.settings.synapse_dir / "homeserver.yaml").read_bytes(),
        "sqlite": [
            p.name
            for p in (local.settings.synapse_dir / "homeserver.db", var / "parta.db")
            if p.is_file()
        ],
        "moved": sorted(p.name for p in var.rglob(f"*{MOVED_SUFFIX}")),
        "backup": (var / SETTINGS_BACKUP_NAME).exists(),
    }


def create_database(postgres: PostgresServer, name: str, locale: str) -> None:
    with closing(postgres.connect()) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "CREATE DATABASE {} ENCODING 'UTF8' LC_COLLATE {} LC_CTYPE {} "
                    "TEMPLATE template0"
                ).format(sql.Identifier(name), sql.Literal(locale), sql.Literal(locale))
            )


def tables_in(postgres: PostgresServer, name: str) -> int:
    with closing(postgres.connect(name)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        row = cur.fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def wrong_collation(postgres: PostgresServer) -> Iterator[str]:
    name = f"parta_move_locale_{secrets.token_hex(4)}"
    create_database(postgres, name, "C.UTF-8")  # the server's default here, and Debian's
    try:
        yield name
    finally:
        with closing(postgres.connect()) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


async def test_a_synapse_database_without_c_collation_is_refused_and_nothing_changes(
    local: LocalDeployment,
    placed: Placed,
    postgres: PostgresServer,
    databases: Callable[[str], str],
    wrong_collation: str,
) -> None:
    before = snapshot(local)
    provisioning_db = databases("parta_move_prov")
    answer = await run_move(local, postgres, wrong_collation, postgres.url(provisioning_db))
    assert answer.startswith("1\n"), answer
    assert "Nothing was changed" in answer and "LC_COLLATE 'C.UTF-8'" in answer, answer
    assert "needs 'C'" in answer, answer
    assert snapshot(local) == before
    assert tables_in(postgres, wrong_collation) == 0
    assert tables_in(postgres, provisioning_db) == 0
    assert all(local.status().values()), "the deployment was stopped for a refused move"


async def test_a_target_that_is_not_empty_is_refused_and_nothing_changes(
    local: LocalDeployment,
    placed: Placed,
    postgres: PostgresServer,
    databases: Callable[[str], str],
) -> None:
    before = snapshot(local)
    synapse_db, provisioning_db = databases("parta_move_syn"), databases("parta_move_prov")
    with closing(postgres.connect(provisioning_db)) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE leftover (id int)")
        conn.commit()
    answer = await run_move(local, postgres, synapse_db, postgres.url(provisioning_db))
    assert answer.startswith("1\n"), answer
    assert "is not empty (1 tables: public.leftover)" in answer, answer
    assert snapshot(local) == before
    assert tables_in(postgres, synapse_db) == 0
    assert all(local.status().values())


async def test_a_failure_halfway_leaves_the_sqlite_deployment_in_use(
    local: LocalDeployment,
    placed: Placed,
    postgres: PostgresServer,
    databases: Callable[[str], str],
) -> None:
    """A row SQLite took but PostgreSQL refuses (SQLite ignores VARCHAR lengths): the copy
    of provisioning's tables fails after Synapse's was made."""
    before = snapshot(local)
    parta_db = local.settings.var_dir / "parta.db"
    with closing(sqlite3.connect(parta_db, timeout=30)) as lite:
        lite.execute(
            "UPDATE people SET phone = ? WHERE matrix_user_id = ?", ("7" * 40, placed.pupils[0])
        )
        lite.commit()
    try:
        synapse_db, provisioning_db = databases("parta_move_syn"), databases("parta_move_prov")
        answer = await run_move(local, postgres, synapse_db, postgres.url(provisioning_db))
    finally:
        with closing(sqlite3.connect(parta_db, timeout=30)) as lite:
            lite.execute(
                "UPDATE people SET phone = NULL WHERE matrix_user_id = ?", (placed.pupils[0],)
            )
            lite.commit()
    assert answer.startswith("1\n"), answer
    assert "The move stopped" in answer and "varying(32)" in answer, answer
    assert "Nothing was switched" in answer and "runs again on SQLite" in answer, answer
    assert snapshot(local) == before
    # Provisioning's rows went in one transaction, rolled back (its schema stays) ...
    assert provisioning_counts(postgres.url(provisioning_db))["people"] == 0
    assert tables_in(postgres, synapse_db) > 0  # ... while Synapse's copy is left to drop
    assert all(LocalDeployment(Settings.load(local.settings.var_dir)).status().values())
    async with logged_in(local.settings, placed.pupils[1]) as masha:
        assert (await masha.joined_rooms()).rooms, "the SQLite deployment lost its rooms"


def provisioning_counts(url: str) -> dict[str, int]:
    from provisioning.db.base import Base
    from provisioning.db.engine import make_engine

    engine = make_engine(url)
    try:
        present = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            return {
                t.name: conn.scalar(select(func.count()).select_from(t)) or 0
                for t in Base.metadata.sorted_tables
                if t.name in present
            }
    finally:
        engine.dispose()


async def test_the_move_brings_everything_onto_postgresql(
    local: LocalDeployment,
    placed: Placed,
    postgres: PostgresServer,
    databases: Callable[[str], str],
) -> None:
    var = local.settings.var_dir
    before_rows = provisioning_counts(local.settings.sqlalchemy_url)
    old_settings = (var / CONFIG_FILE_NAME).read_text(encoding="utf-8")
    synapse_db, provisioning_db = databases("parta_move_syn"), databases("parta_move_prov")
    answer = await run_move(local, postgres, synapse_db, postgres.url(provisioning_db))
    assert answer.startswith("0\n"), answer
    assert "The deployment runs on PostgreSQL." in answer

    settings = Settings.load(var)
    assert settings.synapse_database == "postgresql"
    assert settings.synapse_postgres_db == synapse_db
    assert settings.sqlalchemy_url == postgres.url(provisioning_db)
    # The operator's other lines stay; the file as it was is kept beside it.
    new_settings = (var / CONFIG_FILE_NAME).read_text(encoding="utf-8")
    assert all(line in new_settings for line in old_settings.splitlines())
    assert (var / SETTINGS_BACKUP_NAME).read_text(encoding="utf-8") == old_settings
    assert "name: psycopg2" in (settings.synapse_dir / "homeserver.yaml").read_text()
    assert not (settings.synapse_dir / "homeserver.db").exists()
    assert (settings.synapse_dir / f"homeserver.db{MOVED_SUFFIX}").is_file()
    assert (var / f"parta.db{MOVED_SUFFIX}").is_file()
    assert all(LocalDeployment(settings).status().values())

    # Every provisioning row is there, table by table (the SQLite file is the reference).
    assert provisioning_counts(postgres.url(provisioning_db)) == before_rows
    assert provisioning_counts(f"sqlite:///{var / f'parta.db{MOVED_SUFFIX}'}") == before_rows
    assert before_rows["people"] >= 4 and before_rows["managed_rooms"] > 0

    # People log in on PostgreSQL, see their class chat and the teacher's message.
    for user_id in (placed.teacher, *placed.pupils):
        async with logged_in(settings, user_id) as person:
            assert placed.chat_room_id in (await person.joined_rooms()).rooms, user_id
            history = await person.room_messages(placed.chat_room_id, start="", limit=50)
            assert isinstance(history, RoomMessagesResponse), history
            bodies = {e.event_id: e.body for e in history.chunk if isinstance(e, RoomMessageText)}
            assert bodies.get(placed.event_id) == MESSAGE, (user_id, bodies)

    with region_session(LocalDeployment(settings)) as db:
        # The reconciler finds the school exactly as it left it on SQLite.
        async with MatrixClient(
            settings.homeserver_url, settings.as_token.get_secret_value()
        ) as client:
            report = await reconcile_region(db, client, settings, full=True, dry_run=True)
        assert report.plan == [], report.plan
        # The sequences moved past the copied ids: a new row gets the next one.
        school_id = db.scalar(select(func.max(ManagedRoom.school_id)))
        highest = db.scalar(select(func.max(Subject.id))) or 0
        subject = Subject(school_id=school_id, name=f"Физика {secrets.token_hex(2)}")
        db.add(subject)
        db.commit()
        assert subject.id == highest + 1, (subject.id, highest)


async def test_a_second_run_changes_nothing(
    local: LocalDeployment, placed: Placed, postgres: PostgresServer
) -> None:
    var = local.settings.var_dir
    settings = Settings.load(var)
    before = snapshot(local)
    answer = await asyncio.to_thread(cli, ["move-to-postgresql", "--var-dir", str(var)])
    assert answer.startswith("0\n"), answer
    assert "on PostgreSQL already; nothing to do" in answer
    assert snapshot(local) == before
    assert all(LocalDeployment(settings).status().values())
    async with logged_in(settings, placed.pupils[0]) as ivan:
        assert placed.chat_room_id in (await ivan.joined_rooms()).rooms


def test_switching_the_settings_keeps_the_operators_lines_and_reads_back(tmp_path: Path) -> None:
    """Names already in the file are replaced where they stand, the rest is appended; a
    password with the characters dotenv treats specially reads back as written."""
    original = (
        "# Region of the north\n"
        "PARTA_SERVER_NAME=north.example.org\n"
        "PARTA_SYNAPSE_DATABASE=sqlite  \n"
        "# PARTA_DATABASE_URL=postgresql://commented-out\n"
        "PARTA_SYNAPSE_POSTGRES_PASSWORD=old\n"
    )
    (tmp_path / CONFIG_FILE_NAME).write_text(original, encoding="utf-8")
    target = Target(
        synapse_host="db.internal",
        synapse_port=6432,
        synapse_user="synapse",
        synapse_password=SecretStr("p#ss word$1"),
        synapse_db="synapse",
        database_url="postgresql+psycopg2://parta@db.internal:6432/parta",
    )
    written = switch_settings(tmp_path, target)
    assert set(written) == set(target.settings_lines())
    text = (tmp_path / CONFIG_FILE_NAME).read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[:2] == original.splitlines()[:2]
    assert lines[2] == "PARTA_SYNAPSE_DATABASE=postgresql"
    assert "# PARTA_DATABASE_URL=postgresql://commented-out" in lines
    assert (tmp_path / SETTINGS_BACKUP_NAME).read_text(encoding="utf-8") == original
    loaded = Settings.load(tmp_path)
    assert loaded.server_name == "north.example.org"
    assert target.applied_to(loaded) == loaded
    assert loaded.synapse_postgres_password.get_secret_value() == "p#ss word$1"
    assert switch_settings(tmp_path, target) == []  # a second time: nothing to write
    assert (tmp_path / CONFIG_FILE_NAME).read_text(encoding="utf-8") == text
