"""TCP transport: per-connection stream framing, connection reuse, caps and timeouts.

Responses go back on the connection the request came in on (§18.2.2). Requests
we originate to a peer reuse an open connection to that address when there is
one (RFC 5923 spirit), else connect. Double-CRLF keep-alives are answered with
a single CRLF (RFC 5626 §4.4.1).

Exhaustion: an accepted connection over the per-source or the global cap is
closed at once; a message (or a new connection's first message) not complete
within the read timeout closes its connection (a slow-loris trickle holds
nothing for long); the global cap is SIP's share of the descriptor limit
(``split_descriptors``): HTTP (API, provisioning, /health) has its own share and
caps (provisioning/connections.py), so it keeps working under a TCP flood and SIP
under an HTTP one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import resource
import socket
from typing import TYPE_CHECKING, cast

from switch.sip.errors import ParseError
from switch.sip.parser import KEEPALIVE_PONG, StreamParser
from switch.sip.transaction.events import Peer

if TYPE_CHECKING:
    from .endpoint import Endpoint

log = logging.getLogger(__name__)
_ids = itertools.count(1)


#: descriptors neither SIP nor HTTP connections take: the database pool, UDP and RTP
#: sockets, log, key and spill files
OTHER_RESERVE = 1024
#: HTTP's connection budget when nobody says (``--http-max-connections``)
HTTP_DEFAULT = 1024


def descriptor_limit() -> int:
    """The process's descriptor limit, raised to the hard limit first when it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):  # pragma: no cover - container limits
            pass
    if soft == resource.RLIM_INFINITY:  # pragma: no cover
        soft = 1 << 20
    return int(soft)


def split_descriptors(limit: int, http_want: int = HTTP_DEFAULT, sip_want: int | None = None) -> tuple[int, int]:
    """(HTTP connections, SIP TCP connections) that fit in ``limit`` descriptors.

    Each side gets its own budget, so a flood of one leaves the other working, and
    ``OTHER_RESERVE`` (a quarter of a small limit) stays free for the database, UDP, RTP
    and files. When the limit cannot hold what HTTP asks for plus a useful SIP budget,
    the room is halved between them. ``sip_want`` (``--tcp-max-connections``) lowers SIP's.
    """
    reserve = min(OTHER_RESERVE, limit // 4)
    room = max(32, limit - reserve)
    http = http_want if http_want + 16 <= room else max(16, room // 2)
    sip = max(16, room - http)
    if sip_want is not None:
        sip = max(1, min(sip, sip_want))
    return http, sip


def descriptor_budget() -> int:
    """How many TCP connections SIP may hold when nobody split the limit (an endpoint alone)."""
    return split_descriptors(descriptor_limit())[1]


class TcpConnection(asyncio.Protocol):
    def __init__(self, endpoint: Endpoint, *, inbound: bool = True) -> None:
        self.endpoint = endpoint
        self.inbound = inbound
        #: counted in the endpoint's per-source table (accepted, within the caps)
        self.admitted = False
        #: when the message being received began (a new inbound connection: when it
        #: was accepted); None between messages. The read timeout runs from here.
        self.incomplete_since: float | None = None
        self.conn_id = next(_ids)
        self.parser = StreamParser()
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.last_activity = 0.0
        self.pending: list[bytes] = []
        self.connected = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's TCPTransport does not subclass asyncio.Transport.
        self.transport = stream = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        if self.inbound and not self.endpoint.tcp_admit(self):
            stream.abort()
            return
        self.last_activity = self.endpoint.now()
        if self.inbound:
            self.incomplete_since = self.last_activity
        self.endpoint.tcp_connections[self.conn_id] = self
        self.endpoint.tcp_by_addr[self.peer] = self
        for data in self.pending:
            stream.write(data)
        self.pending.clear()
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.endpoint.now()
        try:
            items = self.parser.feed(data)
        except ParseError as err:
            self.endpoint.conditions.warning(
                "tcp-framing", "tcp %s:%s framing error, closing: %s", self.peer[0], self.peer[1], err.reason
            )
            self.endpoint.tcp_parse_error(self, err)
            self.close()
            return
        if self.parser.buffered:
            if self.incomplete_since is None or items:
                self.incomplete_since = self.last_activity
        else:
            self.incomplete_since = None
        for item in items:
            if item is StreamParser.PING:
                self.write(KEEPALIVE_PONG)
                self.endpoint.keepalive_seen("tcp", self.peer[0], self.peer[1])
            else:
                self.endpoint.tcp_message(item, self)  # type: ignore[arg-type]

    def write(self, data: bytes) -> None:
        self.last_activity = self.endpoint.now()
        if self.transport is None:
            self.pending.append(data)
        elif not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.admitted:
            self.admitted = False
            self.endpoint.tcp_release(self)
        self.endpoint.tcp_connections.pop(self.conn_id, None)
        if self.endpoint.tcp_by_addr.get(self.peer) is self:
            del self.endpoint.tcp_by_addr[self.peer]
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("closed"))
            # often nobody waits on it (a connection lost before it was used): mark it
            # retrieved so asyncio does not log "Future exception was never retrieved"
            self.connected.exception()


async def open_tcp_server(endpoint: Endpoint, host: str, port: int) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return await loop.create_server(
        lambda: TcpConnection(endpoint), host=host, port=port, family=family, reuse_address=True, backlog=1024
    )


def connect_tcp(endpoint: Endpoint, host: str, port: int) -> TcpConnection:
    """Start connecting; data written before the connection is up is queued."""
    loop = asyncio.get_running_loop()
    conn = TcpConnection(endpoint, inbound=False)
    endpoint.tcp_by_addr[(host, port)] = conn

    async def go() -> None:
        try:
            await loop.create_connection(lambda: conn, host, port)
        except OSError as exc:
            log.info("tcp connect to %s:%s failed: %s", host, port, exc)
            if endpoint.tcp_by_addr.get((host, port)) is conn:
                del endpoint.tcp_by_addr[(host, port)]
            if not conn.connected.done():
                conn.connected.set_exception(exc)
                conn.connected.exception()  # mark retrieved
            endpoint.transport_failed(Peer("tcp", host, port))

    endpoint.spawn(go())
    return conn
