"""Migrations: up from empty, idempotent, reversible, equal to the models, on both databases."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from switch.store.base import NAMING_CONVENTION, Base
from switch.store.crypto import SecretBox
from switch.store.engine import make_engine, make_session_factory
from switch.store.migrate import MIGRATIONS_DIR, _with_connection, current_revision, downgrade, head_revision, upgrade
from tests.conftest_db import MigratedDb

from .helpers import add_line, count

#: Every table of the models (so a new table needs no edit here) plus Alembic's own; the
#: migrations must create exactly these (test_schema_matches_models compares the columns).
EXPECTED_TABLES = set(Base.metadata.tables) | {"alembic_version"}


def _diff(conn: Connection) -> list[object]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(ctx, Base.metadata))


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


#: The newest migration file decides the head: several people add migrations at once, and a
#: hard-coded revision here was a merge conflict for each of them. The chain itself is checked below.
_VERSION_FILES = sorted(p for p in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
HEAD = _VERSION_FILES[-1].name[:4]


def test_head_is_the_newest_file_and_versions_are_packaged() -> None:
    assert head_revision() == HEAD
    versions = MIGRATIONS_DIR / "versions"
    assert (versions / "0001_initial.py").is_file()
    assert (versions / "0002_qualify_first_lost.py").is_file()
    # One linear chain: file N revises file N-1 (no second head, no gap).
    numbers = [p.name[:4] for p in _VERSION_FILES]
    assert numbers == [f"{i:04d}" for i in range(1, len(numbers) + 1)], numbers
    for prev, path in zip(_VERSION_FILES, _VERSION_FILES[1:]):
        text = path.read_text(encoding="utf-8")
        assert f'revision: str = "{path.name[:4]}"' in text, path.name
        assert f'down_revision: str | None = "{prev.name[:4]}"' in text, path.name
    # Packages, so setuptools ships them in the wheel.
    assert (MIGRATIONS_DIR / "__init__.py").is_file() and (versions / "__init__.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()


async def test_upgrade_from_empty_creates_every_table(db_url: str) -> None:
    assert await current_revision(db_url) is None
    await upgrade(db_url)
    assert await current_revision(db_url) == HEAD
    assert await _tables(db_url) == EXPECTED_TABLES


async def test_upgrade_twice_is_a_no_op(db_url: str) -> None:
    await upgrade(db_url)
    await upgrade(db_url)
    assert await current_revision(db_url) == HEAD


async def test_schema_matches_models(db_url: str) -> None:
    """The hand-reviewed migration and the models describe the same schema."""
    await upgrade(db_url)
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    await upgrade(db_url)
    await downgrade(db_url, "base")
    assert await current_revision(db_url) is None
    assert await _tables(db_url) == {"alembic_version"}
    await upgrade(db_url)
    assert await current_revision(db_url) == HEAD


async def test_concurrent_upgrades_serialise(db_url: str) -> None:
    """Switch and provisioning may start together: both upgrades succeed, schema created once."""
    await asyncio.gather(upgrade(db_url), upgrade(db_url), upgrade(db_url))
    assert await current_revision(db_url) == HEAD
    assert await _tables(db_url) == EXPECTED_TABLES


async def test_fresh_sqlite_file_opened_by_many_processes_at_once(tmp_path) -> None:
    """Switching a new file to WAL answers "locked" without waiting; every opener must wait.

    Switch, provisioning and ``softswitch import`` may all start on a database that
    does not exist yet. This failed about one time in eight with three openers.
    """
    for round_ in range(12):
        url = f"sqlite+aiosqlite:///{tmp_path}/fresh-{round_}.db"
        engines = [make_engine(url) for _ in range(4)]

        async def open_and_read(engine) -> str:
            async with engine.connect() as conn:
                return str((await conn.exec_driver_sql("PRAGMA journal_mode")).scalar())

        try:
            modes = await asyncio.gather(*(open_and_read(e) for e in engines))
        finally:
            for engine in engines:
                await engine.dispose()
        assert modes == ["wal"] * 4


async def test_upgrade_accepts_an_engine_and_leaves_foreign_keys_on(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await upgrade(engine)
        if engine.dialect.name == "sqlite":
            async with engine.connect() as conn:
                # Every pooled connection must still enforce foreign keys after migrating.
                assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await engine.dispose()
    assert await current_revision(db_url) == HEAD


def test_constraint_names_fit_postgresql_identifiers() -> None:
    """PostgreSQL truncates names over 63 bytes; SQLite would not, and the two would diverge."""
    names: list[str] = []
    for table in Base.metadata.sorted_tables:
        names += [str(c.name) for c in table.constraints if c.name]
        names += [str(i.name) for i in table.indexes if i.name]
    assert names and all(len(n) <= 63 for n in names), [n for n in names if len(n) > 63]
    assert all(n.split("_")[0] in NAMING_CONVENTION for n in names)


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://"])
async def test_in_memory_sqlite_migrates(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_batch_table_rebuild_keeps_child_rows(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    """A future migration that rebuilds a parent table (SQLite batch mode: copy, drop,
    rename) must not cascade-delete its children: migrate runs with foreign keys off."""
    sf = migrated_db.session_factory
    await add_line(sf, secret_box, "realm")
    await add_line(sf, secret_box, "realm", port=2, number="+4722000002", auth_user="22000002")

    def widen_customer_name(conn: Connection) -> None:
        ops = Operations(MigrationContext.configure(conn, opts={"render_as_batch": True}))
        with ops.batch_alter_table("customers") as batch:
            batch.alter_column("name", existing_type=sa.String(200), type_=sa.String(300), existing_nullable=False)

    await _with_connection(migrated_db.engine, widen_customer_name)
    assert await count(sf, "lines") == 2 and await count(sf, "customers") == 1
    async with migrated_db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            assert (await conn.execute(text("PRAGMA foreign_key_check"))).all() == []
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        cols = await conn.run_sync(lambda c: {col["name"]: col["type"] for col in inspect(c).get_columns("customers")})
    assert getattr(cols["name"], "length", None) == 300


async def test_0002_keeps_stored_ping_history(db_url: str, secret_box: SecretBox) -> None:
    """A database at 0001 with bindings and ping history: 0002 adds ``first_lost_at`` and loses no row."""
    await upgrade(db_url, "0001")
    engine = make_engine(db_url)
    try:
        # the helper reads only ids and writes only the columns it sets, so it fits a database at 0001
        line_id = await add_line(make_session_factory(engine), secret_box, "realm")
        async with engine.begin() as conn:
            t = "2026-11-01 00:00:00"
            await conn.execute(text("INSERT INTO bindings (line_id, contact_uri, received_host, received_port, transport, "
                                    "expires_at, call_id, cseq, registered_at) VALUES (:l, 'sip:a@x', '192.0.2.1', 5060, "
                                    "'udp', :t, 'c', 1, :t)"), {"l": line_id, "t": datetime.fromisoformat(t + "+00:00")})
            bid = (await conn.execute(text("SELECT id FROM bindings"))).scalar_one()
            await conn.execute(text("INSERT INTO qualify_stats (binding_id, sent, lost, consecutive_lost, history) "
                                    "VALUES (:b, 7, 2, 0, '[12.5, null]')"), {"b": bid})
    finally:
        await engine.dispose()
    await upgrade(db_url)
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT sent, lost, first_lost_at FROM qualify_stats"))).one()
    finally:
        await engine.dispose()
    assert tuple(row) == (7, 2, None)
