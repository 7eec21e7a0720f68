"""switch.memstats: the figures /health shows come from the real allocator, and move with it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from switch import memstats


def test_snapshot_sees_c_heap_allocations_and_their_release() -> None:
    before = memstats.snapshot()
    assert before["rss_mib"] and before["rss_mib"] > 10
    assert before["heap_in_use_mib"] is not None  # glibc (Debian): mallinfo2 is there
    chunks = [bytes(1000) + bytes([i % 256]) for i in range(40_000)]  # > 512 B: glibc, not pymalloc
    grown = memstats.snapshot()
    assert grown["heap_in_use_mib"] - before["heap_in_use_mib"] > 30  # type: ignore[operator]
    del chunks
    memstats.trim_heap()
    after = memstats.snapshot()
    assert after["heap_in_use_mib"] - before["heap_in_use_mib"] < 5  # type: ignore[operator]


def test_sqlite_memory_is_the_library_pythons_sqlite3_uses() -> None:
    before = memstats.snapshot()["sqlite_mib"]
    assert before is not None
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.executemany("INSERT INTO t VALUES (?)", ((bytes(4000),) for _ in range(2000)))  # ~8 MiB in memory
    assert memstats.snapshot()["sqlite_mib"] - before > 4  # type: ignore[operator]
    conn.close()
    assert memstats.snapshot()["sqlite_mib"] - before < 1  # type: ignore[operator]


_BIG_BLOCKS = """
import sys
from switch import memstats
if sys.argv[1] == "fixed":
    assert memstats.fix_mmap_threshold()
first = bytearray(24 << 20)
del first  # freeing an mmapped block raises glibc's threshold to its size, unless it is fixed
before = memstats.snapshot()
second = bytearray(24 << 20)
grown = memstats.snapshot()
print(round(grown["mmapped_mib"] - before["mmapped_mib"]), round(grown["heap_mib"] - before["heap_mib"]))
"""


@pytest.mark.parametrize("mode, mmapped, heap", [("fixed", 24, 0), ("dynamic", 0, 24)])
def test_big_blocks_stay_out_of_the_heap_once_the_threshold_is_fixed(mode: str, mmapped: int, heap: int) -> None:
    """glibc moves the second big buffer into the heap (where it pins what is below it); fixed, it is mmapped."""
    out = subprocess.run([sys.executable, "-c", _BIG_BLOCKS, mode], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(mmapped), str(heap)]
