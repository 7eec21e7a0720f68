"""Overload shedding over real UDP: a request that waited too long in the socket queue gets 503.

The queue is made to wait for real: the test blocks the event loop (as a
saturated switch would be) while its datagrams sit in the kernel's buffer.
The kernel's receive timestamps then say how long each one waited.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from switch.sip.message import Response
from switch.sip.overload import overload_response
from switch.sip.parser import parse_message
from switch.transport.endpoint import Endpoint


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    ep = Endpoint(shed_budget=0.1)
    ep.shed_from(0.0)  # the app does this when start-up is done
    await ep.start([("127.0.0.1", 0)])
    yield ep
    await ep.stop()


def request(method: str, ruri: str, port: int, n: int, extra: str = "") -> bytes:
    return (
        f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKshed{n};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=f{n}\r\nTo: <{ruri}>\r\nCall-ID: shed{n}@t\r\n"
        f"CSeq: 1 {method}\r\nContact: <sip:a@127.0.0.1:{port}>\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


async def _replies(sock: socket.socket, within: float) -> dict[str, list[int]]:
    """Call-ID -> statuses received."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    got: dict[str, list[int]] = {}
    while loop.time() < end:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), max(0.01, end - loop.time()))
        except asyncio.TimeoutError:
            break
        msg = parse_message(data)
        assert isinstance(msg, Response)
        got.setdefault(msg.call_id, []).append(msg.status)
        if msg.status == 503:
            assert 2 <= int(msg.headers.get("Retry-After") or 0) <= 120  # RetrySchedule: floor and ceiling
    return got


async def test_requests_that_waited_past_the_budget_get_503_but_emergency_and_bye_do_not(endpoint: Endpoint) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    dest = endpoint.addresses[0]
    try:
        batch = {
            "shed0@t": request("SUBSCRIBE", "sip:127.0.0.1", port, 0),
            "shed1@t": request("REGISTER", "sip:127.0.0.1", port, 1),
            "shed2@t": request("INVITE", "sip:112@127.0.0.1", port, 2),
            "shed3@t": request("INVITE", "sip:+4790000000@127.0.0.1", port, 3),
            "shed4@t": request("BYE", "sip:a@127.0.0.1", port, 4),
            "shed5@t": request("REGISTER", "sip:127.0.0.1", port, 5, 'Authorization: Digest username="a"\r\n'),
        }
        for data in batch.values():
            sock.sendto(data, dest)
        time.sleep(0.3)  # the loop is stuck: everything waits 0.3 s > the 0.1 s budget
        got = await _replies(sock, 1.0)
        assert got["shed0@t"] == [503] and got["shed1@t"] == [503] and got["shed3@t"] == [503]
        assert got["shed5@t"] == [503]  # past the whole budget even a second round trip is shed
        assert 503 not in got["shed2@t"] and got["shed2@t"][0] == 100  # emergency: served
        assert 503 not in got["shed4@t"]  # BYE ends a call: served
        assert endpoint.stats.shed == 4
        # an OPTIONS keep-alive is never shed either (a 503 makes adapters fail over)
        sock.sendto(request("OPTIONS", "sip:127.0.0.1", port, 9), dest)
        time.sleep(0.3)
        got = await _replies(sock, 1.0)
        assert got["shed9@t"] == [200]

        # Between half and all of the budget: only requests without credentials are shed.
        for n, extra in ((6, ""), (7, 'Proxy-Authorization: Digest username="a"\r\n')):
            sock.sendto(request("REGISTER", "sip:127.0.0.1", port, n, extra), dest)
        time.sleep(0.07)
        got = await _replies(sock, 1.0)
        assert got["shed6@t"] == [503] and 503 not in got["shed7@t"]

        # Not loaded: nothing is shed.
        sock.sendto(request("OPTIONS", "sip:127.0.0.1", port, 8), dest)
        got = await _replies(sock, 0.5)
        assert got["shed8@t"] == [200]
    finally:
        sock.close()


def test_overload_response_copies_what_a_response_needs() -> None:
    data = request("REGISTER", "sip:example.com", 5060, 9).replace(b"Via:", b"v:").replace(b"Call-ID:", b"i:")
    resp = parse_message(overload_response(data, 17) or b"")
    assert isinstance(resp, Response)
    assert resp.status == 503 and resp.headers.get("Retry-After") == "17"
    assert resp.call_id == "shed9@t" and resp.cseq.method == "REGISTER" and resp.to.tag
    assert resp.top_via.branch == "z9hG4bKshed9"
    # the same request (a retransmission) gets the same To tag
    again = parse_message(overload_response(data, 3) or b"")
    assert isinstance(again, Response) and again.to.tag == resp.to.tag
    # not cheaply readable (folded header): left to the normal path
    assert overload_response(data.replace(b"CSeq: 1", b"CSeq:\r\n 1"), 5) is None


async def test_a_pause_of_the_loop_under_a_burst_loses_no_datagram(endpoint: Endpoint) -> None:
    """The socket queue holds a burst that arrives while the loop is busy: 2,000 REGISTERs in
    0.3 s of a stuck loop all get their 503, none is dropped by the kernel (with the old 512 KiB
    queue ~450 fitted; every lost one is retransmitted after T1, and an overload collapses)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, 8 * 1024 * 1024)  # SO_RCVBUFFORCE: hold all the replies
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    dest = endpoint.addresses[0]
    try:
        for n in range(100, 2100):
            sock.sendto(request("REGISTER", "sip:127.0.0.1", port, n), dest)
        time.sleep(0.3)
        got = await _replies(sock, 3.0)
        assert len(got) == 2000, f"{2000 - len(got)} of 2,000 requests unanswered (dropped in the kernel)"
        assert {s for statuses in got.values() for s in statuses} == {503}
    finally:
        sock.close()


def test_retry_after_books_the_refused_at_the_busiest_recent_rate() -> None:
    """A storm's refusals come back spread over the time serving them takes, not all within 20 s."""
    from switch.sip.overload import RetrySchedule

    rs = RetrySchedule(floor=2, ceiling=120, cost=2.0, min_rate=200.0)
    t = 1000.0
    for i in range(4000):  # a busy second: 4,000 datagrams served, i.e. 2,000 requests/s come back
        rs.served(t + i / 4000)
    t += 1.0
    for i in range(100):  # then a quiet one: the booking keeps the busiest second of the window
        rs.served(t + i / 100)
    t += 1.0
    assert rs.rate == 4000
    # 20,000 refused over one second (as fast as the socket is read), in order
    refused = [(t + i / 20_000, rs.retry_after(t + i / 20_000)) for i in range(20_000)]
    waits = [w for _, w in refused]
    assert waits[0] == 2  # never sooner than the floor
    assert 11 <= max(waits) <= 12  # 20,000 at 2,000/s: the last ones back after 2 + 10 s
    # where it counts, at the instant each comes back: no 100 ms gets more than it can serve
    back: dict[int, int] = {}
    for at, w in refused:
        back[int((at + w) * 10)] = back.get(int((at + w) * 10), 0) + 1
    assert max(back.values()) <= 200  # 2,000/s x 0.1 s
    assert len(back) >= 95  # spread over ~10 s of 100 ms slots, none left empty in between
    assert rs.unbooked == 0
    assert rs.retry_after(t + 3600) == 2  # a booking left behind by time starts again at the floor
    assert rs.rate == 200  # and the busy second has left the window


def test_a_burst_refused_at_one_instant_comes_back_spread_over_seconds() -> None:
    """Refused together (a queue read at once) must not come back together: they keep their phase."""
    from switch.sip.overload import RetrySchedule

    rs = RetrySchedule(floor=2, ceiling=120, cost=2.0, min_rate=2000.0)  # 1,000 requests/s: 100 per 100 ms
    waits = [rs.retry_after(50.03) for _ in range(1000)]
    assert waits[:100] == [2] * 100 and waits[100:200] == [3] * 100 and waits[-1] == 11
    assert rs.unbooked == 0


def test_retry_after_right_after_an_idle_spell_uses_the_configured_capacity() -> None:
    """The second before a storm is idle: the first burst is booked at --overload-capacity, not at ~0/s.

    (The version that took the last second alone booked a storm's first 8,000 refusals 80 s out.)"""
    from switch.sip.overload import RetrySchedule

    rs = RetrySchedule(floor=2, ceiling=120, cost=2.0, min_rate=2000.0)
    rs.served(10.2)  # one datagram, then the storm a second later: 8,000 refused within a second
    waits = [rs.retry_after(11.0 + i / 8000) for i in range(8000)]
    assert min(waits) == 2 and max(waits) in (9, 10)  # 8,000 at 1,000 requests/s: 8 s from the 2 s floor (+1: a bucket edge)
    capped = RetrySchedule(floor=2, ceiling=30, cost=2.0, min_rate=200.0)
    waits = [capped.retry_after(50.0 + i / 10_000) for i in range(10_000)]  # 100 s of backlog
    assert max(waits) == 30 and capped.unbooked > 0


def test_run_takes_the_overload_capacity_and_refuses_one_that_is_not_positive() -> None:
    from switch.cli import common, parser

    def configured(*flags: str) -> object:
        args = parser().parse_args(["run", *flags])
        settings = common.settings_from(args)
        args.configure(args, settings)
        return settings

    assert configured("--overload-capacity", "2500").overload_capacity == 2500  # type: ignore[attr-defined]
    with pytest.raises(SystemExit, match="overload-capacity must be more than 0"):
        configured("--overload-capacity", "0")
