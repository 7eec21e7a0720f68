"""Live reachability of a line for unreachable forwarding (CFNRc): bindings and qualify pings.

Decided at once when the call arrives, not after ringing into the void: no
binding at all, or every binding's OPTIONS pings lost ``loss_threshold``
times in a row (what the WAN/Tel lamps show as "not answering pings").
"""

from __future__ import annotations

from ..adapter_status import AdapterStatusService
from ..location import LocationService
from .model import Reach

__all__ = ["LineReach"]


class LineReach:
    __slots__ = ("location", "status")

    def __init__(self, location: LocationService, status: AdapterStatusService) -> None:
        self.location = location
        self.status = status

    def __call__(self, line_id: int) -> Reach:
        bindings = self.location.bindings(line_id)
        if not bindings:
            return Reach.NO_BINDING
        threshold = self.status.loss_threshold
        reach = self.status.reach
        for b in bindings:
            r = reach.get((b.line_id, b.contact))
            if r is None or r.consecutive_lost < threshold:
                return Reach.REACHABLE
        return Reach.PINGS_LOST
