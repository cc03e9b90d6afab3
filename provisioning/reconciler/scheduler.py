"""Run the reconciler after changes (debounced) and periodically, one run at a time.

API routes call `request()` after each change; a burst of changes gives one run a moment
later. Every `period` seconds a full run reads Synapse and repairs drift the bridge could
not see. A failed run is logged and retried on the next trigger; the service stays up.
An action that failed is tried again shortly, unless the homeserver refused it for good:
then the run after its back-off is over tries it again (`refusals`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from foundation.lifecycle import cancel_and_wait
from provisioning.db.base import utcnow
from provisioning.reconciler.lease import ReconcilerBusy
from provisioning.reconciler.run import RunReport

log = logging.getLogger(__name__)

BUSY_RETRY_S = 5.0
FAILED_RETRY_S = 30.0  # an action the homeserver refused or was too slow for: try again soon
RunFunction = Callable[[bool], Awaitable[RunReport]]


class ReconcileScheduler:
    def __init__(self, run: RunFunction, *, debounce: float = 1.0, period: float = 600.0) -> None:
        self._run = run
        self._debounce = debounce
        self._period = period
        self._wanted = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last_report: RunReport | None = None
        self.last_error: str | None = None
        self._refusal_retry: asyncio.TimerHandle | None = None

    def request(self) -> None:
        """Ask for a run soon; several requests close together give one run."""
        self._wanted.set()

    async def run_now(self, *, full: bool = False) -> RunReport:
        """Run at once (waiting for a run in progress to end first)."""
        async with self._lock:
            try:
                report = await self._run(full)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            self.last_report, self.last_error = report, None
            return report

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wanted.wait(), timeout=self._period)
                full = False
            except TimeoutError:
                full = True
            await asyncio.sleep(self._debounce if not full else 0)
            self._wanted.clear()
            try:
                report = await self.run_now(full=full)
                if report.plan:
                    log.info(
                        "reconciler repaired or applied changes",
                        extra={"actions": len(report.plan), "full": full},
                    )
                if report.applied.failed or report.applied.skipped:
                    log.warning(
                        "some actions did not apply",
                        extra={
                            "failed": [f.describe() for f in report.applied.failed[:20]],
                            "skipped": report.applied.skipped,
                            "refused_for_good": len(report.refused),
                        },
                    )
                if not report.only_refusals_failed:
                    asyncio.get_running_loop().call_later(FAILED_RETRY_S, self._wanted.set)
                self._wake_for_refusals(report)
            except ReconcilerBusy as exc:
                # `parta sync` or an import holds the lease: try again shortly, so the
                # change that asked for this run is not left waiting for the period.
                log.info("reconciler busy; trying again shortly", extra={"holder": exc.holder})
                await asyncio.sleep(BUSY_RETRY_S)
                self._wanted.set()
            except Exception:
                log.exception("reconciler run failed; it runs again on the next change or period")

    def _wake_for_refusals(self, report: RunReport) -> None:
        """Run again when the earliest refused action's back-off is over (one timer)."""
        if self._refusal_retry is not None:
            self._refusal_retry.cancel()
            self._refusal_retry = None
        if report.next_retry_at is not None:
            delay = max(1.0, (report.next_retry_at - utcnow()).total_seconds())
            loop = asyncio.get_running_loop()
            self._refusal_retry = loop.call_later(delay, self._wanted.set)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="reconcile-scheduler")

    async def stop(self) -> None:
        if self._refusal_retry is not None:
            self._refusal_retry.cancel()
            self._refusal_retry = None
        task, self._task = self._task, None
        await cancel_and_wait(task)
