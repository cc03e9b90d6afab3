"""Bounded waits for things that happen in the background (a reconciler run, Synapse's
transactions, a snapshot written by another process): poll the condition until it holds
or the time is up, so a busy machine is slower but never wrong."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from parta.deployment import LocalDeployment

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None], what: str, *, within: float = 60, every: float = 0.5
) -> T:
    """Poll `probe` until it gives something other than None or False; return that.

    Raises:
        pytest.fail.Exception: `what` did not happen within `within` seconds, saying
            what the probe last gave.
    """
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what} (last: {value!r})")
        time.sleep(every)


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    *,
    within: float = 60,
    every: float = 0.3,
) -> T:
    """`wait_until` for a coroutine probe, sleeping without blocking the event loop."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what} (last: {value!r})")
        await asyncio.sleep(every)


_POLICY_READ = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*school policy: (loaded|ignoring the snapshot)"
)


def last_policy_read(region: LocalDeployment) -> float:
    """When Synapse's school policy module last read its snapshot (loaded it, or found it
    unreadable and kept the last good one), from its log; 0 if it never did."""
    log_file = region.settings.log_dir / "synapse.log"
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return 0.0
    for line in reversed(lines):
        if match := _POLICY_READ.match(line):
            moment = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
            return moment + int(match.group(2)) / 1000
    return 0.0


async def policy_reread(region: LocalDeployment, since: float, *, within: float = 60) -> None:
    """Until the school policy module has read its snapshot at `since` or later: the
    snapshot's mtime after a write, or the moment a test changed the file by hand. The
    module rereads it every 2 s; on a busy machine, later."""

    async def reread() -> bool:
        return last_policy_read(region) >= since - 0.001  # the log keeps milliseconds

    await eventually(reread, "Synapse's school policy module to reread its snapshot",
                     within=within, every=0.2)  # fmt: skip


async def policy_loaded_snapshot(region: LocalDeployment, *, within: float = 60) -> None:
    """Until the module has loaded the snapshot as it is on disk now."""
    await policy_reread(region, region.settings.policy_snapshot_path.stat().st_mtime,
                        within=within)  # fmt: skip
