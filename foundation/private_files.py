"""Everything under var/ is private to the account that runs Parta.

var/ holds pupils' names, phones and e-mails and invite tokens (`parta.db`), every
session's access token (`synapse/homeserver.db`) and the deployment's secrets. Another
account on the machine must read none of it (issue 18: they were 0644 in a 0755 var/).
Three parts keep it so: the CLI and every service it starts run with `PRIVATE_UMASK`, so
what they create is private from the start; `./deploy.sh` takes group and world access
away from what exists (made by an older version, or copied in from a backup); and
`./deploy.sh status` names anything that is readable again, and exits 1.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

PRIVATE_UMASK = 0o077  # new files 0600, new directories 0700
_GROUP_AND_WORLD = 0o077


def _walk(var_dir: Path) -> Iterator[tuple[Path, int]]:
    """Each directory and file under var_dir (itself included) with its mode; no symlinks."""
    if not var_dir.exists():
        return
    yield var_dir, var_dir.lstat().st_mode
    for root, directories, files in os.walk(var_dir):
        for name in [*directories, *files]:
            path = Path(root) / name
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                continue  # removed while we looked (a log rotated, a temp file renamed)
            if not stat.S_ISLNK(mode):
                yield path, mode


def exposed(var_dir: Path) -> list[tuple[Path, int]]:
    """The paths under var_dir that its group or other accounts may use, with their modes."""
    return [(path, mode) for path, mode in _walk(var_dir) if mode & _GROUP_AND_WORLD]


def make_private(var_dir: Path) -> list[Path]:
    """Take group and world access away from everything under var_dir; what changed."""
    changed = []
    for path, mode in exposed(var_dir):
        os.chmod(path, stat.S_IMODE(mode) & ~_GROUP_AND_WORLD)
        changed.append(path)
    return changed
