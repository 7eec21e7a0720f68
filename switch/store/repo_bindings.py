"""Registration bindings: write-through storage for the location service.

The registrar keeps bindings in memory and writes every change here *before* it
answers 200 (Kamailio usrloc ``db_mode`` write-through), so a restart forgets
nothing. To keep up with REGISTER storms it groups the changes of many concurrent
REGISTERs into one ``save_bindings`` call: one transaction, one fsync.

Records go in and out as frozen dataclasses so the services never hold ORM objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from switch.store.base import utcnow
from switch.store.engine import SessionFactory, write_session
from switch.store.models import Binding, Line, QualifyStats, Transport

__all__ = [
    "BindingChange",
    "BindingRecord",
    "QualifyInfo",
    "RemoveBinding",
    "RemoveLineBindings",
    "SaveBinding",
    "delete_expired",
    "load_all_bindings",
    "load_qualify_stats",
    "save_bindings",
    "touch_keepalives",
]

#: Rows per INSERT … ON CONFLICT statement: 15 columns × 500 stays well below the
#: bind-parameter limits of SQLite (32766) and asyncpg (32767).
_CHUNK = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingRecord:
    """One registered contact of a line. ``(line_id, contact)`` identifies it."""

    line_id: int
    contact: str
    received_host: str
    received_port: int
    transport: Transport
    expires_at: datetime
    call_id: str
    cseq: int
    user_agent: str | None = None
    instance: str | None = None
    reg_id: int | None = None
    q: float | None = None
    path: tuple[str, ...] = ()
    #: Start of the registration (first REGISTER with this Call-ID); set by the
    #: store when None.
    registered_at: datetime | None = None
    last_keepalive: datetime | None = None


@dataclass(frozen=True, slots=True)
class SaveBinding:
    """Add the binding, or refresh it if ``(line_id, contact)`` exists."""

    record: BindingRecord


@dataclass(frozen=True, slots=True)
class RemoveBinding:
    line_id: int
    contact: str


@dataclass(frozen=True, slots=True)
class RemoveLineBindings:
    """Remove every binding of a line (``Contact: *``, RFC 3261 §10.3 step 6)."""

    line_id: int


BindingChange = SaveBinding | RemoveBinding | RemoveLineBindings


def _record(b: Binding) -> BindingRecord:
    return BindingRecord(
        line_id=b.line_id,
        contact=b.contact_uri,
        received_host=b.received_host,
        received_port=b.received_port,
        transport=b.transport,
        expires_at=b.expires_at,
        call_id=b.call_id,
        cseq=b.cseq,
        user_agent=b.user_agent,
        instance=b.instance,
        reg_id=b.reg_id,
        q=b.q,
        path=tuple(b.path or ()),
        registered_at=b.registered_at,
        last_keepalive=b.last_keepalive,
    )


def _row(r: BindingRecord, now: datetime) -> dict[str, Any]:
    return {
        "line_id": r.line_id,
        "contact_uri": r.contact,
        "received_host": r.received_host,
        "received_port": r.received_port,
        "transport": Transport(r.transport),
        "expires_at": r.expires_at,
        "call_id": r.call_id,
        "cseq": r.cseq,
        "user_agent": r.user_agent,
        "instance": r.instance,
        "reg_id": r.reg_id,
        "q": r.q,
        "path": list(r.path) if r.path else None,
        "registered_at": r.registered_at or now,
        "last_keepalive": r.last_keepalive,
    }


async def load_all_bindings(
    session_factory: SessionFactory, *, now: datetime | None = None, line_id: int | None = None
) -> list[BindingRecord]:
    """All bindings (optionally only those still valid at ``now``, or of one line),
    ordered by line and contact: the location service loads this at startup."""
    stmt = select(Binding).order_by(Binding.line_id, Binding.contact_uri)
    if now is not None:
        stmt = stmt.where(Binding.expires_at > now)
    if line_id is not None:
        stmt = stmt.where(Binding.line_id == line_id)
    async with session_factory() as session:
        return [_record(b) for b in (await session.execute(stmt)).scalars()]


def _net_changes(
    changes: Iterable[BindingChange],
) -> tuple[set[int], dict[tuple[int, str], BindingRecord | None]]:
    """Collapse a batch to its net effect: lines to clear first, then per binding the
    last word (a record to upsert, or None to delete). Later changes win, as if the
    batch had been applied one by one; collapsing also keeps a key from appearing
    twice in one INSERT … ON CONFLICT, which PostgreSQL refuses."""
    clear: set[int] = set()
    final: dict[tuple[int, str], BindingRecord | None] = {}
    for change in changes:
        if isinstance(change, SaveBinding):
            final[(change.record.line_id, change.record.contact)] = change.record
        elif isinstance(change, RemoveBinding):
            final[(change.line_id, change.contact)] = None
        else:
            clear.add(change.line_id)
            for key in [k for k in final if k[0] == change.line_id]:
                del final[key]
    return clear, final


def _upsert(dialect: str, rows: list[dict[str, Any]]) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Binding).values(rows)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[Binding.line_id, Binding.contact_uri],
        set_={
            "received_host": new.received_host,
            "received_port": new.received_port,
            "transport": new.transport,
            "expires_at": new.expires_at,
            "call_id": new.call_id,
            "cseq": new.cseq,
            "user_agent": new.user_agent,
            "instance": new.instance,
            "reg_id": new.reg_id,
            "q": new.q,
            "path": new.path,
            # A new Call-ID means the device restarted its registration.
            "registered_at": case(
                (Binding.call_id != new.call_id, new.registered_at), else_=Binding.registered_at
            ),
            "last_keepalive": func.coalesce(new.last_keepalive, Binding.last_keepalive),
        },
    )


async def save_bindings(session_factory: SessionFactory, changes: Sequence[BindingChange]) -> frozenset[int]:
    """Apply a batch of add/refresh/remove changes for many lines in ONE transaction.

    Returns the ids of lines that no longer exist (deleted since the caller looked);
    their changes are skipped so one stale line cannot fail everyone's REGISTER.
    Everything else is committed, or nothing is (an exception propagates).
    """
    clear, final = _net_changes(changes)
    line_ids = clear | {k[0] for k in final}
    if not line_ids:
        return frozenset()
    now = utcnow()
    async with write_session(session_factory) as session:
        existing = set((await session.execute(select(Line.id).where(Line.id.in_(line_ids)))).scalars())
        missing = frozenset(line_ids - existing)
        if clear - missing:
            await session.execute(delete(Binding).where(Binding.line_id.in_(clear - missing)))
        removals: dict[int, list[str]] = {}
        upserts: list[dict[str, Any]] = []
        for (line_id, contact), record in final.items():
            if line_id in missing:
                continue
            if record is None:
                removals.setdefault(line_id, []).append(contact)
            else:
                upserts.append(_row(record, now))
        for line_id, contacts in removals.items():
            await session.execute(
                delete(Binding).where(Binding.line_id == line_id, Binding.contact_uri.in_(contacts))
            )
        dialect = session.get_bind().dialect.name
        for i in range(0, len(upserts), _CHUNK):
            await session.execute(_upsert(dialect, upserts[i : i + _CHUNK]))
    return missing


async def delete_expired(session_factory: SessionFactory, now: datetime) -> list[BindingRecord]:
    """Delete bindings whose ``expires_at`` ≤ ``now`` and return them (for lamp updates)."""
    async with write_session(session_factory) as session:
        expired = (await session.execute(select(Binding).where(Binding.expires_at <= now))).scalars().all()
        if expired:
            ids = [b.id for b in expired]
            for i in range(0, len(ids), _CHUNK):
                await session.execute(delete(Binding).where(Binding.id.in_(ids[i : i + _CHUNK])))
        return [_record(b) for b in expired]


async def touch_keepalives(session_factory: SessionFactory, seen: Sequence[tuple[int, str, datetime]]) -> None:
    """Record keepalives (CRLF pings, RFC 5626 §4.4) as ``(line_id, contact, at)``."""
    if not seen:
        return
    table = cast(Table, Binding.__table__)
    stmt = (
        update(table)
        .where(table.c.line_id == bindparam("b_line"), table.c.contact_uri == bindparam("b_contact"))
        .values(last_keepalive=bindparam("b_at", type_=Binding.last_keepalive.type))
    )
    async with write_session(session_factory) as session:
        await session.execute(stmt, [{"b_line": line_id, "b_contact": contact, "b_at": at} for line_id, contact, at in seen])


# --------------------------------------------------------------------------- qualify


@dataclass(frozen=True, slots=True, kw_only=True)
class QualifyInfo:
    line_id: int
    contact: str
    sent: int
    lost: int
    consecutive_lost: int
    first_lost_at: datetime | None
    last_sent_at: datetime | None
    last_reply_at: datetime | None
    last_rtt_ms: float | None
    avg_rtt_ms: float | None
    history: tuple[float | None, ...]


async def load_qualify_stats(session_factory: SessionFactory, *, line_id: int | None = None) -> list[QualifyInfo]:
    stmt = (
        select(QualifyStats, Binding.line_id, Binding.contact_uri)
        .join(Binding, Binding.id == QualifyStats.binding_id)
        .order_by(Binding.line_id, Binding.contact_uri)
    )
    if line_id is not None:
        stmt = stmt.where(Binding.line_id == line_id)
    async with session_factory() as session:
        return [
            QualifyInfo(
                line_id=lid,
                contact=contact,
                sent=s.sent,
                lost=s.lost,
                consecutive_lost=s.consecutive_lost,
                first_lost_at=s.first_lost_at,
                last_sent_at=s.last_sent_at,
                last_reply_at=s.last_reply_at,
                last_rtt_ms=s.last_rtt_ms,
                avg_rtt_ms=s.avg_rtt_ms,
                history=tuple(s.history or ()),
            )
            for s, lid, contact in (await session.execute(stmt)).all()
        ]
