"""Group commit: waiters are released only after their batch is written."""

from __future__ import annotations

import asyncio

import pytest

from switch.store.groupcommit import GroupCommitter
from switch.services.location import Binding, LineChange, LocationService


async def test_concurrent_submissions_share_one_write() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def write(items: list[int]) -> None:
        batches.append(list(items))
        await gate.wait()

    gc: GroupCommitter[int] = GroupCommitter(write)
    gc.start()
    done: list[tuple[int, BaseException | None]] = []
    gc.submit(1, lambda e: done.append((1, e)))
    await asyncio.sleep(0)  # first batch starts with item 1 only
    for i in (2, 3, 4):
        gc.submit(i, lambda e, i=i: done.append((i, e)))
    await asyncio.sleep(0.01)
    assert done == []  # nothing released before the write finished
    gate.set()
    await asyncio.sleep(0.01)
    assert batches == [[1], [2, 3, 4]]
    assert [i for i, _ in done] == [1, 2, 3, 4]
    assert all(e is None for _, e in done)
    await gc.close()


async def test_failed_write_reports_error_to_every_waiter() -> None:
    async def write(items: list[int]) -> None:
        raise RuntimeError("disk full")

    gc: GroupCommitter[int] = GroupCommitter(write)
    gc.start()
    errors: list[BaseException | None] = []
    for i in range(3):
        gc.submit(i, errors.append)
    await asyncio.sleep(0.01)
    assert len(errors) == 3 and all(isinstance(e, RuntimeError) for e in errors)
    await gc.close()


def _b(line: int, contact: str, expires_at: float) -> Binding:
    return Binding(line, contact, expires_at, "cid", 1, "127.0.0.1", 5060, "udp")


async def test_location_restores_old_bindings_when_commit_fails() -> None:
    fail = True

    async def write(changes: list[LineChange]) -> None:
        if fail:
            raise RuntimeError("db down")

    loc = LocationService(write, clock=lambda: 1000.0)
    loc.start([_b(1, "sip:a@h", 2000.0)])
    results: list[BaseException | None] = []
    loc.replace(1, [_b(1, "sip:b@h", 2000.0)], results.append)
    assert [b.contact for b in loc.bindings(1)] == ["sip:b@h"]  # visible to the next REGISTER at once
    await asyncio.sleep(0.01)
    assert isinstance(results[0], RuntimeError)
    assert [b.contact for b in loc.bindings(1)] == ["sip:a@h"]  # rolled back
    await loc.close()


async def test_location_drops_expired_on_start_and_sweep() -> None:
    written: list[list[LineChange]] = []
    now = [1000.0]

    async def write(changes: list[LineChange]) -> None:
        written.append(changes)

    loc = LocationService(write, clock=lambda: now[0])
    loc.start([_b(1, "sip:old@h", 999.0), _b(2, "sip:live@h", 1010.0)])
    assert loc.bindings(1) == [] and len(loc.bindings(2)) == 1
    now[0] = 1020.0
    assert await loc.sweep() == 1
    assert loc.count() == 0
    assert written and written[-1][-1].line_id == 2 and written[-1][-1].bindings == []
    await loc.close()


async def test_sweep_walks_lines_only_once_something_can_have_expired() -> None:
    """Sweeps run every 5 s; before the soonest expiry they must neither walk nor write."""
    written: list[list[LineChange]] = []
    now = [1000.0]

    async def write(changes: list[LineChange]) -> None:
        written.append(changes)

    loc = LocationService(write, clock=lambda: now[0])
    loc.start([_b(1, "sip:a@h", 1100.0)])
    done: list[BaseException | None] = []
    loc.replace(2, [_b(2, "sip:b@h", 1050.0)], done.append)  # registered later, expires sooner
    await loc.sweep()
    writes = len(written)
    now[0] = 1049.0
    assert await loc.sweep() == 0 and len(written) == writes
    now[0] = 1060.0
    assert await loc.sweep() == 1  # line 2's binding, although it came after start()
    assert [b.line_id for b in loc.all_bindings()] == [1]
    now[0] = 1099.0
    writes = len(written)
    assert await loc.sweep() == 0 and len(written) == writes
    now[0] = 1101.0
    assert await loc.sweep() == 1 and loc.count() == 0
    await loc.close()


@pytest.mark.parametrize("n", [1, 50])
async def test_last_change_per_line_wins_within_a_batch(n: int) -> None:
    seen: list[list[LineChange]] = []

    async def write(changes: list[LineChange]) -> None:
        seen.append(changes)

    loc = LocationService(write, clock=lambda: 0.0)
    loc.start([])
    for i in range(n):
        loc.replace(7, [_b(7, f"sip:{i}@h", 100.0)], lambda e: None)
    await asyncio.sleep(0.01)
    flat = [c for batch in seen for c in batch]
    assert flat[-1].bindings[0].contact == f"sip:{n - 1}@h"
    assert sum(1 for c in seen[-1] if c.line_id == 7) == 1
    await loc.close()


async def test_the_last_batch_is_not_held_while_waiting_for_the_next() -> None:
    """An idle switch must not keep the last burst's rows alive (they pin the memory they sit in)."""
    import gc
    import weakref

    class Row:
        pass

    async def write(items: list[Row]) -> None:
        pass

    committer: GroupCommitter[Row] = GroupCommitter(write)
    committer.start()
    row = Row()
    gone = weakref.ref(row)
    await committer.write_now(row)
    del row
    await asyncio.sleep(0.01)
    gc.collect()
    assert gone() is None
    await committer.close()
