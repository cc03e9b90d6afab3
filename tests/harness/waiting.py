"""Bounded waits for things that happen in the background (a reconciler run, Synapse's
transactions, a snapshot written by another process): poll the condition until it holds
or the time is up, so a busy machine is slower but never wrong."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

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
    probe: Callable[[], Awaitable[T | None]], what: str, *, within: float = 60,
    every: float = 0.3,
) -> T:  # fmt: skip
    """`wait_until` for a coroutine probe, sleeping without blocking the event loop."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what} (last: {value!r})")
        await asyncio.sleep(every)
