"""`/healthz`: is the database answering, and is Synapse?"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session

from matrix.errors import MatrixError
from provisioning.api.deps import MatrixDep, SessionDep

router = APIRouter()


def _database_ok(session: Session) -> str:
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # reported to the operator, not raised
        return f"error: {type(exc).__name__}: {exc}"
    return "ok"


@router.get("/healthz")
async def healthz(session: SessionDep, matrix: MatrixDep) -> JSONResponse:
    database = await run_in_threadpool(_database_ok, session)
    try:
        await matrix.health()
        synapse = "ok"
    except MatrixError as exc:
        synapse = f"error: {exc.error}"
    healthy = database == "ok" and synapse == "ok"
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "database": database, "synapse": synapse},
        status_code=200 if healthy else 503,
    )
