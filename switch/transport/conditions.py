"""One log line per condition, not one per event: floods must not flood the log.

A connection flood used to write a traceback per refused connection (121,262
of them in one test). Here each condition (a name plus the peer it concerns,
or none) logs its first occurrence at once and then at most once per
``interval`` seconds, saying how many were suppressed in between.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ConditionLog:
    def __init__(self, logger: logging.Logger, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # condition -> (last logged at, suppressed since)

    def warning(self, condition: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``condition`` was logged within the interval; True if logged."""
        now = self.clock()
        last = self._last.get(condition)
        if last is not None and now - last[0] < self.interval:
            self._last[condition] = (last[0], last[1] + 1)
            return False
        suppressed = 0 if last is None else last[1]
        if len(self._last) > 10_000:  # many distinct peers: forget the old ones
            self._last.clear()
        self._last[condition] = (now, 0)
        if suppressed:
            self.logger.warning(message + " (%d more since the last report)", *args, suppressed)
        else:
            self.logger.warning(message, *args)
        return True
