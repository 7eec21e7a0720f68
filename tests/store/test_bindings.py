"""Bindings through the ORM repository: batched write-through, expiry, keepalives.

The registrar's own hot-path writes (and the ping history) are in test_hot_store.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from switch.store import models as m
from switch.store.repo_bindings import (
    BindingRecord,
    RemoveBinding,
    RemoveLineBindings,
    SaveBinding,
    delete_expired,
    load_all_bindings,
    save_bindings,
    touch_keepalives,
)
from tests.conftest_db import MigratedDb

from .conftest import T0
from .helpers import count, snapshot


def rec(line_id: int, contact: str, *, expires: int = 3600, cseq: int = 1, call_id: str = "cid-1") -> BindingRecord:
    return BindingRecord(
        line_id=line_id,
        contact=contact,
        received_host="198.51.100.7",
        received_port=40000 + line_id,
        transport=m.Transport.UDP,
        expires_at=T0 + timedelta(seconds=expires),
        call_id=call_id,
        cseq=cseq,
        user_agent="Cisco/SPA112-1.4.1",
        registered_at=T0,
    )


async def test_batch_adds_refreshes_and_removes_across_lines(
    migrated_db: MigratedDb, two_lines: tuple[int, int]
) -> None:
    sf = migrated_db.session_factory
    a, b = two_lines
    c_a1, c_a2, c_b1 = "sip:a1@192.0.2.1", "sip:a2@192.0.2.1", "sip:b1@192.0.2.2"
    assert await save_bindings(sf, [SaveBinding(rec(a, c_a1)), SaveBinding(rec(a, c_a2)), SaveBinding(rec(b, c_b1))]) == frozenset()
    assert [(r.line_id, r.contact) for r in await load_all_bindings(sf)] == [(a, c_a1), (a, c_a2), (b, c_b1)]

    refreshed = replace(rec(a, c_a1, expires=7200, cseq=2), user_agent=None, path=("<sip:edge;lr>",), q=0.7)
    await save_bindings(sf, [SaveBinding(refreshed), RemoveBinding(a, c_a2), RemoveLineBindings(b)])
    rows = await load_all_bindings(sf)
    assert rows == [replace(refreshed, registered_at=T0)]
    assert rows[0].expires_at == T0 + timedelta(seconds=7200) and rows[0].path == ("<sip:edge;lr>",)


async def test_later_changes_in_a_batch_win(migrated_db: MigratedDb, two_lines: tuple[int, int]) -> None:
    sf = migrated_db.session_factory
    a, b = two_lines
    c = "sip:a@192.0.2.1"
    await save_bindings(
        sf,
        [
            SaveBinding(rec(a, c, cseq=1)),
            SaveBinding(rec(a, c, cseq=2)),  # same key twice: must not trip ON CONFLICT
            SaveBinding(rec(b, "sip:b@x")),
            RemoveLineBindings(b),
            SaveBinding(rec(b, "sip:b2@x")),  # after the clear: stays
            SaveBinding(rec(a, "sip:gone@x")),
            RemoveBinding(a, "sip:gone@x"),
        ],
    )
    assert [(r.line_id, r.contact, r.cseq) for r in await load_all_bindings(sf)] == [
        (a, c, 2),
        (b, "sip:b2@x", 1),
    ]


async def test_registered_at_kept_on_refresh_reset_on_new_call_id(
    migrated_db: MigratedDb, two_lines: tuple[int, int]
) -> None:
    sf = migrated_db.session_factory
    a, _ = two_lines
    c = "sip:a@192.0.2.1"
    await save_bindings(sf, [SaveBinding(rec(a, c))])
    later = T0 + timedelta(minutes=30)
    await save_bindings(sf, [SaveBinding(replace(rec(a, c, cseq=2), registered_at=later))])
    assert (await load_all_bindings(sf))[0].registered_at == T0
    await save_bindings(sf, [SaveBinding(replace(rec(a, c, call_id="cid-2"), registered_at=later))])
    assert (await load_all_bindings(sf))[0].registered_at == later


async def test_missing_line_is_skipped_not_fatal(migrated_db: MigratedDb, two_lines: tuple[int, int]) -> None:
    sf = migrated_db.session_factory
    a, _ = two_lines
    missing = await save_bindings(sf, [SaveBinding(rec(a, "sip:a@x")), SaveBinding(rec(987654, "sip:ghost@x"))])
    assert missing == frozenset({987654})
    assert [r.line_id for r in await load_all_bindings(sf)] == [a]


async def test_failed_batch_changes_nothing(migrated_db: MigratedDb, two_lines: tuple[int, int]) -> None:
    sf = migrated_db.session_factory
    a, b = two_lines
    await save_bindings(sf, [SaveBinding(rec(a, "sip:a@x"))])
    before = await snapshot(sf)
    bad = replace(rec(b, "sip:b@x"), call_id=None)  # type: ignore[arg-type]  # NOT NULL: fails in the database
    with pytest.raises(IntegrityError):
        await save_bindings(sf, [RemoveLineBindings(a), SaveBinding(rec(b, "sip:b0@x")), SaveBinding(bad)])
    assert await snapshot(sf) == before


async def test_large_batch_in_one_call(migrated_db: MigratedDb, two_lines: tuple[int, int]) -> None:
    sf = migrated_db.session_factory
    a, b = two_lines
    changes = [SaveBinding(rec(a if i % 2 else b, f"sip:c{i}@192.0.2.9")) for i in range(1200)]
    await save_bindings(sf, changes)
    assert await count(sf, "bindings") == 1200
    await save_bindings(sf, [RemoveLineBindings(a)])
    assert await count(sf, "bindings") == 600


async def test_delete_expired_and_load_valid(migrated_db: MigratedDb, two_lines: tuple[int, int]) -> None:
    sf = migrated_db.session_factory
    a, b = two_lines
    await save_bindings(
        sf,
        [SaveBinding(rec(a, "sip:short@x", expires=60)), SaveBinding(rec(a, "sip:long@x", expires=3600)),
         SaveBinding(rec(b, "sip:b@x", expires=120))],
    )
    now = T0 + timedelta(seconds=120)
    assert [r.contact for r in await load_all_bindings(sf, now=now)] == ["sip:long@x"]
    assert [r.contact for r in await load_all_bindings(sf, line_id=b)] == ["sip:b@x"]
    gone = await delete_expired(sf, now)  # expires_at <= now: both the 60 s and the 120 s one
    assert sorted((r.line_id, r.contact) for r in gone) == [(a, "sip:short@x"), (b, "sip:b@x")]
    assert [r.contact for r in await load_all_bindings(sf)] == ["sip:long@x"]
    assert await delete_expired(sf, now) == []


async def test_keepalives(migrated_db: MigratedDb, two_lines: tuple[int, int]) -> None:
    sf = migrated_db.session_factory
    a, b = two_lines
    await save_bindings(sf, [SaveBinding(rec(a, "sip:a@x")), SaveBinding(rec(b, "sip:b@x"))])
    seen = T0 + timedelta(seconds=25)
    await touch_keepalives(sf, [(a, "sip:a@x", seen), (b, "sip:unknown@x", seen)])
    by_line = {r.line_id: r for r in await load_all_bindings(sf)}
    assert by_line[a].last_keepalive == seen and by_line[b].last_keepalive is None
    # A refresh without a keepalive value keeps the last one.
    await save_bindings(sf, [SaveBinding(rec(a, "sip:a@x", cseq=2))])
    assert (await load_all_bindings(sf, line_id=a))[0].last_keepalive == seen
