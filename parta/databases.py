"""The region's two databases, as a backup dumps them and a restore loads them.

Each is SQLite or PostgreSQL (Synapse's: `synapse_database`; provisioning's: `database_url`).
SQLite is copied with its online backup API and PostgreSQL dumped with `pg_dump --format=custom`,
both consistent while the services write; the password reaches pg_dump and pg_restore through
the environment, never the command line (which every account on the host can read).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url

from foundation.settings import Settings

DatabaseKind = Literal["sqlite", "postgresql"]
Database = Literal["synapse", "provisioning"]
DATABASES: tuple[Database, ...] = ("synapse", "provisioning")


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Postgres:
    """One PostgreSQL database of the region, as the settings name it."""

    which: Database
    host: str
    port: int
    user: str
    password: str
    dbname: str

    @property
    def title(self) -> str:
        return "Synapse's database" if self.which == "synapse" else "provisioning's database"

    def libpq_args(self, dbname: str | None = None) -> list[str]:
        return [
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--username",
            self.user,
            "--no-password",
            "--dbname",
            dbname or self.dbname,
        ]

    def env(self) -> dict[str, str]:
        # The password goes through the environment: a command line is visible to everyone.
        return {**os.environ, "PGPASSWORD": self.password} if self.password else dict(os.environ)

    def connect(self, dbname: str | None = None) -> Any:
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=dbname or self.dbname,
            connect_timeout=10,
        )


def database_kind(settings: Settings, which: Database) -> DatabaseKind:
    if which == "synapse":
        return settings.synapse_database
    return (
        "postgresql"
        if make_url(settings.sqlalchemy_url).get_backend_name() == "postgresql"
        else "sqlite"
    )


def sqlite_path(settings: Settings, which: Database) -> Path:
    if which == "synapse":
        return settings.synapse_dir / "homeserver.db"
    database = make_url(settings.sqlalchemy_url).database
    if not database:
        raise BackupError(f"PARTA_DATABASE_URL {settings.sqlalchemy_url!r} names no file.")
    return Path(database)


def postgres(settings: Settings, which: Database) -> Postgres:
    if which == "synapse":
        return Postgres(
            "synapse",
            settings.synapse_postgres_host,
            settings.synapse_postgres_port,
            settings.synapse_postgres_user,
            settings.synapse_postgres_password.get_secret_value(),
            settings.synapse_postgres_db,
        )
    url = make_url(settings.sqlalchemy_url)
    return Postgres(
        "provisioning",
        url.host or "127.0.0.1",
        url.port or 5432,
        url.username or "postgres",
        url.password or "",
        url.database or "",
    )


def sqlite_copy(source: Path, target: Path, title: str) -> None:
    """SQLite's online backup: a consistent copy while the services write to it."""
    if not source.is_file():
        raise BackupError(f"{title} is not at {source}; has this deployment ever run?")
    src = sqlite3.connect(source, timeout=60)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one snapshot
        finally:
            dst.close()
    finally:
        src.close()


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/lib/postgresql/bin")
    if found is None:
        raise BackupError(
            f"{name} is not installed, and the region's database is on PostgreSQL. "
            "On Debian: apt-get install postgresql-client (its version at least the server's)."
        )
    return found


def _run_tool(db: Postgres, name: str, *options: str, last: str = "") -> str | None:
    """Run pg_dump or pg_restore against the database; its error output, or None."""
    done = subprocess.run(
        [tool(name), *options, *db.libpq_args(), *([last] if last else [])],
        env=db.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stderr.strip() if done.returncode != 0 else None


def pg_dump(db: Postgres, target: Path) -> None:
    failed = _run_tool(db, "pg_dump", "--format=custom", "--file", str(target))
    if failed is not None:
        raise BackupError(
            f"pg_dump could not dump {db.title} {db.dbname!r} on {db.host}:{db.port}: "
            f"{failed}. Check that PostgreSQL answers with the settings in "
            "parta.env, and that pg_dump is not older than the server."
        )


def table_count(db: Postgres) -> int | None:
    """How many tables the database has; None if it does not exist."""
    try:
        conn = db.connect()
    except psycopg2.OperationalError as exc:
        if "does not exist" in str(exc):
            return None
        raise BackupError(
            f"PostgreSQL on {db.host}:{db.port} does not let {db.user!r} into {db.title} "
            f"{db.dbname!r}: {str(exc).strip()}. Check the settings in parta.env (or set "
            "the right ones as PARTA_* variables for the restore)."
        ) from None
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg\\_toast%'"
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def create_database(db: Postgres) -> None:
    # Synapse refuses a database whose collation is not C.
    options = "ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    statement = sql.SQL("CREATE DATABASE {} " + options).format(sql.Identifier(db.dbname))
    try:
        conn = db.connect("postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()
    except psycopg2.Error as exc:
        raise BackupError(
            f"{db.title} {db.dbname!r} does not exist, and {db.user!r} cannot create it "
            f"({str(exc).strip()}). Create it as PostgreSQL's administrator, then run the "
            f'restore again:\n  sudo -u postgres psql -c "CREATE DATABASE {db.dbname} '
            f'{options} OWNER {db.user};"'
        ) from None


def empty_database(db: Postgres) -> None:
    """--force: drop what an earlier deployment left in the database's own schemas."""
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname NOT IN "
                "('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%'"
            )
            for (schema,) in cur.fetchall():
                cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            cur.execute("CREATE SCHEMA public")
        conn.commit()
    except psycopg2.Error as exc:
        raise BackupError(
            f"{db.title} {db.dbname!r} could not be emptied ({str(exc).strip()}). Drop and "
            "create it again as PostgreSQL's administrator, then run the restore again."
        ) from None
    finally:
        conn.close()


def pg_restore(db: Postgres, dump: Path) -> None:
    failed = _run_tool(
        db, "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
        "--single-transaction", last=str(dump),
    )  # fmt: skip
    if failed is not None:
        raise BackupError(
            f"pg_restore could not load {db.title} {db.dbname!r}: {failed}. "
            "Nothing of it was loaded (one transaction); fix the cause and run the restore "
            "again with --force."
        )
