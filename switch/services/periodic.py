"""One background loop with a start and a stop: the shape every periodic job of the switch has.

Qualify rounds, trunk liveness pings, the trunk table reload, the CDR retry
and housekeeping all run "do this, wait, do it again" until the switch
stops. Each used to own a task, a ``while True`` and its own cancel-and-await;
this is that code once:

* ``start()`` creates the task (not when the interval is 0: that job is off);
  a second ``start()`` while running does nothing.
* ``stop()`` cancels it and waits until it has ended, so a caller that stops
  the job next closes what the job writes through without a race.
* An exception from one step is logged and the loop goes on: a database
  hiccup must not end trunk reloads or housekeeping for the life of the process.
* The step may return how long to wait before the next one (a qualify round
  spreads its own pings over the interval and wants the next round at once);
  ``None`` means ``interval``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[float | None]]


class Periodic:
    """Run ``step`` every ``interval`` seconds (first after one interval, or at once with ``immediate``)."""

    __slots__ = ("name", "interval", "immediate", "_step", "_task")

    def __init__(self, name: str, step: Step, interval: float, *, immediate: bool = False) -> None:
        self.name = name
        self.interval = interval
        self.immediate = immediate
        self._step = step
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.interval > 0 and not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def _run(self) -> None:
        delay: float | None = 0.0 if self.immediate else self.interval
        while True:
            if delay:
                await asyncio.sleep(delay)
            try:
                delay = await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the job goes on; the next step may succeed
                log.exception("%s failed", self.name)
                delay = None
            if delay is None:
                delay = self.interval
