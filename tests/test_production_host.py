"""What `./deploy.sh production` prepares on the host: its settings file, the PostgreSQL
roles and databases (on the real server), Redis, and the systemd units (checked with
`systemd-analyze verify` where it exists; CI runs the supervisor path instead)."""

from __future__ import annotations

import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import trustme
from psycopg2 import sql

from foundation.settings import Settings
from parta.databases import Postgres
from parta.deployment import LocalDeployment
from parta.production import (
    check_connections,
    check_redis,
    ensure_database,
    ensure_production_settings,
    region_databases,
)
from parta.render import render_all
from parta.secrets import ensure_secrets
from parta.supervisor import DeployError
from parta.systemd import WORKER_TEMPLATE, install_units, render_units, unit_name
from parta.topology import topology, widget_processes
from tests.harness.ports import free_ports
from tests.harness.postgres import PostgresServer
from tests.harness.redis import redis_server
from tests.harness.region import write_config

pytestmark = pytest.mark.postgres


def test_the_settings_file_is_written_once_and_private(tmp_path: Path) -> None:
    var = tmp_path / "var"
    assert ensure_production_settings(var)
    written = (var / "production.env").read_text()
    assert stat.S_IMODE((var / "production.env").stat().st_mode) == 0o600
    assert not ensure_production_settings(var)  # the passwords stay those the databases have
    assert (var / "production.env").read_text() == written
    ensure_secrets(var)
    settings = Settings.load(var)
    assert settings.environment == "production" and settings.uses_synapse_workers
    synapse, parta = region_databases(settings)
    assert synapse.which == "synapse" and synapse.dbname == "synapse"
    assert len(synapse.password) >= 24
    assert parta.dbname == "parta" and parta.user == "parta" and parta.password
    # The operator's parta.env wins over it.
    (var / "parta.env").write_text("PARTA_SYNAPSE_POSTGRES_DB=matrix\n")
    assert Settings.load(var).synapse_postgres_db == "matrix"


@pytest.fixture
def names(postgres: PostgresServer) -> Iterator[str]:
    name = f"parta_host_{secrets.token_hex(4)}"
    yield name
    connection = postgres.connect()
    connection.autocommit = True
    with connection.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
    connection.close()


def test_databases_are_created_once_with_synapses_collation(
    postgres: PostgresServer, names: str
) -> None:
    database = Postgres("synapse", postgres.host, postgres.port, names, "first-password", names)
    assert ensure_database(database) == [f"role {names}", f"database {names}"]
    assert ensure_database(database) == []  # a second run creates nothing
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT datcollate, datctype FROM pg_database WHERE datname = %s", (names,))
        assert cur.fetchone() == ("C", "C")
    conn.close()
    # The role logs in with the password, and a changed password is applied on the next run.
    changed = Postgres("synapse", postgres.host, postgres.port, names, "second-password", names)
    ensure_database(changed)
    psycopg2.connect(
        host=postgres.host, port=postgres.port, user=names, password="second-password",
        dbname=names, connect_timeout=5,
    ).close()  # fmt: skip


def test_a_synapse_database_with_another_collation_is_refused(
    postgres: PostgresServer, names: str
) -> None:
    connection = postgres.connect()
    connection.autocommit = True
    with connection.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE DATABASE {} LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0")
            .format(sql.Identifier(names))
        )  # fmt: skip
    connection.close()
    database = Postgres("synapse", postgres.host, postgres.port, names, "a-password", names)
    with pytest.raises(DeployError, match="Synapse needs 'C'"):
        ensure_database(database)
    # Provisioning's database does not care about the collation.
    assert (
        ensure_database(Postgres("provisioning", postgres.host, postgres.port, names, "p", names))
        == []
    )


def test_redis_is_checked_before_the_workers_start(tmp_path: Path) -> None:
    with redis_server() as redis:
        check_redis(Settings(redis_port=redis.port))
    (closed,) = free_ports(1)
    with pytest.raises(DeployError, match="Redis does not answer"):
        check_redis(Settings(redis_port=closed), timeout=2)


def _production_settings(var: Path, tmp_path: Path) -> Settings:
    leaf = trustme.CA().issue_cert("region.example.org", "widgets.region.example.org")
    leaf.private_key_pem.write_to_path(tmp_path / "key.pem")
    (tmp_path / "chain.pem").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    ensure_production_settings(var)
    write_config(
        var, server_name="region.example.org", tls_cert_file=tmp_path / "chain.pem",
        tls_key_file=tmp_path / "key.pem",
    )  # fmt: skip
    ensure_secrets(var)
    return Settings.load(var)


def test_systemd_units_for_every_process(tmp_path: Path) -> None:
    settings = _production_settings(tmp_path / "var", tmp_path)
    render_all(settings)
    stages = LocalDeployment(settings).stages()
    units = {u.name: u.content for u in render_units(settings, stages)}
    top = topology(settings)
    # One unit per process, Synapse's workers as instances of one template, one target.
    sfu = {f"parta-{p.name}.service" for p in widget_processes(settings)}
    assert "parta-widgets.service" in sfu
    assert set(units) == {
        "parta-synapse.service", WORKER_TEMPLATE, "parta-nginx.service",
        "parta-provisioning.service", "parta-bridge.service", "parta.target", *sfu,
    }  # fmt: skip
    wanted = units["parta.target"]
    for worker in top.workers:
        assert unit_name(f"synapse-{worker.name}") in wanted
    worker = units[WORKER_TEMPLATE]
    assert "--config-path " + str(settings.synapse_dir / "workers" / "%i.yaml") in worker
    assert "Type=notify" in worker and "After=" in worker and "parta-synapse.service" in worker
    for name, content in units.items():
        if name == "parta.target":
            continue
        for line in (
            "Restart=on-failure", "ProtectSystem=strict", "NoNewPrivileges=yes",
            "PrivateTmp=yes", f"ReadWritePaths={settings.var_dir}",
        ):  # fmt: skip
            assert line in content, (name, line)
        assert ("User=parta" in content) == (name != "parta-nginx.service")
    # Each stage starts after the one before: Parta's services after nginx.
    assert "parta-nginx.service" in units["parta-provisioning.service"].split("After=")[1]
    assert (
        "ExecStart=" in units["parta-nginx.service"]
        and '"daemon off;"' in units["parta-nginx.service"]
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    settings = _production_settings(tmp_path / "var", tmp_path)
    render_all(settings)
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    written = install_units(render_units(settings, LocalDeployment(settings).stages()), unit_dir)
    assert install_units(render_units(settings, LocalDeployment(settings).stages()), unit_dir) == []
    instance = unit_dir / unit_name("synapse-client_reader1")
    instance.symlink_to(unit_dir / WORKER_TEMPLATE)
    files = [str(unit_dir / n) for n in written if n != WORKER_TEMPLATE] + [str(instance)]
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *files],
        capture_output=True, text=True, timeout=120, cwd=unit_dir,
    )  # fmt: skip
    # A unit systemd cannot parse is only a warning to it: any output counts as a failure.
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr


def test_too_few_postgresql_connections_are_named(postgres: PostgresServer) -> None:
    database = Postgres("synapse", postgres.host, postgres.port, "postgres", "", "postgres")
    warning = check_connections(database, needed=100_000)
    assert warning is not None and "ALTER SYSTEM SET max_connections = 100010" in warning
    assert check_connections(database, needed=1) is None
