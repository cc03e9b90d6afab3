"""Dependencies routes declare: a database session, the Matrix client, the settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from bridge.matrix.client import MatrixClient
from parta.settings import Settings
from provisioning.reconciler.scheduler import ReconcileScheduler


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def _matrix(request: Request) -> MatrixClient:
    client: MatrixClient = request.app.state.matrix
    return client


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def reconcile_soon(request: Request) -> None:
    """Ask the service's reconciler for a run (debounced); the change is committed already."""
    scheduler: ReconcileScheduler | None = getattr(request.app.state, "reconciler", None)
    if scheduler is not None:
        scheduler.request()


SessionDep = Annotated[Session, Depends(_session)]
MatrixDep = Annotated[MatrixClient, Depends(_matrix)]
SettingsDep = Annotated[Settings, Depends(_settings)]
