"""Engine URL handling and SQLite settings; SecretBox and key files."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from switch.store.crypto import (
    CTX_LINE_SECRET,
    SecretBox,
    SecretBoxError,
    decode_key,
    generate_key,
    load_or_create_key,
)
from switch.store.engine import make_engine, make_session_factory, normalise_url, write_session

# ----------------------------------------------------------------------------- engine


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("softswitch.db", "sqlite+aiosqlite:///softswitch.db"),
        ("/var/lib/softswitch/ss.db", "sqlite+aiosqlite:////var/lib/softswitch/ss.db"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite+pysqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p%40ss@db:5433/ss", "postgresql+asyncpg://u:p%40ss@db:5433/ss"),
        ("postgres://u@db/ss", "postgresql+asyncpg://u@db/ss"),
        ("postgresql+psycopg2://u@db/ss", "postgresql+asyncpg://u@db/ss"),
        ("postgresql+asyncpg://u@db/ss", "postgresql+asyncpg://u@db/ss"),
    ],
)
def test_normalise_url(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


@pytest.mark.parametrize("bad", ["", "mysql://u@h/db", "oracle+cx_oracle://h"])
def test_normalise_url_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_url(bad)


async def test_sqlite_connection_settings(tmp_path: Path) -> None:
    engine = make_engine(str(tmp_path / "sub" / "x.db"))  # parent dir is created
    try:
        async with engine.connect() as conn:
            got = [
                (await conn.execute(text(f"PRAGMA {p}"))).scalar()
                for p in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            ]
        assert got == ["wal", 1, 1, 10_000]  # synchronous 1 = NORMAL
    finally:
        await engine.dispose()


async def test_write_session_commits_or_rolls_back(tmp_path: Path) -> None:
    engine = make_engine(str(tmp_path / "x.db"))
    sf = make_session_factory(engine)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        async with write_session(sf) as s:
            await s.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(RuntimeError):
            async with write_session(sf) as s:
                await s.execute(text("INSERT INTO t VALUES (2)"))
                raise RuntimeError("boom")
        async with sf() as s:
            assert (await s.execute(text("SELECT x FROM t"))).scalars().all() == [1]
    finally:
        await engine.dispose()


async def test_sqlite_writers_serialise_read_modify_write(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: concurrent read-then-write transactions neither lose updates nor fail."""
    url = str(tmp_path / "x.db")
    engines = [make_engine(url) for _ in range(4)]  # separate pools, like separate processes
    try:
        async with engines[0].begin() as conn:
            await conn.execute(text("CREATE TABLE c (n INTEGER)"))
            await conn.execute(text("INSERT INTO c VALUES (0)"))

        async def bump(sf_index: int) -> None:
            sf = make_session_factory(engines[sf_index])
            for _ in range(10):
                async with write_session(sf) as s:
                    n = (await s.execute(text("SELECT n FROM c"))).scalar_one()
                    await asyncio.sleep(0)
                    await s.execute(text("UPDATE c SET n = :n"), {"n": n + 1})

        await asyncio.gather(*(bump(i) for i in range(4)))
        async with engines[0].connect() as conn:
            assert (await conn.execute(text("SELECT n FROM c"))).scalar() == 40
    finally:
        for e in engines:
            await e.dispose()


# ----------------------------------------------------------------------------- crypto


def test_round_trip_and_fresh_nonce() -> None:
    box = SecretBox(generate_key())
    a, b = box.encrypt("Tel1-secret-01"), box.encrypt("Tel1-secret-01")
    assert a != b  # random nonce per encryption
    assert a.startswith(f"g1:{box.key_id}:")
    assert box.decrypt(a) == box.decrypt(b) == "Tel1-secret-01"
    assert box.decrypt(box.encrypt("æøå ÆØÅ")) == "æøå ÆØÅ"
    assert box.decrypt(box.encrypt("")) == ""


def test_wrong_key_tamper_and_context_are_refused() -> None:
    box = SecretBox(generate_key())
    token = box.encrypt("s3cret", context=CTX_LINE_SECRET)
    with pytest.raises(SecretBoxError, match="unknown key"):
        SecretBox(generate_key()).decrypt(token, context=CTX_LINE_SECRET)
    with pytest.raises(SecretBoxError, match="failed authentication"):
        box.decrypt(token, context="adapters.provisioning_secret")
    head, body = token.rsplit(":", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(SecretBoxError):
        box.decrypt(f"{head}:{flipped}", context=CTX_LINE_SECRET)
    for junk in ("", "plain text", "g1:abc", f"g1:{box.key_id}:!!!", f"g1:{box.key_id}:AAAA"):
        with pytest.raises(SecretBoxError):
            box.decrypt(junk)


def test_key_rotation() -> None:
    old_key, new_key = generate_key(), generate_key()
    token = SecretBox(old_key).encrypt("keep me")
    rotated = SecretBox(new_key, previous_keys=[old_key])
    assert rotated.decrypt(token) == "keep me"
    assert rotated.needs_reencryption(token) is True
    assert rotated.needs_reencryption(rotated.encrypt("x")) is False


def test_key_forms() -> None:
    raw = os.urandom(32)
    std = base64.b64encode(raw).decode()
    url = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert decode_key(raw) == decode_key(std) == decode_key(url) == decode_key(std.encode()) == raw
    assert SecretBox(raw).key_id == SecretBox(url).key_id
    for bad in ("short", base64.b64encode(os.urandom(16)).decode(), "not base64 !!"):
        with pytest.raises(ValueError):
            decode_key(bad)


def test_load_or_create_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "softswitch.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_key(path) == key  # stable across restarts
    assert decode_key(path.read_text()) == key
