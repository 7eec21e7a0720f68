"""tune_gc: young collections on a clock, the full one only when traffic is light (or overdue)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from switch import gc_policy as app_mod
from switch.gc_policy import tune_gc
from switch import gcstats, memstats


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


async def test_full_collection_waits_for_quiet_then_runs(restore_gc: None) -> None:
    busy = True
    tune_gc(young_every=0.01, full_every=0.05, quiet=lambda: not busy, full_at_most=60.0)
    assert gc.get_threshold()[2] >= 1_000_000  # no automatic full collection
    gens = gcstats.STATS.gens
    young0, full0 = gens[1].collections, gens[2].collections
    await asyncio.sleep(0.3)
    assert gens[1].collections - young0 >= 5  # young collections on the clock
    assert gens[2].collections == full0  # overdue, but traffic is heavy: not yet
    busy = False
    await asyncio.sleep(0.1)
    assert gens[2].collections > full0


async def test_full_collection_runs_when_overdue_even_if_busy(restore_gc: None) -> None:
    tune_gc(young_every=0.01, full_every=0.05, quiet=lambda: False, full_at_most=0.15)
    full0 = gcstats.STATS.gens[2].collections
    await asyncio.sleep(0.4)
    assert gcstats.STATS.gens[2].collections > full0


def test_full_collections_are_bounded_to_minutes_not_an_hour() -> None:
    """Garbage left by a flood or a load run must not wait an hour (RSS 152 -> 373 MiB over the call ladder)."""
    import inspect

    params = inspect.signature(app_mod.tune_gc).parameters
    assert params["full_every"].default <= 60.0
    assert params["full_at_most"].default <= 600.0


async def test_a_full_collection_also_trims_the_c_heap(restore_gc: None, monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    monkeypatch.setattr(memstats, "_malloc_trim", lambda pad: trims.append(pad) or 1)
    app_mod.tune_gc(young_every=0.01, full_every=0.02, quiet=lambda: True)
    await asyncio.sleep(0.15)
    assert trims and trims[0] == 0


async def test_a_full_collection_empties_the_sip_parse_caches(restore_gc: None) -> None:
    from switch.sip import headers
    from switch.sip.headers import NameAddr

    NameAddr.parse("<sip:burst@example.net>;tag=left-by-a-burst")
    assert headers._ADDR_CACHE
    full0 = gcstats.STATS.gens[2].collections
    tune_gc(young_every=0.01, full_every=0.02, quiet=lambda: True)
    await asyncio.sleep(0.15)
    assert gcstats.STATS.gens[2].collections > full0
    assert "<sip:burst@example.net>;tag=left-by-a-burst" not in headers._ADDR_CACHE


async def test_caches_are_released_before_the_full_collection(restore_gc: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer's SQLite caches go first, so that the trim after the collection returns their pages too."""
    order: list[str] = []
    monkeypatch.setattr(memstats, "_malloc_trim", lambda pad: order.append("trim") or 1)

    async def release() -> None:
        await asyncio.sleep(0.01)  # the release runs in a thread: young collections go on meanwhile
        order.append("release")

    async def broken() -> None:
        raise RuntimeError("database gone")

    tune_gc(young_every=0.005, full_every=0.02, quiet=lambda: True, release=[broken, release])
    assert order == ["trim"]  # at start-up
    order.clear()
    await asyncio.sleep(0.2)
    assert order[:2] == ["release", "trim"]  # a failing release does not stop the others or the collection
    assert order.count("release") >= 2  # and it happens again at the next quiet full collection
