"""HTTP connection caps and the request-head timeout, enforced before aiohttp parses a byte.

20,000 idle connections once took every descriptor and with them TCP SIP and all of
HTTP (API, provisioning, ``/health``); a connection trickling a byte every 5 s stayed
open for an hour (aiohttp's own keep-alive timer, 3,630 s by default, was all there was).

Here every accepted HTTP connection is counted against a per-source and a global cap
(``--http-max-per-source`` / ``--http-max-connections``) in ``connection_made``: over a
cap its transport is aborted at once, nothing is read or parsed. A connection that has
not delivered a complete request head within ``header_timeout`` of being accepted is
closed; between requests, an idle keep-alive connection (or one trickling its next head)
is closed by aiohttp after ``keepalive_timeout``, which is set here rather than left at
aiohttp's default. With TLS, the handshake must finish within ``header_timeout`` too.

Each condition (per-source cap of one address, the global cap, head timeouts) logs one
line and then at most one a minute with the count suppressed in between
(``switch.transport.conditions``), never one per connection.

The caps are HTTP's own descriptor budget: SIP over TCP has its own
(``switch.transport.tcp``), and the composition root splits the process's descriptor
limit between them with headroom for the database, UDP and RTP sockets and log files,
so exhausting either leaves the other working.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from switch.transport.conditions import ConditionLog

__all__ = ["ConnectionGate", "GatedSite", "HttpLimits"]

log = logging.getLogger("softswitch.http")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The HTTP side's connection budget and timeouts (``softswitch run --http-*``)."""

    #: open HTTP connections in all (the HTTP descriptor budget)
    max_connections: int = 1024
    #: open HTTP connections from one source address (a support desk behind one NAT: ~6 per browser)
    max_per_source: int = 128
    #: seconds from accepting a connection (or starting TLS) to its complete first request head
    header_timeout: float = 10.0
    #: seconds an idle keep-alive connection stays open after a response (aiohttp closes it)
    keepalive_timeout: float = 75.0


@dataclass(slots=True)
class GateStats:
    """Counters for ``/health`` and tests."""

    open: int = 0
    refused_per_source: int = 0
    refused_global: int = 0
    header_timeouts: int = 0


@dataclass(slots=True)
class ConnectionGate:
    """Counts open HTTP connections per source address and in all."""

    limits: HttpLimits
    conditions: ConditionLog = field(default_factory=lambda: ConditionLog(log))
    per_source: dict[str, int] = field(default_factory=dict)
    stats: GateStats = field(default_factory=GateStats)

    def admit(self, host: str) -> bool:
        """Count a new connection from ``host``; False: over a cap, close it unread."""
        have = self.per_source.get(host, 0)
        if have >= self.limits.max_per_source:
            self.stats.refused_per_source += 1
            self.conditions.warning(f"http-per-source {host}",
                                    "http: %s has %d connections open (the per-source cap): refusing more", host, have)
            return False
        if self.stats.open >= self.limits.max_connections:
            self.stats.refused_global += 1
            self.conditions.warning("http-global", "http: %d connections open (the global cap): refusing more, latest from %s",
                                    self.stats.open, host)
            return False
        self.per_source[host] = have + 1
        self.stats.open += 1
        return True

    def release(self, host: str) -> None:
        left = self.per_source.get(host, 1) - 1
        if left > 0:
            self.per_source[host] = left
        else:
            self.per_source.pop(host, None)
        self.stats.open -= 1

    def head_timed_out(self, host: str) -> None:
        self.stats.header_timeouts += 1
        self.conditions.warning("http-header-timeout",
                                "http: closing connections without a complete request head after %.0f s (latest from %s)",
                                self.limits.header_timeout, host)


class GatedHandler(RequestHandler):
    """aiohttp's connection handler, admitted by the gate first and timed until its first request head."""

    __slots__ = ("_gate", "_gate_host", "_admitted", "_head_timer")

    def __init__(self, manager: web.Server, gate: ConnectionGate, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._gate_host = ""
        self._admitted = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._gate_host = str(peer[0]) if peer else "-"
        if not self._gate.admit(self._gate_host):
            transport.abort()  # type: ignore[attr-defined]
            return
        self._admitted = True
        super().connection_made(transport)
        self._head_timer = asyncio.get_running_loop().call_later(self._gate.limits.header_timeout, self._head_timeout,
                                                                 transport)

    def head_complete(self) -> None:
        """The first request head is in: from now on aiohttp's keep-alive timer governs idleness."""
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self, transport: asyncio.BaseTransport) -> None:
        self._head_timer = None
        self._gate.head_timed_out(self._gate_host)
        transport.abort()  # type: ignore[attr-defined]

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return  # refused in connection_made: aiohttp never saw it
        self._admitted = False
        self.head_complete()
        self._gate.release(self._gate_host)
        super().connection_lost(exc)


class GatedSite(web.BaseSite):
    """Like ``web.TCPSite``, but every connection passes the gate before aiohttp's handler sees it."""

    __slots__ = ("_host", "_port", "_gate")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, gate: ConnectionGate, *,
                 ssl_context: SSLContext | None = None, backlog: int = 1024) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._gate = gate

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        inner = server.request_factory

        def request_factory(message: RawRequestMessage, payload: StreamReader, protocol: RequestHandler,
                            writer: AbstractStreamWriter, task: asyncio.Task[None]) -> web.BaseRequest:
            if isinstance(protocol, GatedHandler):
                protocol.head_complete()
            return inner(message, payload, protocol, writer, task)

        server.request_factory = request_factory
        gate, limits = self._gate, self._gate.limits

        def handler() -> GatedHandler:
            return GatedHandler(server, gate, loop=loop, access_log=None, keepalive_timeout=limits.keepalive_timeout)

        tls: dict[str, Any] = {}
        if self._ssl_context is not None:
            tls = {"ssl": self._ssl_context, "ssl_handshake_timeout": limits.header_timeout}
        self._server = await loop.create_server(handler, self._host, self._port, backlog=self._backlog,
                                                reuse_address=True, **tls)
