"""Operator users, customer passwords and browser sessions, on both databases."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from switch.store import models as m
from switch.store import repo_users as ru
from switch.store.engine import write_session
from switch.store.models import OperatorRole
from tests.conftest_db import MigratedDb


async def test_create_user_prints_a_generated_password_and_stores_only_an_argon2id_hash(migrated_db: MigratedDb) -> None:
    sf = migrated_db.session_factory
    password, info = await ru.create_user(sf, "kari", "admin", display_name="Kari")
    assert info.role is OperatorRole.ADMIN and len(password) >= 16
    async with sf() as session:
        stored = (await session.execute(select(m.OperatorUser.password_hash))).scalar_one()
    assert stored.startswith("$argon2id$") and password not in stored
    assert await ru.authenticate_user(sf, "kari", password) == info
    assert await ru.authenticate_user(sf, "kari", password + "x") is None


async def test_usernames_are_unique_and_passwords_must_be_long_enough(migrated_db: MigratedDb) -> None:
    sf = migrated_db.session_factory
    await ru.create_user(sf, "ola", "support", password="long-enough-1")
    with pytest.raises(ru.UserExists):
        await ru.create_user(sf, "ola", "readonly", password="long-enough-2")
    with pytest.raises(ValueError, match="too short"):
        await ru.create_user(sf, "per", "support", password="short")
    with pytest.raises(ValueError):
        await ru.create_user(sf, "with space", "support")
    with pytest.raises(ValueError):
        await ru.create_user(sf, "x", "superuser")
    assert [u.username for u in await ru.list_users(sf)] == ["ola"]


async def test_disabled_user_cannot_log_in_and_unknown_user_costs_as_much(migrated_db: MigratedDb) -> None:
    sf = migrated_db.session_factory
    password, info = await ru.create_user(sf, "nils", "support")
    async with write_session(sf) as session:
        await session.execute(update(m.OperatorUser).values(enabled=False))
    assert await ru.authenticate_user(sf, "nils", password) is None
    # No user enumeration by timing: an unknown name still runs one argon2 verify.
    t0 = time.perf_counter()
    assert await ru.authenticate_user(sf, "nobody", password) is None
    unknown = time.perf_counter() - t0
    assert unknown > 0.01, "an unknown user must cost an argon2 verify"


async def test_customer_password_set_reset_and_login(migrated_db: MigratedDb) -> None:
    sf = migrated_db.session_factory
    async with write_session(sf) as session:
        session.add(m.Customer(external_id="C1001", name="Kari Nordmann"))
    with pytest.raises(LookupError):
        await ru.set_customer_password(sf, "C9999")
    first = await ru.set_customer_password(sf, "C1001")
    login = await ru.authenticate_customer(sf, "C1001", first)
    assert login is not None and login.external_id == "C1001"
    second = await ru.set_customer_password(sf, "C1001", "my-own-password")
    assert second == "my-own-password"
    assert await ru.authenticate_customer(sf, "C1001", first) is None
    assert await ru.authenticate_customer(sf, "C1001", second) is not None
    assert await ru.authenticate_customer(sf, "C1002", second) is None


async def test_sessions_store_only_a_hash_expire_idle_and_revoke(migrated_db: MigratedDb) -> None:
    sf = migrated_db.session_factory
    _pw, user = await ru.create_user(sf, "kari", "admin")
    secret, info = await ru.create_session(sf, user=user, remote_addr="127.0.0.1", user_agent="test")
    async with sf() as session:
        row = (await session.execute(select(m.WebSession))).scalar_one()
    assert secret not in row.token_hash and row.csrf_token == info.csrf_token
    found = await ru.get_session(sf, secret)
    assert found is not None and found.user == user and found.customer is None
    assert await ru.get_session(sf, secret + "x") is None
    assert await ru.get_session(sf, "") is None
    # Idle too long.
    async with write_session(sf) as session:
        await session.execute(update(m.WebSession).values(last_seen_at=row.last_seen_at - timedelta(hours=3)))
    assert await ru.get_session(sf, secret) is None
    # Revocation, one or all.
    s2, i2 = await ru.create_session(sf, user=user)
    s3, _ = await ru.create_session(sf, user=user)
    await ru.revoke_session(sf, i2.session_id)
    assert await ru.get_session(sf, s2) is None and await ru.get_session(sf, s3) is not None
    assert await ru.revoke_sessions_of(sf, user_id=user.user_id) == 2  # the idle one and s3
    assert await ru.get_session(sf, s3) is None


async def test_expired_session_and_disabled_user_session_are_refused(migrated_db: MigratedDb) -> None:
    sf = migrated_db.session_factory
    _pw, user = await ru.create_user(sf, "ola", "support")
    secret, _ = await ru.create_session(sf, user=user, ttl=timedelta(seconds=-1))
    assert await ru.get_session(sf, secret) is None
    secret, _ = await ru.create_session(sf, user=user)
    async with write_session(sf) as session:
        await session.execute(update(m.OperatorUser).values(enabled=False))
    assert await ru.get_session(sf, secret) is None


async def test_hashing_is_bounded_and_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 runs in threads, at most HASH_CONCURRENCY at once: a login burst neither blocks SIP nor eats RAM."""
    import threading

    from argon2 import PasswordHasher

    loop_thread = threading.get_ident()
    lock = threading.Lock()
    seen = {"now": 0, "max": 0, "on_loop": 0}

    class Counting(PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            with lock:
                seen["now"] += 1
                seen["max"] = max(seen["max"], seen["now"])
                seen["on_loop"] += threading.get_ident() == loop_thread
            try:
                return super().hash(password, salt=salt)
            finally:
                with lock:
                    seen["now"] -= 1

    monkeypatch.setattr(ru, "_hasher", Counting())
    tasks = [asyncio.get_running_loop().create_task(ru.hash_password(f"password-{i}")) for i in range(12)]
    await asyncio.sleep(0)
    assert not any(t.done() for t in tasks), "hashing must not complete on the event loop"
    hashes = await asyncio.gather(*tasks)
    assert len(set(hashes)) == 12
    assert seen["on_loop"] == 0 and 1 <= seen["max"] <= ru.HASH_CONCURRENCY
