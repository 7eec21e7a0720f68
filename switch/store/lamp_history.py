"""Lamp state and its history in the database: the batched writer and the readers.

The current lamps live in memory (``switch.services.adapter_status``); the store
keeps the ``adapter_lamps`` rows and appends ``lamp_events`` so support can see
when a line went dark, and hands the rows back at start-up so ``since`` survives
a restart. Writes are batched through the group committer: lamp changes come in
bursts (a whole street loses power) and must never slow the registrar.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import select

from switch.store import models as m
from switch.store.engine import SessionFactory
from switch.store.groupcommit import GroupCommitter
from switch.store.hot_store import HotStore
from switch.store.rows import LampEventRow, LampRow

__all__ = ["LampChangeRows", "LampWriter", "list_lamp_events", "load_config_fetch_times", "load_lamps"]

log = logging.getLogger(__name__)

#: One lamp change: the lamp's state after it and the event that records it.
LampChangeRows = tuple[LampRow, LampEventRow]


def _epoch(dt: datetime) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def _text(v: object) -> str:
    return str(getattr(v, "value", v))


class LampWriter:
    """Group-commits lamp changes through the raw-driver store (one transaction per burst).

    A batch the database refuses (an outage) is kept and written with the next one, or
    by ``close``; beyond ``max_pending`` changes the oldest are dropped, with an error
    in the log: the current lamps are in memory, only history would be missing.
    """

    def __init__(self, store: HotStore, *, window: float = 0.05, max_pending: int = 100_000) -> None:
        self._store = store
        self._max_pending = max_pending
        self._pending: list[LampChangeRows] = []
        self._committer: GroupCommitter[list[LampChangeRows]] = GroupCommitter(self._write, window=window)
        self._committer.start()

    @property
    def pending(self) -> int:
        """Changes waiting for the database to come back."""
        return len(self._pending)

    async def _write(self, batches: list[list[LampChangeRows]]) -> None:
        changes, self._pending = self._pending + [c for b in batches for c in b], []
        try:
            await self._store.write_lamps([s for s, _ in changes], [e for _, e in changes])
        except BaseException:
            if len(changes) > self._max_pending:
                log.error("lamp history: %d changes dropped while the database is down",
                          len(changes) - self._max_pending)
                changes = changes[-self._max_pending:]
            self._pending = changes
            raise

    def submit(self, changes: list[LampChangeRows]) -> None:
        self._committer.submit(changes, lambda exc: None)

    async def close(self) -> None:
        await self._committer.close()
        if self._pending:
            try:
                await self._write([])
            except Exception:  # noqa: BLE001 - the database is still down: say what is lost
                log.error("lamp history: %d changes not written (database unavailable at shutdown)", len(self._pending))


async def load_lamps(session_factory: SessionFactory) -> list[LampRow]:
    """Every stored lamp state, for the lamps at start-up."""
    t = m.AdapterLamp
    async with session_factory() as session:
        rows = (await session.execute(select(t.adapter_id, t.lamp, t.state, t.reason, t.since))).all()
    return [LampRow(adapter_id=a, lamp=_text(lamp), state=_text(state), reason=reason, since=_epoch(since))
            for a, lamp, state, reason, since in rows]


async def load_config_fetch_times(session_factory: SessionFactory) -> dict[int, float]:
    """When each adapter last fetched its config (PWR lamp evidence), by adapter id."""
    async with session_factory() as session:
        rows = (await session.execute(select(m.Adapter.id, m.Adapter.last_config_fetch_at))).all()
    return {aid: _epoch(at) for aid, at in rows if at is not None}


async def list_lamp_events(
    session_factory: SessionFactory, adapter_id: int, *, lamp: str | None = None, limit: int = 100
) -> list[LampEventRow]:
    """An adapter's lamp history, newest first (``lamp`` as stored: PWR/WAN/Tel1/Tel2)."""
    t = m.LampEvent
    stmt = select(t.adapter_id, t.lamp, t.old_state, t.new_state, t.reason, t.at).where(t.adapter_id == adapter_id)
    if lamp is not None:
        stmt = stmt.where(t.lamp == m.LampName(lamp))
    stmt = stmt.order_by(t.at.desc(), t.id.desc()).limit(limit)
    async with session_factory() as session:
        rows = (await session.execute(stmt)).all()
    return [
        LampEventRow(adapter_id=a, lamp=_text(name), old_state=None if old is None else _text(old),
                     new_state=_text(new), reason=reason, at=_epoch(at))
        for a, name, old, new, reason, at in rows
    ]
