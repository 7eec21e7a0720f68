"""Free loopback ports, checked for UDP and TCP, never handed out twice by one process.

Ports are picked at random below the kernel's ephemeral range and checked free for
both UDP and TCP (a SIP listener needs both, RFC 3261 §18), so concurrent runs
(pytest-xdist, two checkouts, a benchmark beside the tests) do not collide and
outgoing connections cannot steal them between allocation and bind.
"""

from __future__ import annotations

import os
import random
import socket
import time
from typing import Literal

from harness import LOOPBACK

__all__ = ["PortAllocator", "free_port", "free_port_on", "udp_port_free"]

PortKind = Literal["udp", "tcp", "both"]


class PortAllocator:
    """Hands out ports that are currently free on one address, never the same one twice.

    Random ports in [20000, 32000) stay below Linux's default ephemeral range
    (32768-60999, /proc/sys/net/ipv4/ip_local_port_range), so a client socket
    opened by anyone between our check and the server's bind cannot take them.
    """

    def __init__(self, low: int = 20000, high: int = 32000) -> None:
        self._low, self._high = low, high
        self._given: set[tuple[str, int]] = set()
        self._rng = random.Random(os.getpid() ^ time.monotonic_ns())

    @staticmethod
    def _bindable(ip: str, port: int, sock_type: int) -> bool:
        with socket.socket(socket.AF_INET, sock_type) as s:
            if sock_type == socket.SOCK_STREAM:
                # the server will set SO_REUSEADDR too; TIME_WAIT leftovers are harmless
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((ip, port))
            except OSError:
                return False
        return True

    def get(self, kind: PortKind = "both", ip: str = LOOPBACK) -> int:
        types = {
            "udp": (socket.SOCK_DGRAM,),
            "tcp": (socket.SOCK_STREAM,),
            "both": (socket.SOCK_DGRAM, socket.SOCK_STREAM),
        }[kind]
        for _ in range(1000):
            port = self._rng.randrange(self._low, self._high)
            if (ip, port) in self._given:
                continue
            if all(self._bindable(ip, port, t) for t in types):
                self._given.add((ip, port))
                return port
        raise RuntimeError(f"no free port found on {ip}")


_PORTS = PortAllocator()


def free_port(kind: PortKind = "both") -> int:
    """A loopback port free for ``kind`` ("both" = UDP and TCP) right now."""
    return _PORTS.get(kind)


def free_port_on(ip: str, kind: PortKind = "udp") -> int:
    """A port free on ``ip`` (another 127/8 address: a carrier, a stranger) right now."""
    return _PORTS.get(kind, ip)


def udp_port_free(port: int, host: str = LOOPBACK) -> bool:
    """Nobody has ``host:port`` bound (a bind without SO_REUSEADDR succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
