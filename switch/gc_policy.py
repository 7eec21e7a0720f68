"""The garbage-collector policy of a running switch: collections on a clock, not on allocation counts.

``tune_gc`` is called once by the composition root after start-up (see its
docstring for the measurements behind it); ``switch/gcstats.py`` counts the
pauses it leaves, shown in ``/health``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Sequence

from switch import gcstats, memstats
from switch.sip.headers import clear_parse_caches

__all__ = ["tune_gc"]

log = logging.getLogger(__name__)


def tune_gc(
    young_every: float = 0.05,
    full_every: float = 30.0,
    *,
    quiet: Callable[[], bool] | None = None,
    full_at_most: float = 300.0,
    release: Sequence[Callable[[], Awaitable[None]]] = (),
) -> None:
    """Keep the cyclic garbage collector from stalling SIP: young collections on a clock, full ones when quiet.

    Calls leave no reference cycles (tests/services/test_b2bua_no_cycles.py),
    nor do registrations, CDR writes or housekeeping (0 unreachable objects
    with ``bench/bench_calls_inproc.py --find-cycles``), so under load the
    collector frees nothing: it walks the objects of finished calls still in
    their RFC 3261 linger timers (~120 per call for 32 s: ~1.5 million at 400
    calls/s). Measured with ``bench/bench_calls_inproc.py --rate 400``:

    * Freezing what exists after start-up (modules, SQLAlchemy and aiohttp
      machinery, the line directory) takes it out of every scan.
    * Python starts a young collection when allocations minus deallocations
      pass threshold 0. At a steady call rate the calls leaving their linger
      timers die as fast as new ones are made, the count hardly moves, and the
      "young" collection then walks everything made since the previous one:
      with the old thresholds (10000, 50, 1000) up to ~500,000 objects,
      200-400 ms, several times a minute (the PDD p99). No threshold bounds
      that; a clock does. ``gc.collect(1)`` every ``young_every`` s walks
      ~2,500 objects at 400 calls/s (under 1 ms) and moves the linger
      objects on to generation 2. The thresholds stay as a backstop for
      bursts inside one callback (threshold 1 = 0: no growing generation 1).
    * A full collection walks every live object (~1 s at 400 calls/s) and only
      cycles need it; the one source found is asyncio's socket transport,
      ~7 objects per closed HTTP connection. So there is no automatic one
      (threshold 2 out of reach), just one every ``full_every`` s -- and,
      when ``quiet`` is given, only once it says traffic is light (few
      transactions in flight: the walk is short and few requests wait), but
      at the latest after ``full_at_most`` s. Once an hour was too rare: after
      a flood or a load run the garbage of that hour stayed (RSS 152 -> 373 MiB
      over the call ladder); every 30 s while quiet, at the latest every 5
      minutes, memory is back near its baseline within a minute of the load
      ending. After each full collection the C heap's free pages go back to the
      system (glibc ``malloc_trim``): datagrams and SIP texts live there, not in
      Python's arenas, and would otherwise keep the RSS of the peak. The SIP
      parse caches are emptied first: their entries, made during the burst,
      would pin its arenas (an arena goes back only when all of it is free).
      Big blocks (256 KiB and more) are mmapped on their own from start-up on
      (``memstats.fix_mmap_threshold``), so that they do not pin the heap either.
      Before that, each of ``release`` is awaited: caches outside Python's
      objects that a burst grew (the SQLite writer's connection: page cache and
      prepared statements, ~4 MiB after the call ladder), so that the trim
      returns their pages too.
    """
    gcstats.install()
    memstats.fix_mmap_threshold()
    memstats.trim_heap()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 0, 1_000_000_000)
    loop = asyncio.get_running_loop()
    full_at = loop.time() + full_every

    releasing: asyncio.Task[None] | None = None

    async def release_then_full() -> None:
        nonlocal releasing, full_at
        try:
            for r in release:
                try:
                    await r()
                except Exception:  # a cache that cannot be released now is released next time
                    log.exception("releasing memory before a full collection failed")
            clear_parse_caches()
            gc.collect()
            memstats.trim_heap()
            full_at = loop.time() + full_every
        finally:
            releasing = None

    def collect() -> None:
        nonlocal releasing
        now = loop.time()
        if releasing is None and now >= full_at and (
            quiet is None or quiet() or now >= full_at + full_at_most - full_every
        ):
            releasing = loop.create_task(release_then_full())  # young collections go on meanwhile
        else:
            gc.collect(1)
        loop.call_later(young_every, collect)

    loop.call_later(young_every, collect)
