"""The reconciler's priority limit: never more holders than the limit, the most work first."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioning.reconciler.limiter import PriorityLimiter


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=4),
    priorities=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=30),
)
def test_waiters_get_slots_by_priority_then_arrival(limit: int, priorities: list[int]) -> None:
    async def scenario() -> tuple[list[int], int]:
        limiter = PriorityLimiter(limit)
        gate = asyncio.Event()
        order: list[int] = []
        holding = peak = 0

        async def hold_first() -> None:
            async with limiter.slot():
                await gate.wait()

        async def work(index: int, priority: int) -> None:
            nonlocal holding, peak
            async with limiter.slot(priority):
                holding += 1
                peak = max(peak, holding)
                order.append(index)
                await asyncio.sleep(0)
                holding -= 1

        blockers = [asyncio.create_task(hold_first()) for _ in range(limit)]
        await _settle()
        workers = [asyncio.create_task(work(i, p)) for i, p in enumerate(priorities)]
        await _settle()
        assert order == [], "a slot was handed out while all were held"
        gate.set()
        await asyncio.wait_for(asyncio.gather(*blockers, *workers), 5)
        return order, peak

    order, peak = asyncio.run(scenario())
    if limit == 1:
        expected = sorted(range(len(priorities)), key=lambda i: (-priorities[i], i))
        assert order == expected
    assert sorted(order) == list(range(len(priorities)))
    assert peak <= limit


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    limiter = PriorityLimiter(1)
    holder_may_go = asyncio.Event()
    got: list[str] = []

    async def holder() -> None:
        async with limiter.slot():
            await holder_may_go.wait()

    async def waiter(name: str, priority: int) -> None:
        async with limiter.slot(priority):
            got.append(name)

    first = asyncio.create_task(holder())
    await _settle()
    cancelled = asyncio.create_task(waiter("cancelled", 9))
    kept = asyncio.create_task(waiter("kept", 1))
    await _settle()
    cancelled.cancel()
    await _settle()
    holder_may_go.set()
    await asyncio.wait_for(asyncio.gather(first, kept), 5)
    assert got == ["kept"]
    # The slot came back: a new holder gets it at once.
    await asyncio.wait_for(waiter("later", 0), 1)
    assert got == ["kept", "later"]
    assert cancelled.cancelled()


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PriorityLimiter(0)
