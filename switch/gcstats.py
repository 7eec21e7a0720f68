"""Pauses of the cyclic garbage collector, as the event loop feels them.

A full collection stops everything, SIP included; at registration or call
rates that keep tens of thousands of transactions alive it was the single
largest source of latency (bench/README.md). Counting the collections per
generation with their longest and total pause makes that visible in
``/health`` instead of as unexplained jitter.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GcStats", "install", "STATS", "unreachable_objects"]


@dataclass(slots=True)
class _Gen:
    collections: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    collected: int = 0


@dataclass(slots=True)
class GcStats:
    gens: list[_Gen] = field(default_factory=lambda: [_Gen(), _Gen(), _Gen()])
    _started: float = 0.0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        g = self.gens[int(info.get("generation", 2))]
        g.collections += 1
        g.total_s += took
        g.collected += int(info.get("collected", 0))
        if took > g.max_s:
            g.max_s = took

    def snapshot(self) -> dict[str, Any]:
        return {
            f"gen{i}": {
                "collections": g.collections,
                "total_ms": round(g.total_s * 1000, 1),
                "max_ms": round(g.max_s * 1000, 1),
                "unreachable_found": g.collected,
            }
            for i, g in enumerate(self.gens)
        } | {"frozen_objects": gc.get_freeze_count(), "thresholds": list(gc.get_threshold())}


STATS = GcStats()


def install() -> GcStats:
    """Start counting (idempotent)."""
    if STATS.callback not in gc.callbacks:
        gc.callbacks.append(STATS.callback)
    return STATS


def unreachable_objects() -> list[object]:
    """Run a full collection and return what it found only through reference cycles.

    ``DEBUG_SAVEALL`` keeps those objects for inspection instead of freeing them:
    the proof (tests) and the census (bench) that something creates cycles.
    """
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        garbage = list(gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    return garbage
