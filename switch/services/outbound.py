"""Requests the switch sends on its own, outside any call: OPTIONS pings with a timeout, NOTIFYs.

One mechanism for "send OPTIONS, and call back exactly once": with the
round-trip time when any response comes (even 404 or 503 proves the peer is
there), with ``None`` when nothing came within ``timeout`` or the request could
not be sent. The qualifier pings registered contacts with it (the WAN and Tel
lamps) and the trunk service pings carriers (failover order).

``timeout`` is usually far shorter than Timer F (32 s): when it fires, the
client transaction is abandoned (``forget_client``), so a late answer neither
counts nor keeps retransmitting a ping nobody waits for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from switch.sip.headers import Headers
from switch.sip.message import Request, new_call_id, new_tag
from switch.sip.transaction.events import Peer, ResponseReceived, TransactionTimeout

from .location import Binding
from .sip_port import SipPort

__all__ = ["out_of_dialog_request", "peer_of", "ping"]

log = logging.getLogger(__name__)


def out_of_dialog_request(
    method: str, uri: str, from_host: str, user_agent: str, extra: Sequence[tuple[str, str]] = ()
) -> Request:
    """A request of the switch's own to ``uri`` (To = the same URI, CSeq 1, a fresh Call-ID)."""
    headers = Headers.of(
        [
            ("From", f"<sip:softswitch@{from_host}>;tag={new_tag()}"),
            ("To", f"<{uri}>"),
            ("Call-ID", new_call_id(from_host)),
            ("CSeq", f"1 {method}"),
            ("Max-Forwards", "70"),
            ("User-Agent", user_agent),
            *extra,
        ]
    )
    return Request(method, uri, headers)


def peer_of(binding: Binding) -> Peer:
    """Where a registered contact is reached: the address its REGISTER came from (RFC 3581), same transport."""
    return Peer(binding.transport, binding.received_host, binding.received_port, binding.conn)


def ping(
    port: SipPort,
    request: Request,
    dest: Peer,
    timeout: float,
    on_result: Callable[[float | None], None],
) -> None:
    """Send ``request`` (an OPTIONS); ``on_result(rtt)`` on the first response, ``on_result(None)`` on silence.

    Never raises: a request that cannot be sent (a bad contact, a closed TCP
    connection) is logged and reported as ``None`` at once.
    """
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    done = False
    tid = ""

    def finish(rtt: float | None, give_up: bool) -> None:
        nonlocal done
        if done:
            return
        done = True
        timer.cancel()
        if give_up and tid:
            port.forget_client(tid)
        on_result(rtt)

    def on_event(ev: ResponseReceived | TransactionTimeout) -> None:
        finish(loop.time() - sent_at if isinstance(ev, ResponseReceived) else None, False)

    timer = loop.call_later(timeout, finish, None, True)
    try:
        tid = port.request(request, dest, on_event)
    except Exception:  # noqa: BLE001 - one bad peer must not stop pinging the others
        log.exception("%s to %s failed", request.method, request.uri)
        finish(None, False)
