"""Bringing a backup (`parta/backup.py`) back, on a fresh host or over a deployment.

The archive is checked whole before anything changes: unpacked into a staging directory
inside the target var/, every member's size and SHA-256 compared with the manifest, and only
the paths a backup holds accepted (a crafted archive cannot write var/run/ or the rendered
configuration). Then the files are moved into place, each database recreated, and the
region started. The archive's parta.env is the restored deployment's settings; PARTA_*
variables in the restore's environment win and are written into it (a new host's database
host or ports), so every later `./deploy.sh` runs with them too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tarfile
import zlib
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any

from foundation.settings import CONFIG_FILE_NAME, SECRET_FIELDS, SECRETS_FILE_NAME, Settings
from parta.backup import FORMAT, MANIFEST, Entry, files_under
from parta.databases import (
    BackupError,
    create_database,
    database_kind,
    empty_database,
    pg_restore,
    postgres,
    sqlite_path,
    table_count,
)
from parta.deployment import LocalDeployment
from parta.supervisor import Supervisor

CHUNK = 1024 * 1024
# What a restore may write under var/: nothing else, whatever an archive holds.
_RESTORED = re.compile(
    r"^var/(parta\.env|secrets\.env|synapse/[^/]+\.signing\.key"
    r"|synapse/homeserver\.d/.+|synapse/media_store/.+|calls/.+|documents/.+)$"
)
_DATABASE_MEMBER = re.compile(r"^databases/(synapse|provisioning)\.(sqlite|pgdump)$")


@dataclass
class RestoreReport:
    server_name: str
    created_at: str
    files: int
    bytes: int
    stopped: list[str] = field(default_factory=list)
    kept_from_environment: list[str] = field(default_factory=list)
    created_databases: list[str] = field(default_factory=list)
    started: bool = False


def has_data(var_dir: Path) -> list[Path]:
    """What in `var_dir` belongs to a deployment that has run (empty: a fresh target)."""
    found = [
        var_dir / SECRETS_FILE_NAME,
        var_dir / "parta.db",
        var_dir / "synapse" / "homeserver.db",
    ]
    present = [p for p in found if p.exists()]
    present += sorted((var_dir / "synapse").glob("*.signing.key"))
    media = var_dir / "synapse" / "media_store"
    if next(files_under(media), None) is not None:
        present.append(media)
    return present


def _extract(archive: Path, staging: Path) -> dict[str, Any]:
    """Unpack the archive into `staging`, checking every member against the manifest.

    Raises:
        BackupError: the archive is damaged, truncated, altered or not a Parta backup.
    """
    seen: dict[str, Entry] = {}
    manifest: dict[str, Any] | None = None
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                name = member.name
                if manifest is not None:
                    raise BackupError(f"{archive} has members after its manifest; it was altered.")
                if (
                    not member.isreg()
                    or PurePosixPath(name).is_absolute()
                    or ".." in name.split("/")
                ):
                    raise BackupError(f"{archive} holds {name!r}, which no Parta backup has.")
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has one
                if name == MANIFEST:
                    manifest = json.loads(source.read())
                    continue
                if not (_RESTORED.match(name) or _DATABASE_MEMBER.match(name)) or name in seen:
                    raise BackupError(f"{archive} holds {name!r}, which no Parta backup has.")
                target = staging / name
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                digest = hashlib.sha256()
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                seen[name] = Entry(name, member.size, digest.hexdigest())
    except (tarfile.ReadError, EOFError, zlib.error, OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.filename is not None:
            raise BackupError(
                f"Could not read or write {exc.filename}: {exc.strerror}. Nothing was changed."
            ) from None
        raise BackupError(
            f"{archive} is damaged or incomplete ({exc}): it is not the whole archive the "
            "backup wrote. Copy it again from where it is kept (compare its size), then run "
            "the restore again. Nothing was changed."
        ) from None
    if not isinstance(manifest, dict):
        raise BackupError(
            f"{archive} has no manifest: it is damaged, incomplete, or not a Parta backup. "
            "Copy it again from where it is kept, then run the restore again. Nothing was "
            "changed."
        )
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"{archive} is in backup format {manifest.get('format')}, and this Parta reads "
            f"format {FORMAT}: restore it with the Parta version that made it "
            f"({manifest.get('parta_version')}, commit {manifest.get('parta_commit') or '?'})."
        )
    try:
        listed = {f["path"]: Entry(f["path"], f["size"], f["sha256"]) for f in manifest["files"]}
    except (KeyError, TypeError):
        raise BackupError(
            f"{archive}'s manifest lists no files: it is not a Parta backup."
        ) from None
    wrong = sorted(n for n in listed.keys() | seen.keys() if listed.get(n) != seen.get(n))
    if wrong:
        raise BackupError(
            f"{archive} does not match its manifest ({len(wrong)} files differ, first "
            f"{wrong[0]}): it was altered or damaged after the backup. Use another backup. "
            "Nothing was changed."
        )
    databases = manifest.get("databases")
    expected = {
        f"databases/{which}.{'pgdump' if kind == 'postgresql' else 'sqlite'}"
        for which, kind in (databases.items() if isinstance(databases, dict) else ())
    }
    if set(databases or ()) != {"synapse", "provisioning"} or not expected <= seen.keys():
        raise BackupError(
            f"{archive} lacks a database dump its manifest should name: it is not a whole "
            "Parta backup. Use another backup. Nothing was changed."
        )
    return manifest


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _keep_environment(config: Path) -> list[str]:
    """PARTA_* settings from the environment win over the archive's parta.env, and are
    written into it: the new host's database host or ports, for this and every later run."""
    known = {f"PARTA_{name.upper()}" for name in Settings.model_fields}
    skipped = {"PARTA_VAR_DIR", *(f"PARTA_{n.upper()}" for n in SECRET_FIELDS)}
    kept = {k: v for k, v in sorted(os.environ.items()) if k in known and k not in skipped}
    if not kept:
        return []
    lines = config.read_text(encoding="utf-8").splitlines() if config.exists() else []
    lines = [line for line in lines if line.split("=", 1)[0].strip() not in kept]
    lines.append("# From the environment of `parta restore`, over the backup's values:")
    lines += [f"{k}={v}" for k, v in kept.items()]
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return list(kept)


def _stop_running(var_dir: Path) -> list[str]:
    try:
        return LocalDeployment(Settings.load(var_dir)).stop()
    except ValueError:  # settings that no longer load: stop what the supervisor knows
        supervisor = Supervisor(var_dir / "run")
        return [name for name in reversed(supervisor.known()) if supervisor.stop(name)]


def _replace(source: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.move(source, target)


def restore_backup(
    archive: Path, var_dir: Path, *, force: bool = False, start: bool = True
) -> RestoreReport:
    """Bring a backup back into `var_dir` (a fresh host's), recreate the databases, start.

    The archive's parta.env is the restored deployment's settings; PARTA_* variables in the
    environment win and are written into it (a new host's database host, say).

    Raises:
        BackupError: the target has data (without `force`), the archive is damaged or
            altered, or a database cannot be made; the message says what to do.
    """
    var_dir = var_dir.resolve()
    present = has_data(var_dir)
    if present and not force:
        raise BackupError(
            f"{var_dir} already holds a deployment ({', '.join(str(p) for p in present[:3])}). "
            "A restore would replace its accounts, messages and files. To replace them, run "
            "the restore again with --force; to keep them, restore into another directory "
            "(PARTA_VAR_DIR=/path). Nothing was changed."
        )
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = var_dir / f".restore-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o700)
    try:
        manifest = _extract(archive, staging)
        restored = sum(1 for f in manifest["files"] if f["path"].startswith("var/"))
        report = RestoreReport(
            server_name=manifest["server_name"],
            created_at=manifest["created_at"],
            files=restored,
            bytes=sum(f["size"] for f in manifest["files"]),
        )
        made_with, installed = manifest["synapse_version"], version("matrix-synapse")
        if _version_tuple(made_with) > _version_tuple(installed):
            raise BackupError(
                f"This backup was made with Synapse {made_with}, newer than the installed "
                f"{installed}; Synapse cannot run on a newer version's database. Install the "
                f"Parta that made it (commit {manifest.get('parta_commit') or '?'}) first. "
                "Nothing was changed."
            )
        staged_var = staging / "var"
        report.kept_from_environment = _keep_environment(staged_var / CONFIG_FILE_NAME)
        try:
            settings = Settings.load(staged_var).model_copy(update={"var_dir": var_dir})
        except ValueError as exc:
            raise BackupError(
                f"The backup's settings do not load here: {exc}. Set the right values as "
                "PARTA_* variables for the restore. Nothing was changed."
            ) from None
        if settings.server_name != manifest["server_name"]:
            raise BackupError(
                f"The backup is of {manifest['server_name']}, and PARTA_SERVER_NAME says "
                f"{settings.server_name}: a region keeps its server name for good. Unset it."
            )
        for which, kind in manifest["databases"].items():
            if database_kind(settings, which) != kind:
                raise BackupError(
                    f"The backup holds {which}'s database on {kind}, and the settings here put "
                    f"it on {database_kind(settings, which)}. Restore onto {kind} (the "
                    "backup's settings), then move it with Synapse's synapse_port_db if you "
                    "must. Nothing was changed."
                )
        targets = {
            which: postgres(settings, which)
            for which, kind in manifest["databases"].items()
            if kind == "postgresql"
        }
        tables = {which: table_count(db) for which, db in targets.items()}
        full = [targets[w] for w, count in tables.items() if count]
        if full and not force:
            raise BackupError(
                "These databases already hold tables: "
                + ", ".join(f"{db.title} {db.dbname!r} on {db.host}:{db.port}" for db in full)
                + ". Restore into empty databases, or run the restore again with --force to "
                "replace what they hold. Nothing was changed."
            )
        report.stopped = _stop_running(var_dir) if present else []
        # From here on the target changes: files first, then each database.
        if force:  # what the replaced deployment had and the backup may not replace
            for old in (var_dir / "synapse").glob("*.signing.key"):
                old.unlink()
        for source in sorted(staged_var.rglob("*")):
            relative = source.relative_to(staged_var)
            if source.is_file() and _is_top(relative):
                _replace(source, var_dir / relative)
        for top in ("synapse/homeserver.d", "synapse/media_store", "calls", "documents"):
            if (staged_var / top).is_dir():
                _replace(staged_var / top, var_dir / top)
            elif (var_dir / top).is_dir():  # --force: the backup had none of these
                shutil.rmtree(var_dir / top)
        for which, kind in manifest["databases"].items():
            dump = (
                staging / "databases" / f"{which}.{'pgdump' if kind == 'postgresql' else 'sqlite'}"
            )
            if kind == "sqlite":
                path = sqlite_path(settings, which)
                for stale in (
                    path,
                    Path(f"{path}-wal"),
                    Path(f"{path}-shm"),
                    Path(f"{path}-journal"),
                ):
                    stale.unlink(missing_ok=True)
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                shutil.move(dump, path)
                continue
            db = targets[which]
            if tables[which] is None:
                create_database(db)
                report.created_databases.append(db.dbname)
            elif tables[which]:
                empty_database(db)
            pg_restore(db, dump)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if start:
        deployment, _ = LocalDeployment.prepare(var_dir)
        deployment.up()
        report.started = True
    return report


def _is_top(relative: Path) -> bool:
    """The single files of var/ a backup holds (directories are moved whole)."""
    text = relative.as_posix()
    return text in (CONFIG_FILE_NAME, SECRETS_FILE_NAME) or (
        text.startswith("synapse/") and text.endswith(".signing.key") and text.count("/") == 1
    )
