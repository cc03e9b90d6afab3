"""Benchmark: the school policy module's decision time, and what it costs Synapse.

Prints one JSON object. Measured in the same run:
  (a) decision time of the cached rules (p50/p99 in µs) over a generated region of
      --schools schools (about 600 people each), for the questions Synapse asks most:
      who may meet whom (DMs), invites and joins into managed rooms, channel posts and
      answers (reactions, their content checked);
  (b) createRoom and invite as a teacher sees them (mean ms per request, one at a time),
      and the bot's admin join of --members people into one room (provisioning's path),
      against the same Synapse with the module loaded and without it, alternating
      --rounds times (with, without, with, without, …) so that drift in the machine's
      load falls on both sides alike. Ratios are with ÷ without (medians over rounds).

Usage: .venv/bin/python bench/policy.py [--schools 500] [--requests 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "synapse-config" / "modules"))

from school_policy import rules  # noqa: E402
from school_policy.directory import load_directory  # noqa: E402
from school_policy.rules import Rules  # noqa: E402

from bench.harness import start_region  # noqa: E402
from matrix.client import MatrixClient, path  # noqa: E402
from parta.deployment import LocalDeployment  # noqa: E402
from provisioning.db.engine import make_engine, make_session_factory  # noqa: E402
from provisioning.db.models import EnrolmentRole, Region, Role  # noqa: E402
from provisioning.reconciler.run import reconcile_region  # noqa: E402
from provisioning.services import schools as svc  # noqa: E402

SERVER = "region.example"
TEXT = {"msgtype": "m.text", "body": "Завтра контрольная"}
REACTION = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$post", "key": "👍"}}
TARGETS = {"decision_p99_us": 200.0, "create_room_ratio": 1.05, "invite_ratio": 1.05}
MODULE_MARK = "# --- Child safety: the school policy module"
# Both sides without people's rate limits, which would otherwise be what is measured
# (one teacher creating rooms, one pupil invited again and again).
NO_RATE_LIMITS = """
rc_message: {per_second: 10000, burst_count: 10000}
rc_room_creation: {per_second: 10000, burst_count: 10000}
rc_invites:
  per_room: {per_second: 10000, burst_count: 10000}
  per_user: {per_second: 10000, burst_count: 10000}
  per_issuer: {per_second: 10000, burst_count: 10000}
"""


# --- (a) decisions ----------------------------------------------------------------------------


def region_snapshot(schools: int, seed: int = 1) -> dict[str, Any]:
    """A region like bench/provision.py's: per school 10 classes, 240 pupils, 360 parents."""
    rng = random.Random(seed)
    data: dict[str, Any] = {"format": 1, "bot": f"@parta:{SERVER}", "region_admins": [],
                            "schools": {}, "classes": {}, "unplaced_pupils": [], "parents": {},
                            "rooms": {}}  # fmt: skip
    for school in range(1, schools + 1):
        teachers = [f"@t{school}-{i}:{SERVER}" for i in range(20)]
        data["schools"][str(school)] = {"admins": [f"@d{school}:{SERVER}"], "teachers": teachers}
        for index in range(10):
            class_id = school * 100 + index
            pupils = [f"@p{class_id}-{i}:{SERVER}" for i in range(24)]
            data["classes"][str(class_id)] = {
                "school": school, "teachers": teachers[index::10], "pupils": pupils,
            }  # fmt: skip
            for pupil in pupils:
                for parent in range(1 + rng.randrange(2)):
                    data["parents"][f"@m{pupil[1:].split(':')[0]}-{parent}:{SERVER}"] = [pupil]
            for kind in ("class_space", "class_chat", "class_channel", "class_parents"):
                data["rooms"][f"!{kind}-{class_id}"] = {
                    "kind": kind, "school": school, "class": class_id,
                }  # fmt: skip
        for kind in (
            "school_space",
            "announcements",
            "school_materials",
            "school_events",
            "staff_room",
        ):
            data["rooms"][f"!{kind}-{school}"] = {"kind": kind, "school": school, "class": None}
    return data


def measure_decisions(schools: int, samples: int = 200_000) -> dict[str, Any]:
    snapshot = region_snapshot(schools)
    started = time.monotonic()
    directory = load_directory(json.dumps(snapshot))
    load_s = time.monotonic() - started
    policy = Rules(server_name=SERVER)
    rng = random.Random(2)
    people = list(directory.pupils) + list(directory.staff) + list(directory.children)
    rooms = list(directory.rooms)

    def pick() -> str:
        return rng.choice(people)

    def place() -> str:
        return rng.choice(rooms)

    # The arguments are drawn beforehand, so only the decision itself is timed.
    questions: list[tuple[str, Callable[..., object], list[tuple[Any, ...]]]] = [
        ("meet", rules.may_meet, [(pick(), pick()) for _ in range(samples // 4)]),
        ("invite", rules.may_invite, [(pick(), pick(), place(), ()) for _ in range(samples // 4)]),
        ("join", rules.may_join, [(pick(), place(), ()) for _ in range(samples // 4)]),
        (
            "post",
            rules.may_post,
            [(pick(), place(), "m.room.message", TEXT) for _ in range(samples // 4)],
        ),
        # An answer in a channel: a reaction, its content judged (school_policy.answers).
        (
            "answer",
            rules.may_post,
            [(pick(), place(), "m.reaction", REACTION) for _ in range(samples // 4)],
        ),
    ]
    timings: dict[str, list[float]] = {}
    clock = time.perf_counter_ns
    for name, decide, arguments in questions:
        values = timings[name] = []
        for args in arguments:
            before = clock()
            decide(directory, policy, *args)
            values.append((clock() - before) / 1000)
    every = sorted(t for values in timings.values() for t in values)
    result: dict[str, Any] = {
        "region_people": len(people),
        "region_rooms": len(rooms),
        "snapshot_mib": round(len(json.dumps(snapshot)) / 2**20, 1),
        "snapshot_load_s": round(load_s, 2),
        "decision_p50_us": round(every[len(every) // 2], 2),
        "decision_p99_us": round(every[int(len(every) * 0.99)], 2),
    }
    for name, values in timings.items():
        values.sort()
        result[f"decision_{name}_p99_us"] = round(values[int(len(values) * 0.99)], 2)
    return result


# --- (b) Synapse with and without the module ----------------------------------------------------


async def people(region: LocalDeployment) -> tuple[str, str, str]:
    """A teacher and a pupil of one school, placed by provisioning; the teacher's token."""
    s = region.settings
    engine = make_engine(s.sqlalchemy_url)
    tag = secrets.token_hex(3)
    password = secrets.token_urlsafe(12)
    with make_session_factory(engine)() as db:
        region_row = db.scalar(select(Region))
        assert region_row is not None
        school = svc.create_school(db, region_row, f"Школа {tag}", academic_year=2026)
        school_class = svc.add_class(db, school, 5, "А")
        teacher = svc.add_person(db, "Учитель", f"@teacher-{tag}:{s.server_name}")
        pupil = svc.add_person(db, "Ученик", f"@pupil-{tag}:{s.server_name}")
        svc.grant_school_role(db, teacher, school, Role.TEACHER)
        svc.enrol(db, teacher, school_class, EnrolmentRole.CLASS_TEACHER)
        svc.enrol(db, pupil, school_class, EnrolmentRole.PUPIL)
        db.commit()
        async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as client:
            await reconcile_region(db, client, s, wait_s=60)  # also writes the policy snapshot
            await client.admin_put_user(str(teacher.matrix_user_id), {"password": password})
        teacher_id, pupil_id = str(teacher.matrix_user_id), str(pupil.matrix_user_id)
    engine.dispose()
    async with httpx.AsyncClient(base_url=s.homeserver_url, timeout=60) as http:
        login = await http.post(
            "/_matrix/client/v3/login",
            json={"type": "m.login.password", "password": password,
                  "identifier": {"type": "m.id.user", "user": teacher_id}},
        )  # fmt: skip
        login.raise_for_status()
    await asyncio.sleep(3)  # the module rereads the snapshot every 2 s
    return teacher_id, pupil_id, str(login.json()["access_token"])


async def bench_accounts(region: LocalDeployment, count: int) -> list[str]:
    """Accounts for the placement measurement, made without a password (fast)."""
    s = region.settings
    tag = secrets.token_hex(3)
    users = [f"@bench-{tag}-{i}:{s.server_name}" for i in range(count)]
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as bot:
        for user in users:
            await bot.admin_put_user(user, {"displayname": user})
    return users


async def placement(region: LocalDeployment, users: list[str]) -> float:
    """Mean ms of the bot placing people into one room (the admin join), one at a time:
    the reconciler's own path, where the module answers the join and sees every event."""
    s = region.settings
    async with MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as bot:
        created = await bot.request("POST", path("createRoom"), body={"preset": "private_chat"})
        room = str(created["room_id"])
        joins = []
        for user in users:
            before = time.perf_counter()
            await bot.request(
                "POST", path("join", room, base="/_synapse/admin/v1"), body={"user_id": user}
            )
            joins.append(time.perf_counter() - before)
    return statistics.mean(joins) * 1000


async def one_phase(
    region: LocalDeployment, token: str, pupil: str, requests: int
) -> dict[str, float]:
    """Mean ms of createRoom, then of inviting the pupil into fresh rooms, one at a time."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=region.settings.homeserver_url, headers=headers, timeout=120
    ) as http:

        async def timed(
            method: str, url: str, body: dict[str, Any]
        ) -> tuple[float, dict[str, Any]]:
            before = time.perf_counter()
            answer = await http.request(method, url, json=body)
            answer.raise_for_status()
            return time.perf_counter() - before, answer.json()

        create = []
        rooms = []
        for i in range(requests):
            body = {"name": f"Кружок {i}", "preset": "private_chat"}
            seconds, answer = await timed("POST", "/_matrix/client/v3/createRoom", body)
            create.append(seconds)
            rooms.append(answer["room_id"])
        invite = []
        for room in rooms:
            seconds, _ = await timed("POST", path("rooms", room, "invite"), {"user_id": pupil})
            invite.append(seconds)
    return {
        "create_ms": statistics.mean(create) * 1000,
        "invite_ms": statistics.mean(invite) * 1000,
    }


def restart_synapse(region: LocalDeployment, with_module: bool, original: str) -> None:
    config = region.settings.synapse_dir / "homeserver.yaml"
    spec = next(s for s in region.specs() if s.name == "synapse")
    region.supervisor.stop("synapse")
    before, module = original.split(MODULE_MARK)
    text = before + NO_RATE_LIMITS + (MODULE_MARK + module if with_module else "")
    config.write_text(text, encoding="utf-8")
    region.supervisor.start(spec)
    region.supervisor.wait_healthy(spec)


def measure_synapse(requests: int, rounds: int, members_per_room: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="parta-bench-policy-") as tmp:
        region = start_region(Path(tmp) / "var")
        config = region.settings.synapse_dir / "homeserver.yaml"
        original = config.read_text(encoding="utf-8")
        assert MODULE_MARK in original, "the rendered homeserver.yaml does not load the module"
        try:
            _, pupil, token = asyncio.run(people(region))
            members = asyncio.run(bench_accounts(region, members_per_room))
            phases: dict[bool, list[dict[str, float]]] = {True: [], False: []}
            restart_synapse(region, True, original)
            asyncio.run(one_phase(region, token, pupil, max(10, requests // 5)))  # warm up
            for _ in range(rounds):
                for with_module in (True, False):
                    restart_synapse(region, with_module, original)
                    phase = asyncio.run(one_phase(region, token, pupil, requests))
                    phase["join_ms"] = asyncio.run(placement(region, members))
                    phases[with_module].append(phase)
                    print(json.dumps({"with_module": with_module, **phases[with_module][-1]}),
                          file=sys.stderr, flush=True)  # fmt: skip
            restart_synapse(region, True, original)
        finally:
            config.write_text(original, encoding="utf-8")
            region.stop()

    def median(with_module: bool, key: str) -> float:
        return statistics.median(p[key] for p in phases[with_module])

    return {
        "requests_per_phase": requests,
        "rounds": rounds,
        "create_room_ms_with": round(median(True, "create_ms"), 2),
        "create_room_ms_without": round(median(False, "create_ms"), 2),
        "invite_ms_with": round(median(True, "invite_ms"), 2),
        "invite_ms_without": round(median(False, "invite_ms"), 2),
        "join_ms_with": round(median(True, "join_ms"), 2),
        "join_ms_without": round(median(False, "join_ms"), 2),
        "members_per_room": members_per_room,
        "join_ratio": round(median(True, "join_ms") / median(False, "join_ms"), 3),
        "create_room_ratio": round(median(True, "create_ms") / median(False, "create_ms"), 3),
        "invite_ratio": round(median(True, "invite_ms") / median(False, "invite_ms"), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=500)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--members", type=int, default=200, help="people placed per room")
    args = parser.parse_args()
    result = measure_decisions(args.schools)
    print(json.dumps(result), file=sys.stderr, flush=True)
    result.update(measure_synapse(args.requests, args.rounds, args.members))
    result["targets_met"] = {
        "decision_p99_us<200": result["decision_p99_us"] < TARGETS["decision_p99_us"],
        "create_room_ratio<1.05": result["create_room_ratio"] < TARGETS["create_room_ratio"],
        "invite_ratio<1.05": result["invite_ratio"] < TARGETS["invite_ratio"],
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
