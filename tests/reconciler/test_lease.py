"""One reconciler run at a time, across processes: the lease in Parta's database."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from matrix.client import MatrixClient, RetryPolicy
from provisioning.db.engine import make_session_factory
from provisioning.reconciler.lease import (
    ReconcilerBusy,
    current_holder,
    reconciler_lease,
    release,
    try_acquire,
)
from provisioning.reconciler.run import reconcile
from provisioning.reconciler.state import UserID


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine  # SQLite, then PostgreSQL (tests/conftest.py)


def test_the_lease_has_one_holder_until_released_or_expired(engine: Engine) -> None:
    assert try_acquire(engine, "a")
    assert try_acquire(engine, "a")  # renewing is taking it again
    assert not try_acquire(engine, "b")
    assert current_holder(engine) == "a"
    release(engine, "b")  # only the holder releases
    assert not try_acquire(engine, "b")
    release(engine, "a")
    assert try_acquire(engine, "b", ttl=timedelta(milliseconds=200))
    assert not try_acquire(engine, "c")
    time.sleep(0.3)
    assert try_acquire(engine, "c")  # a crashed holder's lease runs out


def test_of_many_racing_for_the_lease_exactly_one_wins(engine: Engine) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = list(pool.map(lambda n: try_acquire(engine, f"racer-{n}"), range(16)))
    assert wins.count(True) == 1


async def test_a_second_run_waits_or_reports_who_is_running(engine: Engine) -> None:
    unreachable = MatrixClient("http://127.0.0.1:9", "token", retry=RetryPolicy(attempts=1))
    async with reconciler_lease(engine) as holder:
        with make_session_factory(engine)() as session, pytest.raises(ReconcilerBusy) as busy:
            await reconcile(
                session, unreachable, server_name="region.test",
                bot=UserID("@parta:region.test"), wait_s=0.3, call_widget_url=None,
                documents_widget_url=None,
            )  # fmt: skip
        assert busy.value.holder == holder
    assert current_holder(engine) is None
    await unreachable.close()
