"""Lamp state and its history in the database.

The current lamps live in memory (``AdapterStatusService``); this module keeps
the ``adapter_lamps`` rows and appends ``lamp_events`` so support can see when
a line went dark, and seeds the service at start-up so ``since`` survives a
restart. Writes are batched through the group committer: lamp changes come
in bursts (a whole street loses power) and must never slow the registrar.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import delete, insert, select

from switch.store import models as m
from switch.store.engine import SessionFactory

from .adapter_status import AdapterStatusService, Lamp, LampChange
from .groupcommit import GroupCommitter


_LAMP = {"pwr": m.LampName.PWR, "wan": m.LampName.WAN, "tel1": m.LampName.TEL1, "tel2": m.LampName.TEL2}


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)


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


async def write_changes(session_factory: SessionFactory, changes: list[LampChange]) -> None:
    if not changes:
        return
    latest: dict[tuple[int, str], Lamp] = {}
    for adapter_id, name, _old, new in changes:
        latest[(adapter_id, name)] = new
    async with session_factory() as session:
        async with session.begin():
            for (adapter_id, name), lamp in latest.items():
                await session.execute(
                    delete(m.AdapterLamp).where(
                        m.AdapterLamp.adapter_id == adapter_id, m.AdapterLamp.lamp == _LAMP[name]
                    )
                )
            await session.execute(
                insert(m.AdapterLamp),
                [
                    {
                        "adapter_id": a,
                        "lamp": _LAMP[n],
                        "state": m.LampState(l.state),
                        "reason": l.reason[:200],
                        "since": _dt(l.since),
                    }
                    for (a, n), l in latest.items()
                ],
            )
            await session.execute(
                insert(m.LampEvent),
                [
                    {
                        "adapter_id": a,
                        "lamp": _LAMP[n],
                        "old_state": m.LampState(old.state) if old is not None else None,
                        "new_state": m.LampState(new.state),
                        "reason": new.reason[:200],
                        "at": _dt(new.since if old is None or old.state != new.state else _now()),
                    }
                    for a, n, old, new in changes
                ],
            )


def _now() -> float:
    import time

    return time.time()


class LampWriter:
    def __init__(self, session_factory: SessionFactory) -> None:
        self._sf = session_factory
        self._committer: GroupCommitter[list[LampChange]] = GroupCommitter(self._write, window=0.05)
        self._committer.start()

    async def _write(self, batches: list[list[LampChange]]) -> None:
        await write_changes(self._sf, [c for b in batches for c in b])

    def submit(self, changes: list[LampChange]) -> None:
        self._committer.submit(changes, lambda exc: None)

    async def close(self) -> None:
        await self._committer.close()
