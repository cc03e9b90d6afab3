"""Benchmark: a school morning, against one Synapse process and against Synapse's workers.

Prints one JSON object. In the same run, one mode after the other, each on a fresh
production-mode deployment (tests/harness/production.py: PostgreSQL, nginx, a private
Redis), with `PARTA_SYNAPSE_WORKERS=false` (the monolith) and with the workers:

N simulated people in classes of 30 (29 pupils and their teacher; a class chat and a
class channel). Each holds a `/sync` long-poll (timeout 30 s, `since` tokens, lazy-loaded
members, presence as clients set it) and posts about once every five minutes (a Poisson
process): pupils into their class chat, teachers into their channel. N ramps up
(`--steps`); each step measures a steady window: messages/s, delivery latency (sent →
seen in another member's sync; two receivers sampled per message) p50/p99, the send's own
answer p50/p99 (where most of a slow delivery goes), errors (failed
sends and syncs, and sampled deliveries never seen), CPU (cores busy) and memory (VmRSS)
of each Synapse process, nginx, the bridge, PostgreSQL's backends for the region and the
load generator itself, and the machine's busy cores (other work shares it). A mode's
ramp stops at the first step that fails: delivery p99 ≥ 2 s or errors ≥ 0.1 %
(`--keep-going` ramps on, for the CPU cost at scale when other work on the machine
fails the latency first). `<mode>_projection` grows the largest step's CPU cost in
proportion to the people until the busiest Synapse process fills one core or the
region fills the machine: an upper bound, for sizing.

Both modes are reached through nginx's loopback listener (plain HTTP, the routing the
public TLS listener uses): the workers cannot be reached without nginx's routing, and TLS
is terminated the same way in both modes; leaving it out keeps the generator, which
shares the two cores with Synapse, light.

`--speedup k` posts k times as often: the same messages/s with 1/k of the people, i.e.
fewer syncs held open. The figures are for the people simulated; the JSON states k.

Usage: .venv/bin/python bench/load.py [--steps 250,500,1000,2000,3000] [--steady 60]
           [--speedup 1] [--modes monolith,workers] [--keep-going]
       .venv/bin/python bench/load.py --quick   (a tiny run in seconds, for the tests)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import TICKS, cpu_seconds, require_test_extras

require_test_extras("bench/load.py", trustme="trustme")

from matrix.client import MatrixClient, path  # noqa: E402
from matrix.errors import MatrixError  # noqa: E402
from parta.deployment import LocalDeployment  # noqa: E402
from tests.harness.postgres import PostgresServer, throwaway_postgres  # noqa: E402
from tests.harness.production import production_deployment  # noqa: E402

CLASS_SIZE = 30  # 29 pupils and their teacher
POST_INTERVAL_S = 300.0  # each person posts about once every five minutes
SYNC_TIMEOUT_MS = 30_000
RECEIVERS_SAMPLED = 2
MAX_P99_S = 2.0
MAX_ERROR_RATE = 0.001
TARGETS = {"scale_ratio": 1.5, "workers_max_users": 2000}
TAG = "org.parta.bench"  # the message's id, in its content; the sender keeps its send time
# What a client such as Element asks for: lazy-loaded members, a short timeline.
SYNC_FILTER = json.dumps(
    {"room": {"timeline": {"limit": 20}, "state": {"lazy_load_members": True}}},
    separators=(",", ":"),
)
POSTGRES_SETTINGS = {"max_connections": "300", "shared_buffers": "256MB"}
MODES = {"monolith": {"synapse_workers": "false"}, "workers": {}}


@dataclass
class Person:
    user_id: str
    token: str
    filter_id: str
    room_id: str  # where this person posts: the class chat, or the teacher's channel
    classmates: list[str]  # the others of the class, who read what this person posts

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Sent:
    at: float  # monotonic, just before the request left
    receivers: set[str]  # the sampled readers who have not seen it yet
    counted: bool  # sent within a measured window


@dataclass
class Counters:
    sends: int = 0
    send_errors: int = 0
    syncs: int = 0
    sync_errors: int = 0

    def minus(self, other: Counters) -> Counters:
        return Counters(*(a - b for a, b in zip(self.values(), other.values(), strict=True)))

    def values(self) -> tuple[int, int, int, int]:
        return self.sends, self.send_errors, self.syncs, self.sync_errors


@dataclass
class Load:
    """The simulated people of one mode: their syncs, their posts and what was seen."""

    http: aiohttp.ClientSession
    base_url: str
    speedup: float
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    people: list[Person] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)
    sent: dict[str, Sent] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    send_latencies: list[float] = field(default_factory=list)  # the PUT's answer
    counting: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    ready: int = 0  # people whose first sync has answered
    ready_changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def all_ready(self, people: int, *, within: float) -> None:
        """Until `people` have had their first sync answered.

        Raises:
            RuntimeError: not within `within` seconds: Synapse is overwhelmed already.
        """
        deadline = time.monotonic() + within
        while self.ready < people:
            self.ready_changed.clear()
            try:
                await asyncio.wait_for(self.ready_changed.wait(), deadline - time.monotonic())
            except TimeoutError:
                raise RuntimeError(
                    f"only {self.ready} of {people} people had a first sync in {within:g} s"
                ) from None

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def sync_forever(self, person: Person, first_syncs: asyncio.Semaphore) -> None:
        url = f"{self.base_url}/_matrix/client/v3/sync"
        since: str | None = None
        async with first_syncs:  # the first, full sync of many people at once is heavy
            while since is None:
                since = await self._sync(url, person, None)
                if since is None:
                    await asyncio.sleep(1)
        self.ready += 1
        self.ready_changed.set()
        while True:
            next_batch = await self._sync(url, person, since)
            if next_batch is None:
                await asyncio.sleep(1)  # as a client backs off after an error
            else:
                since = next_batch

    async def _sync(self, url: str, person: Person, since: str | None) -> str | None:
        params = {"filter": person.filter_id, "timeout": str(SYNC_TIMEOUT_MS if since else 0)}
        if since is not None:
            params["since"] = since
        self.counters.syncs += 1
        try:
            async with self.http.get(url, params=params, headers=person.headers) as answer:
                body = await answer.read()
                if answer.status != 200:
                    self.counters.sync_errors += 1
                    return None
        except (aiohttp.ClientError, TimeoutError):
            self.counters.sync_errors += 1
            return None
        seen_at = time.monotonic()
        data = json.loads(body)
        if TAG.encode() in body:
            for room in data.get("rooms", {}).get("join", {}).values():
                for event in room.get("timeline", {}).get("events", ()):
                    tag = event.get("content", {}).get(TAG)
                    if isinstance(tag, str):
                        self._seen(tag, person.user_id, seen_at)
        return str(data["next_batch"])

    def _seen(self, tag: str, reader: str, seen_at: float) -> None:
        sent = self.sent.get(tag)
        if sent is None or reader not in sent.receivers:
            return
        sent.receivers.discard(reader)
        if sent.counted:
            self.latencies.append(seen_at - sent.at)

    async def post_forever(self) -> None:
        """All posts as one Poisson process (the sum of each person's): one task, not N."""
        while True:
            rate = len(self.people) * self.speedup / POST_INTERVAL_S
            if rate == 0:
                await asyncio.sleep(0.5)
                continue
            await asyncio.sleep(self.rng.expovariate(rate))
            self.spawn(self._post(self.rng.choice(self.people)))

    async def _post(self, person: Person) -> None:
        tag = secrets.token_hex(8)
        receivers = set(self.rng.sample(person.classmates, RECEIVERS_SAMPLED))
        started = time.monotonic()
        self.sent[tag] = Sent(started, receivers, self.counting)
        url = self.base_url + path("rooms", person.room_id, "send", "m.room.message", tag)
        body = {"msgtype": "m.text", "body": "Домашнее задание: упр. 12", TAG: tag}
        self.counters.sends += 1
        try:
            async with self.http.put(url, json=body, headers=person.headers) as answer:
                await answer.read()
                ok = answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok and self.counting:
            self.send_latencies.append(time.monotonic() - started)
        if not ok:
            self.counters.send_errors += 1
            self.sent.pop(tag, None)

    def forget_before(self, moment: float) -> int:
        """Drop what was sent before `moment`; return the sampled deliveries never seen of
        those that were counted."""
        unseen = 0
        for tag in [t for t, s in self.sent.items() if s.at < moment]:
            sent = self.sent.pop(tag)
            unseen += len(sent.receivers) if sent.counted else 0
        return unseen


# --- Making a class --------------------------------------------------------------------------


async def make_class(
    bot: MatrixClient, bot_id: str, load: Load, number: int, limit: asyncio.Semaphore
) -> list[Person]:
    """Thirty accounts with tokens (admin API: no passwords, no login rate limits), their
    class chat and channel made by the bot, and each person joined to both."""
    run = load.rng.getrandbits(32)
    server_name = bot_id.split(":", 1)[1]
    users = [f"@lb{run:x}-{number}-{i}:{server_name}" for i in range(CLASS_SIZE)]
    teacher = users[0]
    valid_until_ms = int((time.time() + 86_400) * 1000)

    async def account(user: str) -> tuple[str, str]:
        async with limit:
            await bot.admin_put_user(user, {"displayname": f"Ученик {user[3:12]}"})
            answer = await bot.request(
                "POST",
                path("users", user, "login", base="/_synapse/admin/v1"),
                body={"valid_until_ms": valid_until_ms},
            )
            token = str(answer["access_token"])
            # As Element does: the filter once, then its id on each sync (Synapse caches
            # it, where an inline filter is parsed and validated on every request).
            async with load.http.post(
                load.base_url + path("user", user, "filter"),
                data=SYNC_FILTER,
                headers={"Authorization": f"Bearer {token}"},
            ) as created:
                created.raise_for_status()
                filter_id = str((await created.json())["filter_id"])
            return token, filter_id

    accounts = await asyncio.gather(*(account(u) for u in users))
    tokens = [token for token, _ in accounts]

    async def room(name: str, events_default: int) -> str:
        # Room version 12: the creator (the bot) has all power and is not listed.
        levels = {"users": {teacher: 50}, "events_default": events_default}
        async with limit:
            answer = await bot.request(
                "POST",
                path("createRoom"),
                body={"preset": "public_chat", "name": name,
                      "power_level_content_override": levels},
            )  # fmt: skip
        return str(answer["room_id"])

    chat, channel = await asyncio.gather(
        room(f"{number} класс: чат", 0), room(f"{number} класс: канал", 50)
    )

    async def join(user: str, token: str, room_id: str) -> None:
        # Synapse lets a room take a burst of 10 local joins, then one a second
        # (rc_joins_per_room): a class fills in about 20 s, all classes at once.
        deadline = time.monotonic() + 300
        while True:
            async with (
                limit,
                load.http.post(
                    f"{load.base_url}{path('join', room_id)}",
                    json={},
                    headers={"Authorization": f"Bearer {token}"},
                ) as answer,
            ):
                if answer.status == 200:
                    return
                problem = await answer.json(content_type=None)
            if answer.status != 429 or time.monotonic() > deadline:
                raise RuntimeError(f"{user} could not join {room_id}: {problem}")
            await asyncio.sleep(problem.get("retry_after_ms", 1000) / 1000)

    await asyncio.gather(
        *(join(u, t, r) for u, t in zip(users, tokens, strict=True) for r in (chat, channel))
    )
    return [
        Person(u, t, f, channel if u == teacher else chat, [o for o in users if o != u])
        for u, (t, f) in zip(users, accounts, strict=True)
    ]


# --- What the processes spent -------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / TICKS, sum(values[:8]) / TICKS


def watched_processes(
    deployment: LocalDeployment, postgres: PostgresServer
) -> dict[str, list[int]]:
    """Each Synapse process, nginx (its workers), the bridge, the region's PostgreSQL
    backends (Synapse's database), and this generator."""
    status = deployment.status()
    groups: dict[str, list[int]] = {
        name: [pid] for name, pid in status.items() if pid and name.startswith("synapse")
    }
    if status.get("nginx"):
        groups["nginx"] = children(int(status["nginx"] or 0))
    if status.get("bridge"):
        groups["bridge"] = [int(status["bridge"] or 0)]
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s",
            (deployment.settings.synapse_postgres_db,),
        )
        groups["postgres"] = [int(row[0]) for row in cur.fetchall()]
    conn.close()
    groups["generator"] = [os.getpid()]
    return groups


def spent(groups: dict[str, list[int]]) -> dict[str, float]:
    result = {}
    for name, pids in groups.items():
        total = 0.0
        for pid in pids:
            try:
                total += cpu_seconds(pid)
            except (OSError, IndexError):
                continue  # a backend that closed: its share is lost, not invented
        result[name] = total
    return result


# --- A mode's ramp -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    steps: list[int]
    warmup_s: float
    steady_s: float
    drain_s: float
    speedup: float
    keep_going: bool = False  # past a failed step: costs at scale on a shared machine


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def measure_step(
    load: Load,
    deployment: LocalDeployment,
    postgres: PostgresServer,
    users: int,
    timing: Timing,
) -> dict[str, Any]:
    await asyncio.sleep(timing.warmup_s)
    groups = watched_processes(deployment, postgres)
    cpu_before, machine_before = spent(groups), machine_busy_s()
    counters_before = Counters(*load.counters.values())
    load.latencies, load.send_latencies = [], []
    load.counting = True
    began = time.monotonic()
    await asyncio.sleep(timing.steady_s)
    load.counting = False
    window = time.monotonic() - began
    cpu_after, machine_after = spent(groups), machine_busy_s()
    counters = load.counters.minus(counters_before)
    await asyncio.sleep(timing.drain_s)  # deliveries of the window's last messages
    unseen = load.forget_before(time.monotonic() - timing.drain_s)
    latencies = load.latencies + [float("inf")] * unseen
    requests = counters.sends + counters.syncs
    errors = counters.send_errors + counters.sync_errors + unseen
    cores = {name: round((cpu_after[name] - cpu_before[name]) / window, 3) for name in groups}
    synapse = [name for name in groups if name.startswith("synapse")]
    memory = {name: round(rss_mib(pids[0]), 1) for name, pids in groups.items()
              if name.startswith("synapse") and pids}  # fmt: skip
    machine = (
        (machine_after[0] - machine_before[0])
        / (machine_after[1] - machine_before[1])
        * (os.cpu_count() or 1)
    )
    p50 = percentile(latencies, 0.50) if latencies else float("inf")
    p99 = percentile(latencies, 0.99) if latencies else float("inf")
    error_rate = errors / max(1, requests + len(latencies))
    return {
        "users": users,
        "window_s": round(window, 1),
        "messages_per_s": round(counters.sends / window, 2),
        "syncs_per_s": round(counters.syncs / window, 1),
        "deliveries_sampled": len(latencies),
        "delivery_p50_s": round(p50, 3) if p50 != float("inf") else None,
        "delivery_p99_s": round(p99, 3) if p99 != float("inf") else None,
        # Of the deliveries: the send's own answer (client reader, event persister).
        "send_p50_s": round(percentile(load.send_latencies, 0.50), 3)
        if load.send_latencies
        else None,
        "send_p99_s": round(percentile(load.send_latencies, 0.99), 3)
        if load.send_latencies
        else None,
        "undelivered": unseen,
        "send_errors": counters.send_errors,
        "sync_errors": counters.sync_errors,
        "error_rate": round(error_rate, 5),
        "cores_busy": cores,
        "synapse_cores_busy": round(sum(cores[n] for n in synapse), 3),
        # What one person costs, whatever else the machine runs (CPU time is not
        # stretched by waiting for a core the way latency is).
        "cores_per_1000_people": {
            name: round(cores[name] / users * 1000, 3) for name in ("postgres", "nginx", "bridge")
        }
        | {"synapse": round(sum(cores[n] for n in synapse) / users * 1000, 3)},
        "busiest_synapse_process": max(synapse, key=lambda n: cores[n]),
        "synapse_rss_mib": memory,
        "synapse_rss_mib_total": round(sum(memory.values()), 1),
        "postgres_backends": len(groups["postgres"]),
        "machine_cores_busy": round(machine, 2),
        # What else ran on the machine meanwhile (it is shared): busy cores not ours.
        "other_cores_busy": round(max(0.0, machine - sum(cores.values())), 2),
        "passed": p99 < MAX_P99_S and error_rate < MAX_ERROR_RATE and bool(latencies),
    }


async def ramp(
    deployment: LocalDeployment, postgres: PostgresServer, timing: Timing, mode: str
) -> list[dict[str, Any]]:
    s = deployment.settings
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, keepalive_timeout=120)
    timeout = aiohttp.ClientTimeout(total=SYNC_TIMEOUT_MS / 1000 + 60)
    runs: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
        MatrixClient(s.homeserver_url, s.as_token.get_secret_value()) as bot,
    ):
        load = Load(http, s.homeserver_url, timing.speedup)
        first_syncs = asyncio.Semaphore(16)
        limit = asyncio.Semaphore(12)
        load.spawn(load.post_forever())
        try:
            for users in timing.steps:
                began = time.monotonic()
                try:
                    await add_people(load, bot, s.bot_user_id, users, first_syncs, limit)
                except (RuntimeError, MatrixError, aiohttp.ClientError) as exc:
                    # Synapse could not take the newcomers in: this step fails as it is.
                    runs.append({"users": users, "passed": False, "setup_failed": str(exc)})
                    break
                setup_s = time.monotonic() - began
                step = await measure_step(load, deployment, postgres, len(load.people), timing)
                step["setup_s"] = round(setup_s, 1)
                runs.append(step)
                print(json.dumps({"mode": mode, **step}, ensure_ascii=False), file=sys.stderr,
                      flush=True)  # fmt: skip
                if not step["passed"] and not timing.keep_going:
                    break
        finally:
            for task in list(load.tasks):
                task.cancel()
            await asyncio.gather(*load.tasks, return_exceptions=True)
    return runs


async def add_people(
    load: Load,
    bot: MatrixClient,
    bot_id: str,
    users: int,
    first_syncs: asyncio.Semaphore,
    limit: asyncio.Semaphore,
) -> None:
    """Classes until there are `users` people, each syncing, and posting once their first
    sync has answered (the others go on meanwhile)."""
    have = len(load.people) // CLASS_SIZE
    made = await asyncio.gather(
        *(make_class(bot, bot_id, load, n, limit) for n in range(have, -(-users // CLASS_SIZE)))
    )
    for people in made:
        for person in people:
            load.spawn(load.sync_forever(person, first_syncs))
    await load.all_ready(sum(len(p) for p in made) + len(load.people), within=300)
    load.people += [person for people in made for person in people]


def max_users(runs: list[dict[str, Any]]) -> int:
    """The largest N that passed, with every smaller step passing too."""
    passed = 0
    for step in runs:
        if not step["passed"]:
            break
        passed = step["users"]
    return passed


def projection(runs: list[dict[str, Any]], cores: int) -> dict[str, Any] | None:
    """Where the largest measured step's CPU cost, grown in proportion to the people,
    meets a limit: the busiest Synapse process at one core (Python runs one thread at a
    time), or Synapse, PostgreSQL, nginx and the bridge together at all the cores. An
    upper bound for a machine of our own: it ignores queueing, which the latency
    criterion sees first."""
    measured = [r for r in runs if "cores_busy" in r]
    if not measured:
        return None
    step = measured[-1]
    busiest = step["busiest_synapse_process"]
    ours = step["synapse_cores_busy"] + sum(
        step["cores_busy"][n] for n in ("postgres", "nginx", "bridge")
    )
    one_core = step["users"] / max(step["cores_busy"][busiest], 1e-6)
    all_cores = step["users"] * cores / max(ours, 1e-6)
    return {
        "from_users": step["users"],
        "busiest_synapse_process": busiest,
        "users_when_busiest_process_is_at_one_core": int(one_core),
        "users_when_all_cores_are_busy": int(all_cores),
        "upper_bound_users": int(min(one_core, all_cores)),
    }


@contextmanager
def deployment_for(mode: str, workdir: Path) -> Iterator[tuple[LocalDeployment, PostgresServer]]:
    with ExitStack() as stack:
        # A cluster of its own: nobody else's connections, and room for every process's
        # pool (Synapse's workers hold up to 10 each; the machine's server allows 100).
        postgres = stack.enter_context(throwaway_postgres(**POSTGRES_SETTINGS))
        running = stack.enter_context(production_deployment(postgres, workdir, **MODES[mode]))
        yield running.deployment, postgres


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # so the deployments stop too


def run(timing: Timing, modes: list[str]) -> dict[str, Any]:
    # A background job ignores SIGINT; SIGTERM still unwinds through the deployments.
    signal.signal(signal.SIGTERM, _stop)
    # Every person holds a connection (and nginx two): more than the default 1024 files.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="parta-bench-load-") as tmp:
        for mode in modes:
            with deployment_for(mode, Path(tmp) / mode) as (deployment, postgres):
                runs[mode] = asyncio.run(ramp(deployment, postgres, timing, mode))
    result: dict[str, Any] = {
        "class_size": CLASS_SIZE,
        "post_interval_s": POST_INTERVAL_S,
        "speedup": timing.speedup,
        "messages_per_person_per_hour": round(3600 / POST_INTERVAL_S * timing.speedup, 1),
        "sync_timeout_s": SYNC_TIMEOUT_MS / 1000,
        "receivers_sampled_per_message": RECEIVERS_SAMPLED,
        "steady_s": timing.steady_s,
        "criteria": {"delivery_p99_s_below": MAX_P99_S, "error_rate_below": MAX_ERROR_RATE},
        "via": "nginx's loopback listener, plain HTTP (the public listener's routing)",
        "cores": os.cpu_count(),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
    }
    for mode, mode_runs in runs.items():
        result[f"{mode}_max_users"] = max_users(mode_runs)
        result[f"{mode}_projection"] = projection(mode_runs, os.cpu_count() or 1)
    if "monolith" in runs and "workers" in runs:
        monolith, workers = result["monolith_max_users"], result["workers_max_users"]
        result["scale_ratio"] = round(workers / monolith, 2) if monolith else None
        result["targets_met"] = {
            "workers_max_users>=1.5*monolith": bool(monolith)
            and workers >= TARGETS["scale_ratio"] * monolith,
            "workers_max_users>=2000": workers >= TARGETS["workers_max_users"],
        }
    result["runs"] = runs
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps",
        default="250,500,1000,1500,2000,2500,3000,4000",
        help="numbers of people, ascending (rounded up to whole classes)",
    )
    parser.add_argument("--steady", type=float, default=60.0, help="measured seconds per step")
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--drain", type=float, default=10.0)
    parser.add_argument("--speedup", type=float, default=1.0)
    parser.add_argument("--modes", default="monolith,workers")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="ramp on past a failed step (its CPU per person still counts; max_users do not)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="two classes, seconds a step: that it works"
    )
    args = parser.parse_args()
    if args.quick:
        timing = Timing([30, 60], warmup_s=2, steady_s=8, drain_s=4, speedup=20)
    else:
        steps = sorted({int(n) for n in args.steps.split(",")})
        timing = Timing(steps, args.warmup, args.steady, args.drain, args.speedup, args.keep_going)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; choose from {sorted(MODES)}")
    print(json.dumps(run(timing, modes), ensure_ascii=False))


if __name__ == "__main__":
    main()
