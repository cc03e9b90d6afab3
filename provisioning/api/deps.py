"""Dependencies routes declare: a database session, the Matrix client, the settings, ids."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from pydantic import Field
from sqlalchemy.orm import Session

from foundation.settings import Settings
from foundation.web import MAX_ID
from matrix.client import MatrixClient
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

# A row's id in a path. A bigger number would overflow the database driver (a 500); out of
# range, it names nothing, so it is a 404 (foundation.web.validation_error_response).
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
# A row's id in a body or a form: the same range, refused as a bad field (400) outside it.
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
