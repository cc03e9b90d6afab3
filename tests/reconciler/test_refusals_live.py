"""A change the homeserver refuses for good: tried once, backed off, reported, retried when fixed.

Issue 18: a 70,000-character name (imported before the limits) made every sync fail the
same joins with `M_TOO_LARGE`, retried every 10 s for ever (186 failed calls in 19 min).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from matrix.client import MatrixClient
from parta.deployment import LocalDeployment
from provisioning.db.base import utcnow
from provisioning.db.models import AuditEvent, EnrolmentRole, Person, RefusedAction, Region
from provisioning.reconciler.actions import Join
from provisioning.reconciler.run import RunReport, reconcile
from provisioning.reconciler.state import UserID
from provisioning.services import schools as svc
from provisioning.services.accounts import LocalpartAllocator
from provisioning.services.generate import generate_school
from tests.harness.region import region_session

LONG_NAME = "Я" * 70_000


@pytest.fixture
def db(region: LocalDeployment) -> Iterator[Session]:
    with region_session(region) as session:
        yield session


async def run(region: LocalDeployment, db: Session) -> RunReport:
    """One run; it waits for a run of the region's own service to end first."""
    s = region.settings
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as client:
        return await reconcile(
            db,
            client,
            server_name=s.server_name,
            bot=UserID(s.bot_user_id),
            wait_s=120,
            call_widget_url=s.call_widget_url,
            documents_widget_url=s.documents_widget_url,
        )


@dataclass
class Finished:
    returncode: int | None
    stdout: str


async def parta_sync(region: LocalDeployment) -> Finished:
    env = {**os.environ, "PARTA_VAR_DIR": str(region.settings.var_dir)}
    sync = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "parta", "sync"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(sync.communicate(), 300)
    return Finished(sync.returncode, " ".join(output.decode().split()))


def refused_joins(report: RunReport) -> list[str]:
    return [f.error.split(":", 1)[0] for f in report.applied.failed if isinstance(f.action, Join)]


async def test_a_name_too_large_for_matrix_is_tried_once_then_backed_off_and_retried_when_fixed(
    region: LocalDeployment, db: Session
) -> None:
    region_row = db.scalar(select(Region))
    assert region_row is not None
    tag = secrets.token_hex(3)
    made = generate_school(
        db, region_row, f"Школа {tag}", pupils=2, academic_year=2026, seed=3, slug=f"r{tag}"
    )
    assert (await run(region, db)).applied.failed == []  # the school is in place
    # The name an import let in before the limits (services/limits.py refuses it now).
    user_id = LocalpartAllocator(db, region.settings.server_name).user_id(f"Длинное Имя {tag}")
    pupil = svc.add_person(db, LONG_NAME, user_id)
    svc.enrol(db, pupil, made.classes[0], EnrolmentRole.PUPIL)
    db.commit()
    try:
        await refused_then_fixed(region, db, made.school.id, pupil.id, user_id, tag)
    finally:  # the region is shared by the session's tests: leave no refusal behind
        db.rollback()
        leftover = db.get(Person, pupil.id)
        if leftover is not None and leftover.display_name == LONG_NAME:
            leftover.display_name = f"Убранное Имя {tag}"
            db.commit()


async def refused_then_fixed(
    region: LocalDeployment, db: Session, school_id: int, pupil_id: int, user_id: str, tag: str
) -> None:
    first = await run(region, db)
    joins = refused_joins(first)
    assert joins and set(joins) == {"M_TOO_LARGE"}, first.applied.failed
    assert first.refused == first.applied.failed  # all of them refused for good
    failed_calls = len(joins)

    # Before the fix every run repeated them (10 s apart in the service: 186 calls in 19 min).
    for _ in range(3):
        again = await run(region, db)
        assert again.applied.failed == [] and again.calls == 0, again.applied.failed
        assert len(again.postponed) == failed_calls
    db.expire_all()
    records = db.scalars(select(RefusedAction).where(RefusedAction.user_id == user_id)).all()
    assert len(records) == failed_calls
    assert {r.errcode for r in records} == {"M_TOO_LARGE"}
    assert {r.school_id for r in records} == {school_id}
    assert all(
        timedelta(seconds=50) < r.next_attempt_at - r.last_refused_at <= timedelta(seconds=60)
        for r in records
    )
    reported = db.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "matrix.refused", AuditEvent.school_id == school_id
        )
    ).all()
    assert len(reported) == failed_calls  # once per new refusal, not once per run

    # `parta sync` (and `./deploy.sh sync`) exits 0 and says why nothing more was done.
    waiting = await parta_sync(region)
    assert waiting.returncode == 0, waiting.stdout
    assert f"refuses {failed_calls} changes for good (0 tried in this run" in waiting.stdout

    # When the back-off is over the joins are tried once more, and wait twice as long.
    db.execute(update(RefusedAction).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.commit()
    retried = await parta_sync(region)
    assert retried.returncode == 0, retried.stdout
    assert f"({failed_calls} tried in this run, 0 waiting" in retried.stdout
    db.expire_all()
    for record in db.scalars(select(RefusedAction).where(RefusedAction.user_id == user_id)):
        assert record.attempts == 2
        waits = record.next_attempt_at - record.last_refused_at
        assert timedelta(seconds=110) < waits <= timedelta(seconds=120)
    reported_again = db.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "matrix.refused", AuditEvent.school_id == school_id
        )
    ).all()
    assert len(reported_again) == failed_calls  # a refusal tried again is not news

    # The administration corrects the name: the joins are tried at once, and succeed.
    person = db.get(Person, pupil_id)
    assert person is not None
    person.display_name = f"Исправленное Имя {tag}"
    db.commit()
    fixed = await run(region, db)
    assert fixed.applied.failed == [] and fixed.postponed == []
    assert fixed.applied.by_action.get("Join") == failed_calls
    db.expire_all()
    assert db.scalars(select(RefusedAction).where(RefusedAction.user_id == user_id)).all() == []
    assert (await run(region, db)).plan == []
