"""The SIP endpoint: owns the transaction layer and the sockets, and dispatches.

Data flow (aioquic's shape): a datagram or framed TCP message is fed to the
sans-IO :class:`TransactionLayer` with ``loop.time()``; the endpoint drains the
layer's events and hands them to the services; then it *flushes*: sends every
queued datagram and re-arms the single loop timer at ``layer.get_timer()``.

Services never touch sockets. They call ``send_response``/``request``/
``cancel``/``send_stateless`` here, which end in a flush.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from switch.sip import overload
from switch.sip.errors import ParseError
from switch.sip.message import Message, Request, Response, response_for
from switch.sip.transaction.events import (
    CancelReceived,
    LateAnswer,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from switch.sip.transaction.layer import LayerConfig, TransactionLayer
from switch.sip.timers import TimerConfig

from .conditions import ConditionLog
from .ratelimit import KeyedRateLimiter
from .tcp import TcpConnection, connect_tcp, descriptor_budget, open_tcp_server
from .udp import DEFAULT_UDP_BUFFER, UdpTransport, open_udp

log = logging.getLogger(__name__)

RequestHandler = Callable[[RequestReceived], None]
ClientCallback = Callable[[ResponseReceived | TransactionTimeout], None]
SeenHook = Callable[[str, str, int], None]
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, NOTIFY, PRACK"


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Who receives what the sockets bring, given once to ``Endpoint.start``.

    The endpoint and its receivers need each other (the registrar and the calls
    reply through the endpoint), so the receivers cannot be constructor
    arguments; they are the argument of the step that opens the sockets, before
    which nothing can arrive, and they do not change afterwards.
    """

    #: method -> handler; a method no handler takes gets ``Endpoint.default_answer``
    handlers: Mapping[str, RequestHandler] = field(default_factory=dict)
    #: a CANCEL matched to a server transaction; None: the endpoint answers nothing more
    on_cancel: Callable[[CancelReceived], None] | None = None
    #: told (transport, host, port) of every message and keep-alive from a peer
    seen: tuple[SeenHook, ...] = ()
    #: another fork's 2xx to an INVITE handed over with ``linger_invite``; None: ignored
    on_late_answer: Callable[[LateAnswer], None] | None = None


@dataclass(slots=True)
class EndpointStats:
    received: int = 0
    rate_limited: int = 0
    sent: int = 0
    shed: int = 0
    tcp_refused: int = 0
    tcp_read_timeouts: int = 0


class Endpoint:
    def __init__(
        self,
        *,
        timers: TimerConfig | None = None,
        user_agent: str = "softswitch",
        rate: float = 0.0,
        burst: float = 0.0,
        supported: frozenset[str] = frozenset({"path", "outbound", "replaces", "timer", "100rel"}),
        tcp_idle_timeout: float = 600.0,
        udp_buffer: int = DEFAULT_UDP_BUFFER,
        tcp_max_per_source: int = 64,
        tcp_max_connections: int | None = None,
        tcp_read_timeout: float = 10.0,
        shed_budget: float = 0.15,
        shed_capacity: float = 1000.0,
        never_shed: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.layer = TransactionLayer(
            LayerConfig(timers=timers or TimerConfig(), via_addresses={}, supported=supported, user_agent=user_agent)
        )
        self.user_agent = user_agent
        self.loop = asyncio.get_running_loop()
        self.udp: list[UdpTransport] = []
        self.tcp_servers: list[asyncio.base_events.Server] = []
        self.tcp_connections: dict[int, TcpConnection] = {}
        self.tcp_by_addr: dict[tuple[str, int], TcpConnection] = {}
        self.limiter: KeyedRateLimiter[str] | None = KeyedRateLimiter(rate, burst) if rate > 0 else None
        # the receivers (``Dispatch``): none until ``start`` opens the sockets
        self._handlers: Mapping[str, RequestHandler] = {}
        self._on_cancel: Callable[[CancelReceived], None] | None = None
        self._on_late_answer: Callable[[LateAnswer], None] | None = None
        self._seen: tuple[SeenHook, ...] = ()
        self._clients: dict[str, ClientCallback] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats = EndpointStats()
        self.addresses: list[tuple[str, int]] = []
        self.tcp_idle_timeout = tcp_idle_timeout
        #: an incomplete message (or a new connection's first one) older than this closes its connection
        self.tcp_read_timeout = tcp_read_timeout
        #: accepted connections per source address (a NATed office has a few ATAs, not hundreds)
        self.tcp_max_per_source = tcp_max_per_source
        #: accepted connections in all; None: SIP's share of the descriptor limit (tcp.split_descriptors)
        self.tcp_max_connections: int | None = tcp_max_connections
        self.tcp_per_source: dict[str, int] = {}
        self._tcp_inbound = 0
        self.conditions = ConditionLog(log)
        #: overload shedding: the longest a request may wait in the UDP socket queue
        #: (0 = never shed), the Retry-After window of the 503, and the INVITEs never shed
        self.shed_budget = shed_budget
        #: the refused come back no faster than they can be served (a fixed 2-20 s sent a storm back three times)
        self.retry_schedule = overload.RetrySchedule(min_rate=2.0 * shed_capacity)
        #: wall-clock time from which shedding applies (``shed_from``, called once start-up work
        #: is done: requests queued while it held the loop are not an overload); None = never
        self._shed_from: float | None = None
        #: INVITE Request-URIs never shed (the emergency numbers)
        self.never_shed: Callable[[bytes], bool] = never_shed or emergency_ruri
        self.udp_buffer = udp_buffer
        self._idle_task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------
    async def start(self, listen: list[tuple[str, int]], dispatch: Dispatch | None = None) -> None:
        """Open UDP and TCP on each address; from now on ``dispatch`` receives what arrives."""
        if dispatch is not None:
            self._handlers = dict(dispatch.handlers)
            self._on_cancel = dispatch.on_cancel
            self._on_late_answer = dispatch.on_late_answer
            self._seen = dispatch.seen
        for host, port in listen:
            udp, tcp = await self._open_pair(host, port)
            self.udp.append(udp)
            self.tcp_servers.append(tcp)
            self.addresses.append((host, udp.local[1]))
        via_host, via_port = self.addresses[0]
        if via_host in ("0.0.0.0", "::"):
            via_host = socket.gethostbyname(socket.gethostname())
        self.layer.config.via_addresses.update({"udp": (via_host, via_port), "tcp": (via_host, via_port)})
        log.info("SIP listening on %s (udp+tcp)", ", ".join(f"{h}:{p}" for h, p in self.addresses))
        if self.tcp_max_connections is None:
            self.tcp_max_connections = descriptor_budget()
        self._idle_task = self.spawn(self._close_idle())
        self.spawn(self._close_stalled())

    def shed_from(self, when: float) -> None:
        """Start-up is over: shed overload among requests that arrived from ``when`` (wall clock) on.

        A lifecycle step, like ``start``: requests queued while start-up held
        the loop waited for start-up, not because of an overload."""
        self._shed_from = when

    async def _open_pair(self, host: str, port: int) -> tuple[UdpTransport, asyncio.base_events.Server]:
        """UDP and TCP on the same port. With port 0 the kernel picks the UDP port, and
        its TCP twin may already be taken (an outgoing connection's ephemeral port):
        then try another pick rather than fail to start."""
        for attempt in range(20):
            udp = await open_udp(self, host, port, buffer=self.udp_buffer)
            try:
                return udp, await open_tcp_server(self, host, udp.local[1])
            except OSError as exc:
                if udp.transport is not None:
                    udp.transport.close()
                if port != 0 or exc.errno != errno.EADDRINUSE or attempt == 19:
                    raise
        raise AssertionError("unreachable")

    async def _close_idle(self) -> None:
        """Close TCP connections silent for longer than ``tcp_idle_timeout``.

        Adapters behind NAT keep theirs alive with CRLF pings (RFC 5626) or
        re-registrations; a connection with neither is dead weight.
        """
        while True:
            await asyncio.sleep(max(1.0, min(30.0, self.tcp_idle_timeout / 4)))
            cutoff = self.loop.time() - self.tcp_idle_timeout
            for conn in [c for c in self.tcp_connections.values() if c.last_activity < cutoff]:
                self.conditions.warning("tcp-idle", "tcp: closing idle connections (last from %s:%s)", *conn.peer)
                conn.close()

    async def _close_stalled(self) -> None:
        """The read timeout: close connections whose current message is not complete in time."""
        while True:
            await asyncio.sleep(min(1.0, self.tcp_read_timeout / 4))
            cutoff = self.loop.time() - self.tcp_read_timeout
            for conn in [c for c in self.tcp_connections.values() if c.incomplete_since is not None and c.incomplete_since < cutoff]:
                self.stats.tcp_read_timeouts += 1
                self.conditions.warning(
                    "tcp-read-timeout", "tcp: closing connections with an incomplete message after %.0f s (last from %s:%s)",
                    self.tcp_read_timeout, *conn.peer,
                )
                conn.close()

    def tcp_admit(self, conn: TcpConnection) -> bool:
        """Count an accepted connection against the caps; False: close it at once."""
        host = conn.peer[0]
        have = self.tcp_per_source.get(host, 0)
        limit = self.tcp_max_connections
        if have >= self.tcp_max_per_source:
            self.stats.tcp_refused += 1
            self.conditions.warning(
                f"tcp-per-source {host}", "tcp: %s has %d connections open (the per-source cap): refusing more", host, have
            )
            return False
        if limit is not None and self._tcp_inbound >= limit:
            self.stats.tcp_refused += 1
            self.conditions.warning(
                "tcp-global", "tcp: %d connections open (the global cap): refusing more, latest from %s", self._tcp_inbound, host
            )
            return False
        self.tcp_per_source[host] = have + 1
        self._tcp_inbound += 1
        conn.admitted = True
        return True

    def tcp_release(self, conn: TcpConnection) -> None:
        host = conn.peer[0]
        left = self.tcp_per_source.get(host, 1) - 1
        if left > 0:
            self.tcp_per_source[host] = left
        else:
            self.tcp_per_source.pop(host, None)
        self._tcp_inbound -= 1

    async def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        for srv in self.tcp_servers:
            srv.close()
        for conn in list(self.tcp_connections.values()):
            conn.close()
        for u in self.udp:
            if u.transport:
                u.transport.close()
        for t in list(self._tasks):
            t.cancel()
        for srv in self.tcp_servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 1.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - shutdown best effort
                pass

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task, keeping a reference and logging its failure."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def now(self) -> float:
        return self.loop.time()

    # -- inbound ----------------------------------------------------------
    def _allowed(self, host: str) -> bool:
        if self.limiter is None:
            return True
        if self.limiter.allow(host, self.loop.time()):
            return True
        self.stats.rate_limited += 1
        if self.stats.rate_limited % 1000 == 1:
            log.warning("rate limit: dropping traffic from %s (%d dropped so far)", host, self.stats.rate_limited)
        return False

    def udp_received(self, data: bytes, host: str, port: int, arrived: float | None = None) -> None:
        """One datagram; ``arrived`` is the kernel's receive time (wall clock) when known."""
        self.stats.received += 1
        if not self._allowed(host):
            return
        if arrived is not None and self.shed_budget > 0 and self._shed_from is not None and arrived >= self._shed_from:
            now = time.time()
            waited = now - arrived
            if waited > self.shed_budget * 0.5 and self._shed(data, host, port, waited, now):
                return
            self.retry_schedule.served(now)
        if data.strip(b"\r\n") == b"":
            # RFC 5626 §4.4.1 / §3.5.1: CRLF keep-alive over UDP (no STUN here); note liveness.
            self.keepalive_seen("udp", host, port)
            return
        self.layer.receive(data, Peer("udp", host, port), self.loop.time())
        self._drain()

    def _shed(self, data: bytes, host: str, port: int, waited: float, now: float) -> bool:
        """Overload: answer 503 + Retry-After without parsing, if this request may be shed.

        Past half the budget only requests without credentials are shed (their
        challenge is still to come, so refusing them wastes nothing done); past
        the whole budget, any new request. Never shed: responses, requests that
        end or continue accepted work (ACK, BYE, CANCEL, ...), emergency INVITEs.
        The Retry-After books each refused request a return slot at the rate the
        switch serves (``overload.RetrySchedule``), so they come back spread over
        the time serving them takes, not all within seconds.
        """
        line = overload.request_line(data)
        if line is None:
            return False
        method, ruri = line
        if method in overload.NEVER_SHED:
            return False
        if waited <= self.shed_budget and overload.has_credentials(data):
            return False
        if method == b"INVITE" and self.never_shed(ruri):
            return False
        resp = overload.overload_response(data, self.retry_schedule.retry_after(now))
        if resp is None:
            return False
        self.stats.shed += 1
        self.conditions.warning(
            "overload", "overload: requests waited %.0f ms in the socket queue (budget %.0f ms): answering 503 to new ones",
            waited * 1000, self.shed_budget * 1000,
        )
        self._send(resp, Peer("udp", host, port))
        return True

    def tcp_message(self, msg: Message, conn: TcpConnection) -> None:
        self.stats.received += 1
        if not self._allowed(conn.peer[0]):
            return
        self.layer.receive_message(msg, Peer("tcp", conn.peer[0], conn.peer[1], conn.conn_id), self.loop.time())
        self._drain()

    def transport_failed(self, peer: Peer) -> None:
        """A stream connection could not be made or broke: end the transactions using it now."""
        if self.layer.transport_error(peer, self.loop.time()):
            self._drain()

    def tcp_parse_error(self, conn: TcpConnection, err: ParseError) -> None:
        partial = getattr(err, "partial", None)
        if isinstance(partial, Request) and partial.method != "ACK":
            try:
                resp = response_for(partial, err.status, err.reason)
                conn.write(resp.to_bytes())
            except ParseError:
                pass

    def keepalive_seen(self, transport: str, host: str, port: int) -> None:
        for hook in self._seen:
            hook(transport, host, port)

    def _drain(self) -> None:
        layer = self.layer
        while True:
            ev = layer.next_event()
            if ev is None:
                break
            try:
                self._dispatch(ev)
            except Exception:  # noqa: BLE001 - one bad handler must not stop the server
                log.exception("handler failed for %r", ev)
                if isinstance(ev, RequestReceived) and ev.tid and ev.request.method != "ACK":
                    self.layer.send_response(ev.tid, response_for(ev.request, 500), self.loop.time())
        self._flush()

    def _dispatch(self, ev: object) -> None:
        if isinstance(ev, RequestReceived):
            src = ev.source
            for hook in self._seen:
                hook(src.transport, src.host, src.port)
            handler = self._handlers.get(ev.request.method)
            if handler is not None:
                handler(ev)
            elif ev.tid is not None:
                self.default_answer(ev)
        elif isinstance(ev, ResponseReceived):
            cb = self._clients.get(ev.tid)
            if cb is not None:
                if ev.response.status >= 200 and ev.response.cseq.method != "INVITE":
                    del self._clients[ev.tid]
                cb(ev)
        elif isinstance(ev, TransactionTimeout):
            cb = self._clients.pop(ev.tid, None)
            if cb is not None:
                cb(ev)
        elif isinstance(ev, CancelReceived):
            if self._on_cancel is not None:
                self._on_cancel(ev)
        elif isinstance(ev, TransportError):
            # §17.1.4: the TU treats a transport failure like a timeout (no answer is coming).
            cb = self._clients.pop(ev.tid, None)
            if cb is not None:
                cb(TransactionTimeout(tid=ev.tid, timer="transport"))
        elif isinstance(ev, TransactionTerminated):
            self._clients.pop(ev.tid, None)
        elif isinstance(ev, LateAnswer):
            if self._on_late_answer is not None:
                self._on_late_answer(ev)

    def default_answer(self, ev: RequestReceived) -> None:
        """What the switch itself says to a request no service took: 200 to OPTIONS, else 405."""
        req = ev.request
        assert ev.tid is not None
        if req.method == "OPTIONS":
            resp = response_for(req, 200, to_tag=_tag_for(req))
            resp.headers.add("Allow", ALLOW)
            resp.headers.add("Accept", "application/sdp")
            resp.headers.add("Supported", "path, outbound")
        else:
            resp = response_for(req, 405, to_tag=_tag_for(req))
            resp.headers.add("Allow", ALLOW)
        self.reply(ev.tid, resp)

    # -- what services see of the layer (switch.services.sip_port) ------------
    @property
    def via_addresses(self) -> dict[str, tuple[str, int]]:
        """transport -> our (host, port) as put in Via and Contact; empty until ``start``."""
        return self.layer.config.via_addresses

    @property
    def live_transactions(self) -> int:
        return self.layer.live_transactions

    def create_response(self, tid: str, status: int, reason: str | None = None) -> Response:
        """A response to a server transaction's request, with the transaction's To tag."""
        return self.layer.create_response(tid, status, reason)

    def server_request(self, tid: str) -> Request | None:
        return self.layer.server_request(tid)

    # -- outbound (used by services) -----------------------------------------
    def reply(self, tid: str, response: Response) -> None:
        """Send a response through its server transaction and flush."""
        self.layer.send_response(tid, self._signed(response), self.loop.time())
        self._flush()

    def reply_and_forget(self, tid: str, response: Response) -> None:
        """Send a final response once and keep no transaction (challenges, §8.2.7; INVITE: 3xx-6xx only)."""
        self.layer.send_response_and_forget(tid, self._signed(response), self.loop.time())
        self._flush()

    def _signed(self, response: Response) -> Response:
        if "server" not in response.headers:
            response.headers.add("Server", self.user_agent)
        return response

    def request(self, request: Request, dest: Peer, callback: ClientCallback | None = None) -> str:
        tid = self.layer.send_request(request, dest, self.loop.time())
        if callback is not None:
            self._clients[tid] = callback
        self._flush()
        return tid

    def cancel(self, tid: str) -> str | None:
        ctid = self.layer.cancel(tid, self.loop.time())
        self._flush()
        return ctid

    def send_stateless(self, message: Message, dest: Peer) -> None:
        self.layer.send_stateless(message, dest)
        self._flush()

    def send_raw(self, data: bytes, dest: Peer) -> None:
        """Send bytes serialized earlier (a re-sent ACK), counted like ``send_stateless``."""
        self.layer.stats.sent += 1
        self._send(data, dest)

    def rebind_client(self, tid: str, callback: ClientCallback) -> bool:
        """Hand a client transaction's remaining events to ``callback`` instead (False: it has none).

        A finished B-leg swaps itself for a small record here, so the INVITE's
        Timer M (32 s) does not keep the whole leg (INVITE, dialog, call) alive.
        """
        if tid not in self._clients:
            return False
        self._clients[tid] = callback
        return True

    def linger_invite(self, tid: str, ack: bytes, remote_tag: str, note: bytes) -> bool:
        """Hand an accepted INVITE's last Timer M to the layer (``TransactionLayer.linger_client``)."""
        if not self.layer.linger_client(tid, ack, remote_tag, note, self.loop.time()):
            return False
        self._clients.pop(tid, None)
        self._flush()  # the layer's next deadline may have moved
        return True

    def forget_client(self, tid: str) -> None:
        """Stop caring about a client transaction: no callback, no more retransmissions."""
        self._clients.pop(tid, None)
        self.layer.abandon(tid)

    def _flush(self) -> None:
        for data, peer in self.layer.datagrams_to_send():
            self._send(data, peer)
        deadline = self.layer.get_timer()
        if deadline != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = deadline
            if deadline is not None:
                self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.layer.handle_timer(self.loop.time())
        self._drain()

    def _send(self, data: bytes, peer: Peer) -> None:
        self.stats.sent += 1
        if peer.transport == "udp":
            want_v6 = ":" in peer.host
            for u in self.udp:
                if (u.family == socket.AF_INET6) == want_v6:
                    u.send(data, peer.host, peer.port)
                    return
            log.warning("no UDP socket for %s", peer.host)
            return
        conn = None
        if peer.conn is not None:
            conn = self.tcp_connections.get(peer.conn)
        if conn is None:
            conn = self.tcp_by_addr.get((peer.host, peer.port))
        if conn is None:
            conn = connect_tcp(self, peer.host, peer.port)
        conn.write(data)


_EMERGENCY_USER = re.compile(rb"^(?:sips?:|tel:)(?:\+47|0047|47)?(110|112|113)(?:[@;?>]|$)|^urn:service:sos", re.I)


def emergency_ruri(ruri: bytes) -> bool:
    """110/112/113 (bare, +47, 0047) or an urn:service:sos Request-URI: never shed.

    A cheap stand-in for the numbering plan, which the composition root may put
    in its place (``Endpoint(never_shed=...)``)."""
    return _EMERGENCY_USER.match(ruri) is not None


def _tag_for(req: Request) -> str | None:
    from switch.sip.message import new_tag

    return None if req.to.tag else new_tag()
