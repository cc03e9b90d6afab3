"""Crash and outage mid-run: the next run converges, with no duplicate room and no lost member."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matrix.client import MatrixClient, path
from matrix.errors import HomeserverUnavailable
from parta.deployment import LocalDeployment
from provisioning.db.base import utcnow
from provisioning.db.models import EnrolmentRole, ManagedRoom, Region
from provisioning.reconciler.actions import CreateUser, Join, describe
from provisioning.reconciler.run import RunReport, reconcile
from provisioning.reconciler.state import UserID
from provisioning.services import schools as svc
from provisioning.services.generate import GeneratedSchool, generate_school
from tests.harness.region import region_session


@pytest.fixture
def db(region: LocalDeployment) -> Iterator[Session]:
    with region_session(region) as session:
        yield session


def new_school(db: Session, pupils: int) -> GeneratedSchool:
    region_row = db.scalar(select(Region))
    assert region_row is not None
    tag = secrets.token_hex(3)
    return generate_school(
        db, region_row, f"Школа {tag}", pupils=pupils, academic_year=2026, seed=7, slug=f"t{tag}"
    )


def managed_rooms_of(db: Session, school: GeneratedSchool) -> int:
    db.expire_all()
    prefix = f"school-{school.school.slug}"
    return (
        db.scalar(
            select(func.count())
            .select_from(ManagedRoom)
            .where(ManagedRoom.alias.startswith(prefix))
        )
        or 0
    )


async def total_rooms(bot: MatrixClient) -> int:
    answer = await bot.request("GET", "/_synapse/admin/v1/rooms", query={"limit": "1"})
    return int(answer["total_rooms"])


async def run(region: LocalDeployment, db: Session, **kwargs: bool) -> RunReport:
    """One run; it waits for a run of the region's own service (or a killed one's lease)."""
    s = region.settings
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as client:
        return await reconcile(
            db, client, server_name=s.server_name, bot=UserID(s.bot_user_id), wait_s=120,
            call_widget_url=s.call_widget_url,
            documents_widget_url=s.documents_widget_url,
            **kwargs,
        )  # fmt: skip


async def wait_for_rooms(db: Session, school: GeneratedSchool, count: int) -> None:
    """Poll the records until the run has made `count` rooms (bounded: 60 s)."""
    for _ in range(1200):
        if managed_rooms_of(db, school) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the run made fewer than {count} rooms within 60 s")


def expected_rooms(school: GeneratedSchool) -> int:
    # school space, announcements, materials, events, staff; 4 per class
    return 5 + 4 * len(school.classes)


async def test_killed_reconciler_process_resumes_without_duplicates(
    region: LocalDeployment, db: Session, bot: MatrixClient
) -> None:
    school = new_school(db, pupils=16)
    rooms_before = await total_rooms(bot)
    env = {**os.environ, "PARTA_VAR_DIR": str(region.settings.var_dir)}
    command = [sys.executable, "-m", "parta", "sync"]
    sync = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await wait_for_rooms(db, school, 3)
        assert sync.returncode is None, "the run finished before it could be killed"
        sync.send_signal(signal.SIGKILL)  # no chance to clean up: as a crash
    finally:
        await asyncio.wait_for(sync.wait(), 30)

    resumed = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(resumed.communicate(), 300)
    assert resumed.returncode == 0, output.decode()
    applied = re.search(r"applied (\d+) actions", output.decode())
    assert applied and int(applied.group(1)) > 0, "the killed run had left nothing to do"
    verified = await run(region, db, full=True)
    assert verified.plan == []  # every room and membership is in place
    created = await total_rooms(bot) - rooms_before
    assert created == managed_rooms_of(db, school) == expected_rooms(school)  # each room once


async def test_synapse_outage_mid_run_converges(
    region: LocalDeployment, db: Session, bot: MatrixClient
) -> None:
    school = new_school(db, pupils=16)
    rooms_before = await total_rooms(bot)
    synapse = next(spec for spec in region.specs() if spec.name == "synapse")
    task = asyncio.create_task(run(region, db))
    await wait_for_rooms(db, school, 3)
    assert not task.done()
    await asyncio.to_thread(region.supervisor.stop, "synapse")
    await asyncio.sleep(1.0)
    await asyncio.to_thread(region.supervisor.start, synapse)
    await asyncio.to_thread(region.supervisor.wait_healthy, synapse)
    # The client's retries may carry the run through the outage, or it gives up;
    # either way the next run converges.
    with contextlib.suppress(HomeserverUnavailable):
        await task
    await run(region, db)
    verified = await run(region, db, full=True)
    assert verified.plan == []
    created = await total_rooms(bot) - rooms_before
    assert created == managed_rooms_of(db, school) == expected_rooms(school)


async def test_a_failed_action_is_reported_and_the_rest_applied(
    region: LocalDeployment, db: Session
) -> None:
    """One person Synapse cannot place does not hold up the others; the next run repairs."""
    school = new_school(db, pupils=8)
    await run(region, db)
    server = region.settings.server_name
    tag = secrets.token_hex(3)
    ghost = svc.add_person(db, "Призрак Без Аккаунта", f"@ghost-{tag}:{server}")
    ghost.account_created_at = utcnow()  # the record claims an account Synapse never made
    newcomer = svc.add_person(db, "Новый Ученик", f"@newcomer-{tag}:{server}")
    for pupil in (ghost, newcomer):
        svc.enrol(db, pupil, school.classes[0], EnrolmentRole.PUPIL)
    db.commit()

    report = await run(region, db)

    failed = report.applied.failed
    assert len(failed) == 7  # the ghost's seven rooms, each refused with "User not found"
    assert all(
        isinstance(f.action, Join) and f.action.user_id == ghost.matrix_user_id for f in failed
    )
    assert all("M_NOT_FOUND" in f.error for f in failed)
    placed = {
        a.alias for a in report.plan if isinstance(a, Join) and a.user_id == newcomer.matrix_user_id
    }
    # school space, announcements, materials, events, class space, chat, channel
    assert len(placed) == 7
    assert report.applied.done == len(report.plan) - len(failed)
    for alias in placed:
        members = (db.get(ManagedRoom, alias).applied or {}).get("members", [])
        assert newcomer.matrix_user_id in members

    # A full run reads Synapse's accounts, finds the ghost missing, creates and places it.
    repaired = await run(region, db, full=True)
    assert not repaired.applied.failed
    assert any(
        isinstance(a, CreateUser) and a.user_id == ghost.matrix_user_id for a in repaired.plan
    )
    assert (await run(region, db, full=True)).plan == []


async def test_a_lost_answer_to_a_join_or_a_kick_is_not_a_failure(
    region: LocalDeployment, db: Session, bot: MatrixClient
) -> None:
    """Synapse did the join (or kick), the answer never came back, the record says nothing:
    the repeated join is refused ("already in the room"), and that is success."""
    school = new_school(db, pupils=8)
    await run(region, db)
    pupil = school.pupils[0]
    user = str(pupil.matrix_user_id)
    chat = next(
        r
        for r in db.scalars(select(ManagedRoom).where(ManagedRoom.class_id == school.classes[0].id))
        if r.alias.endswith("-chat")
    )
    # As if the record of the join had been lost: Synapse has the member, Parta does not know.
    chat.applied = {**chat.applied, "members": [m for m in chat.applied["members"] if m != user]}
    db.commit()
    report = await run(region, db)
    assert [describe(a) for a in report.plan] == [
        {"action": "Join", "alias": chat.alias, "user_id": user}
    ]
    assert not report.applied.failed and report.applied.done == 1

    # The kick of a moved pupil reached Synapse, but its answer was lost: the record still
    # lists them, so the next run kicks again and Synapse says they are not in the room.
    other = svc.add_class(db, school.school, 9, "Я")
    svc.move_pupil(db, pupil, other)
    db.commit()
    assert chat.room_id is not None
    await bot.request(
        "POST", path("rooms", chat.room_id, "kick"), body={"user_id": user, "reason": "test"}
    )
    report = await run(region, db)
    assert not report.applied.failed, report.applied.failed
    assert {"action": "Kick", "alias": chat.alias, "user_id": user} in [
        describe(a) for a in report.plan
    ]
    assert (await run(region, db, full=True)).plan == []
