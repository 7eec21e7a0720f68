"""Reads of registration state at start-up (the hot-path writes are in ``hot_store``)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select

from switch.store import models as m
from switch.store.engine import SessionFactory
from switch.store.repo_bindings import BindingRecord, load_all_bindings

from .location import Binding


def _epoch(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def from_record(r: BindingRecord) -> Binding:
    """The location service's binding for a stored one (``repo_bindings``)."""
    return Binding(
        line_id=r.line_id,
        contact=r.contact,
        expires_at=_epoch(r.expires_at),
        call_id=r.call_id,
        cseq=r.cseq,
        received_host=r.received_host,
        received_port=r.received_port,
        transport=str(getattr(r.transport, "value", r.transport)),
        user_agent=r.user_agent or "",
        instance=r.instance or "",
        reg_id=r.reg_id or 0,
        q=r.q if r.q is not None else 1.0,
        registered_at=_epoch(r.registered_at) if r.registered_at else 0.0,
        last_seen=_epoch(r.last_keepalive) if r.last_keepalive else 0.0,
    )


async def load_bindings(session_factory: SessionFactory) -> list[Binding]:
    """Every stored binding, for the location service at start-up."""
    return [from_record(r) for r in await load_all_bindings(session_factory)]


async def lines_fingerprint(session_factory: SessionFactory) -> tuple[object, ...]:
    """Changes whenever a line is added, removed or updated (password, number, flags)."""
    async with session_factory() as session:
        row = (
            await session.execute(select(func.count(m.Line.id), func.max(m.Line.updated_at), func.max(m.Line.id)))
        ).one()
    return tuple(row)
