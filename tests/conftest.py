"""Session fixtures: one real region (Synapse + provisioning + bridge) and a PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.migrate import upgrade_to_head
from tests.harness.postgres import (
    PostgresServer,
    postgres_server,
    scratch_database,
    throwaway_postgres,
)
from tests.harness.region import new_deployment


@pytest.fixture(scope="session")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    """A running deployment on free ports in a temp dir, stopped (only its own) at the end."""
    deployment = new_deployment(tmp_path_factory.mktemp("region") / "var")
    try:
        deployment.up()
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture
async def bot(region: LocalDeployment) -> AsyncIterator[MatrixClient]:
    """The bridge's Matrix client, as the appservice bot of the running region."""
    async with MatrixClient(
        region.settings.homeserver_url, region.settings.as_token.get_secret_value()
    ) as client:
        yield client


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def production_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server configured as `./deploy.sh production` asks (max_connections
    for every Synapse worker's pool), of the tests' own: the machine's allows 100."""
    with throwaway_postgres(max_connections="300") as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_engine(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresServer
) -> Iterator[Engine]:
    """A fresh provisioning database at the newest schema: on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'parta.db'}")
        upgrade_to_head(engine)
        yield engine
        engine.dispose()
        return
    with scratch_database(postgres, "parta_scratch") as name:
        engine = make_engine(postgres.url(name))
        upgrade_to_head(engine)
        yield engine
        engine.dispose()


@pytest.fixture
def migrated_session(migrated_engine: Engine) -> Iterator[Session]:
    with make_session_factory(migrated_engine)() as session:
        yield session
