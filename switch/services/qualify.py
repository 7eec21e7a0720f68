"""Qualify: periodic OPTIONS to every registered contact (WAN and Tel lamps).

Pings go to the address the REGISTER really came from (RFC 3581), over the
same transport, which also keeps the adapter's NAT binding open. Any response
— even 404 or 405 — proves reachability; silence for ``timeout`` seconds is
a loss. Pings are spread over the interval so a large base does not produce
bursts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from switch.sip.headers import Headers
from switch.sip.message import Request, new_call_id, new_tag
from switch.sip.transaction.events import Peer, ResponseReceived, TransactionTimeout
from switch.transport.endpoint import Endpoint

from .location import Binding, LocationService

log = logging.getLogger(__name__)


def build_request(
    method: str, binding: Binding, from_host: str, user_agent: str, extra: Sequence[tuple[str, str]] = ()
) -> Request:
    """An out-of-dialog request to a registered contact."""
    headers = Headers.of(
        [
            ("From", f"<sip:softswitch@{from_host}>;tag={new_tag()}"),
            ("To", f"<{binding.contact}>"),
            ("Call-ID", new_call_id(from_host)),
            ("CSeq", f"1 {method}"),
            ("Max-Forwards", "70"),
            ("User-Agent", user_agent),
            *extra,
        ]
    )
    return Request(method, binding.contact, headers)


def peer_of(binding: Binding) -> Peer:
    return Peer(binding.transport, binding.received_host, binding.received_port, binding.conn)


class Qualifier:
    def __init__(
        self,
        endpoint: Endpoint,
        location: LocationService,
        *,
        interval: float,
        timeout: float,
        from_host: str,
        on_result: Callable[[Binding, float | None], None],
    ) -> None:
        self.endpoint = endpoint
        self.location = location
        self.interval = interval
        self.timeout = timeout
        self.from_host = from_host
        self.on_result = on_result
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            bindings = self.location.all_bindings()
            if not bindings:
                await asyncio.sleep(self.interval)
                continue
            gap = self.interval / len(bindings)
            for b in bindings:
                self.ping(b)
                await asyncio.sleep(gap)

    def ping(self, binding: Binding) -> None:
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        done = False

        def finish(rtt: float | None) -> None:
            nonlocal done
            if done:
                return
            done = True
            timer.cancel()
            self.on_result(binding, rtt)

        def on_event(ev: ResponseReceived | TransactionTimeout) -> None:
            if isinstance(ev, ResponseReceived):
                finish(loop.time() - sent_at)
            else:
                finish(None)

        req = build_request("OPTIONS", binding, self.from_host, self.endpoint.user_agent)
        timer = loop.call_later(self.timeout, lambda: finish(None))
        try:
            tid = self.endpoint.request(req, peer_of(binding), on_event)
        except Exception:  # noqa: BLE001 - a bad contact must not stop qualifying the rest
            log.exception("qualify of %s failed", binding.contact)
            finish(None)
            return
        timer.cancel()

        def timed_out() -> None:
            self.endpoint.forget_client(tid)
            finish(None)

        timer = loop.call_later(self.timeout, timed_out)
