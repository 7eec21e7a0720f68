"""RTP ports for announcements: a fixed range, a bounded number in use at once.

Even ports only (RFC 3550 §11: RTP on an even port, RTCP on the next odd
one, which we leave free; a prompt sends no RTCP). The pool never hands out
more than ``limit`` ports, so a flood of refused calls cannot use up the
range or the machine: past the limit the refusal is the plain final response.
A port is handed out again only after every other free one (first in, first
out), which keeps a late packet of an old stream away from a new one.
"""

from __future__ import annotations

from collections import deque

__all__ = ["PortPool", "parse_range"]


def parse_range(text: str) -> tuple[int, int]:
    """``"20000-20999"`` → (20000, 20999); raises ValueError with what is wrong."""
    low_s, dash, high_s = text.partition("-")
    if not dash or not low_s.strip().isdigit() or not high_s.strip().isdigit():
        raise ValueError(f"RTP port range must be LOW-HIGH, e.g. 20000-20999 (got {text!r})")
    low, high = int(low_s), int(high_s)
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"RTP port range must lie within 1024-65535 with LOW <= HIGH (got {text!r})")
    if high - low < 1:
        raise ValueError(f"RTP port range {text!r} holds no even/odd pair")
    return low, high


class PortPool:
    """Even ports in ``[low, high]``, at most ``limit`` taken at once."""

    __slots__ = ("low", "high", "limit", "_free", "_taken")

    def __init__(self, low: int, high: int, limit: int | None = None) -> None:
        first = low + (low & 1)
        ports = list(range(first, high, 2))  # the odd RTCP port after each must be in range too
        if not ports:
            raise ValueError(f"no even port with its odd pair in {low}-{high}")
        self.low = low
        self.high = high
        self.limit = len(ports) if limit is None else max(0, min(limit, len(ports)))
        self._free: deque[int] = deque(ports)
        self._taken: set[int] = set()

    @property
    def in_use(self) -> int:
        return len(self._taken)

    @property
    def capacity(self) -> int:
        return len(self._free) + len(self._taken)

    def acquire(self) -> int | None:
        """A free port, or None when the limit is reached."""
        if len(self._taken) >= self.limit or not self._free:
            return None
        port = self._free.popleft()
        self._taken.add(port)
        return port

    def release(self, port: int) -> None:
        """Give ``port`` back (twice is harmless)."""
        if port in self._taken:
            self._taken.remove(port)
            self._free.append(port)

    def discard(self, port: int) -> None:
        """``port`` could not be bound (another program has it): try it again last."""
        self.release(port)
