"""One reconciler run: build the desired state, observe, plan, apply (or only plan)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bridge.matrix.client import MatrixClient
from provisioning.reconciler.actions import Action, describe
from provisioning.reconciler.apply import DEFAULT_CONCURRENCY, ApplyReport, apply
from provisioning.reconciler.desired import build_desired
from provisioning.reconciler.observe import observe
from provisioning.reconciler.plan import compute_plan
from provisioning.reconciler.state import UserID

if TYPE_CHECKING:
    from parta.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    plan: list[Action]
    applied: ApplyReport = field(default_factory=ApplyReport)
    calls: int = 0  # HTTP requests sent to Synapse during the run
    seconds: float = 0.0
    dry_run: bool = False


async def reconcile(
    session: Session,
    client: MatrixClient,
    *,
    server_name: str,
    bot: UserID,
    full: bool = False,
    dry_run: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> RunReport:
    """Make Synapse match the database; safe to run at any time and to interrupt.

    Args:
        full: read every managed room and account from Synapse instead of trusting the
            records of what was applied: the periodic repair of drift.
        dry_run: plan only; nothing is changed.
    """
    started = time.monotonic()
    calls_before = client.requests_sent
    desired = build_desired(session, bot)
    observed = await observe(
        client, session, desired.rooms, server_name=server_name, bot=bot, full=full
    )
    plan = compute_plan(observed, desired)
    report = RunReport(plan=plan, dry_run=dry_run)
    if not dry_run and plan:
        report.applied = await apply(
            plan,
            client,
            session,
            observed,
            server_name=server_name,
            bot=bot,
            kinds={alias: room.kind for alias, room in desired.rooms.items()},
            concurrency=concurrency,
        )
    report.calls = client.requests_sent - calls_before
    report.seconds = time.monotonic() - started
    repaired = [describe(a) for a in plan[:50]]
    log.info(
        "reconciled" if not dry_run else "planned",
        extra={"actions": len(plan), "calls": report.calls, "full": full, "plan": repaired},
    )
    return report


async def reconcile_region(
    session: Session,
    client: MatrixClient,
    settings: Settings,
    *,
    full: bool = False,
    dry_run: bool = False,
) -> RunReport:
    """`reconcile` for the deployment the settings describe."""
    return await reconcile(
        session,
        client,
        server_name=settings.server_name,
        bot=UserID(settings.bot_user_id),
        full=full,
        dry_run=dry_run,
    )
