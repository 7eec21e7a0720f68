"""UDP transport: a thin DatagramProtocol feeding the endpoint (RFC 3261 §18)."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .endpoint import Endpoint

log = logging.getLogger(__name__)

# The socket buffer is the queue in front of the switch. Big enough that a burst of
# REGISTERs after a mass reboot queues rather than drops, small enough that the wait
# stays well under T1 (500 ms): a request that waits longer is retransmitted, the
# retransmission queues too, and an overload turns into a collapse (bench/README.md).
DEFAULT_UDP_BUFFER = 512 * 1024


class UdpTransport(asyncio.DatagramProtocol):
    def __init__(self, endpoint: Endpoint, buffer: int = DEFAULT_UDP_BUFFER) -> None:
        self.endpoint = endpoint
        self.buffer = buffer
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)
        self.family = socket.AF_INET

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDPTransport does not subclass asyncio.DatagramTransport.
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.family = sock.family
            for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):
                # SO_RCVBUF is capped by net.core.rmem_max (often 208 KiB); with
                # CAP_NET_ADMIN the *FORCE variants (33/32 on Linux) are not.
                try:
                    sock.setsockopt(socket.SOL_SOCKET, force, self.buffer)
                except OSError:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, opt, self.buffer)
                    except OSError:  # pragma: no cover - container limits
                        pass
        name = transport.get_extra_info("sockname")
        self.local = (name[0], name[1])

    def datagram_received(self, data: bytes, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        self.endpoint.udp_received(data, addr[0], addr[1])

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: nothing to do for a datagram protocol.
        log.debug("udp error: %s", exc)

    def send(self, data: bytes, host: str, port: int) -> None:
        if self.transport is not None:
            self.transport.sendto(data, (host, port))


async def open_udp(endpoint: Endpoint, host: str, port: int, *, buffer: int = DEFAULT_UDP_BUFFER) -> UdpTransport:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    _, proto = await loop.create_datagram_endpoint(
        lambda: UdpTransport(endpoint, buffer), local_addr=(host, port), family=family
    )
    return proto
