"""One OPTIONS with a timeout (switch.services.outbound.ping), over a real UDP endpoint and a real peer socket.

Both the qualifier and the trunk liveness pings use it: a response of any status is an RTT,
silence past the timeout is a loss (and the transaction is given up, so a late answer counts
for nothing), a request that cannot be sent is a loss at once.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from switch.services.outbound import out_of_dialog_request, ping
from switch.sip.message import Request, response_for
from switch.sip.parser import parse_message
from switch.sip.transaction.events import Peer
from switch.transport.endpoint import Endpoint


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    ep = Endpoint(user_agent="softswitch-test")
    await ep.start([("127.0.0.1", 0)])
    yield ep
    await ep.stop()


@pytest.fixture
def peer() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


async def _receive(sock: socket.socket, timeout: float = 2.0) -> tuple[Request, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), timeout)
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg, addr


def _options(ep: Endpoint, sock: socket.socket) -> tuple[Request, Peer]:
    host, port = sock.getsockname()
    uri = f"sip:{host}:{port}"
    return out_of_dialog_request("OPTIONS", uri, "switch.test", ep.user_agent), Peer("udp", host, port)


@pytest.mark.parametrize("status", [200, 404, 503])
async def test_any_response_is_a_round_trip_time(endpoint: Endpoint, peer: socket.socket, status: int) -> None:
    results: list[float | None] = []
    req, dest = _options(endpoint, peer)
    ping(endpoint, req, dest, 2.0, results.append)
    got, addr = await _receive(peer)
    assert got.method == "OPTIONS" and got.headers.get("CSeq") == "1 OPTIONS"
    assert got.headers.get("User-Agent") == "softswitch-test" and got.headers.get("Max-Forwards") == "70"
    peer.sendto(response_for(got, status).to_bytes(), addr)
    for _ in range(100):
        if results:
            break
        await asyncio.sleep(0.01)
    assert len(results) == 1 and results[0] is not None and 0 <= results[0] < 2.0


async def test_silence_is_a_loss_after_the_timeout_and_a_late_answer_counts_nothing(
    endpoint: Endpoint, peer: socket.socket
) -> None:
    results: list[float | None] = []
    req, dest = _options(endpoint, peer)
    loop = asyncio.get_running_loop()
    sent = loop.time()
    ping(endpoint, req, dest, 0.3, results.append)
    got, addr = await _receive(peer)
    while not results:
        await asyncio.sleep(0.01)
    assert results == [None]
    assert 0.28 <= loop.time() - sent < 1.0  # the ping's own timeout, not Timer F (32 s)
    assert endpoint.live_transactions == 0  # given up: no more retransmissions
    peer.sendto(response_for(got, 200).to_bytes(), addr)
    await asyncio.sleep(0.1)
    assert results == [None]


async def test_a_request_that_cannot_be_sent_is_a_loss_at_once(endpoint: Endpoint) -> None:
    results: list[float | None] = []
    req = out_of_dialog_request("OPTIONS", "sip:192.0.2.1:5060;transport=tcp", "switch.test", endpoint.user_agent)
    ping(endpoint, req, Peer("tcp", "192.0.2.1", 5060, conn=424242), 5.0, results.append)  # a TCP connection that is gone
    await asyncio.sleep(0.05)
    assert results == [None]
