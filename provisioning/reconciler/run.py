"""One reconciler run: build the desired state, observe, plan, apply (or only plan)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from matrix.client import MatrixClient
from provisioning.db.base import utcnow
from provisioning.policy.snapshot import refresh_snapshot
from provisioning.reconciler.actions import Action, describe
from provisioning.reconciler.apply import (
    DEFAULT_CONCURRENCY,
    ApplyReport,
    FailedAction,
    TooManyFailures,
    apply,
)
from provisioning.reconciler.desired import build_desired
from provisioning.reconciler.lease import reconciler_lease
from provisioning.reconciler.observe import observe
from provisioning.reconciler.plan import compute_plan
from provisioning.reconciler.refusals import Postponed, next_attempt, record_refusals, sort_plan
from provisioning.reconciler.state import UserID

if TYPE_CHECKING:
    from foundation.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    plan: list[Action]  # what the run applied (or, in a dry run, would apply)
    applied: ApplyReport = field(default_factory=ApplyReport)
    calls: int = 0  # HTTP requests sent to Synapse during the run
    seconds: float = 0.0
    dry_run: bool = False
    # Refused for good earlier and still in their back-off: left out of `plan` (refusals).
    postponed: list[Postponed] = field(default_factory=list)
    refused: list[FailedAction] = field(default_factory=list)  # refused for good in this run
    next_retry_at: datetime | None = None  # when the earliest refusal may be tried again

    @property
    def only_refusals_failed(self) -> bool:
        """Every failure of the run is a recorded permanent refusal (or none failed); the
        skipped actions, if any, waited for a room whose creation was refused."""
        if self.applied.skipped and not self.refused:
            return False
        return len(self.refused) == len(self.applied.failed)


async def reconcile(
    session: Session,
    client: MatrixClient,
    *,
    server_name: str,
    bot: UserID,
    full: bool = False,
    dry_run: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    wait_s: float = 0.0,
    policy_snapshot: Path | None = None,
    call_widget_url: str | None,
    documents_widget_url: str | None,
) -> RunReport:
    """Make Synapse match the database; safe to run at any time and to interrupt.

    One run at a time per region (a lease in the database), whichever process starts it.

    Args:
        full: read every managed room and account from Synapse instead of trusting the
            records of what was applied: the periodic repair of drift.
        dry_run: plan only; nothing is changed.
        wait_s: how long to wait for another run to finish.
        policy_snapshot: where to keep the school policy module's snapshot up to date:
            written before the plan is applied (people) and after (the rooms made).
        call_widget_url: the call widget's URL template, put into class chats and parents
            chats (`Settings.call_widget_url`). Required: None takes Parta's widgets out of
            every room, so no caller may get it by forgetting.
        documents_widget_url: the same for the documents widget, put into class chats,
            class channels and staff rooms (`Settings.documents_widget_url`).

    Raises:
        ReconcilerBusy: another run still holds the lease after `wait_s`.
    """
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    async with reconciler_lease(engine, wait_s=wait_s):
        return await _reconcile(
            session, client, server_name=server_name, bot=bot, full=full, dry_run=dry_run,
            concurrency=concurrency, policy_snapshot=None if dry_run else policy_snapshot,
            call_widget_url=call_widget_url, documents_widget_url=documents_widget_url,
        )  # fmt: skip


async def _reconcile(
    session: Session,
    client: MatrixClient,
    *,
    server_name: str,
    bot: UserID,
    full: bool,
    dry_run: bool,
    concurrency: int,
    policy_snapshot: Path | None,
    call_widget_url: str | None,
    documents_widget_url: str | None,
) -> RunReport:
    started = time.monotonic()
    calls_before = client.requests_sent
    if policy_snapshot is not None:
        # People first: the policy must know a newcomer before anyone tries to reach them.
        refresh_snapshot(session, policy_snapshot, bot)
    desired = build_desired(
        session, bot, call_widget_url=call_widget_url, documents_widget_url=documents_widget_url
    )
    owners = {alias: room.owner for alias, room in desired.rooms.items()}
    observed = await observe(
        client, session, desired.rooms, server_name=server_name, bot=bot, full=full, owners=owners
    )
    plan = compute_plan(observed, desired)
    report = RunReport(plan=plan, dry_run=dry_run)
    if not dry_run:
        # Changes the homeserver refused for good wait out their back-off (refusals).
        waiting = sort_plan(session, plan, desired, utcnow())
        report.plan, report.postponed = waiting.due, waiting.postponed
    if not dry_run and report.plan:
        try:
            report.applied = await apply(
                report.plan,
                client,
                session,
                observed,
                server_name=server_name,
                bot=bot,
                owners=owners,
                concurrency=concurrency,
            )
        except TooManyFailures as exc:
            record_refusals(session, exc.report.failed, exc.report.done_actions, desired, utcnow())
            raise
        report.refused = record_refusals(
            session, report.applied.failed, report.applied.done_actions, desired, utcnow()
        )
    if not dry_run:
        report.next_retry_at = next_attempt(session)
    if policy_snapshot is not None and report.applied.by_action.get("CreateRoom"):
        refresh_snapshot(session, policy_snapshot, bot)  # the new rooms' IDs
    report.calls = client.requests_sent - calls_before
    report.seconds = time.monotonic() - started
    repaired = [describe(a) for a in report.plan[:50]]
    failed = [f.describe() for f in report.applied.failed[:50]]
    log.info(
        "reconciled" if not dry_run else "planned",
        extra={
            "actions": len(report.plan), "calls": report.calls, "full": full, "plan": repaired,
            "failed": failed, "skipped": report.applied.skipped,
            "refused": len(report.refused), "postponed": len(report.postponed),
        },
    )  # fmt: skip
    return report


async def reconcile_region(
    session: Session,
    client: MatrixClient,
    settings: Settings,
    *,
    full: bool = False,
    dry_run: bool = False,
    wait_s: float = 0.0,
) -> RunReport:
    """`reconcile` for the deployment the settings describe."""
    return await reconcile(
        session,
        client,
        server_name=settings.server_name,
        bot=UserID(settings.bot_user_id),
        full=full,
        dry_run=dry_run,
        wait_s=wait_s,
        policy_snapshot=settings.policy_snapshot_path,
        call_widget_url=settings.call_widget_url,
        documents_widget_url=settings.documents_widget_url,
    )
