"""Registration bindings and their ping histories as stored: the readers.

The registrar keeps bindings in memory and writes every change through the
raw-driver writer (``switch.store.hot_store``) *before* it answers 200 (Kamailio
usrloc ``db_mode`` write-through), so a restart forgets nothing; the qualifier's
ping histories go the same way. This module reads both back, as the same record
types the writer takes (``switch.store.rows``).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from switch.store.engine import SessionFactory
from switch.store.models import Binding as BindingTable
from switch.store.models import QualifyStats
from switch.store.rows import Binding, Reachability

__all__ = ["load_bindings", "load_qualify_stats"]


def _epoch(dt: datetime | None) -> float:
    if dt is None:
        return 0.0
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


async def load_bindings(session_factory: SessionFactory, *, line_id: int | None = None) -> list[Binding]:
    """Every stored binding (or one line's), ordered by line and contact: the location
    service loads this at start-up."""
    t = BindingTable
    stmt = select(
        t.line_id, t.contact_uri, t.expires_at, t.call_id, t.cseq, t.received_host, t.received_port, t.transport,
        t.user_agent, t.instance, t.reg_id, t.q, t.registered_at, t.last_keepalive,
    ).order_by(t.line_id, t.contact_uri)
    if line_id is not None:
        stmt = stmt.where(t.line_id == line_id)
    async with session_factory() as session:
        rows = (await session.execute(stmt)).all()
    return [
        Binding(
            line_id=lid,
            contact=contact,
            expires_at=_epoch(expires),
            call_id=call_id,
            cseq=cseq,
            received_host=host,
            received_port=port,
            transport=str(getattr(transport, "value", transport)),
            user_agent=ua or "",
            instance=instance or "",
            reg_id=reg_id or 0,
            q=q if q is not None else 1.0,
            registered_at=_epoch(registered),
            last_seen=_epoch(keepalive),
        )
        for lid, contact, expires, call_id, cseq, host, port, transport, ua, instance, reg_id, q, registered, keepalive
        in rows
    ]


def _s(ms: float | None) -> float | None:
    """A stored round-trip time (milliseconds) in seconds, as the lamps count it."""
    return None if ms is None else ms / 1000


async def load_qualify_stats(session_factory: SessionFactory, *, line_id: int | None = None) -> list[Reachability]:
    """Every stored ping history (or one line's), keyed like the bindings they belong to."""
    s, b = QualifyStats, BindingTable
    stmt = (
        select(b.line_id, b.contact_uri, s.sent, s.lost, s.consecutive_lost, s.first_lost_at, s.last_sent_at,
               s.last_reply_at, s.last_rtt_ms, s.avg_rtt_ms, s.history)
        .join(b, b.id == s.binding_id)
        .order_by(b.line_id, b.contact_uri)
    )
    if line_id is not None:
        stmt = stmt.where(b.line_id == line_id)
    async with session_factory() as session:
        rows = (await session.execute(stmt)).all()
    return [
        Reachability(
            line_id=lid,
            contact=contact,
            sent=sent,
            lost=lost,
            consecutive_lost=consecutive,
            first_lost_at=_epoch(first_lost),
            last_sent_at=_epoch(last_sent),
            last_reply_at=_epoch(last_reply),
            last_rtt=_s(last_rtt),
            avg_rtt=_s(avg_rtt),
            history=tuple(_s(x) for x in history or ()),
        )
        for lid, contact, sent, lost, consecutive, first_lost, last_sent, last_reply, last_rtt, avg_rtt, history in rows
    ]
