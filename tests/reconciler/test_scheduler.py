"""The scheduler retries a failed action soon, but a refusal for good only after its back-off."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from provisioning.db.base import utcnow
from provisioning.reconciler import scheduler as scheduling
from provisioning.reconciler.actions import Join
from provisioning.reconciler.apply import ApplyReport, FailedAction
from provisioning.reconciler.run import RunReport
from provisioning.reconciler.scheduler import ReconcileScheduler
from provisioning.reconciler.state import RoomAlias, UserID

JOIN = Join(RoomAlias("school-s-5a-chat"), UserID("@pupil:hs"))


def failed_run(errcode: str, *, refused: bool, retry_in_s: float | None) -> RunReport:
    failure = FailedAction(JOIN, f"{errcode}: refused", errcode)
    return RunReport(
        plan=[JOIN],
        applied=ApplyReport(failed=[failure]),
        refused=[failure] if refused else [],
        next_retry_at=utcnow() + timedelta(seconds=retry_in_s) if retry_in_s else None,
    )


async def runs_within(
    scheduler: ReconcileScheduler, runs: list[bool], count: int, seconds: float
) -> bool:
    """Start the scheduler with one run asked for; True if `count` runs happen in time."""
    await scheduler.start()
    scheduler.request()
    try:
        for _ in range(int(seconds / 0.02)):
            if len(runs) >= count:
                return True
            await asyncio.sleep(0.02)
        return False
    finally:
        await scheduler.stop()


async def test_a_refusal_for_good_waits_for_its_back_off_not_the_short_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scheduling, "FAILED_RETRY_S", 0.05)
    runs: list[bool] = []

    async def run(full: bool) -> RunReport:
        runs.append(full)
        return failed_run("M_TOO_LARGE", refused=True, retry_in_s=3600)

    scheduler = ReconcileScheduler(run, debounce=0.0, period=3600)
    assert not await runs_within(scheduler, runs, 2, 1.0)  # no retry loop every few seconds
    assert runs == [False]


async def test_the_scheduler_wakes_when_the_back_off_is_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scheduling, "FAILED_RETRY_S", 3600)
    runs: list[bool] = []

    async def run(full: bool) -> RunReport:
        runs.append(full)
        return failed_run("M_TOO_LARGE", refused=True, retry_in_s=1.2 if len(runs) == 1 else None)

    scheduler = ReconcileScheduler(run, debounce=0.0, period=3600)
    assert await runs_within(scheduler, runs, 2, 10.0)


async def test_a_failure_that_may_pass_is_retried_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduling, "FAILED_RETRY_S", 0.05)
    runs: list[bool] = []

    async def run(full: bool) -> RunReport:
        runs.append(full)
        return failed_run("M_LIMIT_EXCEEDED", refused=False, retry_in_s=None)

    scheduler = ReconcileScheduler(run, debounce=0.0, period=3600)
    assert await runs_within(scheduler, runs, 2, 10.0)
