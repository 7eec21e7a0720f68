"""Create or migrate the schema, programmatically ("It creates or migrates the schema itself").

The switch and the provisioning app both call ``upgrade`` at startup, possibly at
the same moment against the same database, so every run holds a lock: a
transaction-scoped advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite. Both
databases have transactional DDL, so a failed migration leaves the schema as it was.

On SQLite, foreign-key enforcement is switched off while migrating: batch mode
recreates tables (copy, drop, rename), and dropping a parent table with enforcement
on would cascade-delete the children's rows. ``PRAGMA foreign_key_check`` runs
before commit instead.

Command line, for developers (no alembic.ini needed)::

    python -m switch.store.migrate upgrade   --url sqlite:///softswitch.db
    python -m switch.store.migrate current   --url ...
    python -m switch.store.migrate revision  --url ... -m "add tariffs"   # autogenerate, then review
    python -m switch.store.migrate check     --url ...   # fails if models and migrations differ
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from switch.store.engine import make_engine, normalise_url

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "main",
    "upgrade",
    "upgrade_sync",
]

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

#: pg_advisory_xact_lock key: arbitrary, constant, shared by every softswitch process.
_PG_LOCK_KEY = 0x5_0F75_C417


def alembic_config() -> Config:
    """An Alembic config built in code: script location is the packaged migrations dir."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # %% because Config options go through configparser interpolation.
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


async def _locked(conn: AsyncConnection, work: Callable[[Connection], None]) -> None:
    """Run ``work`` on ``conn`` inside one locked transaction (see module docstring)."""
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        # Must happen outside a transaction to take effect.
        await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    try:
        await conn.run_sync(work)
        if sqlite:
            broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).fetchall()
            if broken:
                raise RuntimeError(f"migration left rows violating foreign keys: {broken[:5]}")
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise
    finally:
        if sqlite:
            await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            await conn.commit()


async def _with_connection(target: str | AsyncEngine, work: Callable[[Connection], None]) -> None:
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        async with engine.connect() as conn:
            await _locked(conn, work)
    finally:
        if isinstance(target, str):
            await engine.dispose()


def _command(fn: Callable[[Config], object]) -> Callable[[Connection], None]:
    def work(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        fn(cfg)

    return work


async def upgrade(target: str | AsyncEngine, revision: str = "head") -> None:
    """Bring the schema at ``target`` (URL or engine) up to ``revision``; idempotent."""
    await _with_connection(target, _command(lambda cfg: command.upgrade(cfg, revision)))


def upgrade_sync(url: str, revision: str = "head") -> None:
    """``upgrade`` for callers without a running event loop (CLI, scripts)."""
    asyncio.run(upgrade(url, revision))


async def downgrade(target: str | AsyncEngine, revision: str) -> None:
    await _with_connection(target, _command(lambda cfg: command.downgrade(cfg, revision)))


async def current_revision(target: str | AsyncEngine) -> str | None:
    """The revision the database is at; None for an empty (never migrated) database."""
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        if isinstance(target, str):
            await engine.dispose()


def _next_rev_id() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    numbers = [int(r.revision) for r in script.walk_revisions() if r.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m switch.store.migrate", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["upgrade", "downgrade", "current", "heads", "revision", "check"])
    parser.add_argument("--url", default=os.environ.get("SOFTSWITCH_DATABASE_URL"), help="database URL")
    parser.add_argument("--revision", default="head", help="target for upgrade/downgrade")
    parser.add_argument("-m", "--message", default="change", help="revision message")
    args = parser.parse_args(argv)
    if args.action == "heads":
        print(head_revision())
        return 0
    if not args.url:
        parser.error("--url or SOFTSWITCH_DATABASE_URL is required")
    url = normalise_url(args.url)
    if args.action == "upgrade":
        upgrade_sync(url, args.revision)
    elif args.action == "downgrade":
        asyncio.run(downgrade(url, args.revision))
    elif args.action == "current":
        print(asyncio.run(current_revision(url)) or "(empty)")
    elif args.action == "revision":
        rev_id = _next_rev_id()
        asyncio.run(
            _with_connection(
                url,
                _command(lambda cfg: command.revision(cfg, message=args.message, autogenerate=True, rev_id=rev_id)),
            )
        )
    elif args.action == "check":
        asyncio.run(_with_connection(url, _command(command.check)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
