"""The database writes on the hot path (bindings, lamps): one round trip per batch.

Measured (see bench/): through the async ORM a batch commit took 1-2 s under
load. Each DBAPI call is an event-loop round trip, a commit needs about ten,
and under load every loop iteration waits behind hundreds of datagrams; with
aiosqlite every row step also hands the GIL between threads. So the
registrar's hot path talks to the driver directly:

* **SQLite** — a dedicated thread with its own ``sqlite3`` connection. The
  whole batch (DELETE of dropped contacts + multi-row UPSERT + COMMIT) is one
  call into that thread; sqlite3 releases the GIL while SQLite works, so the event loop keeps
  serving SIP meanwhile. WAL with synchronous=NORMAL: a committed batch
  survives a process crash (``kill -9``).
* **PostgreSQL** — asyncpg, one transaction with a single DELETE and a
  prepared ``executemany`` UPSERT.

A refreshed binding is updated in place (``ON CONFLICT (line_id, contact_uri)``),
not deleted and inserted again: its row id stays, so its ``qualify_stats`` row
(the ping history, written by ``write_qualify``) survives refreshes, and SQLite
touches one row and one index entry instead of three of each.

Rows are written exactly as the SQLAlchemy models store them (UTC timestamps,
naive ISO text on SQLite; enum values as text; JSON ``null`` for ``path``), so
the ORM reads them back unchanged. The schema itself stays owned by Alembic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from switch.store.engine import normalise_url
from switch.store.rows import Binding, LampEventRow, LampRow, LineChange, Reachability

__all__ = ["HotStore", "PostgresHotStore", "SqliteHotStore", "make_hot_store"]

log = logging.getLogger(__name__)

_COLUMNS = (
    "line_id", "contact_uri", "received_host", "received_port", "transport", "expires_at", "call_id",
    "cseq", "user_agent", "instance", "reg_id", "q", "path", "registered_at", "last_keepalive",
)
#: a refresh rewrites every column but the key
_UPSERT_TAIL = " ON CONFLICT (line_id, contact_uri) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("line_id", "contact_uri")
)
#: PostgreSQL array types of ``_COLUMNS`` without ``path`` (always NULL here), for unnest()
_PG_ARRAY_TYPES = (
    "int", "text", "text", "int", "text", "timestamptz", "text", "int", "text", "text", "int", "float8",
    "timestamptz", "timestamptz",
)
_PATH_INDEX = _COLUMNS.index("path")


def _columns_of(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows of ``_row(b, False)`` as one list per column (``path`` left out), for the unnest() upsert."""
    cols = [list(c) for c in zip(*rows, strict=True)]
    del cols[_PATH_INDEX]
    return cols


_QUALIFY_COLUMNS = (
    "sent", "lost", "consecutive_lost", "first_lost_at", "last_sent_at", "last_reply_at", "last_rtt_ms",
    "avg_rtt_ms", "history",
)
_QUALIFY_UPSERT_TAIL = " ON CONFLICT (binding_id) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in _QUALIFY_COLUMNS
)


class HotStore(Protocol):
    async def open(self) -> None: ...

    async def replace_bindings(self, changes: Sequence[LineChange]) -> None: ...

    async def write_lamps(self, states: Sequence[LampRow], events: Sequence[LampEventRow]) -> None: ...

    async def write_qualify(self, rows: Sequence[Reachability]) -> None: ...

    async def insert_call_records(self, rows: Sequence[dict[str, Any]]) -> None: ...

    async def release_memory(self) -> None: ...

    async def close(self) -> None: ...


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def _sqlite_value(v: Any) -> Any:
    """As SQLAlchemy stores it on SQLite: naive UTC ISO text, enum values as text."""
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return getattr(v, "value", v)


def _pg_value(v: Any) -> Any:
    return getattr(v, "value", v) if not isinstance(v, datetime) else v


#: "YYYY-MM-DD HH:MM:SS" by epoch second: a batch's timestamps share a few seconds
_SECOND_TEXT: dict[int, str] = {}


def _naive(epoch: float) -> str:
    """``_utc(epoch)`` as naive ISO text, exactly as datetime renders it, at a quarter of the cost.

    Three per binding on the registration hot path; building a datetime for each
    was 3 % of the event loop at 3,000 registrations/s.
    """
    frac, whole = math.modf(epoch)
    sec = int(whole)
    us = round(frac * 1e6)  # datetime.fromtimestamp rounds half to even too
    if us >= 1_000_000:
        sec, us = sec + 1, us - 1_000_000
    elif us < 0:
        sec, us = sec - 1, us + 1_000_000
    text = _SECOND_TEXT.get(sec)
    if text is None:
        if len(_SECOND_TEXT) >= 4096:
            _SECOND_TEXT.clear()
        text = _SECOND_TEXT[sec] = _utc(sec).strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{us:06d}"


def _pow2_parts(n: int, most: int) -> list[tuple[int, int]]:
    """(start, size) covering ``n`` rows in chunks whose sizes are powers of two, none over ``most``.

    The sqlite3 module keeps every statement text it prepares (128 per connection): one multi-row
    statement per batch size kept ~6 MiB of prepared statements of thousands of parameters after
    a burst of calls. Power-of-two chunks make a handful of texts, prepared once and reused.
    """
    top = 1 << (max(most, 1).bit_length() - 1)
    parts = []
    i = 0
    while i < n:
        size = min(top, 1 << ((n - i).bit_length() - 1))
        parts.append((i, size))
        i += size
    return parts


def _padded(items: list[Any]) -> list[Any]:
    """``items`` repeated at the end up to a power-of-two length: for ``IN (…)`` lists, where a
    repeated member changes nothing and the statement text stays one of a few (see _pow2_parts)."""
    size = 1 << (len(items) - 1).bit_length() if items else 0
    return items + [items[-1]] * (size - len(items)) if items else items


def _values(width: int, rows: int) -> str:
    """``(?,?,…),(?,?,…)…``: the placeholders of a multi-row VALUES list."""
    return ",".join(["(" + ",".join("?" * width) + ")"] * rows)


def _ms(seconds: float | None) -> float | None:
    """A round-trip time as ``qualify_stats`` keeps it (milliseconds, to the microsecond)."""
    return None if seconds is None else round(seconds * 1000, 3)


def _qualify_values(r: Reachability, naive: bool) -> tuple[Any, ...]:
    def ts(epoch: float) -> Any:
        if not epoch:
            return None
        return _naive(epoch) if naive else _utc(epoch)

    return (
        r.line_id, r.contact, r.sent, r.lost, r.consecutive_lost, ts(r.first_lost_at), ts(r.last_sent_at),
        ts(r.last_reply_at), _ms(r.last_rtt), _ms(r.avg_rtt), json.dumps([_ms(x) for x in r.history]),
    )


def _row(b: Binding, naive: bool) -> tuple[Any, ...]:
    def ts(epoch: float | None) -> Any:
        if not epoch:
            return None
        return _naive(epoch) if naive else _utc(epoch)

    return (
        b.line_id, b.contact, b.received_host, b.received_port, b.transport, ts(b.expires_at), b.call_id,
        b.cseq, b.user_agent or None, b.instance or None, b.reg_id or None, b.q, "null" if naive else None,
        ts(b.registered_at or b.expires_at), ts(b.last_seen),
    )


def _log_gone(n: int) -> None:
    log.warning("bindings: %d change(s) of deleted lines left out of a batch", n)


class SqliteHotStore:
    def __init__(self, path: str, *, busy_timeout: float = 10.0) -> None:
        self._path = path
        #: how long a write waits for another connection's lock before it fails (and is retried
        #: or refused by its caller): the registrar answers 500, the CDR writer keeps the rows
        self._busy_ms = int(busy_timeout * 1000)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="binding-writer")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._insert_head = f"INSERT INTO bindings ({', '.join(_COLUMNS)})"

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
        return self._conn

    def _write(self, changes: list[tuple[int, list[str]]], rows: list[tuple[Any, ...]]) -> None:
        """``changes``: (line id, its contacts now) for every line in the batch; ``rows`` their bindings."""
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Contacts a line no longer has. A refresh keeps its contacts, so with 200
            # lines per statement this is a handful of index probes per line.
            for i in range(0, len(changes), 200):
                chunk = changes[i : i + 200]
                ids = _padded([line_id for line_id, _ in chunk])
                kept = _padded([(line_id, c) for line_id, contacts in chunk for c in contacts])
                sql = f"DELETE FROM bindings WHERE line_id IN ({','.join('?' * len(ids))})"
                if kept:
                    sql += f" AND (line_id, contact_uri) NOT IN (VALUES {_values(2, len(kept))})"
                conn.execute(sql, [*ids, *(v for pair in kept for v in pair)])
            # One multi-row UPSERT per 500 rows, not executemany: every statement step
            # hands the GIL back and forth with the busy event loop, so fewer steps
            # means a shorter commit (15 columns x 500 rows stays under SQLite's
            # 32766-parameter limit).
            width = len(_COLUMNS)
            for i, size in _pow2_parts(len(rows), 500):
                part = rows[i : i + size]
                conn.execute(f"{self._insert_head} VALUES {_values(width, size)}{_UPSERT_TAIL}",
                             [v for r in part for v in r])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def open(self) -> None:
        """Connect now, so a database we cannot write stops start-up instead of every REGISTER."""
        await asyncio.get_running_loop().run_in_executor(self._executor, lambda: self._connect().execute("SELECT 1 FROM bindings LIMIT 1"))

    def _existing_lines(self, line_ids: list[int]) -> set[int]:
        conn = self._connect()
        found: set[int] = set()
        for i in range(0, len(line_ids), 500):
            chunk = line_ids[i : i + 500]
            found.update(r[0] for r in conn.execute(f"SELECT id FROM lines WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def _write_checked(self, changes: list[tuple[int, list[str]]], rows: list[tuple[Any, ...]]) -> None:
        try:
            self._write(changes, rows)
        except sqlite3.IntegrityError:
            alive = self._existing_lines([line_id for line_id, _ in changes])
            if len(alive) == len({line_id for line_id, _ in changes}):
                raise  # not a deleted line: the batch's own fault
            _log_gone(len(changes) - sum(1 for line_id, _ in changes if line_id in alive))
            self._write([c for c in changes if c[0] in alive], [r for r in rows if r[0] in alive])

    async def replace_bindings(self, changes: Sequence[LineChange]) -> None:
        """Store each line's new binding set in one transaction. Lines deleted meanwhile are
        left out (one stale line must not fail everyone's REGISTER)."""
        keep = [(c.line_id, [b.contact for b in c.bindings]) for c in changes]
        rows = [_row(b, True) for c in changes for b in c.bindings]
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write_checked, keep, rows)

    def _write_qualify(self, rows: list[Reachability]) -> None:
        conn = self._connect()
        # VALUES columns are column1..columnN; "WHERE true" settles SQLite's upsert-after-join ambiguity.
        picks = ", ".join(f"v.column{3 + i}" for i in range(len(_QUALIFY_COLUMNS)))
        values = _values(2 + len(_QUALIFY_COLUMNS), len(rows))
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                f"INSERT INTO qualify_stats (binding_id, {', '.join(_QUALIFY_COLUMNS)}) "
                f"SELECT b.id, {picks} FROM (VALUES {values}) AS v "
                "JOIN bindings b ON b.line_id = v.column1 AND b.contact_uri = v.column2 WHERE true"
                f"{_QUALIFY_UPSERT_TAIL}",
                [x for r in rows for x in _qualify_values(r, naive=True)],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def write_qualify(self, rows: Sequence[Reachability]) -> None:
        """Upsert ping histories; rows whose binding is gone by now are skipped.

        One transaction per (at most) 256 rows: binding commits queue behind this on the same
        writer thread, and 10,000 histories in one go would hold them up for ~0.1 s.
        """
        loop = asyncio.get_running_loop()
        for i, size in _pow2_parts(len(rows), 500):
            await loop.run_in_executor(self._executor, self._write_qualify, list(rows[i : i + size]))

    def _write_lamps(self, states: list[LampRow], events: list[LampEventRow]) -> None:
        """Multi-row statements, as ``_write``: ``executemany`` steps once per row, and each
        step hands the GIL back and forth with the busy event loop. A storm's first
        registrations light ~one lamp each; with ``executemany`` the lamp rows held the
        writer thread (and every binding commit queued behind it) for seconds: a quarter
        of the switch's samples in py-spy under ``bench_register.py --overload 2``."""
        conn = self._connect()
        latest = [(r.adapter_id, r.lamp, r.state, r.reason, _naive(r.since))
                  for r in {(r.adapter_id, r.lamp): r for r in states}.values()]
        rows = [(e.adapter_id, e.lamp, e.old_state, e.new_state, e.reason, _naive(e.at)) for e in events]
        conn.execute("BEGIN IMMEDIATE")
        try:
            for i, size in _pow2_parts(len(latest), 500):
                part = latest[i : i + size]
                conn.execute(
                    f"INSERT INTO adapter_lamps (adapter_id, lamp, state, reason, since) VALUES {_values(5, len(part))} "
                    "ON CONFLICT (adapter_id, lamp) DO UPDATE SET state = excluded.state, reason = excluded.reason, "
                    "since = excluded.since",
                    [v for r in part for v in r],
                )
            for i, size in _pow2_parts(len(rows), 500):
                chunk = rows[i : i + size]
                conn.execute(
                    "INSERT INTO lamp_events (adapter_id, lamp, old_state, new_state, reason, at) "
                    f"VALUES {_values(6, len(chunk))}",
                    [v for r in chunk for v in r],
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def write_lamps(self, states: Sequence[LampRow], events: Sequence[LampEventRow]) -> None:
        """Upsert the lamps' current states (the last one per lamp wins) and append their events."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write_lamps, list(states), list(events))

    def _insert_cdrs(self, rows: list[dict[str, Any]]) -> None:
        conn = self._connect()
        cols = list(rows[0])
        head = f"INSERT INTO call_records ({', '.join(cols)}) VALUES "
        values = [_sqlite_value(r[c]) for r in rows for c in cols]
        # multi-row statements, not executemany (see _write_lamps); under SQLite's 32766 parameters
        width = len(cols)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for i, size in _pow2_parts(len(rows), 30_000 // width):
                conn.execute(head + _values(width, size), values[i * width : (i + size) * width])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def insert_call_records(self, rows: Sequence[dict[str, Any]]) -> None:
        """One transaction for a batch of CDRs (see switch.services.cdr)."""
        if rows:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._insert_cdrs, list(rows))

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def release_memory(self) -> None:
        """Close the connection while traffic is light; the next write opens a new one.

        A burst of calls or registrations grows the connection's page cache and its
        cache of prepared statements (the multi-row UPSERTs of up to 500 rows are the
        biggest): ~4 MiB after the call benchmark, kept for as long as the connection
        lives. Closing it hands all of that back (``PRAGMA shrink_memory`` frees only
        the pages); reopening costs the next batch about a millisecond.
        """
        if not self._closed:  # a collection due while the switch stops
            await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)

    async def close(self) -> None:
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)
        self._executor.shutdown(wait=True)


class PostgresHotStore:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: Any = None
        # One set-based statement per batch (arrays, unnest) instead of executemany's statement per
        # row: a registration storm's batches of 2,000 bindings cost PostgreSQL (on the same cores
        # as the switch) one plan and one index pass instead of 2,000.
        casts = [f"${i + 1}::{t}[]" for i, t in enumerate(_PG_ARRAY_TYPES)]
        picks = ", ".join("NULL" if c == "path" else f"v.{c}" for c in _COLUMNS)
        self._upsert = (
            f"INSERT INTO bindings ({', '.join(_COLUMNS)}) SELECT {picks} FROM unnest({', '.join(casts)}) "
            f"AS v({', '.join(c for c in _COLUMNS if c != 'path')})" + _UPSERT_TAIL
        )

    async def open(self) -> None:
        """Connect now, so a database we cannot write stops start-up instead of every REGISTER."""
        pool = await self._acquire_pool()
        async with pool.acquire() as conn:
            await conn.execute("SELECT 1 FROM bindings LIMIT 1")

    async def _acquire_pool(self) -> Any:
        import asyncpg

        if self._pool is None:
            self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=2)
        return self._pool

    async def write_lamps(self, states: Sequence[LampRow], events: Sequence[LampEventRow]) -> None:
        """Upsert the lamps' current states (the last one per lamp wins) and append their events."""
        pool = await self._acquire_pool()
        latest = {(r.adapter_id, r.lamp): r for r in states}
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.executemany(
                    "INSERT INTO adapter_lamps (adapter_id, lamp, state, reason, since) VALUES ($1, $2, $3, $4, $5) "
                    "ON CONFLICT (adapter_id, lamp) DO UPDATE SET state = excluded.state, reason = excluded.reason, "
                    "since = excluded.since",
                    [(r.adapter_id, r.lamp, r.state, r.reason, _utc(r.since)) for r in latest.values()],
                )
                await conn.executemany(
                    "INSERT INTO lamp_events (adapter_id, lamp, old_state, new_state, reason, at) "
                    "VALUES ($1, $2, $3, $4, $5, $6)",
                    [(e.adapter_id, e.lamp, e.old_state, e.new_state, e.reason, _utc(e.at)) for e in events],
                )

    async def insert_call_records(self, rows: Sequence[dict[str, Any]]) -> None:
        """One transaction for a batch of CDRs (see switch.services.cdr)."""
        if not rows:
            return
        pool = await self._acquire_pool()
        cols = list(rows[0])
        sql = f"INSERT INTO call_records ({', '.join(cols)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))})"
        values = [[_pg_value(r[c]) for c in cols] for r in rows]
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.executemany(sql, values)

    async def replace_bindings(self, changes: Sequence[LineChange]) -> None:
        """Store each line's new binding set in one transaction. Lines deleted meanwhile are
        left out (one stale line must not fail everyone's REGISTER)."""
        import asyncpg

        pool = await self._acquire_pool()
        try:
            await self._replace(pool, changes)
        except asyncpg.ForeignKeyViolationError:
            line_ids = list({c.line_id for c in changes})
            async with pool.acquire() as conn:
                alive = {r[0] for r in await conn.fetch("SELECT id FROM lines WHERE id = ANY($1::int[])", line_ids)}
            if len(alive) == len(line_ids):
                raise
            _log_gone(sum(1 for c in changes if c.line_id not in alive))
            await self._replace(pool, [c for c in changes if c.line_id in alive])

    async def _replace(self, pool: Any, changes: Sequence[LineChange]) -> None:
        line_ids = [c.line_id for c in changes]
        kept = [(c.line_id, b.contact) for c in changes for b in c.bindings]
        rows = [_row(b, False) for c in changes for b in c.bindings]
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute(
                    "DELETE FROM bindings b WHERE b.line_id = ANY($1::int[]) AND NOT EXISTS "
                    "(SELECT 1 FROM unnest($2::int[], $3::text[]) AS k(line_id, contact) "
                    "WHERE k.line_id = b.line_id AND k.contact = b.contact_uri)",
                    line_ids, [k[0] for k in kept], [k[1] for k in kept],
                )
                if rows:
                    # One row per (line, contact): ON CONFLICT cannot touch a row twice in a statement.
                    last = {(r[0], r[1]): r for r in rows}
                    await conn.execute(self._upsert, *_columns_of(list(last.values())))

    async def write_qualify(self, rows: Sequence[Reachability]) -> None:
        """Upsert ping histories; rows whose binding is gone by now are skipped."""
        if not rows:
            return
        pool = await self._acquire_pool()
        cols = list(zip(*(_qualify_values(r, naive=False) for r in rows), strict=True))
        async with pool.acquire() as conn:
            await conn.execute(
                f"INSERT INTO qualify_stats (binding_id, {', '.join(_QUALIFY_COLUMNS)}) "
                f"SELECT b.id, {', '.join(f'v.{c}' for c in _QUALIFY_COLUMNS[:-1])}, v.history::jsonb "
                "FROM unnest($1::int[], $2::text[], $3::int[], $4::int[], $5::int[], $6::timestamptz[], "
                "$7::timestamptz[], $8::timestamptz[], $9::float8[], $10::float8[], $11::text[]) "
                f"AS v(line_id, contact, {', '.join(_QUALIFY_COLUMNS)}) "
                "JOIN bindings b ON b.line_id = v.line_id AND b.contact_uri = v.contact"
                f"{_QUALIFY_UPSERT_TAIL}",
                *(list(c) for c in cols),
            )

    async def release_memory(self) -> None:
        """Replace the pool's connections at their next use (each caches its prepared statements)."""
        if self._pool is not None:
            await self._pool.expire_connections()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def make_hot_store(url: str, *, busy_timeout: float = 10.0) -> SqliteHotStore | PostgresHotStore:
    """The writer for ``url``; ``busy_timeout`` (SQLite) is how long a write waits for a lock."""
    u = make_url(normalise_url(url))
    if u.get_backend_name() == "sqlite":
        if not u.database or u.database == ":memory:":
            raise ValueError("the registrar needs a file database (bindings must survive restarts)")
        return SqliteHotStore(u.database, busy_timeout=busy_timeout)
    dsn = u.set(drivername="postgresql").render_as_string(hide_password=False)
    return PostgresHotStore(dsn)
