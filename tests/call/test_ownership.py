"""One process per call: the lock file's rules, with real processes holding the locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.harness.waiting import wait_until
from widgets.call.ownership import CallLocks

ROOM = "!lesson:region.example.org"

_HOLDER = """
import sys, time
from pathlib import Path
from widgets.call.ownership import CallLocks
assert CallLocks(Path(sys.argv[1])).try_take(sys.argv[2])
print("held", flush=True)
time.sleep(600)
"""


def test_one_holder_at_a_time_and_a_request_to_give_it_back(tmp_path: Path) -> None:
    first, second = CallLocks(tmp_path), CallLocks(tmp_path)  # two processes' locks
    assert first.try_take(ROOM) and first.try_take(ROOM)  # taken once, kept
    assert not second.try_take(ROOM)
    assert second.try_take("!other:region.example.org")  # other calls are free
    assert not first.asked_back(ROOM)
    second.ask_back(ROOM)
    assert first.asked_back(ROOM)
    first.release(ROOM)
    assert second.try_take(ROOM)
    second.answered(ROOM)
    assert not second.asked_back(ROOM)
    second.release_all()
    assert first.try_take(ROOM)


def test_a_killed_holders_calls_are_free_at_once(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path), ROOM],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        mine = CallLocks(tmp_path)
        assert not mine.try_take(ROOM)
        holder.send_signal(signal.SIGKILL)  # no chance to let go: the kernel does
        wait_until(lambda: mine.try_take(ROOM), "the dead holder's lock to be free", within=10)
    finally:
        holder.kill()
        holder.wait(10)
