"""Move a local deployment from SQLite to PostgreSQL: Synapse's database and provisioning's.

Synapse's data goes through Synapse's own `synapse_port_db` (the only tool that knows its
schema, its sequences and its search tables); provisioning's tables are copied here, since
they are ours: the schema made by Alembic on PostgreSQL, then every row in foreign-key
order in one transaction.

The order protects the way back: the SQLite deployment is stopped, both copies are made
and their row counts compared, and only then are the settings switched in
`var/parta.env` and the SQLite files renamed `*.moved`. Any failure before that leaves the
settings and the SQLite files as they were, and the deployment is started again on them.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import yaml
from pydantic import SecretStr
from sqlalchemy import (
    DateTime,
    Engine,
    Integer,
    Table,
    delete,
    func,
    insert,
    inspect,
    make_url,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

import provisioning.appservice.store
import provisioning.db.models
import provisioning.db.phone_codes
import provisioning.db.polls  # noqa: F401 - registers the tables copied below
from foundation.files import write_atomically
from foundation.settings import CONFIG_FILE_NAME, Settings
from parta.deployment import SYNAPSE_MODULES_DIR, LocalDeployment, UpReport
from parta.render import render_synapse_config
from parta.supervisor import DeployError, tail
from provisioning.db.base import Base
from provisioning.db.engine import make_engine
from provisioning.db.migrate import upgrade_to_head

# Kept beside the live file, so it is obvious they are no longer in use.
MOVED_SUFFIX = ".moved"
SETTINGS_BACKUP_NAME = f"{CONFIG_FILE_NAME}.before-postgresql"
PORT_LOG_NAME = "synapse_port_db.log"
# SQLite's companions of a database file (write-ahead log, shared memory, rollback journal).
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
# Synapse's tables that hold what people see: accounts, rooms, their events and state,
# media. `synapse_port_db` copies them row for row, so their counts must be equal (it
# rebuilds others, such as the user directory and the search index, on PostgreSQL).
SYNAPSE_CHECKED_TABLES = (
    "users",
    "profiles",
    "devices",
    "rooms",
    "events",
    "event_json",
    "room_memberships",
    "current_state_events",
    "state_groups",
    "state_groups_state",
    "room_aliases",
    "local_media_repository",
)
# Synapse's streams (`MultiWriterIdGenerator`s) and their PostgreSQL sequences. Synapse
# 1.163's `synapse_port_db` sets each sequence from the largest id in its tables only, but
# SQLite's `stream_positions` can stand further: a stream id allocated without a row, such
# as the pushers stream when a password reset deletes a person's (absent) pushers. Synapse
# then refuses to start ("sequence 'pushers_sequence' is inconsistent with associated
# stream position"), so each sequence is moved up to its stream's recorded position.
STREAM_SEQUENCES = {
    "account_data": "account_data_sequence",
    "device_lists_stream": "device_lists_sequence",
    "e2e_cross_signing_keys": "e2e_cross_signing_keys_sequence",
    "events": "events_stream_seq",
    "presence_stream": "presence_stream_sequence",
    "profile_updates": "profile_updates_sequence",
    "push_rules_stream": "push_rules_stream_sequence",
    "pushers": "pushers_sequence",
    "quarantined_media_changes": "quarantined_media_id_seq",
    "receipts": "receipts_sequence",
    "sticky_events": "sticky_events_sequence",
    "thread_subscriptions": "thread_subscriptions_sequence",
    "to_device": "device_inbox_sequence",
    "un_partial_stated_event_stream": "un_partial_stated_event_stream_sequence",
    "un_partial_stated_room_stream": "un_partial_stated_room_stream_sequence",
}
PORT_TIMEOUT_S = 6 * 3600.0
PORT_CONNECTIONS = 3
COPY_BATCH = 1000


class MoveRefused(Exception):
    """Nothing was changed: the target or the source is not ready; the message says why."""


class MoveFailed(Exception):
    """The move stopped halfway; SQLite is still the deployment's database. Says what to do."""


class _StepFailed(Exception):
    """A step of the move failed; turned into `MoveFailed` with the way back."""


@dataclass(frozen=True)
class Target:
    """Where the data goes: Synapse's PostgreSQL database and provisioning's URL."""

    synapse_host: str
    synapse_port: int
    synapse_user: str
    synapse_password: SecretStr
    synapse_db: str
    database_url: str

    def settings_lines(self) -> dict[str, str]:
        """The `var/parta.env` lines that make a deployment use this target."""
        lines = {
            "PARTA_SYNAPSE_DATABASE": "postgresql",
            "PARTA_SYNAPSE_POSTGRES_HOST": self.synapse_host,
            "PARTA_SYNAPSE_POSTGRES_PORT": str(self.synapse_port),
            "PARTA_SYNAPSE_POSTGRES_USER": self.synapse_user,
            "PARTA_SYNAPSE_POSTGRES_DB": self.synapse_db,
            "PARTA_DATABASE_URL": self.database_url,
        }
        if self.synapse_password.get_secret_value():
            lines["PARTA_SYNAPSE_POSTGRES_PASSWORD"] = self.synapse_password.get_secret_value()
        return lines

    def applied_to(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={
                "synapse_database": "postgresql",
                "synapse_postgres_host": self.synapse_host,
                "synapse_postgres_port": self.synapse_port,
                "synapse_postgres_user": self.synapse_user,
                "synapse_postgres_password": self.synapse_password,
                "synapse_postgres_db": self.synapse_db,
                "database_url": self.database_url,
            }
        )


@dataclass
class MoveReport:
    """What the move did, for the operator and for tests."""

    already_done: bool = False
    synapse_rows: dict[str, int] = field(default_factory=dict)
    provisioning_rows: dict[str, int] = field(default_factory=dict)
    settings_written: list[str] = field(default_factory=list)
    kept_files: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    sequences_raised: list[str] = field(default_factory=list)
    up: UpReport | None = None


def is_postgresql_url(url: str) -> bool:
    try:
        return make_url(url).get_backend_name() == "postgresql"
    except ArgumentError:  # not a URL at all
        return False


def synapse_sqlite_path(settings: Settings) -> Path:
    return settings.synapse_dir / "homeserver.db"


def provisioning_sqlite_path(settings: Settings) -> Path:
    return settings.var_dir / "parta.db"


def target_from(
    settings: Settings,
    *,
    synapse_host: str | None = None,
    synapse_port: int | None = None,
    synapse_user: str | None = None,
    synapse_db: str | None = None,
    database_url: str | None = None,
) -> Target:
    """The target from the options given, the rest from the settings (`PARTA_SYNAPSE_POSTGRES_*`
    are unused while Synapse is on SQLite, so an operator may write them in advance).

    Raises:
        MoveRefused: no PostgreSQL URL for provisioning's database.
    """
    url = database_url or (
        settings.database_url if is_postgresql_url(settings.database_url) else ""
    )
    if not url:
        raise MoveRefused(
            "Say where provisioning's tables go: --database-url "
            "postgresql+psycopg2://USER@HOST:5432/DATABASE (or PARTA_DATABASE_URL in "
            f"{settings.var_dir / CONFIG_FILE_NAME})."
        )
    if not is_postgresql_url(url):
        raise MoveRefused(f"--database-url must be a PostgreSQL URL, not {_without_password(url)}.")
    return Target(
        synapse_host=synapse_host or settings.synapse_postgres_host,
        synapse_port=synapse_port or settings.synapse_postgres_port,
        synapse_user=synapse_user or settings.synapse_postgres_user,
        synapse_password=settings.synapse_postgres_password,
        synapse_db=synapse_db or settings.synapse_postgres_db,
        database_url=url,
    )


def already_moved(settings: Settings) -> bool:
    """The settings name PostgreSQL for both and no SQLite database is left in its place."""
    return (
        settings.synapse_database == "postgresql"
        and is_postgresql_url(settings.database_url)
        and not synapse_sqlite_path(settings).exists()
        and not provisioning_sqlite_path(settings).exists()
    )


def move_to_postgresql(
    settings: Settings,
    target: Target,
    *,
    background_updates_wait_s: float = 600.0,
    say: Callable[[str], None] = lambda _line: None,
) -> MoveReport:
    """Move the deployment in `settings.var_dir` onto `target`, and start it there.

    Returns:
        What was copied and written; `already_done` when a previous run finished the move.

    Raises:
        MoveRefused: nothing changed (target not empty, wrong collation, unreachable, ...).
        MoveFailed: a step failed after the deployment was stopped; SQLite is still in use
            and the deployment was started again on it.
        DeployError: everything was moved and switched, but the deployment did not start.
    """
    report = MoveReport()
    if already_moved(settings):
        report.already_done = True
        return report
    sources = [synapse_sqlite_path(settings), provisioning_sqlite_path(settings)]
    _check_sources(settings, sources)
    _check_target(target)
    deployment = LocalDeployment(settings)
    was_running = any(deployment.status().values())
    if deployment.supervisor.running("synapse") is not None:
        say("Waiting for Synapse's background updates to finish ...")
        _wait_for_background_updates(sources[0], background_updates_wait_s)
    else:
        _check_no_background_updates(sources[0])
    say("Stopping the deployment ...")
    deployment.stop()
    try:
        _check_no_background_updates(sources[0], refuse=_StepFailed)
        for path in sources:
            _checkpoint(path)
        began = time.monotonic()
        say("Copying Synapse's database with synapse_port_db ...")
        _port_synapse(settings, target, sources[0])
        report.seconds["synapse"] = time.monotonic() - began
        report.sequences_raised = _align_stream_sequences(target)
        report.synapse_rows = _compare_synapse_counts(sources[0], target)
        began = time.monotonic()
        say("Copying provisioning's tables ...")
        report.provisioning_rows = _copy_provisioning(sources[1], target.database_url)
        report.seconds["provisioning"] = time.monotonic() - began
        report.settings_written = switch_settings(settings.var_dir, target)
    except (
        _StepFailed,
        SQLAlchemyError,
        psycopg2.Error,
        OSError,
        subprocess.SubprocessError,
    ) as exc:
        restarted = ""
        if was_running:
            try:
                LocalDeployment(settings).up()
                restarted = " The deployment runs again on SQLite."
            except DeployError as again:
                restarted = f" Starting it again on SQLite failed too: {again}"
        raise MoveFailed(
            f"The move stopped: {exc if isinstance(exc, _StepFailed) else _first_lines(str(exc))}"
            "\nNothing was switched: "
            f"{settings.var_dir / CONFIG_FILE_NAME} and the SQLite files are as they were."
            f"{restarted} The PostgreSQL databases may now hold a partial copy: drop and "
            "create them again (as before, with LC_COLLATE 'C' for Synapse's), then run "
            f"this again. Synapse's porter wrote its log to {settings.log_dir / PORT_LOG_NAME}."
        ) from exc
    report.kept_files = _set_aside(sources)
    say("Starting the deployment on PostgreSQL ...")
    try:
        report.up = LocalDeployment(Settings.load(settings.var_dir)).up()
    except DeployError as exc:
        raise DeployError(
            f"The data is on PostgreSQL and {settings.var_dir / CONFIG_FILE_NAME} names it, "
            f"but the deployment did not start: {exc}\nFix that and run ./deploy.sh. "
            f"The way back is in docs/operations.md (the SQLite files end in {MOVED_SUFFIX})."
        ) from exc
    return report


def _check_sources(settings: Settings, sources: list[Path]) -> None:
    missing = [p for p in sources if not p.is_file()]
    if missing:
        raise MoveRefused(
            "There is no SQLite database to move at "
            + ", ".join(str(p) for p in missing)
            + " (has this deployment run on SQLite? ./deploy.sh creates them)."
        )
    for path in sources:
        moved = path.with_name(path.name + MOVED_SUFFIX)
        if moved.exists():
            raise MoveRefused(
                f"{moved} is left from an earlier move; move it out of {path.parent} first "
                "(it is an older copy of the same data)."
            )


def _connect_synapse(target: Target) -> psycopg2.extensions.connection:
    return psycopg2.connect(
        host=target.synapse_host,
        port=target.synapse_port,
        user=target.synapse_user,
        password=target.synapse_password.get_secret_value() or None,
        dbname=target.synapse_db,
        connect_timeout=10,
    )


def _check_target(target: Target) -> None:
    """Both databases exist, are empty and writable; Synapse's has the C collation."""
    where = f"{target.synapse_db} on {target.synapse_host}:{target.synapse_port}"
    synapse_url = make_url(
        f"postgresql://{target.synapse_host}:{target.synapse_port}/{target.synapse_db}"
    )
    provisioning_url = make_url(target.database_url)
    if (
        provisioning_url.host or "localhost",
        provisioning_url.port or 5432,
        provisioning_url.database,
    ) == (
        synapse_url.host,
        synapse_url.port,
        synapse_url.database,
    ):
        raise MoveRefused(
            f"Synapse and provisioning need a database each; both are set to {where}."
        )
    try:
        conn = _connect_synapse(target)
    except psycopg2.OperationalError as exc:
        raise MoveRefused(
            f"Cannot connect to Synapse's database {where} as {target.synapse_user}: "
            f"{_first_lines(str(exc))}. Create it (docs/operations.md, 'PostgreSQL for "
            "Synapse') and set PARTA_SYNAPSE_POSTGRES_PASSWORD if it asks for one."
        ) from None
    with closing(conn), conn.cursor() as cur:
        cur.execute(
            "SELECT datcollate, datctype FROM pg_database WHERE datname = current_database()"
        )
        collate, ctype = cur.fetchone() or ("", "")
        if (collate, ctype) != ("C", "C"):
            raise MoveRefused(
                f"Synapse's database {where} has LC_COLLATE {collate!r} and LC_CTYPE "
                f"{ctype!r}; Synapse needs 'C' for both. Drop it and create it again: "
                f"CREATE DATABASE {target.synapse_db} ENCODING 'UTF8' LC_COLLATE 'C' "
                f"LC_CTYPE 'C' TEMPLATE template0 OWNER {target.synapse_user};"
            )
        _refuse_unless_empty(cur, f"Synapse's database {where}")
    engine = make_engine(target.database_url)
    try:
        with engine.connect() as connection, closing(connection.connection.cursor()) as cur:
            _refuse_unless_empty(
                cur, f"Provisioning's database {_without_password(target.database_url)}"
            )
    except DBAPIError as exc:
        raise MoveRefused(
            "Cannot connect to provisioning's database "
            f"{_without_password(target.database_url)}: {_first_lines(str(exc.orig))}. "
            "Create it (createdb -O USER DATABASE) and check the URL."
        ) from None
    finally:
        engine.dispose()


def _refuse_unless_empty(cur: Any, what: str) -> None:
    cur.execute(
        "SELECT schemaname || '.' || tablename FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
    )
    tables = [row[0] for row in cur.fetchall()]
    if tables:
        shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
        raise MoveRefused(
            f"{what} is not empty ({len(tables)} tables: {shown}). The move copies into an "
            "empty database only: drop and create it again, or name another one."
        )
    cur.execute("SELECT has_schema_privilege(current_user, 'public', 'CREATE')")
    row = cur.fetchone()
    if not row or not row[0]:
        raise MoveRefused(
            f"{what}: this user may not create tables in the schema public; make the user "
            "the database's owner (ALTER DATABASE ... OWNER TO ...)."
        )


def _pending_background_updates(path: Path) -> list[str]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as conn:
        return [row[0] for row in conn.execute("SELECT update_name FROM background_updates")]


def _wait_for_background_updates(path: Path, wait_s: float) -> None:
    """`synapse_port_db` refuses a database whose background updates are unfinished."""
    deadline = time.monotonic() + wait_s
    while pending := _pending_background_updates(path):
        if time.monotonic() > deadline:
            raise MoveRefused(
                f"Synapse still has {len(pending)} background updates to run after "
                f"{wait_s:.0f} s (such as {pending[0]}); nothing was changed. Leave it "
                "running and try again later."
            )
        time.sleep(1.0)


def _check_no_background_updates(path: Path, refuse: type[Exception] = MoveRefused) -> None:
    pending = _pending_background_updates(path)
    if pending:
        raise refuse(
            f"Synapse has {len(pending)} unfinished background updates (such as "
            f"{pending[0]}), which synapse_port_db refuses. Start the deployment "
            "(./deploy.sh), then run this again: it waits for them."
        )


def _checkpoint(path: Path) -> None:
    """Fold the write-ahead log into the file, so the file alone is the whole database."""
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@contextmanager
def _private_config(settings: Settings, content: str) -> Iterator[Path]:
    """The PostgreSQL config holds its password: mode 0600, removed afterwards."""
    fd, name = tempfile.mkstemp(dir=settings.run_dir, prefix=".port-db-", suffix=".yaml")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _port_synapse(settings: Settings, target: Target, source: Path) -> None:
    homeserver = next(
        f
        for f in render_synapse_config(target.applied_to(settings))
        if f.path.name == "homeserver.yaml"
    )
    log_path = settings.log_dir / PORT_LOG_NAME
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    config_dict = yaml.safe_load(homeserver.content)
    # A few connections do: a region's PostgreSQL serves its other clients meanwhile.
    config_dict["database"]["args"].update(cp_min=1, cp_max=PORT_CONNECTIONS)
    with (
        _private_config(settings, yaml.safe_dump(config_dict)) as config,
        log_path.open("w", encoding="utf-8") as log,
    ):
        finished = subprocess.run(
            [
                sys.executable,
                "-m",
                "synapse._scripts.synapse_port_db",
                "--sqlite-database",
                str(source),
                "--postgres-config",
                str(config),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Parsing the config loads the school policy module.
            env={**os.environ, "PYTHONPATH": _with_modules(os.environ.get("PYTHONPATH", ""))},
            cwd=settings.run_dir,
            timeout=PORT_TIMEOUT_S,
            check=False,
        )
    if finished.returncode != 0:
        raise _StepFailed(
            f"synapse_port_db exited with {finished.returncode}:\n{tail(log_path, 4).strip()}"
        )


def _with_modules(python_path: str) -> str:
    return os.pathsep.join([str(SYNAPSE_MODULES_DIR), *filter(None, python_path.split(os.pathsep))])


def _align_stream_sequences(target: Target) -> list[str]:
    """Move each stream's sequence up to its position in `stream_positions` (see
    STREAM_SEQUENCES); returns the sequences moved."""
    raised: list[str] = []
    with closing(_connect_synapse(target)) as conn, conn.cursor() as cur:
        for stream, sequence in STREAM_SEQUENCES.items():
            cur.execute(
                "SELECT max(stream_id) FROM stream_positions WHERE stream_name = %s", (stream,)
            )
            row = cur.fetchone()
            cur.execute("SELECT to_regclass(%s)", (sequence,))
            exists = cur.fetchone()
            if row is None or row[0] is None or exists is None or exists[0] is None:
                continue
            cur.execute(f"SELECT last_value, is_called FROM {sequence}")  # noqa: S608 - constant
            last_value, is_called = cur.fetchone() or (0, False)
            if (last_value if is_called else last_value - 1) < row[0]:
                cur.execute("SELECT setval(%s, %s)", (sequence, row[0]))
                raised.append(sequence)
        conn.commit()
    return raised


def _compare_synapse_counts(source: Path, target: Target) -> dict[str, int]:
    counts: dict[str, int] = {}
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as lite:
        present = {r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table in SYNAPSE_CHECKED_TABLES:
            if table in present:
                counts[table] = lite.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608 - our constant names
    with closing(_connect_synapse(target)) as conn, conn.cursor() as cur:
        for table, expected in counts.items():
            cur.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608 - our constant names
            row = cur.fetchone()
            if row is None or row[0] != expected:
                raise _StepFailed(
                    f"Synapse's table {table} has {expected} rows in SQLite but "
                    f"{row[0] if row else 'none'} on PostgreSQL after synapse_port_db."
                )
    return counts


def _copied_tables(source: Engine) -> list[Table]:
    """Every table of provisioning's schema, parents before children."""
    known = {t.name for t in Base.metadata.sorted_tables}
    present = set(inspect(source).get_table_names()) - {"alembic_version"}
    unknown = present - known
    if unknown:
        raise _StepFailed(
            f"{', '.join(sorted(unknown))} in the SQLite database belong to no model of this "
            "version of Parta; update the checkout or remove them."
        )
    return [t for t in Base.metadata.sorted_tables if t.name in present]


def _as_utc(row: dict[str, Any], aware: list[str]) -> dict[str, Any]:
    """SQLite hands back naive datetimes; PostgreSQL must not read them in its own zone."""
    for name in aware:
        value = row[name]
        if isinstance(value, datetime) and value.tzinfo is None:
            row[name] = value.replace(tzinfo=UTC)
    return row


def _copy_provisioning(source_path: Path, url: str) -> dict[str, int]:
    source = make_engine(f"sqlite:///{source_path}")
    target = make_engine(url)
    try:
        upgrade_to_head(source)  # what the services do at start; a no-op on a current one
        upgrade_to_head(target)
        tables = _copied_tables(source)
        with source.connect() as reading, target.begin() as writing:
            # The migrations seed a few rows (the reconciler's lease); the copy replaces them.
            for table in reversed(tables):
                writing.execute(delete(table))
            for table in tables:
                _copy_table(reading, writing, table)
            _reset_sequences(writing, tables)
        counts: dict[str, int] = {}
        with source.connect() as reading, target.connect() as written:
            for table in tables:
                before = reading.scalar(select(func.count()).select_from(table)) or 0
                after = written.scalar(select(func.count()).select_from(table)) or 0
                if before != after:
                    raise _StepFailed(
                        f"provisioning's table {table.name} has {before} rows in SQLite but "
                        f"{after} on PostgreSQL after the copy."
                    )
                counts[table.name] = after
        return counts
    finally:
        source.dispose()
        target.dispose()


def _copy_table(reading: Connection, writing: Connection, table: Table) -> None:
    aware = [c.name for c in table.columns if isinstance(c.type, DateTime) and c.type.timezone]
    rows = reading.execution_options(yield_per=COPY_BATCH).execute(
        select(table).order_by(*table.primary_key.columns)
    )
    for batch in rows.mappings().partitions(COPY_BATCH):
        writing.execute(insert(table), [_as_utc(dict(row), aware) for row in batch])


def _reset_sequences(writing: Connection, tables: list[Table]) -> None:
    """Rows came with their ids, so each id sequence is moved past the largest one."""
    for table in tables:
        for column in table.primary_key.columns:
            if not isinstance(column.type, Integer):
                continue
            sequence = writing.scalar(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": table.name, "column": column.name},
            )
            if sequence is None:
                continue
            highest = writing.scalar(select(func.max(column))) or 0
            writing.execute(
                text("SELECT setval(:sequence, :value, :called)"),
                {"sequence": sequence, "value": max(highest, 1), "called": highest > 0},
            )


def switch_settings(var_dir: Path, target: Target) -> list[str]:
    """Write the target's lines into `var/parta.env`, keeping every other line and comment.

    A line already saying the same is left alone; the file as it was is kept as
    `parta.env.before-postgresql` (the way back). Returns the names written.
    """
    path = var_dir / CONFIG_FILE_NAME
    original = path.read_text(encoding="utf-8") if path.exists() else ""
    wanted = target.settings_lines()
    lines = original.splitlines()
    written: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(lines):
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or name not in wanted or name.startswith("#"):
            continue
        seen.add(name)
        if _unquoted(value) != wanted[name]:
            lines[number] = f"{name}={_quoted(wanted[name])}"
            written.append(name)
    missing = [name for name in wanted if name not in seen]
    if missing:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines += [f"# Moved to PostgreSQL by `parta move-to-postgresql` on {stamp}."]
        lines += [f"{name}={_quoted(wanted[name])}" for name in missing]
        written += missing
    if not written:
        return written
    write_atomically(var_dir / SETTINGS_BACKUP_NAME, original)
    write_atomically(path, "\n".join(lines) + "\n")
    switched = Settings.load(var_dir)
    if target.applied_to(switched) != switched:
        write_atomically(path, original)
        raise _StepFailed(
            f"{path} did not read back as the new settings (a value the environment "
            "overrides, such as PARTA_SYNAPSE_DATABASE or PARTA_DATABASE_URL?); it is restored."
        )
    return written


def _quoted(value: str) -> str:
    """python-dotenv reads a single-quoted value literally: no escapes, no comments."""
    if value and not any(c in value for c in " #'\"\\$"):
        return value
    if "'" in value:  # cannot be written literally; the read-back check refuses it
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"'{value}'"


def _unquoted(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _set_aside(sources: list[Path]) -> list[Path]:
    """Rename each SQLite database (and any companion file) with `.moved`: the way back."""
    kept: list[Path] = []
    for source in sources:
        for path in [source, *(source.with_name(source.name + s) for s in SQLITE_COMPANIONS)]:
            if path.exists():
                moved = path.with_name(path.name + MOVED_SUFFIX)
                path.rename(moved)
                kept.append(moved)
    return kept


def _without_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable URL)"


def _first_lines(message: str) -> str:
    return " ".join(message.strip().splitlines()[:3])
