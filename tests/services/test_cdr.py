"""CDRs: one row per call, group-committed, a bad row never takes the batch with it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from switch.services.cdr import CdrDraft, CdrWriter, cdr_row
from switch.store.hot_store import HotStore, make_hot_store
from switch.store.models import CallDirection, CallRecord
from tests.conftest_db import MigratedDb
from tests.store.outage import SQLITE_BUSY_TIMEOUT, outage

T0 = 1_767_600_000.0  # 2026-01-05 08:00:00 UTC


def draft(n: int, *, answered: float | None = 30.2, line_id: int | None = None, cause: str = "normal") -> CdrDraft:
    d = CdrDraft(
        call_id=f"call-{n}@test",
        direction=CallDirection.OUTGOING,
        calling_number="+4722000001",
        dialled="91234567",
        setup_at=T0 + n,
        calling_line_id=line_id,
        normalised="+4791234567",
        number_class="mobile",
    )
    d.route_prefix, d.trunk_name = "+47", "carrierA"
    if answered is not None:
        d.answer_at, d.answer_mono = T0 + n + 4, 100.0
        d.end_at, d.end_mono = T0 + n + 4 + answered, 100.0 + answered
        d.final_code = 200
    else:
        d.end_at, d.end_mono = T0 + n + 9, 109.0
        d.final_code = 486
    d.cause = cause
    return d


def test_row_has_every_column_and_rounds_duration_up() -> None:
    row = cdr_row(draft(1, answered=30.2))
    assert row == {
        "call_id": "call-1@test",
        "direction": CallDirection.OUTGOING,
        "calling_line_id": None,
        "calling_number": "+4722000001",
        "called_line_id": None,
        "dialled": "91234567",
        "normalised": "+4791234567",
        "number_class": "mobile",
        "route_id": None,
        "route_prefix": "+47",
        "trunk_id": None,
        "trunk_name": "carrierA",
        "forwarded_from": None,
        "setup_at": datetime(2026, 1, 5, 8, 0, 1, tzinfo=UTC),
        "answer_at": datetime(2026, 1, 5, 8, 0, 5, tzinfo=UTC),
        "end_at": datetime(2026, 1, 5, 8, 0, 35, 200000, tzinfo=UTC),
        "duration_s": 31,
        "final_code": 200,
        "cause": "normal",
        "support_code": None,
        "decision_trail": None,
        "forward_chain": None,
    }


def test_duration_of_unanswered_and_exact_second_calls() -> None:
    assert draft(1, answered=None).duration_s == 0
    assert draft(1, answered=30.0).duration_s == 30
    assert draft(1, answered=0.001).duration_s == 1


def test_oversized_text_is_clipped_to_the_columns() -> None:
    d = draft(1)
    d.dialled = "9" * 100
    d.call_id = "x" * 300
    row = cdr_row(d)
    assert len(row["dialled"]) == 64 and len(row["call_id"]) == 255


async def _rows(db: MigratedDb) -> list[CallRecord]:
    async with db.session_factory() as s:
        return list((await s.execute(select(CallRecord).order_by(CallRecord.setup_at))).scalars())


@pytest.fixture
async def hot(migrated_db: MigratedDb) -> AsyncIterator[HotStore]:
    """The writer production uses (``HotStore.insert_call_records``), on this test's database."""
    store = make_hot_store(migrated_db.url, busy_timeout=SQLITE_BUSY_TIMEOUT)
    await store.open()
    yield store
    await store.close()


async def test_a_batch_bigger_than_one_statement_is_written_whole(migrated_db: MigratedDb, hot: HotStore) -> None:
    """Multi-row INSERTs stay under SQLite's 32,766 parameters: 2,100 records take several statements."""
    await hot.insert_call_records([cdr_row(draft(n)) for n in range(2100)])
    rows = await _rows(migrated_db)
    assert len(rows) == 2100 and len({r.call_id for r in rows}) == 2100


async def test_records_are_written_in_one_batch_and_read_back_exactly(migrated_db: MigratedDb, hot: HotStore) -> None:
    batches: list[int] = []

    async def write(rows: list[dict[str, Any]]) -> None:
        batches.append(len(rows))
        await hot.insert_call_records(rows)

    writer = CdrWriter(write, window=0.05, retry_interval=0)
    writer.start()
    for n in range(5):
        writer.submit(draft(n, answered=None if n == 2 else 12.5))
    await writer.close()
    assert batches == [5]
    rows = await _rows(migrated_db)
    assert [r.call_id for r in rows] == [f"call-{n}@test" for n in range(5)]
    r = rows[0]
    assert (r.direction, r.calling_number, r.number_class, r.duration_s, r.final_code, r.cause) == (
        CallDirection.OUTGOING,
        "+4722000001",
        "mobile",
        13,
        200,
        "normal",
    )
    assert r.setup_at == datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
    assert r.end_at == datetime(2026, 1, 5, 8, 0, 16, 500000, tzinfo=UTC)
    assert (rows[2].duration_s, rows[2].answer_at, rows[2].final_code) == (0, None, 486)
    assert writer.written == 5 and writer.spilled == 0


async def test_a_bad_row_does_not_poison_the_batch(migrated_db: MigratedDb, hot: HotStore, tmp_path: Path) -> None:
    spill = tmp_path / "cdr-spill.jsonl"
    writer = CdrWriter(hot.insert_call_records, window=0.05, spill_path=spill, retry_interval=0)
    writer.start()
    writer.submit(draft(1))
    writer.submit(draft(2, line_id=987654))  # no such line: foreign key violation, the row's own fault
    writer.submit(draft(3))
    await writer.close()
    assert [r.call_id for r in await _rows(migrated_db)] == ["call-1@test", "call-3@test"]
    spilled = [json.loads(line) for line in spill.read_text().splitlines()]
    assert [(s["call_id"], s["calling_line_id"], s["setup_at"]) for s in spilled] == [
        ("call-2@test", 987654, "2026-01-05T08:00:02+00:00")
    ]
    assert (writer.written, writer.spilled, writer.pending) == (2, 1, 0)


async def test_rows_wait_out_a_database_outage(migrated_db: MigratedDb, hot: HotStore, tmp_path: Path) -> None:
    """Locked file (SQLite) / connections refused and killed (PostgreSQL): nothing is spilled, nothing lost."""
    spill = tmp_path / "spill.jsonl"
    writer = CdrWriter(hot.insert_call_records, window=0.0, spill_path=spill, retry_interval=0)
    writer.start()
    writer.submit(draft(0))
    await _settle(lambda: writer.written == 1)
    async with outage(migrated_db.url):
        writer.submit(draft(1))
        writer.submit(draft(2))
        await _settle(lambda: writer.pending == 2)
        assert writer.spilled == 0 and writer.written == 1
    writer.submit(draft(3))  # the next batch takes the waiting rows along
    await _settle(lambda: writer.written == 4)
    await writer.close()
    assert [r.call_id for r in await _rows(migrated_db)] == [f"call-{n}@test" for n in range(4)]
    assert (writer.spilled, writer.pending) == (0, 0) and not spill.exists()


async def test_unwritable_rows_are_spilled_on_close(migrated_db: MigratedDb, hot: HotStore, tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    writer = CdrWriter(hot.insert_call_records, window=0.0, spill_path=spill, retry_interval=0)
    writer.start()
    async with outage(migrated_db.url):
        writer.submit(draft(1))
        writer.submit(draft(2))
        await _settle(lambda: writer.pending == 2)
        await writer.close()  # the last try fails too: the operator gets the rows as JSON lines
    assert [json.loads(x)["call_id"] for x in spill.read_text().splitlines()] == ["call-1@test", "call-2@test"]
    assert (writer.written, writer.spilled) == (0, 2) and await _rows(migrated_db) == []


async def test_periodic_retry_writes_without_new_traffic(migrated_db: MigratedDb, hot: HotStore) -> None:
    writer = CdrWriter(hot.insert_call_records, window=0.0, retry_interval=0.05)
    writer.start()
    async with outage(migrated_db.url):
        writer.submit(draft(1))
        await _settle(lambda: writer.pending == 1)
    await _settle(lambda: writer.pending == 0 and writer.written == 1)
    await writer.close()
    assert [r.call_id for r in await _rows(migrated_db)] == ["call-1@test"]


async def _settle(cond: object, timeout: float = 5.0) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        if loop.time() > end:
            pytest.fail("condition not reached")
        await asyncio.sleep(0.01)


async def test_releasing_the_writers_memory_loses_nothing(migrated_db: MigratedDb, hot: HotStore) -> None:
    """``release_memory`` (run before quiet full collections) closes the connection or expires the pool;
    the next batch opens a new one and is written as before."""
    await hot.insert_call_records([cdr_row(draft(0))])
    await hot.release_memory()
    await hot.release_memory()  # twice in a row, with nothing open in between
    await hot.insert_call_records([cdr_row(draft(1))])
    assert [r.call_id for r in await _rows(migrated_db)] == [cdr_row(draft(n))["call_id"] for n in (0, 1)]


async def test_releasing_memory_after_close_is_a_no_op(migrated_db: MigratedDb) -> None:
    """A quiet-time collection can fall due while the switch stops, after the writer closed."""
    store = make_hot_store(migrated_db.url, busy_timeout=SQLITE_BUSY_TIMEOUT)
    await store.open()
    await store.close()
    await store.release_memory()
