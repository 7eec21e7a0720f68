"""The registrar's hot-path writes (``switch.store.hot_store``) on SQLite and PostgreSQL.

A refresh updates its row in place, so the binding keeps its id and its ping
history (``qualify_stats``); a contact the line no longer has is deleted, and
its history with it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, select

from switch.services.adapter_status import Lamp, lamp_rows, record_ping
from switch.services.location import LocationService
from switch.store import models as m
from switch.store.crypto import SecretBox
from switch.store.engine import SessionFactory, write_session
from switch.store.hot_store import HotStore, make_hot_store
from switch.store.lamp_history import LampWriter, list_lamp_events, load_lamps
from switch.store.repo_adapters import create_adapter
from switch.store.repo_bindings import load_bindings, load_qualify_stats
from switch.store.rows import Binding, LineChange, Reachability
from tests.conftest_db import MigratedDb

from .conftest import REALM
from .helpers import add_line
from .outage import SQLITE_BUSY_TIMEOUT, outage

NOW = time.time()


@pytest.fixture
async def store(migrated_db: MigratedDb) -> AsyncIterator[HotStore]:
    hot = make_hot_store(migrated_db.url)
    await hot.open()
    yield hot
    await hot.close()


def binding(line_id: int, contact: str, *, cseq: int = 1, expires: float = 3600, port: int = 40001) -> Binding:
    return Binding(
        line_id=line_id, contact=contact, expires_at=NOW + expires, call_id=f"cid-{line_id}", cseq=cseq,
        received_host="198.51.100.7", received_port=port, transport="udp", user_agent="Cisco/SPA112-1.4.1",
        registered_at=NOW, last_seen=NOW,
    )


async def rows(db: MigratedDb) -> dict[tuple[int, str], tuple[int, int, int]]:
    """(line, contact) -> (row id, cseq, received port)."""
    async with db.session_factory() as s:
        found = (await s.execute(select(m.Binding.id, m.Binding.line_id, m.Binding.contact_uri, m.Binding.cseq,
                                        m.Binding.received_port))).all()
    return {(lid, c): (i, cseq, port) for i, lid, c, cseq, port in found}


async def test_refresh_updates_in_place_and_dropped_contacts_go(
    store: HotStore, migrated_db: MigratedDb, two_lines: tuple[int, int]
) -> None:
    a, b = two_lines
    await store.replace_bindings([LineChange(a, [binding(a, "sip:a1@x")]), LineChange(b, [binding(b, "sip:b@x")])])
    first = await rows(migrated_db)
    assert set(first) == {(a, "sip:a1@x"), (b, "sip:b@x")}

    # A refresh (new CSeq, new NAT port) keeps the row; a second contact is added beside it.
    await store.replace_bindings([LineChange(a, [binding(a, "sip:a1@x", cseq=2, port=40009), binding(a, "sip:a2@x")])])
    now = await rows(migrated_db)
    assert now[(a, "sip:a1@x")] == (first[(a, "sip:a1@x")][0], 2, 40009)
    assert (a, "sip:a2@x") in now and now[(b, "sip:b@x")] == first[(b, "sip:b@x")]

    # The line's set is now only a2: a1 goes, b (not in this batch) stays.
    await store.replace_bindings([LineChange(a, [binding(a, "sip:a2@x", cseq=3)])])
    assert set(await rows(migrated_db)) == {(a, "sip:a2@x"), (b, "sip:b@x")}

    # An empty set removes every binding of the line; the stored values read back as written.
    await store.replace_bindings([LineChange(b, [])])
    [back] = await load_bindings(migrated_db.session_factory)
    assert (back.line_id, back.contact, back.cseq, back.transport) == (a, "sip:a2@x", 3, "udp")
    assert back.expires_at == pytest.approx(NOW + 3600, abs=1e-5)


async def test_many_lines_in_one_batch(store: HotStore, migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    """More lines than one DELETE statement takes (200): every line's stale contact goes."""
    sf = migrated_db.session_factory
    ids = [await add_line(sf, secret_box, REALM, mac=f"000e08ab{i:04x}", number=f"+47220{i:05d}",
                          auth_user=f"220{i:05d}") for i in range(230)]
    await store.replace_bindings([LineChange(i, [binding(i, "sip:old@x"), binding(i, "sip:keep@x")]) for i in ids])
    await store.replace_bindings([LineChange(i, [binding(i, "sip:keep@x", cseq=2)]) for i in ids])
    found = await rows(migrated_db)
    assert set(found) == {(i, "sip:keep@x") for i in ids}
    assert {cseq for _, cseq, _ in found.values()} == {2}


def qualify_rows(items: list[tuple[tuple[int, str], Reachability]]) -> list[Reachability]:
    """The histories of ``items`` as the records of the bindings they are keyed by."""
    return [dataclasses.replace(r, line_id=key[0], contact=key[1]) for key, r in items]


async def load_reachability(sf: SessionFactory) -> dict[tuple[int, str], Reachability]:
    return {q.key: q for q in await load_qualify_stats(sf)}


def history(*rtts: float | None) -> Reachability:
    r = Reachability(0, "")
    for i, rtt in enumerate(rtts):
        r = record_ping(r, rtt, NOW + 30 * i)
    return r


def same(x: Reachability, y: Reachability) -> bool:
    """Equal, with times compared to the microsecond (the databases store microseconds)."""
    def key(r: Reachability) -> tuple[object, ...]:
        return (r.sent, r.lost, r.consecutive_lost, r.last_rtt, r.avg_rtt, r.history)

    times = [(x.first_lost_at, y.first_lost_at), (x.last_sent_at, y.last_sent_at), (x.last_reply_at, y.last_reply_at)]
    return key(x) == key(y) and all(abs(a - b) < 2e-6 for a, b in times)


async def test_ping_history_survives_refresh_and_goes_with_its_binding(
    store: HotStore, migrated_db: MigratedDb, two_lines: tuple[int, int]
) -> None:
    a, b = two_lines
    sf = migrated_db.session_factory
    await store.replace_bindings([LineChange(a, [binding(a, "sip:a@x")]), LineChange(b, [binding(b, "sip:b@x")])])
    answering = history(0.020, None, 0.040)
    silent = history(0.010, None, None, None)
    await store.write_qualify(qualify_rows([((a, "sip:a@x"), answering), ((b, "sip:b@x"), silent)]))
    # A row for a binding that is gone by the time it is written is skipped, not an error.
    await store.write_qualify(qualify_rows([((a, "sip:gone@x"), history(0.001))]))

    restored = await load_reachability(sf)
    assert set(restored) == {(a, "sip:a@x"), (b, "sip:b@x")}
    assert same(restored[(a, "sip:a@x")], answering) and same(restored[(b, "sip:b@x")], silent)
    assert restored[(b, "sip:b@x")].first_lost_at == pytest.approx(NOW + 30, abs=1e-5)
    assert restored[(a, "sip:a@x")].avg_rtt == pytest.approx(0.020 + 0.125 * 0.020)

    # Written again (upsert), refreshed (same row): still one history per binding, the newest.
    answering = record_ping(answering, 0.030, NOW + 90)
    await store.write_qualify(qualify_rows([((a, "sip:a@x"), answering)]))
    await store.replace_bindings([LineChange(a, [binding(a, "sip:a@x", cseq=2)])])
    stats = {(q.line_id, q.contact): q for q in await load_qualify_stats(sf)}
    assert stats[(a, "sip:a@x")].sent == 4 and stats[(a, "sip:a@x")].history == (0.020, None, 0.040, 0.030)
    assert stats[(a, "sip:a@x")].first_lost_at == 0.0  # never (stored as NULL)

    # Unregistered: the history goes with the row.
    await store.replace_bindings([LineChange(a, [])])
    assert {(q.line_id, q.contact) for q in await load_qualify_stats(sf)} == {(b, "sip:b@x")}


async def test_ping_histories_are_stored_in_milliseconds(
    store: HotStore, migrated_db: MigratedDb, two_lines: tuple[int, int]
) -> None:
    """The record counts seconds; the table keeps milliseconds (what the columns say), and reads back as seconds."""
    a, _ = two_lines
    await store.replace_bindings([LineChange(a, [binding(a, "sip:a@x")])])
    [r] = qualify_rows([((a, "sip:a@x"), history(None, 0.0125))])
    await store.write_qualify([r])
    async with migrated_db.session_factory() as s:
        stored = (await s.execute(select(m.QualifyStats))).scalars().one()
    assert (stored.sent, stored.lost, stored.last_rtt_ms, stored.avg_rtt_ms, stored.history) == (2, 1, 12.5, 12.5, [None, 12.5])
    [back] = await load_qualify_stats(migrated_db.session_factory)
    assert same(back, r) and (back.last_rtt, back.history) == (0.0125, (None, 0.0125))


async def test_many_ping_histories_are_written_in_several_transactions(
    store: HotStore, migrated_db: MigratedDb, two_lines: tuple[int, int]
) -> None:
    """More histories than one statement takes (500 on SQLite): every one is stored."""
    a, _ = two_lines
    contacts = [f"sip:a{i}@x" for i in range(1100)]
    await store.replace_bindings([LineChange(a, [binding(a, c) for c in contacts])])
    await store.write_qualify(qualify_rows([((a, c), history(0.001 * (i % 7 + 1))) for i, c in enumerate(contacts)]))
    stats = {q.contact: q for q in await load_qualify_stats(migrated_db.session_factory)}
    assert set(stats) == set(contacts)
    assert stats["sip:a1099@x"].history == pytest.approx((0.001 * (1099 % 7 + 1),))


async def test_lamps_and_their_history_read_back_as_written(
    store: HotStore, migrated_db: MigratedDb, secret_box: SecretBox
) -> None:
    """Lamp changes as the status service hands them over, through the batching writer."""
    sf = migrated_db.session_factory
    aid = (await create_adapter(sf, "000e08abcd01", "spa112", secret_box)).adapter_id
    t = [NOW + 60 * i for i in range(6)]
    ok, expired = Lamp("ok", "registered", t[0]), Lamp("off", "registration expired", t[2])
    writer = LampWriter(store, window=0.0)
    writer.submit(lamp_rows([(aid, "tel1", None, ok)], now=t[0]))
    writer.submit(lamp_rows([(aid, "tel1", ok, expired)], now=t[2]))
    # Same state, better reason: an event at the time of the new reason, "since" stays at the state change.
    writer.submit(lamp_rows([(aid, "tel1", expired, Lamp("off", "wrong password", t[2]))], now=t[3]))
    writer.submit(lamp_rows([(aid, "pwr", None, Lamp("ok", "config fetched", t[4])),
                             (aid, "wan", None, Lamp("warning", "ping loss 40%", t[4]))], now=t[4]))
    await writer.close()

    states = {r.lamp: r for r in await load_lamps(sf)}
    assert set(states) == {"PWR", "WAN", "Tel1"}
    tel1 = states["Tel1"]
    assert (tel1.adapter_id, tel1.state, tel1.reason) == (aid, "off", "wrong password")
    assert tel1.since == pytest.approx(t[2], abs=1e-5)
    history = await list_lamp_events(sf, aid, lamp="Tel1")
    assert [(e.old_state, e.new_state, e.reason) for e in history] == [
        ("off", "off", "wrong password"), ("ok", "off", "registration expired"), (None, "ok", "registered"),
    ]
    assert [e.at for e in history] == pytest.approx([t[3], t[2], t[0]], abs=1e-5)
    assert len(await list_lamp_events(sf, aid)) == 5
    assert len(await list_lamp_events(sf, aid, limit=2)) == 2


async def test_a_storm_of_lamp_changes_is_written_in_several_statements(
    store: HotStore, migrated_db: MigratedDb, secret_box: SecretBox
) -> None:
    """More lamp rows than one multi-row statement holds (500): every state and every event lands."""
    sf = migrated_db.session_factory
    ids = [(await create_adapter(sf, f"000e08ac{i:04x}", "spa112", secret_box)).adapter_id for i in range(260)]
    ok = Lamp("ok", "registered", NOW)
    changes = [(aid, lamp, None, ok) for aid in ids for lamp in ("tel1", "tel2", "wan")]  # 780 rows
    batch = lamp_rows(changes, now=NOW)
    await store.write_lamps([s for s, _ in batch], [e for _, e in batch])
    states = await load_lamps(sf)
    assert len(states) == 780 and {(r.state, r.reason) for r in states} == {("ok", "registered")}
    assert sum([len(await list_lamp_events(sf, aid)) for aid in ids[:5]]) == 15
    assert len(await list_lamp_events(sf, ids[-1], lamp="Tel2")) == 1


async def test_a_binding_is_acknowledged_only_once_stored_and_an_outage_loses_none(
    migrated_db: MigratedDb, two_lines: tuple[int, int]
) -> None:
    """The registrar's path (LocationService → HotStore) through a real outage: while the
    database refuses writes every change is reported failed (the registrar answers 500) and
    the in-memory view goes back; afterwards the same REGISTERs are stored. Every change
    reported stored is in the database."""
    a, b = two_lines
    hot = make_hot_store(migrated_db.url, busy_timeout=SQLITE_BUSY_TIMEOUT)
    await hot.open()
    location = LocationService(hot.replace_bindings)
    location.start([])
    try:
        async def register(line: int, contact: str, cseq: int) -> BaseException | None:
            fut: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
            location.replace(line, [binding(line, contact, cseq=cseq)], fut.set_result)
            return await fut

        assert await register(a, "sip:a@x", 1) is None
        async with outage(migrated_db.url):
            failed = await asyncio.gather(register(a, "sip:a@x", 2), register(b, "sip:b@x", 1))
            assert all(isinstance(exc, Exception) for exc in failed)
            # what the 200 promised stays; what failed is not pretended
            assert [x.cseq for x in location.bindings(a)] == [1] and location.bindings(b) == []
        assert await register(a, "sip:a@x", 2) is None and await register(b, "sip:b@x", 1) is None
        stored = {(x.line_id, x.contact): x.cseq for x in await load_bindings(migrated_db.session_factory)}
        assert stored == {(a, "sip:a@x"): 2, (b, "sip:b@x"): 1}
    finally:
        await location.close()
        await hot.close()


async def test_lamp_and_ping_history_writes_fail_loudly_in_an_outage(
    migrated_db: MigratedDb, two_lines: tuple[int, int]
) -> None:
    """The writer raises (it never swallows a failed write); after the outage the same rows go in."""
    a, _ = two_lines
    hot = make_hot_store(migrated_db.url, busy_timeout=SQLITE_BUSY_TIMEOUT)
    await hot.open()
    try:
        await hot.replace_bindings([LineChange(a, [binding(a, "sip:a@x")])])
        rows = qualify_rows([((a, "sip:a@x"), history(0.02, None))])
        async with outage(migrated_db.url):
            with pytest.raises(Exception):
                await hot.write_qualify(rows)
            with pytest.raises(Exception):
                await hot.replace_bindings([LineChange(a, [])])
        await hot.write_qualify(rows)
        assert [q.sent for q in await load_qualify_stats(migrated_db.session_factory)] == [2]
        assert len(await load_bindings(migrated_db.session_factory)) == 1
    finally:
        await hot.close()


async def test_lamp_changes_refused_in_an_outage_are_written_afterwards(
    migrated_db: MigratedDb, secret_box: SecretBox
) -> None:
    sf = migrated_db.session_factory
    aid = (await create_adapter(sf, "000e08abcd01", "spa112", secret_box)).adapter_id
    hot = make_hot_store(migrated_db.url, busy_timeout=SQLITE_BUSY_TIMEOUT)
    await hot.open()
    writer = LampWriter(hot, window=0.0)
    try:
        ok, off = Lamp("ok", "registered", NOW), Lamp("off", "registration expired", NOW + 60)
        async with outage(migrated_db.url):
            writer.submit(lamp_rows([(aid, "tel1", None, ok)], now=NOW))
            for _ in range(500):
                if writer.pending:
                    break
                await asyncio.sleep(0.01)
            assert writer.pending == 1
        writer.submit(lamp_rows([(aid, "tel1", ok, off)], now=NOW + 60))  # goes in with the refused one
        for _ in range(500):
            if not writer.pending and len(await list_lamp_events(sf, aid)) == 2:
                break
            await asyncio.sleep(0.01)
        # refused at shutdown's eve, written by close()
        async with outage(migrated_db.url):
            writer.submit(lamp_rows([(aid, "pwr", None, Lamp("ok", "config fetched", NOW + 90))], now=NOW + 90))
            for _ in range(500):
                if writer.pending:
                    break
                await asyncio.sleep(0.01)
            assert writer.pending == 1
    finally:
        await writer.close()
        await hot.close()
    assert [(e.lamp, e.new_state) for e in await list_lamp_events(sf, aid)] == [
        ("PWR", "ok"), ("Tel1", "off"), ("Tel1", "ok"),
    ]
    assert {r.lamp: r.state for r in await load_lamps(sf)} == {"Tel1": "off", "PWR": "ok"}


async def test_a_deleted_line_does_not_fail_the_other_lines_of_its_batch(
    store: HotStore, migrated_db: MigratedDb, two_lines: tuple[int, int]
) -> None:
    """An operator deletes a line while its adapter re-registers: that line's change is left
    out, everyone else's REGISTER in the same group commit is stored."""
    a, b = two_lines
    async with write_session(migrated_db.session_factory) as s:
        await s.execute(delete(m.Line).where(m.Line.id == b))
    await store.replace_bindings([LineChange(a, [binding(a, "sip:a@x")]), LineChange(b, [binding(b, "sip:b@x")])])
    assert set(await rows(migrated_db)) == {(a, "sip:a@x")}
    # a batch's own fault (here a NULL Call-ID) still fails it, and stores nothing of it
    broken = dataclasses.replace(binding(a, "sip:a2@x"), call_id=None)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="(?i)null"):
        await store.replace_bindings([LineChange(a, [binding(a, "sip:a@x", cseq=9), broken])])
    assert (await rows(migrated_db))[(a, "sip:a@x")][1] == 1
