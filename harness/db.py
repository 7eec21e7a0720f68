"""One-off SQL against the switch's database, through the same async drivers the switch uses.

Each call opens an engine, runs one statement in its own transaction (committed) and
disposes of the engine, so a test or a benchmark can look at what the switch wrote
without sharing a connection pool with anything.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

__all__ = ["count_rows", "run_sql", "unix_socket_url", "wait_for_rows"]


def run_sql(db_url: str, statement: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run ``statement`` and commit: the rows as dicts for a SELECT, ``[]`` for anything else."""
    async def go() -> list[dict[str, Any]]:
        engine = create_async_engine(db_url)
        try:
            async with engine.begin() as conn:
                res = await conn.execute(text(statement), params or {})
                return [dict(r._mapping) for r in res] if res.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(go())


def wait_for_rows(db_url: str, statement: str, count: int, *, params: dict[str, Any] | None = None,
                  timeout: float = 5.0, settle: float = 0.0) -> list[dict[str, Any]]:
    """The rows of a SELECT once there are at least ``count`` (or whatever is there after ``timeout`` s).

    For what the switch writes a moment later (CDRs are committed in batches when calls end).
    ``settle``: wait that long after reaching ``count`` and read again, to see extra rows (a call
    multiplied by a loop) that a bare "at least" would miss.
    """
    async def go() -> list[dict[str, Any]]:
        engine = create_async_engine(db_url)

        async def read() -> list[dict[str, Any]]:
            async with engine.connect() as conn:
                return [dict(r._mapping) for r in await conn.execute(text(statement), params or {})]

        try:
            deadline = time.monotonic() + timeout
            rows = await read()
            while len(rows) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                rows = await read()
            if settle:
                await asyncio.sleep(settle)
                rows = await read()
            return rows
        finally:
            await engine.dispose()

    return asyncio.run(go())


def count_rows(db_url: str, sql: str, params: dict[str, Any] | None = None) -> int:
    """The single number a ``SELECT count(*) ...`` returns."""
    async def go() -> int:
        engine = create_async_engine(db_url)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text(sql), params or {})).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(go())


def unix_socket_url(db_url: str) -> str:
    """The same PostgreSQL database, reached over the server's unix socket.

    A server listening on 127.0.0.1 in the root namespace is unreachable from a
    private network namespace, but a unix socket is a file: it is reachable from
    every network namespace on the host. Abstract sockets (``@name``) are per
    namespace and relative directories are ambiguous, so only absolute paths count.
    """
    async def probe(url: str) -> tuple[str, str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                dirs = str((await conn.execute(text("SHOW unix_socket_directories"))).scalar_one())
                port = str((await conn.execute(text("SHOW port"))).scalar_one())
                return dirs, port
        finally:
            await engine.dispose()

    dirs, port = asyncio.run(probe(db_url))
    usable = [d.strip() for d in dirs.split(",") if d.strip().startswith("/")]
    if not usable:
        raise RuntimeError(
            f"PostgreSQL at {db_url} has no unix socket in a directory (unix_socket_directories={dirs!r})"
        )
    u = make_url(db_url)
    # URL.create, not u.set(host=None): set() treats None as "leave unchanged".
    rendered = URL.create(
        u.drivername, username=u.username, password=u.password, database=u.database,
        query={**u.query, "host": usable[0], "port": port},
    ).render_as_string(hide_password=False)
    try:
        asyncio.run(probe(rendered))  # same file from any namespace: checking here is enough
    except Exception as exc:  # noqa: BLE001  # any driver error: report it with the URL
        raise RuntimeError(f"cannot log in over the unix socket {rendered}: {exc!r}") from exc
    return rendered
