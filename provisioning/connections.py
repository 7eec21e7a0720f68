"""HTTP connection caps and the request head and body timeouts, enforced before aiohttp parses a byte.

20,000 idle connections once took every descriptor and with them TCP SIP and all of
HTTP (API, provisioning, ``/health``); a connection trickling a byte every 5 s stayed
open for an hour (aiohttp's own keep-alive timer, 3,630 s by default, was all there was).

Here every accepted HTTP connection is counted against a per-source and a global cap
(``--http-max-per-source`` / ``--http-max-connections``) in ``connection_made``: over a
cap its transport is aborted at once, nothing is read or parsed. A connection that has
not delivered a complete request head within ``header_timeout`` of being accepted is
closed; between requests, an idle keep-alive connection (or one trickling its next head)
is closed by aiohttp after ``keepalive_timeout``, which is set here rather than left at
aiohttp's default. A request whose body has not all arrived within ``body_timeout`` of its
head is answered 408 (or, if its response has begun, dropped) and its connection closed:
a head with ``Content-Length: 100000`` and then a byte every few seconds held its
connection, and a handler's task, for as long as the client liked.

With TLS the count starts at TCP accept, not after the handshake: the listener's
protocol is the TLS layer itself (``_TlsAccept``), which admits the TCP connection
before it starts the handshake. Connections that open and never finish a ClientHello
count against both caps like any other, and the head timer (handshake and request head
together, from accept) closes them after ``header_timeout``. With
``create_server(ssl=...)`` the protocol saw a connection only after its handshake, so
any number of unfinished handshakes from one address held descriptors uncounted.

Each condition (per-source cap of one address, the global cap, head and body timeouts) logs one
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
from collections.abc import Callable
from dataclasses import dataclass, field
from asyncio.sslproto import SSLProtocol
from ssl import SSLContext
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from switch.transport.conditions import ConditionLog

__all__ = ["BodyTimeout", "ConnectionGate", "GatedSite", "HttpLimits", "close_after_body_timeout"]

log = logging.getLogger("softswitch.http")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The HTTP side's connection budget and timeouts (``softswitch run --http-*``)."""

    #: open HTTP connections in all (the HTTP descriptor budget)
    max_connections: int = 1024
    #: open HTTP connections from one source address (a support desk behind one NAT: ~6 per browser)
    max_per_source: int = 128
    #: seconds from accepting a connection (TLS handshake included) to its complete first request head
    header_timeout: float = 10.0
    #: seconds an idle keep-alive connection stays open after a response (aiohttp closes it)
    keepalive_timeout: float = 75.0
    #: seconds from a request's complete head to the end of its body (1 MiB forms: >= 35 KB/s)
    body_timeout: float = 30.0


@dataclass(slots=True)
class GateStats:
    """Counters for ``/health`` and tests."""

    open: int = 0
    refused_per_source: int = 0
    refused_global: int = 0
    header_timeouts: int = 0
    body_timeouts: int = 0


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

    def body_timed_out(self, host: str) -> None:
        self.stats.body_timeouts += 1
        self.conditions.warning("http-body-timeout",
                                "http: closing connections whose request body did not arrive within %.0f s (latest from %s)",
                                self.limits.body_timeout, host)


class BodyTimeout(web.HTTPRequestTimeout, TimeoutError):
    """Raised from the body read of a request whose body did not arrive in time.

    An HTTP exception, so the handler's read ends in a 408 answer (the API's problem
    body via ``json_errors``); a ``TimeoutError`` too, so aiohttp's lingering read after
    the response (a handler that answered without reading) ends quietly and closes.
    Closing the connection instead would leave the handler a ``ConnectionResetError``
    and aiohttp would log a traceback per connection.
    """


async def close_after_body_timeout(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the 408 for a late body says ``Connection: close`` (the connection ends after it)."""
    protocol = request.protocol
    if isinstance(protocol, GatedHandler) and protocol.body_timed_out:
        response.force_close()  # the hook runs after aiohttp chose the Connection header: set it too
        response.headers["Connection"] = "close"


class GatedHandler(RequestHandler):
    """aiohttp's connection handler, admitted by the gate first and timed until its first request head.

    Plain HTTP: admitted in ``connection_made``. HTTPS: ``_TlsAccept`` admits the TCP
    connection (``admit``) and ``connection_made`` comes with the TLS transport after the
    handshake; the head timer started at accept keeps running across the handshake.
    """

    __slots__ = ("_gate", "_gate_host", "_admitted", "_serving", "_head_timer", "_body_timer", "body_timed_out")

    def __init__(self, manager: web.Server, gate: ConnectionGate, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._gate_host = ""
        self._admitted = False
        self._serving = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        #: the current request's body timed out (its answer closes the connection)
        self.body_timed_out = False

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """Count this TCP connection against the caps and start its head timer; False: aborted, unread."""
        peer = transport.get_extra_info("peername")
        self._gate_host = str(peer[0]) if peer else "-"
        if not self._gate.admit(self._gate_host):
            transport.abort()  # type: ignore[attr-defined]
            return False
        self._admitted = True
        self._head_timer = asyncio.get_running_loop().call_later(self._gate.limits.header_timeout, self._head_timeout,
                                                                 transport)
        return True

    def release(self) -> None:
        """Give the connection's place back (once, whichever way the connection ended)."""
        if not self._admitted:
            return
        self._admitted = False
        self.head_complete()
        self._body_complete()
        self._gate.release(self._gate_host)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._admitted and not self.admit(transport):
            return
        self._serving = True
        super().connection_made(transport)

    def head_complete(self) -> None:
        """The first request head is in: from now on aiohttp's keep-alive timer governs idleness."""
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def body_started(self, payload: StreamReader, writer: AbstractStreamWriter) -> None:
        """A request head is in; its body (if any) must follow within ``body_timeout``."""
        if payload.is_eof() or not self._admitted:
            return
        self._body_complete()
        self._body_timer = asyncio.get_running_loop().call_later(self._gate.limits.body_timeout, self._body_timeout,
                                                                 payload, writer)
        payload.on_eof(self._body_complete)

    def _body_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _head_timeout(self, transport: asyncio.BaseTransport) -> None:
        self._head_timer = None
        self._gate.head_timed_out(self._gate_host)
        transport.abort()  # type: ignore[attr-defined]

    def _body_timeout(self, payload: StreamReader, writer: AbstractStreamWriter) -> None:
        """The body read fails with a 408 and the connection closes after the answer; aborted if an answer has begun."""
        self._body_timer = None
        transport = self.transport
        if transport is None or transport.is_closing() or payload.is_eof():
            return
        self._gate.body_timed_out(self._gate_host)
        if writer.output_size == 0:
            self.body_timed_out = True
            payload.set_exception(BodyTimeout())
        else:
            transport.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.release()
        if not self._serving:
            return  # refused, or ended before aiohttp saw it
        self._serving = False
        super().connection_lost(exc)


class _TlsAccept(SSLProtocol):
    """The TLS layer of one HTTPS connection, admitted by the gate at TCP accept, before the handshake.

    asyncio's own ``SSLProtocol``, which ``create_server(ssl=...)`` puts under the app
    protocol too; built here, as the listener's plain protocol, so that the gate sees
    the TCP connection before the handshake. ``loop.start_tls`` from a plain protocol
    does not do: it runs a task step later, and uvloop reads (and hands the plain
    protocol the ClientHello) as soon as ``connection_made`` returns, whatever it paused.
    The handler gets ``connection_made`` with the TLS transport after the handshake.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: GatedHandler, ssl_context: SSLContext,
                 handshake_timeout: float) -> None:
        # no waiter: nobody awaits the handshake (an unretrieved failure would be logged); typeshed wants both
        super().__init__(loop, handler, ssl_context, None,  # type: ignore[arg-type]
                         server_side=True, ssl_handshake_timeout=handshake_timeout)  # type: ignore[arg-type]
        self._gated = handler
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._gated.admit(transport):
            self._refused = True
            return
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._gated.release()  # (the handler's own connection_lost, after a handshake, finds it done)
        if not self._refused:
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
                protocol.body_started(payload, writer)
            return inner(message, payload, protocol, writer, task)

        server.request_factory = request_factory
        gate, limits = self._gate, self._gate.limits

        def handler() -> GatedHandler:
            return GatedHandler(server, gate, loop=loop, access_log=None, keepalive_timeout=limits.keepalive_timeout)

        factory: Callable[[], asyncio.BaseProtocol] = handler
        if self._ssl_context is not None:
            ctx = self._ssl_context

            def factory() -> asyncio.BaseProtocol:
                return _TlsAccept(loop, handler(), ctx, limits.header_timeout)

        self._server = await loop.create_server(factory, self._host, self._port, backlog=self._backlog,
                                                reuse_address=True)
