"""A real database outage for the writers' error handling, on either backend.

* **SQLite**: another connection holds an exclusive transaction on the file, so
  every write of the switch's writer waits its ``busy_timeout`` and fails with
  "database is locked" -- what a backup tool or a stuck process does in production.
* **PostgreSQL**: the test's own database stops accepting connections and every
  session on it is terminated (``ALTER DATABASE … ALLOW_CONNECTIONS false`` and
  ``pg_terminate_backend``), which is what a restart looks like to a client: open
  connections die, new ones are refused. The shared server itself keeps running;
  ``tests/store/test_outage_under_load.py`` stops and restarts a private one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

from switch.store.engine import normalise_url

__all__ = ["SQLITE_BUSY_TIMEOUT", "outage"]

#: busy_timeout for writers under test: a locked file fails a write after this long
SQLITE_BUSY_TIMEOUT = 0.05


@asynccontextmanager
async def outage(db_url: str) -> AsyncIterator[None]:
    """While inside, the database at ``db_url`` refuses every write; afterwards it is back."""
    u = make_url(normalise_url(db_url))
    if u.get_backend_name() == "sqlite":
        assert u.database
        locker = sqlite3.connect(u.database, isolation_level=None, timeout=10)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        return
    name = u.database
    admin = await asyncpg.connect(u.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name
        )
        try:
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()
