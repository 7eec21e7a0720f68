"""Billing periods: calendar months in the operator's time zone (Europe/Oslo by default).

The invoice says "November": a call at 00:30 Norwegian time on 1 December is
December's, although it is still 30 November in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

__all__ = ["MonthlyPeriods"]


class MonthlyPeriods:
    """Maps a time to its calendar month; remembers the last month so the common case is two compares."""

    __slots__ = ("tz", "_start", "_end", "_start_dt")

    def __init__(self, tz: str = "Europe/Oslo") -> None:
        self.tz = ZoneInfo(tz)
        self._start = 0.0
        self._end = 0.0
        self._start_dt = datetime.fromtimestamp(0, UTC)

    def bounds(self, epoch: float) -> tuple[datetime, datetime]:
        """[start, end) of the month containing ``epoch``, as UTC datetimes."""
        local = datetime.fromtimestamp(epoch, self.tz)
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        nxt = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return start.astimezone(UTC), nxt.astimezone(UTC)

    def start_of(self, epoch: float) -> datetime:
        """The (UTC) start of the month containing ``epoch``, the key of billing totals."""
        if self._start <= epoch < self._end:
            return self._start_dt
        start, end = self.bounds(epoch)
        self._start, self._end, self._start_dt = start.timestamp(), end.timestamp(), start
        return start

    def end_of(self, epoch: float) -> float:
        """Epoch of the end of the month containing ``epoch`` (the rollover)."""
        self.start_of(epoch)
        return self._end

    def months(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Every whole month touching [start, end)."""
        out: list[tuple[datetime, datetime]] = []
        t = start.timestamp()
        stop = end.timestamp()
        while t < stop:
            b = self.bounds(t)
            out.append(b)
            t = b[1].timestamp()
        return out
