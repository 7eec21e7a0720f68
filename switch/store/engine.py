"""Engines and sessions for the two supported databases.

SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) is production.
Everything that differs between them at the connection level lives here.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.util import await_only
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "SessionFactory",
    "is_sqlite",
    "make_engine",
    "make_session_factory",
    "normalise_url",
    "write_session",
]

SessionFactory = async_sessionmaker[AsyncSession]

#: How long a SQLite writer waits for another process's write transaction (switch,
#: provisioning and the import command may share one file) before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalise_url(url: str) -> str:
    """Accept the URLs people type and return the async-driver form.

    ``/var/lib/ss.db`` or ``ss.db`` → ``sqlite+aiosqlite:///…``;
    ``sqlite:///x`` → ``sqlite+aiosqlite:///x``;
    ``postgresql://``, ``postgres://``, ``postgresql+psycopg2://`` → ``postgresql+asyncpg://``.
    """
    url = url.strip()
    if not url:
        raise ValueError("empty database URL")
    if "://" not in url:
        return "sqlite+aiosqlite:///" + url
    if url.startswith("postgres://"):  # Heroku-style alias SQLAlchemy does not know
        url = "postgresql://" + url[len("postgres://") :]
    try:
        parsed: URL = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(bind: AsyncEngine | AsyncSession) -> bool:
    b = bind.get_bind() if isinstance(bind, AsyncSession) else bind
    return b.dialect.name == "sqlite"


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL, retrying while another connection holds it.

    Changing the journal mode of a fresh file needs an exclusive lock, and SQLite
    answers SQLITE_BUSY at once (no busy handler) when another connection is doing
    the same or is mid-transaction. Switch, provisioning and the import command may
    open a new database together, so the switch waits as a writer would.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if ("locked" not in message and "busy" not in message) or time.monotonic() >= deadline:
                raise
        # The hook runs in SQLAlchemy's greenlet on the event loop: yield, do not block.
        await_only(asyncio.sleep(delay))
        delay = min(delay * 2, 0.1)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers never block the writer. synchronous=NORMAL: in WAL mode a commit
    # survives a crash of the process (kill -9); only an OS crash or power loss can
    # lose the last transactions, which is the usual trade for group-commit speed.
    cursor = dbapi_connection.cursor()
    try:
        # First, so that switching a new file to WAL (which needs a lock) waits too.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def make_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = 10,
    max_overflow: int = 10,
    **kwargs: Any,
) -> AsyncEngine:
    """Create an engine with the per-database settings the service relies on."""
    url = normalise_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        return engine
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # A connection the server closed (restart, idle timeout) is replaced, not
        # handed to a REGISTER that then fails.
        pool_pre_ping=True,
        pool_recycle=1800,
        **kwargs,
    )


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions whose objects stay readable after commit (no lazy load under asyncio)."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def write_session(session_factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session in a transaction that commits on success and rolls back on error.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``: the write lock is
    taken up front (waiting up to the busy timeout), so a transaction that reads and
    then writes cannot fail halfway with SQLITE_BUSY because another process wrote in
    between, and its reads are consistent with its writes. PostgreSQL needs nothing
    special: unique constraints catch the races that matter.
    """
    async with session_factory() as session, session.begin():
        if is_sqlite(session):
            await session.execute(text("BEGIN IMMEDIATE"))
        yield session
