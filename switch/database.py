"""Opening the database for any command: migrate to head, one engine, the key for secrets at rest.

Shared by the composition root (``switch.app``) and the one-shot CLI
commands (``switch.cli``), so every command sees the same schema and key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from switch.store import migrate
from switch.store.crypto import SecretBox, load_or_create_key
from switch.store.keycheck import check_key
from switch.store.engine import SessionFactory, make_engine, make_session_factory, normalise_url

from .settings import Settings

__all__ = ["Database", "derive", "open_database"]


@dataclass(frozen=True, slots=True)
class Database:
    engine: AsyncEngine
    session_factory: SessionFactory
    secret_box: SecretBox
    #: the key for secrets at rest; other secrets are derived from it (``derive``), never equal to it
    key: bytes

    async def close(self) -> None:
        await self.engine.dispose()


def derive(key: bytes, purpose: str) -> bytes:
    """A secret of its own for ``purpose`` (nonce signing, ...), from the one key."""
    return hmac.new(key, purpose.encode(), hashlib.sha256).digest()


async def open_database(settings: Settings) -> Database:
    """Create or upgrade the schema, then open it (the key file is created, 0600, when missing; a key
    that does not open this database's secrets is refused: ``switch.store.keycheck.KeyMismatch``)."""
    url = normalise_url(settings.database_url)
    await migrate.upgrade(url)
    engine = make_engine(url)
    key = settings.key or load_or_create_key(settings.key_file)
    sf, box = make_session_factory(engine), SecretBox(key)
    try:
        await check_key(sf, box)  # the wrong key file refuses the start (switch.store.keycheck)
    except BaseException:
        await engine.dispose()
        raise
    return Database(engine, sf, box, key)
