"""PostgreSQL mode: Synapse and provisioning on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from nio import AsyncClient, LoginResponse
from sqlalchemy import inspect

from parta.deployment import LocalDeployment
from provisioning.db.engine import make_engine
from provisioning.db.migrate import upgrade_to_head
from tests.harness.postgres import PostgresServer, scratch_database, throwaway_postgres
from tests.harness.region import new_deployment

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_region(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalDeployment]:
    with (
        scratch_database(postgres, "parta_synapse") as synapse_db,
        scratch_database(postgres, "parta_provisioning") as provisioning_db,
    ):
        deployment = new_deployment(
            tmp_path_factory.mktemp("pg-region") / "var",
            synapse_database="postgresql",
            synapse_postgres_host=postgres.host,
            synapse_postgres_port=postgres.port,
            synapse_postgres_user=postgres.user,
            synapse_postgres_db=synapse_db,
            database_url=postgres.url(provisioning_db),
        )
        try:
            deployment.up()
            yield deployment
        finally:
            deployment.stop()


async def test_synapse_runs_on_postgresql_and_the_admin_logs_in(
    pg_region: LocalDeployment,
) -> None:
    homeserver = (pg_region.settings.synapse_dir / "homeserver.yaml").read_text()
    assert "name: psycopg2" in homeserver
    assert not (pg_region.settings.synapse_dir / "homeserver.db").exists()
    s = pg_region.settings
    client = AsyncClient(s.homeserver_url, s.region_admin_user_id)
    try:
        response = await client.login(s.region_admin_password.get_secret_value())
        assert isinstance(response, LoginResponse), response
    finally:
        await client.close()


def test_provisioning_migrations_on_postgresql(postgres: PostgresServer, tmp_path: Path) -> None:
    with scratch_database(postgres, "parta_migrate") as name:
        engine = make_engine(postgres.url(name))
        try:
            upgrade_to_head(engine)
            upgrade_to_head(engine)  # a second run is a no-op
            tables = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
    assert {"regions", "people", "role_assignments", "audit_events", "inbox_events"} <= tables


def test_a_throwaway_cluster_serves_when_the_machine_has_none() -> None:
    """The fallback `./deploy.sh test` relies on on a fresh machine: Debian's binaries."""
    with throwaway_postgres() as server:
        assert server.origin == "throwaway" and server.port != 5432
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version")
            row = cur.fetchone()
            assert row is not None and row[0]
        port = server.port
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host="127.0.0.1", port=port, user="postgres", connect_timeout=2)
