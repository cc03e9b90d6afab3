"""Which widget process runs a call: one at a time, the holder of its lock file.

With several widget processes (docs/operations.md, "SFU processes") nginx sends a room's
call to the process its room ID hashes to, and to the next one when that process does
not answer. Two processes must never run one call at once: its participants would be
split between them, each half hearing only itself. So a process runs a call only while
it holds an exclusive `flock` on the call's lock file under `Settings.call_state_dir`.
The kernel lets go of it when the process dies, however it dies, and the process nginx
sends the reconnecting pages to next takes the call over from its saved state
(`persistence.CallStore`; the call service saves a call only while it holds the lock).

The process nginx chooses wins. A dead process comes back (the next `./deploy.sh`) while
its calls run on substitutes, and nginx sends newcomers to it again. Its join then asks
the holder to give the call back (a request file beside the lock) and waits for the lock;
the holder saves the call, tells its pages to reconnect and lets go; the pages reconnect
through nginx to where the newcomer is. Only a process nginx routes to asks, so a call
moves towards nginx's choice, never back and forth.

Lock files stay (empty, one per room that had a call): removing one while another
process waits on it would let two processes hold "the" lock of one room.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from widgets.call.persistence import room_file_stem


class CallLocks:
    """This process's locks on calls; closing a lock's descriptor releases it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._held: dict[str, int] = {}  # room ID -> the open, locked lock file

    def _path(self, room_id: str, suffix: str) -> Path:
        return self.directory / f"{room_file_stem(room_id)}.{suffix}"

    def holds(self, room_id: str) -> bool:
        return room_id in self._held

    def try_take(self, room_id: str) -> bool:
        """Take the call's lock if no other process holds it; True if this process holds it.

        A second descriptor of one process conflicts with the first (flock locks belong to
        the open file), so the caller takes each room's lock once and keeps it.
        """
        if room_id in self._held:
            return True
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(room_id, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._held[room_id] = fd
        return True

    def release(self, room_id: str) -> None:
        fd = self._held.pop(room_id, None)
        if fd is not None:
            os.close(fd)

    def release_all(self) -> None:
        for room_id in list(self._held):
            self.release(room_id)

    def ask_back(self, room_id: str) -> None:
        """Ask the process holding the call to give it up (nginx now routes it here)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._path(room_id, "wanted").touch(mode=0o600)

    def asked_back(self, room_id: str) -> bool:
        """Whether another process asked for this call since this one took it."""
        return self._path(room_id, "wanted").exists()

    def answered(self, room_id: str) -> None:
        """The call is here now: the request is answered."""
        with contextlib.suppress(FileNotFoundError):
            self._path(room_id, "wanted").unlink()
