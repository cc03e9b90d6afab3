"""One reconciler run at a time across processes, through a lease row in Parta's database.

The lease is taken with one conditional UPDATE (free, expired, or already ours), which
is atomic on SQLite and PostgreSQL alike, so two processes can never both win. The
holder renews it while it runs; if the holder dies, the lease expires after `ttl`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import Engine, or_, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from provisioning.db.base import utcnow
from provisioning.db.models import ReconcilerLease

log = logging.getLogger(__name__)

LEASE_NAME = "reconciler"
LEASE_TTL = timedelta(seconds=45)
RENEW_EVERY_S = 10.0


class ReconcilerBusy(RuntimeError):
    """Another reconciler run holds the lease."""

    def __init__(self, holder: str | None) -> None:
        super().__init__(
            f"another reconciler run is in progress ({holder or 'unknown holder'}); "
            "it will apply this change too, or try again when it has finished"
        )
        self.holder = holder


def new_holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def try_acquire(engine: Engine, holder: str, ttl: timedelta = LEASE_TTL) -> bool:
    """Take or renew the lease; False if someone else holds an unexpired one."""
    now = utcnow()
    with Session(engine) as session:
        result = session.execute(
            update(ReconcilerLease)
            .where(
                ReconcilerLease.name == LEASE_NAME,
                or_(
                    ReconcilerLease.holder.is_(None),
                    ReconcilerLease.holder == holder,
                    ReconcilerLease.expires_at < now,
                ),
            )
            .values(holder=holder, expires_at=now + ttl)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return True
        if session.get(ReconcilerLease, LEASE_NAME) is not None:
            return False
        session.add(ReconcilerLease(name=LEASE_NAME, holder=holder, expires_at=now + ttl))
        try:
            session.commit()
        except IntegrityError:
            return False  # another process created it first, and holds it
        return True


def current_holder(engine: Engine) -> str | None:
    with Session(engine) as session:
        lease = session.get(ReconcilerLease, LEASE_NAME)
        return lease.holder if lease is not None else None


def release(engine: Engine, holder: str) -> None:
    with Session(engine) as session:
        session.execute(
            update(ReconcilerLease)
            .where(ReconcilerLease.name == LEASE_NAME, ReconcilerLease.holder == holder)
            .values(holder=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()


@contextlib.asynccontextmanager
async def reconciler_lease(engine: Engine, *, wait_s: float = 0.0) -> AsyncIterator[str]:
    """Hold the lease for the block, renewing it in the background.

    Raises:
        ReconcilerBusy: another run still holds it after `wait_s` seconds.
    """
    holder = new_holder_name()
    deadline = time.monotonic() + wait_s
    while not await asyncio.to_thread(try_acquire, engine, holder):
        if time.monotonic() >= deadline:
            raise ReconcilerBusy(current_holder(engine))
        await asyncio.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    stop = asyncio.Event()

    async def renew() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RENEW_EVERY_S)
                return
            try:
                if not await asyncio.to_thread(try_acquire, engine, holder):
                    log.error("the reconciler lease was lost; another run may start")
            except OperationalError:
                log.warning("could not renew the reconciler lease; retrying", exc_info=True)

    renewer = asyncio.create_task(renew())
    try:
        yield holder
    finally:
        # Let a renewal in flight finish first: a renewal landing after the release would
        # hold the lease for a run that has ended.
        stop.set()
        await renewer
        release(engine, holder)
