"""Qualify: periodic OPTIONS to every registered contact (WAN and Tel lamps).

Pings go to the address the REGISTER really came from (RFC 3581), over the
same transport, which also keeps the adapter's NAT binding open. Any response
— even 404 or 405 — proves reachability; silence for ``timeout`` seconds is
a loss. Pings are spread over the interval so a large base does not produce
bursts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .location import Binding, LocationService
from .outbound import out_of_dialog_request, peer_of, ping
from .periodic import Periodic
from .sip_port import SipPort

__all__ = ["Qualifier"]


class Qualifier:
    def __init__(
        self,
        port: SipPort,
        location: LocationService,
        *,
        interval: float,
        timeout: float,
        from_host: str,
        on_result: Callable[[Binding, float | None], None],
    ) -> None:
        self.port = port
        self.location = location
        self.interval = interval
        self.timeout = timeout
        self.from_host = from_host
        self.on_result = on_result
        self._job = Periodic("qualify", self._round, interval, immediate=True)

    def start(self) -> None:
        self._job.start()

    async def stop(self) -> None:
        await self._job.stop()

    async def _round(self) -> float | None:
        """Ping every binding once, spread over the interval; the next round follows at once."""
        bindings = self.location.all_bindings()
        if not bindings:
            return None  # nothing registered: look again after one interval
        gap = self.interval / len(bindings)
        for b in bindings:
            self.ping(b)
            await asyncio.sleep(gap)
        return 0.0

    def ping(self, binding: Binding) -> None:
        req = out_of_dialog_request("OPTIONS", binding.contact, self.from_host, self.port.user_agent)
        ping(self.port, req, peer_of(binding), self.timeout, lambda rtt: self.on_result(binding, rtt))
