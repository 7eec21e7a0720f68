"""The database writes on the hot path (bindings, lamps): one round trip per batch.

Measured (see bench/): through the async ORM a batch commit took 1-2 s under
load. Each DBAPI call is an event-loop round trip, a commit needs about ten,
and under load every loop iteration waits behind hundreds of datagrams; with
aiosqlite every row step also hands the GIL between threads. So the
registrar's hot path talks to the driver directly:

* **SQLite** — a dedicated thread with its own ``sqlite3`` connection. The
  whole batch (DELETE + executemany INSERT + COMMIT) is one call into that
  thread; sqlite3 releases the GIL while SQLite works, so the event loop keeps
  serving SIP meanwhile. WAL with synchronous=NORMAL: a committed batch
  survives a process crash (``kill -9``).
* **PostgreSQL** — asyncpg, one transaction with a single DELETE and a
  prepared ``executemany`` INSERT.

Rows are written exactly as the SQLAlchemy models store them (UTC timestamps,
naive ISO text on SQLite; enum values as text; JSON ``null`` for ``path``), so
the ORM reads them back unchanged. The schema itself stays owned by Alembic.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from switch.store.engine import normalise_url

from .location import Binding, LineChange

__all__ = ["HotStore", "make_hot_store", "LampRow"]

#: (adapter id, lamp name as stored: PWR/WAN/Tel1/Tel2, old state or None, new state, reason, since epoch, at epoch)
LampRow = tuple[int, str, str | None, str, str, float, float]

_COLUMNS = (
    "line_id", "contact_uri", "received_host", "received_port", "transport", "expires_at", "call_id",
    "cseq", "user_agent", "instance", "reg_id", "q", "path", "registered_at", "last_keepalive",
)


class HotStore(Protocol):
    async def open(self) -> None: ...

    async def replace_bindings(self, changes: Sequence[LineChange]) -> None: ...

    async def write_lamps(self, rows: Sequence[LampRow]) -> None: ...

    async def insert_call_records(self, rows: Sequence[dict[str, Any]]) -> None: ...

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


class SqliteHotStore:
    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="binding-writer")
        self._conn: sqlite3.Connection | None = None
        self._insert_head = f"INSERT INTO bindings ({', '.join(_COLUMNS)})"

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
        return self._conn

    def _write(self, line_ids: list[int], rows: list[tuple[Any, ...]]) -> None:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for i in range(0, len(line_ids), 500):
                ids = line_ids[i : i + 500]
                conn.execute(f"DELETE FROM bindings WHERE line_id IN ({','.join('?' * len(ids))})", ids)
            # One multi-row INSERT per 500 rows, not executemany: every statement step
            # hands the GIL back and forth with the busy event loop, so fewer steps
            # means a shorter commit (15 columns x 500 rows stays under SQLite's
            # 32766-parameter limit).
            width = len(_COLUMNS)
            for i in range(0, len(rows), 500):
                chunk = rows[i : i + 500]
                values = ",".join(["(" + ",".join("?" * width) + ")"] * len(chunk))
                conn.execute(f"{self._insert_head} VALUES {values}", [v for r in chunk for v in r])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def open(self) -> None:
        """Connect now, so a database we cannot write stops start-up instead of every REGISTER."""
        await asyncio.get_running_loop().run_in_executor(self._executor, lambda: self._connect().execute("SELECT 1 FROM bindings LIMIT 1"))

    async def replace_bindings(self, changes: Sequence[LineChange]) -> None:
        line_ids = [c.line_id for c in changes]
        rows = [_row(b, True) for c in changes for b in c.bindings]
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, line_ids, rows)

    def _write_lamps(self, rows: Sequence[LampRow]) -> None:
        conn = self._connect()
        latest = {(r[0], r[1]): r for r in rows}
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO adapter_lamps (adapter_id, lamp, state, reason, since) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (adapter_id, lamp) DO UPDATE SET state = excluded.state, reason = excluded.reason, "
                "since = excluded.since",
                [(a, lamp, new, reason, _naive(since)) for (a, lamp, _o, new, reason, since, _at) in latest.values()],
            )
            conn.executemany(
                "INSERT INTO lamp_events (adapter_id, lamp, old_state, new_state, reason, at) VALUES (?, ?, ?, ?, ?, ?)",
                [(a, lamp, old, new, reason, _naive(at)) for (a, lamp, old, new, reason, _s, at) in rows],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def write_lamps(self, rows: Sequence[LampRow]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write_lamps, list(rows))

    def _insert_cdrs(self, rows: list[dict[str, Any]]) -> None:
        conn = self._connect()
        cols = list(rows[0])
        sql = f"INSERT INTO call_records ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        values = [[_sqlite_value(r[c]) for c in cols] for r in rows]
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(sql, values)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def insert_call_records(self, rows: Sequence[dict[str, Any]]) -> None:
        """One transaction for a batch of CDRs (see switch.services.cdr)."""
        if rows:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._insert_cdrs, list(rows))

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)


class PostgresHotStore:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: Any = None
        self._insert = f"INSERT INTO bindings ({', '.join(_COLUMNS)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(_COLUMNS)))})"

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

    async def write_lamps(self, rows: Sequence[LampRow]) -> None:
        pool = await self._acquire_pool()
        latest = {(r[0], r[1]): r for r in rows}
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.executemany(
                    "INSERT INTO adapter_lamps (adapter_id, lamp, state, reason, since) VALUES ($1, $2, $3, $4, $5) "
                    "ON CONFLICT (adapter_id, lamp) DO UPDATE SET state = excluded.state, reason = excluded.reason, "
                    "since = excluded.since",
                    [(a, lamp, new, reason, _utc(since)) for (a, lamp, _o, new, reason, since, _at) in latest.values()],
                )
                await conn.executemany(
                    "INSERT INTO lamp_events (adapter_id, lamp, old_state, new_state, reason, at) "
                    "VALUES ($1, $2, $3, $4, $5, $6)",
                    [(a, lamp, old, new, reason, _utc(at)) for (a, lamp, old, new, reason, _s, at) in rows],
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
        pool = await self._acquire_pool()
        line_ids = [c.line_id for c in changes]
        rows = [_row(b, False) for c in changes for b in c.bindings]
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("DELETE FROM bindings WHERE line_id = ANY($1::int[])", line_ids)
                if rows:
                    await conn.executemany(self._insert, rows)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def make_hot_store(url: str) -> SqliteHotStore | PostgresHotStore:
    u = make_url(normalise_url(url))
    if u.get_backend_name() == "sqlite":
        if not u.database or u.database == ":memory:":
            raise ValueError("the registrar needs a file database (bindings must survive restarts)")
        return SqliteHotStore(u.database)
    dsn = u.set(drivername="postgresql").render_as_string(hide_password=False)
    return PostgresHotStore(dsn)
