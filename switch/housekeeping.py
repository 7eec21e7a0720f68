"""Housekeeping of a running switch: expired bindings, line changes, ping histories, lamp ageing.

Every 5 s: pick up line changes made by another process (``softswitch
import``) and sweep expired bindings. Every 30 s: write the ping histories
that changed (a crash loses at most 30 s of them). Every minute: age the lamps.

Every lamp change with a cause (REGISTER, expiry, ping, config fetch) is pushed
as it happens; the minute tick only catches what time alone changes (PWR going
stale). Recomputing every adapter every 5 s cost ~0.5 s of CPU per tick at
10,000 adapters and showed up as latency spikes under load.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from switch.services.adapter_status import AdapterStatusService
from switch.services.lines import LineDirectory
from switch.services.location import LocationService
from switch.services.periodic import Periodic

__all__ = ["TICK", "housekeeping"]

log = logging.getLogger("switch")

TICK = 5.0


def housekeeping(
    *,
    lines: LineDirectory,
    location: LocationService,
    status: AdapterStatusService,
    save_reachability: Callable[[], Awaitable[None]],
    tick: float = TICK,
) -> Periodic:
    """The housekeeping job (not started): ``start()`` it once the switch is up, ``await stop()`` first on the way down."""
    ticks = 0

    async def step() -> None:
        nonlocal ticks
        ticks += 1
        await lines.reload_if_changed()
        removed = await location.sweep()
        if removed:
            log.info("swept %d expired binding(s)", removed)
        if ticks % 6 == 0:
            await save_reachability()
        if ticks % 12 == 0:
            await status.refresh_all_async()

    return Periodic("housekeeping", step, tick)
