"""Reads of registration state at start-up (writes: ``binding_writer``)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select

from switch.store import models as m
from switch.store.engine import SessionFactory

from .location import Binding


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


async def lines_fingerprint(session_factory: SessionFactory) -> tuple[object, ...]:
    """Changes whenever a line is added, removed or updated (password, number, flags)."""
    async with session_factory() as session:
        row = (
            await session.execute(select(func.count(m.Line.id), func.max(m.Line.updated_at), func.max(m.Line.id)))
        ).one()
    return tuple(row)
