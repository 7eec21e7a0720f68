"""Test helpers: two transaction layers joined by a simulated network.

The shape of h11's ``ConnectionPair`` and aioquic's ``client_and_server``: no
sockets and no sleeping. ``Network.flush()`` moves every queued datagram to the
other side (optionally dropping or duplicating some), ``Network.advance(t)``
moves time forward by firing each layer's timers at exactly the instants
``get_timer()`` reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from switch.sip.headers import Headers
from switch.sip.message import Request, Response, response_for
from switch.sip.parser import parse_message
from switch.sip.timers import TimerConfig
from switch.sip.transaction import LayerConfig, Peer, TransactionLayer
from switch.sip.transaction.events import Event

CLIENT = ("10.0.0.1", 5060)
SERVER = ("10.0.0.2", 5060)
CONN_ID = 7  # the stream connection between the two layers in TCP tests


def make_layer(host: str, port: int, transport: str = "udp", **config: Any) -> TransactionLayer:
    cfg = LayerConfig(via_addresses={transport: (host, port)}, **config)
    return TransactionLayer(cfg)


def make_request(
    method: str,
    *,
    ruri: str = "sip:bob@10.0.0.2",
    from_tag: str | None = "alice-tag",
    to_tag: str | None = None,
    call_id: str = "call-1@10.0.0.1",
    cseq: int = 1,
    extra: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
) -> Request:
    """A request as a TU builds it: no Via (the layer adds it)."""
    frm = "<sip:alice@example.com>" + (f";tag={from_tag}" if from_tag else "")
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    pairs = [("From", frm), ("To", to), ("Call-ID", call_id), ("CSeq", f"{cseq} {method}")]
    if method in ("INVITE", "SUBSCRIBE", "REFER"):
        pairs.append(("Contact", "<sip:alice@10.0.0.1:5060>"))
    pairs += list(extra)
    return Request(method, ruri, Headers.of(pairs), body)


def wire_request(
    method: str,
    *,
    branch: str | None = "z9hG4bK-client-1",
    via_host: str = CLIENT[0],
    via_port: int = CLIENT[1],
    rport: bool = False,
    extra_vias: tuple[str, ...] = (),
    **kw: object,
) -> bytes:
    """A request as it arrives from a remote client: with its own Via (branch chosen by the test)."""
    req = make_request(method, **kw)  # type: ignore[arg-type]
    params = (f";branch={branch}" if branch else "") + (";rport" if rport else "")
    req.headers.add("Via", f"SIP/2.0/UDP {via_host}:{via_port}{params}", first=True)
    for i, v in enumerate(extra_vias):
        req.headers.add("Via", v)
    req.headers.add("Max-Forwards", "70")
    return req.to_bytes()


def parse(data: bytes) -> Request | Response:
    msg = parse_message(data)
    assert isinstance(msg, (Request, Response))
    return msg


def response_bytes(request_data: bytes, status: int, *, to_tag: str | None = "bob-tag", reason: str | None = None) -> bytes:
    """What a remote server answers to one of our requests (its Vias are copied, §8.2.6.2)."""
    req = parse(request_data)
    assert isinstance(req, Request)
    return response_for(req, status, reason, to_tag=to_tag if status != 100 else None).to_bytes()


def start_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode()


def short(data: bytes) -> str:
    """"INVITE" for a request, "486" for a response: what the state tables talk about."""
    line = start_line(data)
    if line.startswith("SIP/2.0 "):
        return line.split()[1]
    return line.split()[0]


def drain_events(layer: TransactionLayer) -> list[Event]:
    out: list[Event] = []
    while (ev := layer.next_event()) is not None:
        out.append(ev)
    return out


def event_names(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


@dataclass
class Packet:
    time: float
    direction: str  # "c2s" or "s2c"
    data: bytes
    dest: Peer
    copies: int = 0
    """How many copies reached the other side (0: lost or misrouted, 2: duplicated)."""

    @property
    def short(self) -> str:
        return short(self.data)


Fate = Callable[[Packet], str]  # returns "deliver", "drop" or "dup"


@dataclass
class Network:
    """A client layer and a server layer joined by a lossy, duplicating wire.

    ``client_public`` is the address the server sees as the client's source
    (set it to something other than the Via address to simulate a NAT). A
    datagram whose destination is not the other side's address is *misrouted*:
    recorded and not delivered, which is how the rport/received tests fail.
    """

    transport: str = "udp"
    timers: TimerConfig = field(default_factory=TimerConfig)
    client_public: tuple[str, int] = CLIENT
    client_config: dict[str, Any] = field(default_factory=dict)
    server_config: dict[str, Any] = field(default_factory=dict)
    now: float = 0.0
    fate: Fate | None = None
    log: list[Packet] = field(default_factory=list)
    misrouted: list[Packet] = field(default_factory=list)
    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)
    client_tu: Callable[[Network, Event], None] | None = None
    """Called for every client event as it comes out (a scripted transaction user)."""
    server_tu: Callable[[Network, Event], None] | None = None

    def __post_init__(self) -> None:
        self.client = make_layer(*CLIENT, self.transport, timers=self.timers, **self.client_config)
        self.server = make_layer(*SERVER, self.transport, timers=self.timers, **self.server_config)

    @property
    def stream(self) -> bool:
        return self.transport != "udp"

    @property
    def server_peer(self) -> Peer:
        """Destination for the client's requests."""
        return Peer(self.transport, *SERVER)

    def _source(self, direction: str) -> Peer:
        conn = CONN_ID if self.stream else None
        if direction == "c2s":
            return Peer(self.transport, *self.client_public, conn)
        return Peer(self.transport, *SERVER, conn)

    def _reaches(self, direction: str, dest: Peer) -> bool:
        if self.stream and dest.conn is not None:
            return dest.conn == CONN_ID
        if direction == "c2s":
            return (dest.host, dest.port) == SERVER
        return (dest.host, dest.port) == self.client_public

    def flush(self) -> int:
        """Deliver queued datagrams both ways until the wire is quiet; returns how many moved.

        Events are collected in ``client_events``/``server_events`` and handed to
        the scripted TUs, whose answers are delivered in the same call.
        """
        moved = 0
        while True:
            batch = [("c2s", d, p) for d, p in self.client.datagrams_to_send()]
            batch += [("s2c", d, p) for d, p in self.server.datagrams_to_send()]
            for direction, data, dest in batch:
                pkt = Packet(self.now, direction, data, dest)
                self.log.append(pkt)
                moved += 1
                if not self._reaches(direction, dest):
                    self.misrouted.append(pkt)
                    continue
                fate = self.fate(pkt) if self.fate else "deliver"
                pkt.copies = {"deliver": 1, "drop": 0, "dup": 2}[fate]
                target = self.server if direction == "c2s" else self.client
                for _ in range(pkt.copies):
                    target.receive(data, self._source(direction), self.now)
            new_client = drain_events(self.client)
            new_server = drain_events(self.server)
            self.client_events += new_client
            self.server_events += new_server
            for ev in new_client:
                if self.client_tu is not None:
                    self.client_tu(self, ev)
            for ev in new_server:
                if self.server_tu is not None:
                    self.server_tu(self, ev)
            if not batch and not new_client and not new_server:
                return moved

    def advance(self, until: float) -> None:
        """Move time to ``until``, firing every timer at its own deadline on the way."""
        self.flush()
        while True:
            deadlines = [t for t in (self.client.get_timer(), self.server.get_timer()) if t is not None]
            if not deadlines or min(deadlines) > until:
                break
            self.now = max(self.now, min(deadlines))
            self.client.handle_timer(self.now)
            self.server.handle_timer(self.now)
            self.flush()
        self.now = until

    def sent(self, direction: str | None = None) -> list[str]:
        return [p.short for p in self.log if direction is None or p.direction == direction]

    def times(self, what: str, direction: str) -> list[float]:
        return [p.time for p in self.log if p.direction == direction and p.short == what]


def drop_matching(what: str, direction: str, count: int = 1) -> Fate:
    """Drop the first ``count`` packets whose short form is ``what`` in one direction."""
    left = [count]

    def fate(pkt: Packet) -> str:
        if pkt.direction == direction and pkt.short == what and left[0] > 0:
            left[0] -= 1
            return "drop"
        return "deliver"

    return fate


def duplicate_all(pkt: Packet) -> str:
    return "dup"
