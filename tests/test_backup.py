"""Backup and restore: a region with a school is backed up while it runs, restored into a
fresh var/ (and fresh databases) as a new deployment, and its people log in and find their
rooms, their messages and their files; damaged archives and occupied targets are refused.

The restored region runs beside the original, so the restore takes the new host's ports
(and databases) from PARTA_* variables, as an operator's new host would.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import secrets
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from nio import (
    AsyncClient,
    JoinedRoomsResponse,
    LoginResponse,
    RoomMessagesResponse,
    UploadResponse,
)
from psycopg2 import sql
from sqlalchemy import select
from typer.testing import CliRunner

from foundation.settings import Settings
from matrix.client import MatrixClient
from parta.backup import MANIFEST, create_backup
from parta.cli import app
from parta.databases import BackupError
from parta.deployment import LocalDeployment
from parta.restore import has_data, restore_backup
from provisioning.db.models import EnrolmentRole, ManagedRoom, Region, Role, RoomKind
from provisioning.reconciler.run import reconcile_region
from provisioning.services import schools as svc
from tests.harness.ports import free_ports
from tests.harness.postgres import PostgresServer, scratch_database
from tests.harness.region import new_deployment, region_session

PASSWORD = "backup-password-1"
FILE = secrets.token_bytes(300_000)  # not compressible: the media store's real content


@dataclass
class School:
    users: dict[str, str]  # "olga", "ivan" -> user ID
    chat: str  # the class chat's room ID
    rooms: set[str]  # Ivan's joined rooms
    text: str
    mxc: str


async def _populate(deployment: LocalDeployment) -> School:
    """A school with a class, its teacher and a pupil; a message and a file in the chat."""
    s = deployment.settings
    tag = secrets.token_hex(3)
    with region_session(deployment) as db:
        region = db.scalar(select(Region))
        assert region is not None
        school = svc.create_school(db, region, f"Школа {tag}", academic_year=2026)
        a5 = svc.add_class(db, school, 5, "А")
        olga = svc.add_person(db, "Ольга Учитель", f"@olga-{tag}:{s.server_name}")
        ivan = svc.add_person(db, "Иван Ученик", f"@ivan-{tag}:{s.server_name}")
        svc.grant_school_role(db, olga, school, Role.TEACHER)
        svc.enrol(db, olga, a5, EnrolmentRole.CLASS_TEACHER)
        svc.enrol(db, ivan, a5, EnrolmentRole.PUPIL)
        db.commit()
        users = {"olga": str(olga.matrix_user_id), "ivan": str(ivan.matrix_user_id)}
        async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as bot:
            report = await reconcile_region(db, bot, s, wait_s=120)
            assert not report.applied.failed
            for user_id in users.values():
                await bot.admin_put_user(user_id, {"password": PASSWORD})
        chat = db.scalar(
            select(ManagedRoom.room_id).where(
                ManagedRoom.school_id == school.id, ManagedRoom.kind == RoomKind.CLASS_CHAT
            )
        )
        assert chat is not None
    text = f"Контрольная в пятницу ({tag})"
    async with _client(s, users["olga"]) as teacher:
        upload, _ = await teacher.upload(
            io.BytesIO(FILE), content_type="application/pdf", filename="Задание.pdf",
            filesize=len(FILE),
        )  # fmt: skip
        assert isinstance(upload, UploadResponse), upload
        await teacher.room_send(chat, "m.room.message", {"msgtype": "m.text", "body": text})
        file_message = {"msgtype": "m.file", "body": "Задание.pdf", "url": upload.content_uri}
        await teacher.room_send(chat, "m.room.message", file_message)
    async with _client(s, users["ivan"]) as pupil:
        rooms = await pupil.joined_rooms()
        assert isinstance(rooms, JoinedRoomsResponse), rooms
    assert chat in rooms.rooms
    return School(users, chat, set(rooms.rooms), text, upload.content_uri)


class _client:
    """A person's matrix-nio client, logged in with the password."""

    def __init__(self, settings: Settings, user_id: str) -> None:
        self.nio = AsyncClient(settings.homeserver_url, user_id)

    async def __aenter__(self) -> AsyncClient:
        answer = await self.nio.login(PASSWORD, device_name="backup-test")
        assert isinstance(answer, LoginResponse), answer
        return self.nio

    async def __aexit__(self, *_: object) -> None:
        await self.nio.close()


async def _sees_everything(settings: Settings, school: School) -> None:
    """Each person logs in to the restored region and finds the rooms, message and file."""
    async with _client(settings, school.users["ivan"]) as pupil:
        rooms = await pupil.joined_rooms()
        assert isinstance(rooms, JoinedRoomsResponse), rooms
        assert set(rooms.rooms) == school.rooms
        history = await pupil.room_messages(school.chat, start="", limit=50)
        assert isinstance(history, RoomMessagesResponse), history
        contents = [e.source["content"] for e in history.chunk]
        assert any(c.get("body") == school.text for c in contents), contents
        assert any(c.get("url") == school.mxc for c in contents), contents
        download = await pupil.download(school.mxc)
        assert getattr(download, "body", None) == FILE
    async with _client(settings, school.users["olga"]) as teacher:
        rooms = await teacher.joined_rooms()
        assert isinstance(rooms, JoinedRoomsResponse) and school.chat in rooms.rooms


def _new_host_environment(monkeypatch: pytest.MonkeyPatch, **settings: object) -> None:
    """The new host's own ports (the original still runs on its own)."""
    synapse, metrics, provisioning, bridge, widgets = free_ports(5)
    values = {
        "synapse_port": synapse, "synapse_metrics_port": metrics,
        "provisioning_port": provisioning, "bridge_port": bridge, "widgets_port": widgets,
        **settings,
    }  # fmt: skip
    for name, value in values.items():
        monkeypatch.setenv(f"PARTA_{name.upper()}", str(value))


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]


def _write(archive: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def sqlite_region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    deployment = new_deployment(tmp_path_factory.mktemp("backup-sqlite") / "var")
    try:
        deployment.up()
        yield deployment
    finally:
        deployment.stop()


async def test_a_sqlite_region_is_backed_up_running_and_restored_on_a_fresh_host(
    sqlite_region: LocalDeployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    school = await _populate(sqlite_region)
    report = create_backup(sqlite_region.settings, tmp_path / "backups")
    assert all(sqlite_region.status().values())  # taken while the region runs
    assert report.path.stat().st_mode & 0o777 == 0o600
    assert report.path.name.startswith("parta-backup-localhost-")
    members = _members(report.path)
    assert {"databases/synapse.sqlite", "databases/provisioning.sqlite", MANIFEST} <= set(members)
    names = set(members)
    assert {"var/parta.env", "var/secrets.env", "var/synapse/localhost.signing.key"} <= names
    media = [n for n in names if n.startswith("var/synapse/media_store/local_content/")]
    assert any(members[n] == FILE for n in media)
    assert not any(n.startswith(("var/log/", "var/run/")) or n.endswith(".yaml") for n in names)

    target = tmp_path / "new-host" / "var"
    _new_host_environment(monkeypatch)
    restored = await asyncio.to_thread(restore_backup, report.path, target)  # it runs `up`
    fresh = LocalDeployment(Settings.load(target))
    try:
        assert restored.started and restored.server_name == "localhost"
        assert all(fresh.status().values()), fresh.status()
        assert "PARTA_SYNAPSE_PORT" in restored.kept_from_environment
        # The region's identity and secrets came back, not new ones.
        assert (target / "synapse" / "localhost.signing.key").read_bytes() == members[
            "var/synapse/localhost.signing.key"
        ]
        assert (target / "secrets.env").read_bytes() == members["var/secrets.env"]
        await _sees_everything(fresh.settings, school)

        # A second restore into the same place would replace it: refused, nothing touched.
        with pytest.raises(BackupError, match=r"already holds a deployment.*--force"):
            restore_backup(report.path, target)
        assert all(fresh.status().values())
    finally:
        fresh.stop()
    # With --force it replaces it (and stops what runs there first).
    forced = restore_backup(report.path, target, force=True, start=False)
    assert forced.files == len([n for n in names if n.startswith("var/")])


def test_a_truncated_or_altered_archive_is_refused_and_nothing_changes(
    sqlite_region: LocalDeployment, tmp_path: Path
) -> None:
    good = create_backup(sqlite_region.settings, tmp_path / "backups").path
    data = good.read_bytes()
    target = tmp_path / "target"

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(BackupError, match=r"damaged or incomplete.*Nothing was changed"):
        restore_backup(truncated, target)

    members = _members(good)
    secret = "var/secrets.env"
    altered = tmp_path / "altered.tar.gz"
    _write(altered, {**members, secret: members[secret] + b"PARTA_AS_TOKEN=mine\n"})
    with pytest.raises(BackupError, match=r"does not match its manifest.*secrets.env"):
        restore_backup(altered, target)

    smuggled = tmp_path / "smuggled.tar.gz"
    _write(smuggled, {"var/run/synapse.json": b"{}", **members})
    with pytest.raises(BackupError, match=r"var/run/synapse.json"):
        restore_backup(smuggled, target)

    # The manifest's own words are not hashed: a newer Synapse than the installed one.
    manifest = json.loads(members[MANIFEST])
    newer = tmp_path / "newer.tar.gz"
    _write(
        newer, {**members, MANIFEST: json.dumps({**manifest, "synapse_version": "99.0.0"}).encode()}
    )
    with pytest.raises(BackupError, match=r"made with Synapse 99.0.0, newer than the installed"):
        restore_backup(newer, target)

    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(bytes(flipped))
    with pytest.raises(BackupError, match=r"damaged"):
        restore_backup(damaged, target)
    gzip.decompress(data)  # the good one is whole
    assert has_data(target) == [] and sorted(p.name for p in target.iterdir()) == []


def _drop(postgres: PostgresServer, name: str) -> None:
    conn = postgres.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        conn.close()


@pytest.mark.postgres
async def test_a_postgresql_region_is_restored_into_fresh_databases(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        scratch_database(postgres, "parta_backup_synapse") as synapse_db,
        scratch_database(postgres, "parta_backup_provisioning") as provisioning_db,
        scratch_database(postgres, "parta_restore_provisioning") as new_provisioning_db,
    ):
        original = new_deployment(
            tmp_path / "old-host" / "var",
            synapse_database="postgresql",
            synapse_postgres_host=postgres.host,
            synapse_postgres_port=postgres.port,
            synapse_postgres_user=postgres.user,
            synapse_postgres_db=synapse_db,
            database_url=postgres.url(provisioning_db),
        )
        new_synapse_db = f"parta_restore_synapse_{secrets.token_hex(4)}"  # the restore makes it
        fresh: LocalDeployment | None = None
        try:
            await asyncio.to_thread(original.up)
            school = await _populate(original)
            archive = create_backup(original.settings, tmp_path / "backups").path
            assert {"databases/synapse.pgdump", "databases/provisioning.pgdump"} <= set(
                _members(archive)
            )
            _new_host_environment(
                monkeypatch,
                synapse_postgres_db=new_synapse_db,
                database_url=postgres.url(new_provisioning_db),
            )
            restored = await asyncio.to_thread(
                restore_backup, archive, tmp_path / "new-host" / "var"
            )
            assert restored.created_databases == [new_synapse_db]
            fresh = LocalDeployment(Settings.load(tmp_path / "new-host" / "var"))
            assert fresh.settings.synapse_postgres_db == new_synapse_db  # kept in parta.env
            await _sees_everything(fresh.settings, school)
            fresh.stop()
            # Databases that already hold a region are refused, unless --force.
            with pytest.raises(BackupError, match=r"already hold tables.*--force"):
                restore_backup(archive, tmp_path / "third-host" / "var")
            third = tmp_path / "third-host" / "var"
            forced = await asyncio.to_thread(restore_backup, archive, third, force=True)
            assert forced.started
            fresh = LocalDeployment(Settings.load(tmp_path / "third-host" / "var"))
            await _sees_everything(fresh.settings, school)
        finally:
            if fresh is not None:
                fresh.stop()
            original.stop()
            _drop(postgres, new_synapse_db)
    with pytest.raises(psycopg2.OperationalError):
        postgres.connect(new_synapse_db)


def test_the_commands_print_the_archive_and_refuse_an_occupied_target(
    sqlite_region: LocalDeployment, tmp_path: Path
) -> None:
    runner = CliRunner()
    var = str(sqlite_region.settings.var_dir)
    made = runner.invoke(app, ["backup", "--var-dir", var, "--output", str(tmp_path)])
    assert made.exit_code == 0, made.output
    archive = Path(made.stdout.strip())
    assert archive.parent == tmp_path and archive.is_file()
    assert "keep it private" in made.stderr
    refused = runner.invoke(app, ["restore", str(archive), "--var-dir", var])
    assert refused.exit_code == 1
    assert "already holds a deployment" in refused.stderr and "--force" in refused.stderr
    assert all(sqlite_region.status().values())
