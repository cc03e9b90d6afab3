"""Which Synapse processes a region runs, and which requests nginx sends to each.

Synapse scales on its own distributed engine (docs/workers.md upstream): a main process
and `synapse.app.generic_worker` processes sharing one PostgreSQL database and talking
over Redis. This module decides the workers from `Settings` (counts sized to the host's
cores unless set) and which of them serve each upstream of Synapse's routing table
(`matrix/worker_routes.py`); the shared homeserver.yaml, each worker's own file and nginx's
configuration are all rendered from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from foundation.settings import Settings
from matrix.worker_routes import Upstream

Role = Literal[
    "event_persister",
    "streams",
    "synchrotron",
    "client_reader",
    "federation_reader",
    "federation_sender",
    "media",
    "appservice",
    "pusher",
    "background",
]

# The streams one worker writes besides the events (each has a single writer) and whose
# endpoints nginx routes to it.
SINGLE_WRITER_STREAMS = (
    "typing",
    "to_device",
    "account_data",
    "receipts",
    "presence",
    "push_rules",
)

# Listener resources per role; "health" alone where the worker takes no requests, so the
# supervisor and `doctor` can still ask it whether it is up.
_RESOURCES: dict[Role, tuple[str, ...]] = {
    "event_persister": ("replication",),
    "streams": ("client", "replication"),
    "synchrotron": ("client",),
    "client_reader": ("client",),
    "federation_reader": ("federation",),
    "federation_sender": ("health",),
    "media": ("media",),
    "appservice": ("health",),
    "pusher": ("health",),
    "background": ("client",),  # it keeps the user directory, so it answers searches
}


# Each process's pool of PostgreSQL connections: every connection costs the server memory
# and PostgreSQL counts them against max_connections, so the busy roles get more.
_POOLS: dict[Role, int] = {
    "event_persister": 5,
    "streams": 3,
    "synchrotron": 5,
    "client_reader": 5,
    "federation_reader": 3,
    "federation_sender": 2,
    "media": 3,
    "appservice": 2,
    "pusher": 2,
    "background": 5,
}
MAIN_POOL = 10


@dataclass(frozen=True)
class Worker:
    """One Synapse worker process."""

    name: str  # worker_name, also in its service and log file names
    role: Role
    port: int  # its HTTP listener on loopback

    @property
    def resources(self) -> tuple[str, ...]:
        return _RESOURCES[self.role]

    @property
    def pool(self) -> int:
        return _POOLS[self.role]

    @property
    def in_instance_map(self) -> bool:
        """Stream writers are reached over HTTP replication, so Synapse must know where."""
        return "replication" in self.resources


@dataclass(frozen=True)
class Topology:
    """The main process and the workers, with the shared settings that name them."""

    main_replication_port: int
    main_port: int
    workers: tuple[Worker, ...]

    main_pool: int = MAIN_POOL

    @property
    def database_connections(self) -> int:
        """The most connections Synapse's processes together open to PostgreSQL."""
        return self.main_pool + sum(w.pool for w in self.workers)

    def of(self, role: Role) -> list[Worker]:
        return [w for w in self.workers if w.role == role]

    def names(self, role: Role) -> list[str]:
        return [w.name for w in self.of(role)]

    def one(self, role: Role) -> Worker:
        (worker,) = self.of(role)
        return worker


def host_cores() -> int:
    return len(os.sched_getaffinity(0))


def worker_counts(settings: Settings, cores: int | None = None) -> dict[Role, int]:
    """How many of each worker: the operator's numbers, else sized to the cores.

    Reads far outnumber writes in a school (thousands hold a /sync open, a few hundred
    post in an hour), so synchrotrons grow fastest; events are sharded over at least two
    persisters so one slow room never holds up the rest.
    """
    n = cores if cores is not None else host_cores()
    return {
        "event_persister": settings.synapse_event_persisters or max(2, n // 4),
        "streams": 1,
        "synchrotron": settings.synapse_synchrotrons or max(1, n // 2),
        "client_reader": settings.synapse_client_readers or max(1, n // 4),
        "federation_reader": settings.synapse_federation_readers or max(1, n // 8),
        "federation_sender": settings.synapse_federation_senders or max(1, n // 16),
        "media": 1,
        "appservice": 1,
        "pusher": 1,
        "background": 1,
    }


def topology(settings: Settings, cores: int | None = None) -> Topology:
    """The region's Synapse processes; no workers when `uses_synapse_workers` is off."""
    base = settings.synapse_worker_base_port
    if not settings.uses_synapse_workers:
        # Behind nginx (production) nginx holds `synapse_port`, so Synapse moves aside.
        main_port = base + 1 if settings.runs_nginx else settings.synapse_port
        return Topology(main_replication_port=0, main_port=main_port, workers=())
    workers: list[Worker] = []
    port = base + 2  # base: the main process's replication listener; base + 1: its client one
    for role, count in worker_counts(settings, cores).items():
        for index in range(1, count + 1):
            workers.append(Worker(f"{role}{index}", role, port))
            port += 1
    return Topology(main_replication_port=base, main_port=base + 1, workers=tuple(workers))


# Which workers serve each upstream, and how nginx balances between them.
UPSTREAM_ROLES: dict[Upstream, tuple[Role | Literal["main"], str]] = {
    "synchrotron": ("synchrotron", "hash $parta_sync_key consistent"),
    "client_reader": ("client_reader", "least_conn"),
    "client_by_room": ("client_reader", "hash $parta_room_key consistent"),
    "federation_reader": ("federation_reader", "least_conn"),
    "federation_send": ("federation_reader", "hash $remote_addr consistent"),
    "media": ("media", "least_conn"),
    "streams": ("streams", "least_conn"),
    "background": ("background", "least_conn"),
    "main": ("main", "least_conn"),
}


@dataclass(frozen=True)
class NginxUpstream:
    name: Upstream
    balance: str
    ports: tuple[int, ...]


def upstreams(top: Topology) -> list[NginxUpstream]:
    """nginx's upstreams; without workers (PARTA_SYNAPSE_WORKERS=false) the main process
    serves each of them, since nginx refuses an upstream with no server."""
    result = []
    for name, (role, balance) in UPSTREAM_ROLES.items():
        ports = (top.main_port,) if role == "main" else tuple(w.port for w in top.of(role))
        if not ports:
            ports, balance = (top.main_port,), "least_conn"
        result.append(NginxUpstream(name, balance, ports))
    return result


@dataclass(frozen=True)
class WidgetProcess:
    """One process of the widget service (the SFU and the documents service)."""

    index: int  # 1, 2, ...: in its service name, its log's name and its /healthz
    port: int

    @property
    def name(self) -> str:
        """`widgets` for the first (the name one process has always had), then `widgets-2`."""
        return "widgets" if self.index == 1 else f"widgets-{self.index}"


def widget_processes(settings: Settings, cores: int | None = None) -> list[WidgetProcess]:
    """The widget service's processes: the operator's count, else one per core in production.

    A call runs in one process (nginx hashes its room ID), so more processes spread more
    calls, never one call; development keeps one, which the page reaches without nginx.
    """
    count = settings.widget_processes
    if count is None:
        production = settings.environment == "production"
        count = (cores if cores is not None else host_cores()) if production else 1
    return [WidgetProcess(i, settings.widgets_port + i - 1) for i in range(1, count + 1)]
