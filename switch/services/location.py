"""Location service: which contacts each line is reachable at, kept write-through.

The in-memory map answers every lookup (registrar, B2BUA, lamps, qualify).
Every change goes to the database through the group committer *before* the
caller is told it succeeded, so a crash loses no binding a 200 promised.
At start-up the map is loaded from the database, so a restart (even after
``kill -9``) forgets nothing. ``Binding`` and ``LineChange`` are defined with the
table they are stored in (``switch.store.rows``); they are this service's
vocabulary too, so they are importable from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from switch.store.groupcommit import Done, GroupCommitter
from switch.store.rows import Binding, LineChange

__all__ = ["Binding", "LineChange", "Listener", "LocationService"]

log = logging.getLogger(__name__)


Listener = Callable[[int, list[Binding], list[Binding]], None]


class LocationService:
    def __init__(
        self,
        write_batch: Callable[[list[LineChange]], Awaitable[None]],
        *,
        commit_window: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._by_line: dict[int, list[Binding]] = {}
        self._committer: GroupCommitter[LineChange] = GroupCommitter(self._write, window=commit_window)
        self._write_batch = write_batch
        self.clock = clock
        #: called with (line_id, old bindings, new bindings) after a change is committed (``start``)
        self._listeners: tuple[Listener, ...] = ()
        #: no binding expires before this (a lower bound): sweeps before it have nothing to do
        self._next_expiry = float("inf")

    def start(self, initial: Iterable[Binding], listeners: Sequence[Listener] = ()) -> None:
        """Load the stored bindings and take changes from now on; ``listeners`` hear of each committed one.

        The listeners are given here, not to the constructor: they read the
        bindings through this service (the lamps), so they are built after it."""
        self._listeners = tuple(listeners)
        now = self.clock()
        for b in initial:
            if b.expires_at > now:
                self._by_line.setdefault(b.line_id, []).append(b)
                self._next_expiry = min(self._next_expiry, b.expires_at)
        self._committer.start()

    async def close(self) -> None:
        await self._committer.close()

    async def _write(self, changes: list[LineChange]) -> None:
        # Several REGISTERs for the same line in one batch: only the last set matters.
        last: dict[int, LineChange] = {}
        for ch in changes:
            last[ch.line_id] = ch
        await self._write_batch(list(last.values()))

    # -- queries ------------------------------------------------------------
    def bindings(self, line_id: int) -> list[Binding]:
        now = self.clock()
        return [b for b in self._by_line.get(line_id, ()) if b.expires_at > now]

    def sources_of(self, line: object) -> list[tuple[str, int]]:
        """(host, port) every live binding of ``line`` (anything with a ``line_id``) was registered from."""
        line_id = getattr(line, "line_id", None)
        if not isinstance(line_id, int):
            return []
        return [(b.received_host, b.received_port) for b in self.bindings(line_id)]

    def all_lines(self) -> list[int]:
        return list(self._by_line)

    def all_bindings(self) -> list[Binding]:
        return [b for bs in self._by_line.values() for b in bs]

    def commit_stats(self) -> dict[str, float]:
        return self._committer.stats()

    def count(self) -> int:
        return sum(len(v) for v in self._by_line.values())

    # -- updates ----------------------------------------------------------------
    def replace(self, line_id: int, new: list[Binding], done: Done) -> None:
        """Set the line's bindings; ``done`` runs once they are durable.

        The in-memory view changes at once so that a second REGISTER in the same
        batch computes against it; on a failed commit the old set is restored.
        """
        old = self._by_line.get(line_id, [])
        if new:
            self._by_line[line_id] = new
            soonest = min(b.expires_at for b in new)
            if soonest < self._next_expiry:
                self._next_expiry = soonest
        else:
            self._by_line.pop(line_id, None)

        def committed(exc: BaseException | None) -> None:
            if exc is not None:
                if self._by_line.get(line_id, []) is new or (not new and line_id not in self._by_line):
                    if old:
                        self._by_line[line_id] = old
                        self._next_expiry = min(self._next_expiry, *(b.expires_at for b in old))
                    else:
                        self._by_line.pop(line_id, None)
            else:
                for listener in self._listeners:
                    try:
                        listener(line_id, old, new)
                    except Exception:  # noqa: BLE001
                        log.exception("location listener failed")
            done(exc)

        self._committer.submit(LineChange(line_id, list(new)), committed)

    async def sweep(self) -> int:
        """Drop expired bindings, in memory and in the database. Returns how many."""
        now = self.clock()
        if now < self._next_expiry:
            # Nothing can have expired: skip the walk over every line (10,000 lines
            # every 5 s showed up in profiles of a registration storm).
            return 0
        removed = 0
        soonest = float("inf")
        changes: list[tuple[int, list[Binding]]] = []
        for line_id, bs in list(self._by_line.items()):
            live = [b for b in bs if b.expires_at > now]
            if len(live) != len(bs):
                removed += len(bs) - len(live)
                changes.append((line_id, live))
            for b in live:
                if b.expires_at < soonest:
                    soonest = b.expires_at
        self._next_expiry = soonest
        for line_id, live in changes:
            fut_done: list[BaseException | None] = []
            self.replace(line_id, live, fut_done.append)
        if changes:
            # wait for the last one: the committer preserves order
            await self._committer.write_now(LineChange(changes[-1][0], changes[-1][1]))
        return removed
