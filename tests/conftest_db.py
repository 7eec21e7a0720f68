"""Database fixtures for the whole suite (loaded by tests/conftest.py as a plugin).

Every test that uses ``db_url`` or ``migrated_db`` runs twice: on SQLite (a file in
the test's tmp dir) and on PostgreSQL (a fresh database per test, dropped after).

PostgreSQL comes from ``SOFTSWITCH_TEST_PG_URL`` (a base URL such as
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``; the database part is
replaced per test). Without it, ``scripts/ensure-postgres.sh`` is run once per
session to find or start a server. If no server can be had, the PostgreSQL half of
the tests FAILS: a CI run that silently skipped half its database coverage would
look green while testing nothing of production.

Speed: migrations run once per session per backend into a template (a PostgreSQL
template database, a SQLite file). A SQLite ``migrated_db`` is a copy of the file.
On PostgreSQL, CREATE DATABASE costs 0.3–0.6 s (it fsyncs), so migrated databases
are recycled: after each test every table is emptied with DELETE (TRUNCATE fsyncs
too) and sequences reset, and the database goes back to a pool; one that cannot be
cleaned (locks held, schema changed) is dropped instead.

Fixtures: ``db_backend`` ("sqlite" | "postgresql"), ``db_url`` (empty database),
``migrated_db`` (``MigratedDb(url, engine, session_factory)`` at head),
``secret_box`` (a SecretBox with a fresh key), ``pg_base_url`` (session).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from switch.store import models as _models  # noqa: F401  # all tables on Base.metadata
from switch.store.base import Base
from switch.store.crypto import SecretBox, generate_key
from switch.store.engine import SessionFactory, make_engine, make_session_factory, normalise_url
from switch.store.migrate import head_revision, upgrade

__all__ = ["BACKENDS", "PG_URL_ENV", "MigratedDb"]

T = TypeVar("T")

BACKENDS = ("sqlite", "postgresql")
PG_URL_ENV = "SOFTSWITCH_TEST_PG_URL"
_ROOT = Path(__file__).resolve().parent.parent
_ENSURE_SCRIPT = _ROOT / "scripts" / "ensure-postgres.sh"
_RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"


class MigratedDb(NamedTuple):
    url: str
    engine: AsyncEngine
    session_factory: SessionFactory


class _LoopThread:
    """An event loop on its own thread, for session-wide async work (admin connection,
    template migrations) that must not live on any test's function-scoped loop."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-db-admin", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def _with_database(base_url: str, name: str) -> str:
    return make_url(normalise_url(base_url)).set(database=name).render_as_string(hide_password=False)


class _PgAdmin:
    """Creates and drops per-test databases over one admin connection."""

    def __init__(self, base_url: str, loop: _LoopThread) -> None:
        self.base_url = normalise_url(base_url)
        self._loop = loop
        u = make_url(self.base_url)
        self._conn: asyncpg.Connection = loop.run(
            asyncpg.connect(
                user=u.username or "postgres",
                password=u.password,
                host=u.host or "127.0.0.1",
                port=u.port or 5432,
                database=u.database or "postgres",
                timeout=10,
            ),
            timeout=30,
        )

    def url(self, name: str) -> str:
        return _with_database(self.base_url, name)

    def create(self, name: str, template: str | None = None) -> str:
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        self._loop.run(self._conn.execute(sql))
        return self.url(name)

    def drop(self, name: str) -> None:
        async def _drop() -> None:
            await self._conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            await self._conn.execute(f'DROP DATABASE IF EXISTS "{name}"')

        self._loop.run(_drop())

    def close(self) -> None:
        self._loop.run(self._conn.close())


def _find_pg_base_url() -> str:
    url = os.environ.get(PG_URL_ENV)
    if url:
        return url
    try:
        proc = subprocess.run(
            ["bash", str(_ENSURE_SCRIPT)], capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"PostgreSQL tests cannot run: {_ENSURE_SCRIPT} failed to run: {exc}", pytrace=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"PostgreSQL tests cannot run: no server (set {PG_URL_ENV}, or fix {_ENSURE_SCRIPT}; "
            f"exit {proc.returncode}):\n{proc.stderr.strip()}",
            pytrace=False,
        )
    return lines[-1].strip()


@pytest.fixture(scope="session")
def _db_loop() -> Iterator[_LoopThread]:
    loop = _LoopThread()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """Base URL of the test PostgreSQL server (fails the requesting tests if none)."""
    return _find_pg_base_url()


@pytest.fixture(scope="session")
def _pg_admin(pg_base_url: str, _db_loop: _LoopThread) -> Iterator[_PgAdmin]:
    try:
        admin = _PgAdmin(pg_base_url, _db_loop)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL tests cannot run: cannot connect to {pg_base_url}: {exc}", pytrace=False)
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def _pg_template(_pg_admin: _PgAdmin, _db_loop: _LoopThread) -> Iterator[str]:
    name = f"sst_tmpl_{_RUN_ID}"
    url = _pg_admin.create(name)
    try:
        _db_loop.run(upgrade(url))
        yield name
    finally:
        _pg_admin.drop(name)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory, _db_loop: _LoopThread) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    _db_loop.run(upgrade(f"sqlite+aiosqlite:///{path}"))
    # The last connection closing checkpoints the WAL into the main file; copying
    # only that file must be enough.
    assert not path.with_name(path.name + "-wal").exists() or path.with_name(path.name + "-wal").stat().st_size == 0
    return path


class _PgPool:
    """Clean migrated databases ready for reuse."""

    def __init__(self, admin: _PgAdmin, template: str) -> None:
        self._admin = admin
        self._template = template
        self._free: list[str] = []
        self._all: set[str] = set()

    def acquire(self) -> tuple[str, str]:
        if self._free:
            name = self._free.pop()
        else:
            name = _new_db_name()
            self._admin.create(name, template=self._template)
            self._all.add(name)
        return name, self._admin.url(name)

    def release(self, name: str, clean: bool) -> None:
        if clean:
            self._free.append(name)
        else:
            self._all.discard(name)
            self._admin.drop(name)

    def close(self) -> None:
        for name in sorted(self._all):
            self._admin.drop(name)


async def _reset_pg(engine: AsyncEngine) -> bool:
    """Empty every table and restart sequences; True if the database is reusable."""
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            for table in reversed(Base.metadata.sorted_tables):
                await conn.execute(table.delete())
            await conn.execute(
                text(
                    "SELECT setval(c.oid::regclass, 1, false) FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE c.relkind = 'S' AND n.nspname = current_schema()"
                )
            )
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
            return list(versions) == [head_revision()]
    except (TimeoutError, DBAPIError, OSError):
        return False


@pytest.fixture(scope="session")
def _pg_pool(_pg_admin: _PgAdmin, _pg_template: str) -> Iterator[_PgPool]:
    pool = _PgPool(_pg_admin, _pg_template)
    yield pool
    pool.close()


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """Which database this test instance runs on."""
    return str(request.param)


def _new_db_name() -> str:
    return f"sst_{_RUN_ID}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def db_url(db_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an EMPTY database (no schema); dropped after the test. The test must
    dispose of any engine it creates."""
    if db_backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    admin: _PgAdmin = request.getfixturevalue("_pg_admin")
    name = _new_db_name()
    url = admin.create(name)
    try:
        yield url
    finally:
        admin.drop(name)


@pytest.fixture
async def migrated_db(db_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MigratedDb]:
    """A database at the head revision, with an engine and session factory on the
    test's event loop. Use this OR ``db_url`` in a test, not both (they are two
    different databases)."""
    pool: _PgPool | None = None
    if db_backend == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "migrated.db"
        shutil.copyfile(template, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        pool = request.getfixturevalue("_pg_pool")
        pg_name, url = pool.acquire()
    engine = make_engine(url)
    try:
        yield MigratedDb(url, engine, make_session_factory(engine))
    finally:
        clean = pool is not None and await _reset_pg(engine)
        await engine.dispose()
        if pool is not None:
            pool.release(pg_name, clean)


@pytest.fixture
def secret_box() -> SecretBox:
    return SecretBox(generate_key())
