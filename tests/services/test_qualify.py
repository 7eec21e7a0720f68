"""The qualifier on its own: OPTIONS to registered contacts over a real UDP endpoint.

The switch side is the real ``Endpoint`` (transaction layer included) and a real
``LocationService``; each adapter is a plain UDP socket that answers the way the
test says (any status, after a delay, or not at all), with responses written here as
text rather than by the switch's own message code. What is checked is what the lamps
rely on: a ping goes to the address the REGISTER came from, any response is an answer
with its round-trip time, silence is a loss after ``timeout`` (not after Timer F), each
ping is reported exactly once, and a round pings every binding once per interval.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from switch.services.adapter_status import AdapterStatusService
from switch.services.lines import LineDirectory, LineInfo
from switch.services.location import Binding, LineChange, LocationService
from switch.services.qualify import Qualifier
from switch.sip.timers import TimerConfig
from switch.transport.endpoint import Endpoint

CONTACT = "sip:22000001@10.0.0.5:5060"  # what the adapter wrote in Contact: a private address behind NAT


def response_to(request: str, status: int) -> bytes:
    """A response as an adapter writes it: Via, From, To (plus a tag), Call-ID and CSeq copied (§8.2.6)."""
    def copy(name: str) -> list[str]:
        return re.findall(rf"(?im)^({name}\s*:.*?)\r$", request)

    (to,) = copy("To")
    lines = [f"SIP/2.0 {status} Whatever", *copy("Via"), *copy("From"), f"{to};tag=adapter1", *copy("Call-ID"),
             *copy("CSeq"), "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Adapter(asyncio.DatagramProtocol):
    """A UDP peer that records every datagram and answers OPTIONS with ``status`` after ``delay`` s."""

    status: int | None = 200  # None: stay silent
    delay: float = 0.0
    trying_first: bool = False  # a 100 Trying at once, the final answer after ``delay``
    received: list[tuple[float, str]] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode()
        self.received.append((time.monotonic(), text))
        if self.status is not None:
            status = self.status
            if self.trying_first:
                self._answer(text, 100, addr)
            asyncio.get_running_loop().call_later(self.delay, self._answer, text, status, addr)

    def _answer(self, request: str, status: int, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(response_to(request, status), addr)

    def options(self) -> list[str]:
        return [t for _, t in self.received if t.startswith("OPTIONS ")]


@dataclass
class Rig:
    endpoint: Endpoint
    location: LocationService
    results: list[tuple[Binding, float | None, float]] = field(default_factory=list)  # (binding, rtt, when)

    def qualifier(self, *, interval: float = 0.0, timeout: float = 1.0) -> Qualifier:
        return Qualifier(self.endpoint, self.location, interval=interval, timeout=timeout, from_host="sip.example.no",
                         on_result=lambda b, rtt: self.results.append((b, rtt, time.monotonic())))

    async def adapter(self, **kw: object) -> Adapter:
        transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: Adapter(**kw), local_addr=("127.0.0.1", 0))  # type: ignore[arg-type]
        proto.transport = transport  # uvloop may call connection_made only after returning
        self._adapters.append(proto)
        return proto

    def bind(self, adapter: Adapter, line_id: int = 1, contact: str = CONTACT) -> Binding:
        b = Binding(line_id, contact, time.time() + 3600, f"reg-{line_id}", 1, "127.0.0.1", adapter.port, "udp")
        self.location.replace(line_id, [*self.location.bindings(line_id), b], lambda exc: None)
        return b

    async def wait_results(self, n: int, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.results) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert len(self.results) >= n, self.results

    _adapters: list[Adapter] = field(default_factory=list)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    # T1 = 50 ms: OPTIONS retransmissions at 50, 150, 350 ms ... so a short test sees them
    endpoint = Endpoint(timers=TimerConfig(t1=0.05, t2=4.0))
    await endpoint.start([("127.0.0.1", 0)])

    async def write(changes: list[LineChange]) -> None:
        return None

    location = LocationService(write)
    location.start([])
    r = Rig(endpoint, location)
    yield r
    for a in r._adapters:
        if a.transport is not None:
            a.transport.close()
    await location.close()
    await endpoint.stop()


async def test_a_ping_goes_to_where_the_register_came_from_and_reports_its_rtt(rig: Rig) -> None:
    adapter = await rig.adapter(delay=0.04)
    b = rig.bind(adapter)
    t0 = time.monotonic()
    rig.qualifier(timeout=2.0).ping(b)
    await rig.wait_results(1)
    (got, rtt, when), = rig.results
    assert got is b
    assert rtt is not None and 0.04 <= rtt <= when - t0 + 0.001 and rtt < 1.5, rtt
    sent = adapter.options()  # to the source address, not to 10.0.0.5 (RFC 3581)
    options = sent[0]
    assert all(m == options for m in sent), "only retransmissions (T1 = 50 ms) of the one OPTIONS"
    assert options.startswith(f"OPTIONS {CONTACT} SIP/2.0\r\n")
    assert re.search(rf"(?im)^To: <{re.escape(CONTACT)}>\r$", options)
    assert re.search(r"(?im)^From: <sip:softswitch@sip\.example\.no>;tag=\S+\r$", options)
    assert re.search(r"(?im)^CSeq: 1 OPTIONS\r$", options)
    assert re.search(r"(?im)^Max-Forwards: 70\r$", options)
    assert re.search(r"(?im)^Via: SIP/2\.0/UDP 127\.0\.0\.1:\d+;branch=z9hG4bK", options)
    await asyncio.sleep(0.1)
    assert len(rig.results) == 1, "one answer, one result"


@pytest.mark.parametrize("status", [404, 405, 481, 503])
async def test_any_response_proves_the_adapter_is_there(rig: Rig, status: int) -> None:
    adapter = await rig.adapter(status=status)
    rig.qualifier().ping(rig.bind(adapter))
    await rig.wait_results(1)
    assert rig.results[0][1] is not None


async def test_a_100_trying_then_a_200_is_one_answer(rig: Rig) -> None:
    adapter = await rig.adapter(trying_first=True, delay=0.5)
    rig.qualifier().ping(rig.bind(adapter))
    await rig.wait_results(1)
    await asyncio.sleep(0.7)
    assert len(rig.results) == 1 and rig.results[0][1] is not None
    assert rig.results[0][1] < 0.4, "the first response already proves the adapter is there"


async def test_silence_is_a_loss_after_the_timeout_and_is_reported_once(rig: Rig) -> None:
    adapter = await rig.adapter(status=None)
    b = rig.bind(adapter)
    t0 = time.monotonic()
    rig.qualifier(timeout=0.4).ping(b)
    await rig.wait_results(1)
    (_, rtt, when), = rig.results
    assert rtt is None
    assert 0.38 <= when - t0 < 2.0, "lost after qualify_timeout, long before Timer F (64 T1 = 3.2 s here)"
    sent = len(adapter.options())
    assert sent >= 3, "retransmitted over UDP while waiting (T1 = 50 ms)"
    # The ping is given up: no more retransmissions, and a late answer counts for nothing.
    adapter.status = 200
    await asyncio.sleep(0.5)
    assert len(adapter.options()) == sent
    assert len(rig.results) == 1


async def test_an_answer_after_the_timeout_is_a_loss(rig: Rig) -> None:
    adapter = await rig.adapter(delay=0.3)
    rig.qualifier(timeout=0.1).ping(rig.bind(adapter))
    await rig.wait_results(1)
    await asyncio.sleep(0.4)  # the 200 arrives meanwhile
    assert [rtt for _, rtt, _ in rig.results] == [None]


async def test_a_round_pings_every_binding_once_per_interval_spread_out(rig: Rig) -> None:
    a, b = await rig.adapter(), await rig.adapter()
    rig.bind(a, 1, "sip:22000001@10.0.0.5")
    rig.bind(b, 2, "sip:22000002@10.0.0.6")
    # Long enough an interval that a loaded machine's event-loop delays (tens of ms under the
    # parallel suite) stay small against the 0.5 s the two pings of a round are apart.
    q = rig.qualifier(interval=1.0, timeout=0.3)
    q.start()
    await asyncio.sleep(2.6)
    await q.stop()
    stopped, sent = len(rig.results), len(a.options()) + len(b.options())
    pings = sorted([(t, "a") for t, m in a.received if m.startswith("OPTIONS")]
                   + [(t, "b") for t, m in b.received if m.startswith("OPTIONS")])
    order = "".join(who for _, who in pings)
    # 2.6 s at 1 s a round: rounds at 0, 1, 2 (a load spike may cost the last one)
    assert order in ("ababab", "ababa", "abab"), order
    gaps = [y - x for (x, _), (y, _) in zip(pings, pings[1:])]
    assert all(0.3 <= g < 2.0 for g in gaps), f"spread over the interval, interval / bindings apart: {gaps}"
    assert all(rtt is not None for _, rtt, _ in rig.results)
    await asyncio.sleep(0.5)
    assert len(a.options()) + len(b.options()) == sent and len(rig.results) == stopped, "stop() ends the rounds"


async def test_interval_zero_means_no_pings(rig: Rig) -> None:
    adapter = await rig.adapter()
    rig.bind(adapter)
    q = rig.qualifier(interval=0.0)
    q.start()
    await asyncio.sleep(0.3)
    await q.stop()
    assert adapter.received == [] and rig.results == []


async def _tcp_adapter(rig: Rig) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Binding]:
    """An adapter registered over TCP: its binding names the connection its REGISTER came on."""
    host, port = rig.endpoint.addresses[0]
    reader, writer = await asyncio.open_connection(host, port)
    local = writer.get_extra_info("sockname")
    deadline = time.monotonic() + 2
    while (local[0], local[1]) not in rig.endpoint.tcp_by_addr and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    conn = rig.endpoint.tcp_by_addr[(local[0], local[1])]
    b = Binding(1, "sip:22000001@10.0.0.5:5060;transport=tcp", time.time() + 3600, "reg-tcp", 1, local[0], local[1],
                "tcp", conn=conn.conn_id)
    rig.location.replace(1, [b], lambda exc: None)
    return reader, writer, b


async def test_a_tcp_contact_is_pinged_over_the_connection_it_registered_on(rig: Rig) -> None:
    """Behind NAT only that connection leads to the adapter; the ping also keeps it open."""
    reader, writer, b = await _tcp_adapter(rig)
    try:
        rig.qualifier(timeout=2.0).ping(b)
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)).decode()
        assert head.startswith("OPTIONS sip:22000001@10.0.0.5:5060;transport=tcp SIP/2.0\r\n"), head
        assert re.search(r"(?im)^Via: SIP/2\.0/TCP ", head) and re.search(r"(?im)^Content-Length: 0\r$", head)
        writer.write(response_to(head, 200))  # over the same connection
        await writer.drain()
        await rig.wait_results(1)
        assert rig.results[0][1] is not None
    finally:
        writer.close()


async def test_a_tcp_contact_whose_connection_closed_is_a_loss(rig: Rig) -> None:
    reader, writer, b = await _tcp_adapter(rig)
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    rig.qualifier(timeout=3.0).ping(b)
    await rig.wait_results(1, timeout=5)
    assert rig.results[0][1] is None
    # the refused reconnect ends the transaction at once: no waiting for the 3 s timeout
    assert rig.results[0][2] - t0 < 2.0


async def test_lost_pings_turn_the_wan_lamp_and_an_answer_turns_it_back(rig: Rig) -> None:
    """The qualifier feeding the real lamp service, as the switch wires it."""
    async def load() -> list[LineInfo]:
        return [LineInfo(1, "22000001", "+4722000001", "h", "h", 10, 1)]

    lines = LineDirectory(load)
    await lines.reload()
    async def write(changes: list[LineChange]) -> None:
        return None

    # a location of its own, started with the lamps listening, as the switch wires them
    location = LocationService(write)
    status = AdapterStatusService(lines, location, persist=lambda events: None)
    location.start([], listeners=(status.bindings_changed,))
    rig = Rig(rig.endpoint, location, _adapters=rig._adapters)
    status.start()
    adapter = await rig.adapter()
    rig.bind(adapter)
    q = Qualifier(rig.endpoint, rig.location, interval=0.15, timeout=0.1, from_host="sip.example.no",
                  on_result=status.qualify_result)
    q.start()
    try:
        await asyncio.sleep(0.2)
        assert status.status(10)["wan"].state == "ok"
        adapter.status = None  # the adapter's WAN goes down
        deadline = time.monotonic() + 3
        while status.status(10)["wan"].state == "ok" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        wan = status.status(10)["wan"]
        assert wan.state == "warning" and wan.reason.startswith("no answer to 3 pings since "), wan
        adapter.status = 200
        deadline = time.monotonic() + 3
        while status.status(10)["wan"].state != "ok" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert status.status(10)["wan"].state == "ok"
    finally:
        await q.stop()
