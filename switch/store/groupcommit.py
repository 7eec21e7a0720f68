"""Group commit: many concurrent writers, one database transaction at a time.

Registrations arrive in bursts (an operator's whole base re-registers after a
network outage). Committing each binding separately costs an fsync per
REGISTER; giving up durability is not an option (a 200 promises the binding
survives a crash). So writers queue their change and wait; one task commits
everything queued so far in a single transaction and then releases all of
them. Under light load a batch holds one change and latency is one commit;
under heavy load the batch grows and throughput follows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
Done = Callable[[BaseException | None], None]


class GroupCommitter(Generic[T]):
    def __init__(self, write: Callable[[list[T]], Awaitable[None]], *, window: float = 0.0, max_batch: int = 2000) -> None:
        self._write = write
        self._window = window
        self._max_batch = max_batch
        self._queue: list[tuple[T, Done]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0
        self.items = 0
        self.write_seconds = 0.0
        self.max_write_seconds = 0.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def submit(self, item: T, done: Done) -> None:
        """Queue ``item``; ``done(None)`` runs after it is committed, ``done(exc)`` if the commit failed."""
        if self._closed:
            done(RuntimeError("group committer closed"))
            return
        self._queue.append((item, done))
        self._wakeup.set()

    async def write_now(self, item: T) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(exc: BaseException | None) -> None:
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)

        self.submit(item, done)
        await fut

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if self._window:
                await asyncio.sleep(self._window)
            self._wakeup.clear()
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                # In its own frame, so nothing of the batch is held while waiting for the next:
                # the last burst's rows would stay alive (and pin the memory they sit in) for as
                # long as the switch is idle.
                await self._commit(batch)
                del batch
            if self._closed:
                return

    async def _commit(self, batch: list[tuple[T, Done]]) -> None:
        err: BaseException | None = None
        started = asyncio.get_running_loop().time()
        try:
            await self._write([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, done in batch:
                done(RuntimeError("shutting down"))
            raise
        except Exception as exc:  # noqa: BLE001 - reported to every waiter
            log.exception("group commit of %d items failed", len(batch))
            err = exc
        took = asyncio.get_running_loop().time() - started
        self.write_seconds += took
        self.max_write_seconds = max(self.max_write_seconds, took)
        self.batches += 1
        self.items += len(batch)
        for _, done in batch:
            try:
                done(err)
            except Exception:  # noqa: BLE001
                log.exception("group commit callback failed")

    def stats(self) -> dict[str, float]:
        return {
            "batches": self.batches,
            "items": self.items,
            "mean_batch": self.items / self.batches if self.batches else 0.0,
            "mean_write_ms": 1000 * self.write_seconds / self.batches if self.batches else 0.0,
            "max_write_ms": 1000 * self.max_write_seconds,
            "queued": len(self._queue),
        }

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()
