"""A region's backup in one archive, and its restore on a fresh host.

What a restored region needs and cannot make again goes in: both databases (a consistent
dump taken while the region runs), the media store (every file people uploaded, the
documents and the library included), the signing key (the region's identity to other
servers), `secrets.env` and `parta.env`, the operator's Synapse overrides
(`synapse/homeserver.d/`), the saved calls and the documents service's state. What is made
again is left out: the rendered configuration, the policy snapshot (provisioning writes it
at start), logs, pids, and roster files waiting for a preview.

The archive is a gzip-compressed tar, mode 0600 (it holds the secrets), read and written
as a stream: the media store can be gigabytes and is never held in memory. Its last member,
`manifest.json`, lists every other member with its size and SHA-256, so a restore refuses
a truncated or altered archive before it changes anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO

from foundation.settings import CONFIG_FILE_NAME, SECRETS_FILE_NAME, Settings
from parta.databases import (
    DATABASES,
    BackupError,
    Database,
    DatabaseKind,
    database_kind,
    pg_dump,
    postgres,
    sqlite_copy,
    sqlite_path,
)
from parta.deployment import SOURCE_ROOT
from parta.render import signing_key_path

__all__ = ["MANIFEST", "BackupError", "BackupReport", "Entry", "create_backup"]

FORMAT = 1
MANIFEST = "manifest.json"
# Media is mostly compressed already (photos, video, PDF): a fast level loses little.
COMPRESS_LEVEL = 3
# Regenerated caches of the media store (link previews), never referenced by a room.
_MEDIA_CACHES = ("url_cache", "url_cache_thumbnails")


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    sha256: str


@dataclass
class BackupReport:
    path: Path
    files: int
    bytes: int
    seconds: float


class _HashingReader:
    """Reads exactly `size` bytes of a file for tarfile, hashing them on the way."""

    def __init__(self, handle: IO[bytes], size: int, name: str) -> None:
        self.handle, self.left, self.name = handle, size, name
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        want = self.left if n < 0 else min(n, self.left)
        data = self.handle.read(want)
        if len(data) < want:
            raise BackupError(
                f"{self.name} became shorter while it was read; run the backup again."
            )
        self.left -= len(data)
        self.digest.update(data)
        return data


class _ArchiveWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._raw = os.fdopen(fd, "wb")
        self._tar = tarfile.open(fileobj=self._raw, mode="w:gz", compresslevel=COMPRESS_LEVEL)  # noqa: SIM115 - closed in close() or abort()
        self.entries: list[Entry] = []

    def add_file(self, source: Path, name: str) -> None:
        try:
            handle = source.open("rb")
        except FileNotFoundError:
            return  # removed since it was listed (media purged, a call's file replaced)
        with handle:
            stat = os.fstat(handle.fileno())
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o600
            reader = _HashingReader(handle, stat.st_size, str(source))
            self._tar.addfile(info, reader)
        self.entries.append(Entry(name, stat.st_size, reader.digest.hexdigest()))

    def add_bytes(self, data: bytes, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
        self._tar.addfile(info, _BytesReader(data))

    def close(self) -> None:
        self._tar.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()

    def abort(self) -> None:
        self._raw.close()
        self.path.unlink(missing_ok=True)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.at + n
        chunk = self.data[self.at : end]
        self.at += len(chunk)
        return chunk


def files_under(directory: Path, skip: tuple[str, ...] = ()) -> Iterator[Path]:
    """Regular files under `directory` in a stable order; symbolic links are not followed."""
    if not directory.is_dir():
        return
    for root, directories, files in os.walk(directory):
        directories[:] = sorted(d for d in directories if d not in skip)
        for name in sorted(files):
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                yield path


def _parta_commit() -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(SOURCE_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def archive_name(settings: Settings, now: datetime) -> str:
    server = re.sub(r"[^A-Za-z0-9.-]", "_", settings.server_name)
    return f"parta-backup-{server}-{now:%Y%m%dT%H%M%SZ}.tar.gz"


def create_backup(
    settings: Settings, output_dir: Path, *, now: datetime | None = None
) -> BackupReport:
    """Write one archive of the region into `output_dir`, while it runs; return its path.

    Databases first, files after: every file a dumped row points at was written before the
    dump, so it is in the archive (a file uploaded later is in it without its row: harmless).

    Raises:
        BackupError: something could not be read or dumped; nothing is left half-written.
    """
    began = time.monotonic()
    now = now or datetime.now(UTC)
    var = settings.var_dir
    secrets_file = var / SECRETS_FILE_NAME
    key = signing_key_path(settings)
    for required, what in ((secrets_file, "the secrets"), (key, "the signing key")):
        if not required.is_file():
            raise BackupError(f"There is no deployment in {var}: {what} ({required}) is missing.")
    output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = output_dir / archive_name(settings, now)
    partial = final.with_name(final.name + ".partial")
    kinds: dict[Database, DatabaseKind] = {w: database_kind(settings, w) for w in DATABASES}
    writer = _ArchiveWriter(partial)
    try:
        with tempfile.TemporaryDirectory(dir=output_dir, prefix=".parta-backup-") as work:
            for which, kind in kinds.items():
                dump = Path(work) / f"{which}.{'pgdump' if kind == 'postgresql' else 'sqlite'}"
                if kind == "postgresql":
                    pg_dump(postgres(settings, which), dump)
                else:
                    path = sqlite_path(settings, which)
                    sqlite_copy(path, dump, f"{which.capitalize()}'s database")
                writer.add_file(dump, f"databases/{dump.name}")
                dump.unlink()
        for path in (var / CONFIG_FILE_NAME, secrets_file, key):
            writer.add_file(path, f"var/{path.relative_to(var)}")
        for directory, skip in (
            (settings.synapse_overrides_dir, ()),
            (settings.media_store_dir, _MEDIA_CACHES),
            (settings.call_state_dir, ()),
            (settings.documents_state_dir, ()),
        ):
            for path in files_under(directory, skip):
                writer.add_file(path, f"var/{path.relative_to(var)}")
        manifest = {
            "format": FORMAT,
            "server_name": settings.server_name,
            "created_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "parta_version": _installed("parta"),
            "parta_commit": _parta_commit(),
            "synapse_version": _installed("matrix-synapse"),
            "databases": kinds,
            "files": [e.__dict__ for e in writer.entries],
        }
        writer.add_bytes(json.dumps(manifest, indent=1).encode(), MANIFEST)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    os.replace(partial, final)
    return BackupReport(
        path=final,
        files=len(writer.entries),
        bytes=sum(e.size for e in writer.entries),
        seconds=time.monotonic() - began,
    )
