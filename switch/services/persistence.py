"""Glue between the in-memory registration state and the database.

Kept to SQLAlchemy Core statements with executemany: the registrar writes
here on its hot path (one transaction per group-commit batch).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from sqlalchemy import delete, func, insert, select

from switch.store import models as m
from switch.store.engine import SessionFactory

from .location import Binding, LineChange


#: rows per INSERT statement (SQLite allows 32766 bound parameters; 16 columns a row)
_CHUNK = 500


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def _epoch(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


async def load_bindings(session_factory: SessionFactory) -> list[Binding]:
    async with session_factory() as session:
        rows = (await session.execute(select(m.Binding))).scalars().all()
    return [
        Binding(
            line_id=r.line_id,
            contact=r.contact_uri,
            expires_at=_epoch(r.expires_at),
            call_id=r.call_id,
            cseq=r.cseq,
            received_host=r.received_host,
            received_port=r.received_port,
            transport=str(r.transport.value if hasattr(r.transport, "value") else r.transport),
            user_agent=r.user_agent or "",
            instance=r.instance or "",
            reg_id=r.reg_id or 0,
            q=r.q if r.q is not None else 1.0,
            registered_at=_epoch(r.registered_at),
            last_seen=_epoch(r.last_keepalive) if r.last_keepalive else 0.0,
        )
        for r in rows
    ]


def _row(b: Binding) -> dict[str, object]:
    return {
        "line_id": b.line_id,
        "contact_uri": b.contact,
        "received_host": b.received_host,
        "received_port": b.received_port,
        "transport": m.Transport(b.transport),
        "expires_at": _dt(b.expires_at),
        "call_id": b.call_id,
        "cseq": b.cseq,
        "user_agent": b.user_agent or None,
        "instance": b.instance or None,
        "reg_id": b.reg_id or None,
        "q": b.q,
        "path": None,
        "registered_at": _dt(b.registered_at or b.expires_at),
        "last_keepalive": _dt(b.last_seen) if b.last_seen else None,
    }


async def replace_bindings(session_factory: SessionFactory, changes: Iterable[LineChange]) -> None:
    """Write the new binding sets of several lines in one transaction."""
    changes = list(changes)
    if not changes:
        return
    line_ids = [c.line_id for c in changes]
    rows = [_row(b) for c in changes for b in c.bindings]
    async with session_factory() as session:
        async with session.begin():
            await session.execute(delete(m.Binding).where(m.Binding.line_id.in_(line_ids)))
            # One multi-row INSERT per chunk rather than executemany: with aiosqlite every
            # row step is a GIL hand-off between threads, which under load costs ~5 ms each.
            for i in range(0, len(rows), _CHUNK):
                await session.execute(insert(m.Binding).values(rows[i : i + _CHUNK]))


async def lines_fingerprint(session_factory: SessionFactory) -> tuple[object, ...]:
    """Changes whenever a line is added, removed or updated (password, number, flags)."""
    async with session_factory() as session:
        row = (
            await session.execute(select(func.count(m.Line.id), func.max(m.Line.updated_at), func.max(m.Line.id)))
        ).one()
    return tuple(row)
