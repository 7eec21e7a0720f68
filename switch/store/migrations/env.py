"""Alembic environment, configured from code (there is no alembic.ini).

``switch.store.migrate`` is the normal entry point: it opens the connection, takes
the migration lock and passes the connection in ``config.attributes["connection"]``.
Without one (the plain ``alembic`` command pointed at this directory), the URL comes
from ``config.attributes["url"]``, the ``sqlalchemy.url`` option or
``SOFTSWITCH_DATABASE_URL``.

``render_as_batch``: SQLite cannot ALTER most things; batch mode recreates the table,
and does plain ALTERs on PostgreSQL, so one revision serves both databases.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from switch.store import models  # noqa: F401  # registers every table on Base.metadata
from switch.store.base import Base
from switch.store.engine import make_engine, normalise_url

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        compare_server_default=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or os.environ.get(
        "SOFTSWITCH_DATABASE_URL"
    )
    if not url:
        raise RuntimeError("no database URL: pass one to switch.store.migrate or set SOFTSWITCH_DATABASE_URL")
    return normalise_url(str(url))


async def _run_async(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


def main() -> None:
    if context.is_offline_mode():
        context.configure(
            url=_url(),
            target_metadata=target_metadata,
            render_as_batch=True,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async(_url()))


main()
