"""`./deploy.sh production`: what a Debian host needs before the region's processes start.

deploy.sh installs Debian's packages (PostgreSQL, Redis, nginx, coturn); this module then
writes the mode's own settings once (`var/production.env`: the mode and the two PostgreSQL
databases with generated passwords; the operator's `var/parta.env` still wins), creates
the roles and databases (Synapse's with the C collation it requires), and checks Redis.
Each step is idempotent: a second run with nothing changed changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2
from psycopg2 import sql

from foundation.files import write_atomically
from foundation.settings import PRODUCTION_FILE_NAME, Settings
from parta.databases import Postgres, database_kind, postgres
from parta.supervisor import DeployError
from parta.topology import topology

# Where Debian's PostgreSQL listens on its Unix socket (peer authentication for `postgres`).
POSTGRES_SOCKET_DIR = "/var/run/postgresql"


def ensure_production_settings(var_dir: Path) -> bool:
    """Write `var/production.env` once; True when it was written now.

    It holds what production mode chose (the mode, PostgreSQL for Synapse and for
    provisioning, their generated passwords), so later runs, `stop` and `status` read the
    same. It is never rewritten: the passwords stay those the databases have.
    """
    path = var_dir / PRODUCTION_FILE_NAME
    if path.exists():
        return False
    synapse_password = secrets.token_urlsafe(24)
    parta_password = secrets.token_urlsafe(24)
    lines = [
        "# Written once by ./deploy.sh production; var/parta.env overrides any line.",
        "PARTA_ENVIRONMENT=production",
        "PARTA_SYNAPSE_DATABASE=postgresql",
        "PARTA_SYNAPSE_POSTGRES_HOST=127.0.0.1",
        "PARTA_SYNAPSE_POSTGRES_USER=synapse",
        "PARTA_SYNAPSE_POSTGRES_DB=synapse",
        f"PARTA_SYNAPSE_POSTGRES_PASSWORD={synapse_password}",
        "PARTA_DATABASE_URL=postgresql+psycopg2://parta:"
        f"{quote(parta_password, safe='')}@127.0.0.1:5432/parta",
    ]
    var_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(path, "\n".join(lines) + "\n")  # mode 0600, as mkstemp makes it
    return True


def _is_local(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1", "") or host.startswith("/")


def region_databases(settings: Settings) -> list[Postgres]:
    """The PostgreSQL databases production mode owns: Synapse's, and provisioning's."""
    found = [postgres(settings, "synapse")]
    if database_kind(settings, "provisioning") == "postgresql":
        found.append(postgres(settings, "provisioning"))
    return found


@contextlib.contextmanager
def _as_account(name: str) -> Iterator[None]:
    """Act as another account for a moment (root only): peer authentication on the socket."""
    account = pwd.getpwnam(name)
    os.setegid(account.pw_gid)
    os.seteuid(account.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def admin_connection(database: Postgres) -> psycopg2.extensions.connection:
    """A superuser connection to the database's server.

    First as `postgres` over TCP (a server that trusts loopback, as test machines do), then,
    as root, over Debian's Unix socket as the `postgres` account (peer authentication).
    """
    try:
        return psycopg2.connect(
            host=database.host, port=database.port, user="postgres", dbname="postgres",
            connect_timeout=5,
        )  # fmt: skip
    except psycopg2.OperationalError as first:
        problem = str(first).strip()
    if os.geteuid() == 0 and _is_local(database.host) and Path(POSTGRES_SOCKET_DIR).is_dir():
        try:
            with _as_account("postgres"):
                return psycopg2.connect(
                    host=POSTGRES_SOCKET_DIR, port=database.port, user="postgres",
                    dbname="postgres", connect_timeout=5,
                )  # fmt: skip
        except (psycopg2.OperationalError, KeyError) as second:
            problem = str(second).strip()
    raise DeployError(
        f"Cannot reach PostgreSQL on {database.host}:{database.port} as its administrator "
        f"({problem}). Is it running (systemctl status postgresql)? Or create the database "
        f"yourself: role {database.user} with its password from var/production.env, and "
        f"database {database.dbname}"
        + (" with LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0." if _synapses(database) else ".")
    )


def ensure_database(database: Postgres) -> list[str]:
    """Create the role and the database if missing, and set the role's password.

    Returns what was created. An existing Synapse database with another collation is
    refused: Synapse would refuse it at every start.
    """
    created: list[str] = []
    connection = admin_connection(database)
    connection.autocommit = True
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (database.user,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            if verb == "CREATE":
                created.append(f"role {database.user}")
            cur.execute(
                sql.SQL(verb + " ROLE {} WITH LOGIN PASSWORD %s").format(
                    sql.Identifier(database.user)
                ),
                (database.password,),
            )
            cur.execute(
                "SELECT datcollate, datctype FROM pg_database WHERE datname = %s",
                (database.dbname,),
            )
            row = cur.fetchone()
            if row is None:
                collation = "LC_COLLATE 'C' LC_CTYPE 'C' " if _synapses(database) else ""
                cur.execute(
                    sql.SQL(
                        "CREATE DATABASE {} OWNER {} ENCODING 'UTF8' "
                        + collation
                        + "TEMPLATE template0"
                    ).format(sql.Identifier(database.dbname), sql.Identifier(database.user))
                )
                created.append(f"database {database.dbname}")
            elif _synapses(database) and tuple(row) != ("C", "C"):
                raise DeployError(
                    f"The database {database.dbname} exists with collation {row[0]!r}, and "
                    "Synapse needs 'C'. Rename or drop it (it is empty on a new region), "
                    "or set PARTA_SYNAPSE_POSTGRES_DB to a new name, and run this again."
                )
    finally:
        connection.close()
    return created


def check_redis(settings: Settings, timeout: float = 5.0) -> None:
    """Synapse's workers talk over Redis: make sure it answers before they start."""
    password = settings.redis_password.get_secret_value()
    where = f"{settings.redis_host}:{settings.redis_port}"
    try:
        with socket.create_connection(
            (settings.redis_host, settings.redis_port), timeout=timeout
        ) as conn:
            if password:
                conn.sendall(_resp("AUTH", password))
                if not conn.recv(64).startswith(b"+OK"):
                    raise DeployError(f"Redis on {where} refused PARTA_REDIS_PASSWORD.")
            conn.sendall(_resp("PING"))
            answer = conn.recv(64)
    except OSError as exc:
        raise DeployError(
            f"Redis does not answer on {where} ({exc}); Synapse's workers need it. "
            "Start it (systemctl enable --now redis-server) or set PARTA_REDIS_HOST/PORT."
        ) from None
    if not answer.startswith(b"+PONG"):
        raise DeployError(
            f"Redis on {where} answered {answer[:40]!r} to PING: it asks for a password "
            "(set PARTA_REDIS_PASSWORD) or is not Redis."
        )


def _synapses(database: Postgres) -> bool:
    """Synapse's database: it needs the C collation."""
    return database.which == "synapse"


def _resp(*words: str) -> bytes:
    """A command in Redis's wire protocol (RESP), so a password with spaces stays whole."""
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


# Parta's three services each keep a SQLAlchemy pool (5, and 10 more under load).
PARTA_CONNECTIONS = 3 * 15
POSTGRES_RESERVED = 10  # superuser slots, psql sessions of the operator, backups


def check_connections(database: Postgres, needed: int) -> str | None:
    """A warning when PostgreSQL's max_connections is below what the region may open."""
    connection = admin_connection(database)
    try:
        with connection.cursor() as cur:
            cur.execute("SHOW max_connections")
            row = cur.fetchone()
    finally:
        connection.close()
    have = int(row[0]) if row else 0
    if have >= needed + POSTGRES_RESERVED:
        return None
    want = needed + POSTGRES_RESERVED
    return (
        f"PostgreSQL allows {have} connections and the region's processes may open {needed} "
        f"under load. Raise it: ALTER SYSTEM SET max_connections = {want}; then "
        "systemctl restart postgresql (each connection costs the server some memory)."
    )


@dataclass
class HostReport:
    created: list[str]
    warnings: list[str]


def prepare_host(settings: Settings) -> HostReport:
    """Databases and Redis for a production region: what was created, what to look at."""
    if settings.environment != "production":
        raise DeployError(
            "These settings are not production mode's: var/parta.env or the environment "
            "sets PARTA_ENVIRONMENT to something else than production."
        )
    report = HostReport([], [])
    found = region_databases(settings)
    for database in found:
        report.created += ensure_database(database)
    needed = topology(settings).database_connections + PARTA_CONNECTIONS
    warning = check_connections(found[0], needed)
    if warning:
        report.warnings.append(warning)
    if settings.uses_synapse_workers:
        check_redis(settings)
    return report
