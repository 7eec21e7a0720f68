"""Registration state across restarts: reads at start-up, and the ping history's rows.

The hot-path writes themselves are in ``hot_store``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select

from switch.store import models as m
from switch.store.engine import SessionFactory
from switch.store.repo_bindings import BindingRecord, load_all_bindings, load_qualify_stats

from .adapter_status import ReachKey, Reachability
from .hot_store import QualifyRow
from .location import Binding


def _epoch(dt: datetime | None) -> float:
    if dt is None:
        return 0.0
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


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def qualify_rows(items: list[tuple[ReachKey, Reachability]]) -> list[QualifyRow]:
    """``qualify_stats`` rows for ping histories (the database keeps milliseconds)."""
    return [
        QualifyRow(
            line_id=line_id,
            contact=contact,
            sent=r.sent,
            lost=r.lost,
            consecutive_lost=r.consecutive_lost,
            first_lost_at=r.first_lost_at,
            last_sent_at=r.last_sent_at,
            last_reply_at=r.last_reply_at,
            last_rtt_ms=_ms(r.last_rtt),
            avg_rtt_ms=_ms(r.avg_rtt),
            history_ms=[_ms(x) for x in r.history],
        )
        for (line_id, contact), r in items
    ]


async def load_reachability(session_factory: SessionFactory) -> list[tuple[ReachKey, Reachability]]:
    """Every stored ping history, for the lamps at start-up."""
    return [
        (
            (q.line_id, q.contact),
            Reachability(
                sent=q.sent,
                lost=q.lost,
                consecutive_lost=q.consecutive_lost,
                first_lost_at=_epoch(q.first_lost_at),
                last_sent_at=_epoch(q.last_sent_at),
                last_reply_at=_epoch(q.last_reply_at),
                last_rtt=_s(q.last_rtt_ms),
                avg_rtt=_s(q.avg_rtt_ms),
                history=[_s(x) for x in q.history],
            ),
        )
        for q in await load_qualify_stats(session_factory)
    ]
