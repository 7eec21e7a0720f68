"""Where the switch's memory is, for ``/health`` and the benchmarks: RSS, the C heap, SQLite.

Python's own objects live in pymalloc arenas (mmapped, outside the C heap), so
``rss - heap_mib`` is roughly the interpreter, its objects and the libraries.
The C heap holds what pymalloc does not: objects over 512 bytes (datagrams,
SIP texts, big dicts and lists), SQLite's page caches and statements, OpenSSL.
After a burst the interesting figure is ``heap_free_mib``: memory glibc keeps
between live chunks (``malloc_trim`` returns only whole free pages).

The C functions are looked up once, at import (start-up), with ctypes: importing
ctypes after a burst would put its objects in the burst's arenas and pin them.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

__all__ = ["fix_mmap_threshold", "snapshot", "trim_heap"]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _libc_function(name: str) -> Any:
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):  # not glibc (musl, macOS): no figures, no trim
        return None


_malloc_trim = _libc_function("malloc_trim")
_mallopt = _libc_function("mallopt")
_M_MMAP_THRESHOLD = -3  # glibc malloc.h
_mallinfo2 = _libc_function("mallinfo2")  # glibc >= 2.33
if _mallinfo2 is not None:
    _mallinfo2.restype = _MallInfo2
    _mallinfo2.argtypes = []
_sqlite_used: Any
try:
    _sqlite_used = ctypes.CDLL("libsqlite3.so.0").sqlite3_memory_used  # the library Python's sqlite3 uses
    _sqlite_used.restype = ctypes.c_int64
    _sqlite_used.argtypes = []
except (OSError, AttributeError):
    _sqlite_used = None
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MIB = 2**20


def fix_mmap_threshold(size: int = 256 * 1024) -> bool:
    """Serve every allocation of ``size`` bytes or more with its own mmap, whatever was freed before.

    glibc starts at 128 KiB but raises the threshold to the size of each mmapped
    block freed (up to 32 MiB): after the lingering records' buffers (switch.sip.
    transaction.linger) or a big dict were freed once, their successors came from
    the heap, where one of them allocated late in a burst pins everything below it
    and the rest fragments it. A fixed threshold sends them back to the system on
    free. Measured (bench_calls_inproc, 12,000 calls): C heap after the calls 37.9
    -> 30.8 MiB, in use +1.8 -> +0.3 MiB over the baseline.
    """
    return _mallopt is not None and _mallopt(_M_MMAP_THRESHOLD, size) == 1


def trim_heap() -> None:
    """Return the C heap's free pages to the system (glibc only; elsewhere nothing)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def rss_mib() -> float | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return round(int(f.read().split()[1]) * _PAGE / _MIB, 1)
    except (OSError, IndexError, ValueError):
        return None


def snapshot() -> dict[str, float | None]:
    """RSS and the C heap in MiB (None where the platform does not say)."""
    out: dict[str, float | None] = {"rss_mib": rss_mib()}
    if _mallinfo2 is not None:
        m = _mallinfo2()
        out.update(heap_mib=round(m.arena / _MIB, 1), heap_in_use_mib=round(m.uordblks / _MIB, 1),
                   heap_free_mib=round(m.fordblks / _MIB, 1), mmapped_mib=round(m.hblkhd / _MIB, 1))
    out["sqlite_mib"] = None if _sqlite_used is None else round(_sqlite_used() / _MIB, 1)
    return out
