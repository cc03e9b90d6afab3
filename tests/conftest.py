"""Session fixtures: one real region (Synapse + provisioning + bridge) and a PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from bridge.matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from tests.harness.postgres import PostgresServer, postgres_server
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
