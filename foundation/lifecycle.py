"""One lifecycle shape for every long-running part: `async start()` then `async stop()`.

The reconcile scheduler, the bridge's command runner and start-up, the call service and
its store, the documents service and the library connector all run in the background of a
web app. Each is a `Service`; an app's lifespan runs them with `running(...)`, which starts
them in order and stops them in reverse, also when one fails to start or the app fails.
A service's `stop()` closes everything its `start()` opened and may be called twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Service(Protocol):
    """A long-running part of an app: started once, stopped once (a second stop is a no-op)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has ended.

    A task that had already failed is logged, not raised: stopping must go on to close the
    other resources. The caller's own cancellation still propagates.
    """
    if task is None:
        return
    if not task.done():
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we are being cancelled ourselves, not just the task
    except Exception:
        log.exception("a background task had failed before it was stopped")


class BackgroundTask:
    """A `Service` that runs one coroutine in a task: the shape of a loop that only waits."""

    def __init__(self, run: Callable[[], Awaitable[None]], *, name: str) -> None:
        self._run = run
        self._name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._main(), name=self._name)

    async def _main(self) -> None:
        await self._run()

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)


@contextlib.asynccontextmanager
async def running(*services: Service) -> AsyncIterator[None]:
    """Start the services in order; on leaving, stop the started ones in reverse order."""
    async with contextlib.AsyncExitStack() as stack:
        for service in services:
            await service.start()
            stack.push_async_callback(service.stop)
        yield
