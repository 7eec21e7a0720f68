"""Lamp state and its history in the database.

The current lamps live in memory (``AdapterStatusService``); this module keeps
the ``adapter_lamps`` rows and appends ``lamp_events`` so support can see when
a line went dark, and seeds the service at start-up so ``since`` survives a
restart. Writes are batched through the group committer: lamp changes come
in bursts (a whole street loses power) and must never slow the registrar.
"""

from __future__ import annotations

import time
from datetime import timezone

from sqlalchemy import select

from switch.store import models as m
from switch.store.engine import SessionFactory

from .adapter_status import AdapterStatusService, Lamp, LampChange
from .groupcommit import GroupCommitter
from .hot_store import HotStore, LampRow


_LAMP = {"pwr": m.LampName.PWR, "wan": m.LampName.WAN, "tel1": m.LampName.TEL1, "tel2": m.LampName.TEL2}


async def restore(session_factory: SessionFactory, status: AdapterStatusService) -> None:
    async with session_factory() as session:
        rows = (await session.execute(select(m.AdapterLamp))).scalars().all()
        fetches = (await session.execute(select(m.Adapter.id, m.Adapter.last_config_fetch_at))).all()
    per: dict[int, dict[str, Lamp]] = {}
    for r in rows:
        lamp = str(getattr(r.lamp, "value", r.lamp)).lower()
        state = str(getattr(r.state, "value", r.state))
        since = r.since if r.since.tzinfo else r.since.replace(tzinfo=timezone.utc)
        per.setdefault(r.adapter_id, {})[lamp] = Lamp(state, r.reason, since.timestamp())
    last_fetch = {
        aid: (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp() for aid, at in fetches if at is not None
    }
    for adapter_id in set(per) | set(last_fetch):
        status.restore(adapter_id, per.get(adapter_id, {}), last_fetch.get(adapter_id, 0.0))


class LampWriter:
    def __init__(self, store: HotStore) -> None:
        self._store = store
        self._committer: GroupCommitter[list[LampChange]] = GroupCommitter(self._write, window=0.05)
        self._committer.start()

    async def _write(self, batches: list[list[LampChange]]) -> None:
        now = time.time()
        rows: list[LampRow] = []
        for adapter_id, name, old, new in (c for b in batches for c in b):
            at = new.since if old is None or old.state != new.state else now
            rows.append((adapter_id, _LAMP[name].value, old.state if old else None, new.state, new.reason[:200], new.since, at))
        await self._store.write_lamps(rows)

    def submit(self, changes: list[LampChange]) -> None:
        self._committer.submit(changes, lambda exc: None)

    async def close(self) -> None:
        await self._committer.close()
