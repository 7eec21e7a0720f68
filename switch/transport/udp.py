"""UDP transport: a non-blocking socket read with ``recvmsg`` feeding the endpoint (RFC 3261 §18).

Each datagram comes with the time the kernel received it (``SO_TIMESTAMPNS``),
so the endpoint knows how long it waited in the socket queue: that wait is
what overload shedding looks at (see ``Endpoint.udp_received``). The
loop's own datagram transport cannot hand out that ancillary data, hence a
reader of our own; it reads at most ``BATCH`` datagrams per wake-up so timers
and TCP get their turn during a flood.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .endpoint import Endpoint

log = logging.getLogger(__name__)

# The socket buffer is the queue in front of the switch. A datagram the kernel drops
# because the queue is full is retransmitted by its sender after T1 (500 ms) and then
# again and again: under overload that multiplies the load and every registration that
# loses a datagram takes seconds. A long queue costs nothing comparable, since the
# endpoint answers what waited past the overload budget with an immediate 503 (the
# kernel's receive timestamp says how long each waited). Measured with
# ``bench_register.py --overload 2`` (10,000 lines, 7,000/s offered): with 512 KiB
# (~450 loopback datagrams, 40 ms of arrivals) every pause of the event loop dropped
# datagrams -- 114,536 retransmissions, p50 3.8 s, p99 16 s; with 4 MiB none at all,
# p99 0.36 s. Under the default net.core.rmem_max (208 KiB) this needs CAP_NET_ADMIN
# (SO_RCVBUFFORCE) or a raised rmem_max (README, "Overload"); a smaller queue is logged.
DEFAULT_UDP_BUFFER = 4 * 1024 * 1024

#: Linux: SO_TIMESTAMPNS (= SCM_TIMESTAMPNS), a struct timespec per datagram
_SO_TIMESTAMPNS = 35 if sys.platform.startswith("linux") else None
_TIMESPEC = struct.Struct("qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)
BATCH = 64


class UdpTransport:
    def __init__(self, endpoint: Endpoint, sock: socket.socket, buffer: int = DEFAULT_UDP_BUFFER) -> None:
        self.endpoint = endpoint
        self.buffer = buffer
        self.sock = sock
        self.family = sock.family
        name = sock.getsockname()
        self.local: tuple[str, int] = (name[0], name[1])
        self.timestamps = False
        self.send_dropped = 0
        self._loop = asyncio.get_running_loop()
        self._closed = False
        for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):
            # SO_RCVBUF is capped by net.core.rmem_max (often 208 KiB); with
            # CAP_NET_ADMIN the *FORCE variants (33/32 on Linux) are not.
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, buffer)
            except OSError:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, buffer)
                except OSError:  # pragma: no cover - container limits
                    pass
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux reports twice what it grants
        if got < buffer:
            log.warning(
                "UDP receive queue %d KiB instead of %d KiB (net.core.rmem_max; run with CAP_NET_ADMIN or raise it): "
                "an overload will drop datagrams and cause retransmissions", got // 1024, buffer // 1024,
            )
        if _SO_TIMESTAMPNS is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                self.timestamps = True
            except OSError:  # pragma: no cover
                pass
        self._loop.add_reader(sock.fileno(), self._readable)

    @property
    def transport(self) -> UdpTransport | None:
        """Itself while open (callers check ``udp.transport`` before closing)."""
        return None if self._closed else self

    def _readable(self) -> None:
        sock = self.sock
        received = self.endpoint.udp_received
        level = socket.SOL_SOCKET
        kind = _SO_TIMESTAMPNS
        for _ in range(BATCH):
            try:
                data, anc, _flags, addr = sock.recvmsg(65535, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP errors and friends: nothing to do for datagrams
                log.debug("udp error: %s", exc)
                return
            arrived: float | None = None
            for clevel, ctype, cdata in anc:
                if clevel == level and ctype == kind and len(cdata) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack_from(cdata)
                    arrived = sec + nsec * 1e-9
            received(data, addr[0], addr[1], arrived)

    def send(self, data: bytes, host: str, port: int) -> None:
        if self._closed:
            return
        try:
            self.sock.sendto(data, (host, port))
        except (BlockingIOError, InterruptedError):
            self.send_dropped += 1  # the send buffer is full: UDP may lose it, the peer retransmits
        except OSError as exc:
            log.debug("udp send to %s:%s failed: %s", host, port, exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.remove_reader(self.sock.fileno())
        except (ValueError, OSError):  # pragma: no cover - loop already closed
            pass
        self.sock.close()


async def open_udp(endpoint: Endpoint, host: str, port: int, *, buffer: int = DEFAULT_UDP_BUFFER) -> UdpTransport:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        try:
            sock.bind((host, port))
        except OSError as err:  # say which address, as the TCP server's error does
            raise OSError(err.errno, f"{err.strerror} (udp {host}:{port})") from None
        sock.setblocking(False)
        return UdpTransport(endpoint, sock, buffer)
    except BaseException:
        sock.close()
        raise
