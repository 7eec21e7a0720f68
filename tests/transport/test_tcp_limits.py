"""TCP exhaustion over real loopback sockets: caps, the read timeout, one log line per condition.

A bare :class:`Endpoint` (it answers OPTIONS itself) on a free port; the peers
are plain sockets from several loopback source addresses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from switch.transport.endpoint import Endpoint

from .test_sockets import options


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    ep = Endpoint(tcp_max_per_source=3, tcp_max_connections=5)
    await ep.start([("127.0.0.1", 0)])
    yield ep
    await ep.stop()


@pytest.fixture
async def impatient() -> AsyncIterator[Endpoint]:
    """An endpoint with a short read timeout (0.6 s instead of 10)."""
    ep = Endpoint(tcp_read_timeout=0.6)
    await ep.start([("127.0.0.1", 0)])
    yield ep
    await ep.stop()


async def _connect(ep: Endpoint, src: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", ep.addresses[0][1], local_addr=(src, 0))


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except asyncio.TimeoutError:
        return False
    except ConnectionError:
        return True


async def _options_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, branch: str) -> bool:
    writer.write(options(branch, transport="TCP"))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
    return head.startswith(b"SIP/2.0 200")


async def test_per_source_cap_refuses_the_excess_and_frees_on_close(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "switch.transport")
    conns = [await _connect(endpoint) for _ in range(3)]
    for i, (r, w) in enumerate(conns):
        assert await _options_ok(r, w, f"ps{i}")
    extra = [await _connect(endpoint) for _ in range(6)]
    for r, _ in extra:
        assert await _closed_by_server(r, 2.0)
    assert endpoint.stats.tcp_refused == 6
    # one log line for the condition, not one per refused connection
    assert len([r for r in caplog.records if "per-source cap" in r.getMessage()]) == 1
    # another source is not affected by this one's cap
    r2, w2 = await _connect(endpoint, "127.0.0.2")
    assert await _options_ok(r2, w2, "other")
    conns[0][1].close()
    await asyncio.sleep(0.2)
    r3, w3 = await _connect(endpoint)
    assert await _options_ok(r3, w3, "again")
    for _, w in [*conns[1:], *extra, (r2, w2), (r3, w3)]:
        w.close()


async def test_global_cap(endpoint: Endpoint) -> None:
    held = []
    for i in range(5):
        r, w = await _connect(endpoint, f"127.0.0.{10 + i}")
        assert await _options_ok(r, w, f"g{i}")
        held.append(w)
    r, w = await _connect(endpoint, "127.0.0.20")
    assert await _closed_by_server(r, 2.0)
    for x in (*held, w):
        x.close()


async def test_an_incomplete_message_is_not_waited_for_forever(impatient: Endpoint) -> None:
    endpoint = impatient
    msg = options("slow", transport="TCP")
    # a trickle: one byte every 0.2 s keeps the connection "active", but the message never completes in time
    r, w = await _connect(endpoint)
    loop = asyncio.get_running_loop()
    start = loop.time()
    closed = False
    for b in msg:
        try:
            w.write(bytes([b]))
            await w.drain()
        except ConnectionError:
            closed = True
            break
        if await _closed_by_server(r, 0.2):
            closed = True
            break
    assert closed and loop.time() - start < 3.0
    assert endpoint.stats.tcp_read_timeouts >= 1
    # a connection that never sends anything is closed too
    r2, w2 = await _connect(endpoint)
    assert await _closed_by_server(r2, 3.0)
    # ...but one that finished its message and is now quiet stays (that is the idle timeout's business)
    r3, w3 = await _connect(endpoint)
    assert await _options_ok(r3, w3, "done")
    assert not await _closed_by_server(r3, 1.5)
    for x in (w, w2, w3):
        x.close()
