"""The directory the rules read, reloaded from provisioning's snapshot file when it changes.

The file is read off the reactor thread; callbacks only take the last good directory. A
file that cannot be parsed is ignored (the previous directory stays) and logged once.
The file's age tells whether provisioning still keeps it up to date: provisioning touches
it on every reconciler run, so an old file means provisioning has stopped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from school_policy.directory import Directory, SnapshotError, load_directory

log = logging.getLogger(__name__)


class SnapshotStore:
    def __init__(
        self, path: Path, *, max_age_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.max_age_s = max_age_s
        self._clock = clock
        self.directory: Directory | None = None
        self._signature: tuple[int, int, int] | None = None  # inode, size, mtime of the loaded file
        self._mtime = 0.0
        self._last_problem: str | None = None

    def fresh(self) -> bool:
        """True while the loaded snapshot's file was written or touched within `max_age_s`."""
        return self.directory is not None and self._clock() - self._mtime <= self.max_age_s

    def reload_if_changed(self) -> bool:
        """Read the file again if it changed since the last load; True if a new one loaded."""
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            self._problem(f"cannot read the snapshot {self.path}: {exc.strerror}")
            return False
        self._mtime = stat.st_mtime
        signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if signature == self._signature:
            return False
        try:
            directory = load_directory(self.path.read_bytes())
        except (OSError, SnapshotError) as exc:
            self._problem(f"ignoring the snapshot {self.path}: {exc}")
            self._signature = signature  # do not parse the same bad file again
            return False
        self.directory, self._signature, self._last_problem = directory, signature, None
        log.info(
            "school policy: loaded %d pupils and %d managed rooms from %s",
            len(directory.pupils), len(directory.rooms), self.path,
        )  # fmt: skip
        return True

    def _problem(self, problem: str) -> None:
        if problem != self._last_problem:
            log.error("school policy: %s; pupils are refused until it is readable", problem)
            self._last_problem = problem
