"""foundation.lifecycle: services start in order, stop in reverse, and stop closes what ran."""

from __future__ import annotations

import asyncio

import pytest

from foundation.lifecycle import BackgroundTask, cancel_and_wait, running


class Recorder:
    def __init__(self, name: str, log: list[str], *, fail_start: bool = False) -> None:
        self.name, self.log, self.fail_start = name, log, fail_start

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} could not start")
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


async def test_services_stop_in_reverse_order() -> None:
    log: list[str] = []
    async with running(Recorder("a", log), Recorder("b", log)):
        log.append("serving")
    assert log == ["start a", "start b", "serving", "stop b", "stop a"]


async def test_a_failed_start_stops_what_had_started() -> None:
    log: list[str] = []
    with pytest.raises(RuntimeError, match="b could not start"):
        async with running(Recorder("a", log), Recorder("b", log, fail_start=True)):
            log.append("serving")
    assert log == ["start a", "stop a"]


async def test_an_error_while_serving_still_stops_everything() -> None:
    log: list[str] = []
    with pytest.raises(ValueError):
        async with running(Recorder("a", log)):
            raise ValueError("the app failed")
    assert log == ["start a", "stop a"]


async def test_background_task_runs_until_stopped_and_stops_twice() -> None:
    ticks = 0
    ticked_thrice = asyncio.Event()

    async def loop() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            if ticks == 3:
                ticked_thrice.set()
            await asyncio.sleep(0.001)

    task = BackgroundTask(loop, name="ticker")
    await task.start()
    async with asyncio.timeout(5):
        await ticked_thrice.wait()
    assert task.running
    await task.stop()
    seen = ticks
    await asyncio.sleep(0.01)
    assert ticks == seen and not task.running
    await task.stop()  # a second stop is a no-op


async def test_cancel_and_wait_logs_a_task_that_had_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom() -> None:
        raise RuntimeError("lost")

    task = asyncio.create_task(boom())
    await asyncio.sleep(0)
    await cancel_and_wait(task)  # does not raise: stopping goes on
    assert "had failed" in caplog.text
    await cancel_and_wait(None)


async def test_cancel_and_wait_lets_the_callers_own_cancellation_through() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    inner = asyncio.create_task(forever())

    async def stopper() -> None:
        await asyncio.sleep(0)
        await cancel_and_wait(inner)
        await asyncio.Event().wait()

    outer = asyncio.create_task(stopper())
    await asyncio.sleep(0.01)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert inner.cancelled()
