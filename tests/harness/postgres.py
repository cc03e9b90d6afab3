"""A PostgreSQL server for the tests: the machine's on 127.0.0.1:5432, or a throwaway one.

Never skipped silently: if neither works, the fixture fails and says what to install.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from tests.harness.ports import free_ports


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    origin: str  # "machine" or "throwaway"

    def connect(self, dbname: str = "postgres") -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, dbname=dbname, connect_timeout=3
        )

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{dbname}"


def _answers(host: str, port: int, user: str) -> bool:
    try:
        psycopg2.connect(
            host=host, port=port, user=user, dbname="postgres", connect_timeout=2
        ).close()
    except psycopg2.OperationalError:
        return False
    return True


def _as_postgres_user(argv: list[str]) -> list[str]:
    # initdb refuses to run as root; Debian's packages create the `postgres` user.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def throwaway_postgres(**server_settings: str) -> Iterator[PostgresServer]:
    """Start a private cluster from Debian's binaries on a free port; remove it afterwards.

    `server_settings` are postgresql.conf settings (`max_connections="300"`).
    """
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise RuntimeError(
            "No PostgreSQL answers on 127.0.0.1:5432 and no server binaries are installed; "
            "install Debian's `postgresql` package (./deploy.sh test does it)"
        )
    bindir = Path(candidates[-1]).parent
    # Not under pytest's tmp root: that is private to root, and the server runs as postgres.
    base_dir = Path(tempfile.mkdtemp(prefix="parta-pg-"))
    data = base_dir / "pgdata"
    if os.geteuid() == 0:
        shutil.chown(base_dir, "postgres")
    port = free_ports(1)[0]
    subprocess.run(
        _as_postgres_user(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        ),
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        _as_postgres_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(base_dir / "postgres.log"),
                "-o",
                " ".join(
                    [f"-p {port} -k {base_dir} -c listen_addresses=127.0.0.1"]
                    + [f"-c {name}={value}" for name, value in server_settings.items()]
                ),
                "-w",
                "-t",
                "30",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        yield PostgresServer("127.0.0.1", port, "postgres", "throwaway")
    finally:
        subprocess.run(
            _as_postgres_user(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
            ),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base_dir, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    if _answers("127.0.0.1", 5432, "postgres"):
        yield PostgresServer("127.0.0.1", 5432, "postgres", "machine")
        return
    with throwaway_postgres() as server:
        yield server


@contextmanager
def scratch_database(server: PostgresServer, prefix: str) -> Iterator[str]:
    """A new database with C collation (Synapse requires it), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = server.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "CREATE DATABASE {} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
                    "TEMPLATE template0"
                ).format(sql.Identifier(name))
            )
        yield name
    finally:
        deadline = time.monotonic() + 30
        with conn.cursor() as cur:
            while time.monotonic() < deadline:
                try:
                    cur.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(name)
                        )
                    )
                    break
                except psycopg2.errors.ObjectInUse:
                    time.sleep(0.5)
        conn.close()
