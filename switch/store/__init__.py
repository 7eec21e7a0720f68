"""Persistence: SQLAlchemy 2 async models, migrations and repositories.

SQLite (aiosqlite) is the embedded default, PostgreSQL (asyncpg) production. The
services use the repository functions (``repo_*``), which take a session factory
and exchange frozen dataclasses, never ORM objects. Schema: ``switch.store.migrate``
(not re-exported here, so ``python -m switch.store.migrate`` runs cleanly).
"""

from switch.store.crypto import SecretBox, SecretBoxError, generate_key, load_or_create_key
from switch.store.engine import SessionFactory, make_engine, make_session_factory, normalise_url, write_session
from switch.store.repo_adapters import format_mac, normalise_mac
from switch.store.repo_lines import compute_ha1, normalise_number

__all__ = [
    "SecretBox",
    "SecretBoxError",
    "SessionFactory",
    "compute_ha1",
    "format_mac",
    "generate_key",
    "load_or_create_key",
    "make_engine",
    "make_session_factory",
    "normalise_mac",
    "normalise_number",
    "normalise_url",
    "write_session",
]
