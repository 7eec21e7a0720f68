"""The asyncio transports over real loopback sockets: UDP and TCP, IPv4 and IPv6.

The switch runs in-process (``switch.app.start``) on free ports with a real
SQLite file; the tests are plain sockets speaking SIP to it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch import app as app_mod
from switch.settings import Settings


def options(branch: str, host: str = "127.0.0.1", port: int = 5999, transport: str = "UDP") -> bytes:
    return (
        f"OPTIONS sip:{host} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {host}:{port};branch=z9hG4bK{branch};rport\r\n"
        f"From: <sip:probe@{host}>;tag=t{branch}\r\nTo: <sip:{host}>\r\n"
        f"Call-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def start_switch(tmp: Path, hosts: list[str], **overrides: object) -> app_mod.Switch:
    s = Settings()
    s.database_url = f"sqlite+aiosqlite:///{tmp}/sw.db"
    s.key_file = str(tmp / "key")
    s.sip_listen = [(h, 0) for h in hosts]  # the endpoint binds UDP, then TCP on the same port
    s.qualify_interval = 0
    for k, v in overrides.items():
        setattr(s, k, v)
    return await app_mod.start(s)


@pytest.fixture
async def switch4(tmp_path: Path) -> AsyncIterator[app_mod.Switch]:
    services = await start_switch(tmp_path, ["127.0.0.1"])
    yield services
    await app_mod.stop(services)


async def udp_exchange(data: bytes, addr: tuple[str, int], *, src: str | None = None, timeout: float = 2.0) -> bytes | None:
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((src or addr[0], 0))
    try:
        sock.sendto(data, addr)
        return await asyncio.wait_for(loop.sock_recv(sock, 65535), timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        sock.close()


async def test_options_over_udp_ipv4(switch4: app_mod.Switch) -> None:
    addr = switch4.endpoint.addresses[0]
    reply = await udp_exchange(options("u4"), addr)
    assert reply is not None and reply.startswith(b"SIP/2.0 200 OK\r\n")
    assert b";rport=" in reply.split(b"\r\n")[1]
    assert b"Allow: INVITE" in reply


async def test_options_over_udp_and_tcp_ipv6(tmp_path: Path) -> None:
    services = await start_switch(tmp_path, ["::1"])
    try:
        host, port = services.endpoint.addresses[0]
        reply = await udp_exchange(options("u6", "[::1]"), (host, port))
        assert reply is not None and reply.startswith(b"SIP/2.0 200 OK")
        r, w = await asyncio.open_connection(host, port)
        w.write(options("t6", "[::1]", transport="TCP"))
        await w.drain()
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"SIP/2.0 200 OK")
        w.close()
    finally:
        await app_mod.stop(services)


async def test_tcp_options_keepalive_and_reuse(switch4: app_mod.Switch) -> None:
    host, port = switch4.endpoint.addresses[0]
    r, w = await asyncio.open_connection(host, port)
    # RFC 5626 §4.4.1: a double-CRLF ping gets a single CRLF pong.
    w.write(b"\r\n\r\n")
    await w.drain()
    assert await asyncio.wait_for(r.readexactly(2), 2) == b"\r\n"
    # two requests pipelined on one connection, both answered on it
    w.write(options("tc1", transport="TCP") + options("tc2", transport="TCP"))
    await w.drain()
    first = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2)
    second = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2)
    assert b"z9hG4bKtc1" in first and b"z9hG4bKtc2" in second
    w.close()


async def test_tcp_missing_content_length_is_answered_400_and_closed(switch4: app_mod.Switch) -> None:
    host, port = switch4.endpoint.addresses[0]
    r, w = await asyncio.open_connection(host, port)
    bad = options("nocl", transport="TCP").replace(b"Content-Length: 0\r\n", b"")
    w.write(bad)
    await w.drain()
    data = await asyncio.wait_for(r.read(4096), 2)
    assert data.startswith(b"SIP/2.0 400 ")
    assert b"Content-Length" in data.split(b"\r\n")[0] or b"Missing Content-Length" in data
    assert await asyncio.wait_for(r.read(), 2) == b""  # closed


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"\x00\xff" * 500,
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"OPTIONS sip:127.0.0.1 SIP/7.0\r\nVia: SIP/7.0/UDP 127.0.0.1:5999;branch=z9hG4bKv7\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"REGISTER sip:127.0.0.1 SIP/2.0\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n",
        b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nContent-Length: 99999\r\n\r\nshort",
    ],
)
async def test_garbage_never_stops_the_server(switch4: app_mod.Switch, junk: bytes) -> None:
    addr = switch4.endpoint.addresses[0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.sendto(junk[:65000], addr)
    finally:
        sock.close()
    reply = await udp_exchange(options(f"after{len(junk)}"), addr)
    assert reply is not None and reply.startswith(b"SIP/2.0 200 OK")


async def test_wrong_version_gets_505_and_bad_scheme_416(switch4: app_mod.Switch) -> None:
    addr = switch4.endpoint.addresses[0]
    v7 = options("v7").replace(b"OPTIONS sip:127.0.0.1 SIP/2.0", b"OPTIONS sip:127.0.0.1 SIP/7.0")
    reply = await udp_exchange(v7, addr)
    assert reply is not None and reply.startswith(b"SIP/2.0 505 ")
    mailto = options("mt").replace(b"OPTIONS sip:127.0.0.1 SIP/2.0", b"OPTIONS mailto:a@b SIP/2.0")
    reply = await udp_exchange(mailto, addr)
    assert reply is not None and reply.startswith(b"SIP/2.0 416 ")


async def test_flood_from_one_source_does_not_starve_another(tmp_path: Path) -> None:
    """Per-source rate limit: 127.0.0.2 floods, 127.0.0.1 still gets answers."""
    services = await start_switch(tmp_path, ["127.0.0.1"], rate_limit=50.0, rate_burst=50.0)
    try:
        addr = services.endpoint.addresses[0]
        flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flood.bind(("127.0.0.2", 0))
        try:
            for i in range(2000):
                flood.sendto(options(f"f{i}", "127.0.0.2"), addr)
        finally:
            flood.close()
        answered = 0
        for i in range(10):
            # Like a SIP client: one retransmission after T1. While the flood still fills
            # the (deliberately bounded) socket queue the kernel may drop the first copy;
            # what must not happen is the rate limiter starving this source.
            reply = await udp_exchange(options(f"good{i}"), addr, src="127.0.0.1", timeout=0.5)
            if reply is None:
                reply = await udp_exchange(options(f"good{i}"), addr, src="127.0.0.1")
            answered += reply is not None and reply.startswith(b"SIP/2.0 200")
        assert answered == 10
        st = services.endpoint.stats
        # Of the flood that got past the kernel queue, all but the burst allowance was dropped.
        assert st.rate_limited >= 500 and st.rate_limited >= st.received - 100, st
    finally:
        await app_mod.stop(services)


async def test_idle_tcp_connections_are_closed(tmp_path: Path) -> None:
    services = await start_switch(tmp_path, ["127.0.0.1"], tcp_idle_timeout=1.0)
    try:
        host, port = services.endpoint.addresses[0]
        r, w = await asyncio.open_connection(host, port)
        started = time.monotonic()
        assert await asyncio.wait_for(r.read(), 10) == b""
        assert time.monotonic() - started < 6
        w.close()
    finally:
        await app_mod.stop(services)


async def test_tcp_connect_failure_ends_the_transaction_at_once(switch4: app_mod.Switch) -> None:
    """§17.1.4: a refused TCP connection is reported to the TU now, not after Timer F (32 s)."""
    from switch.sip.headers import Headers
    from switch.sip.message import Request
    from switch.sip.transaction.events import Peer, TransactionTimeout

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody listens there now
    got: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    req = Request("OPTIONS", f"sip:127.0.0.1:{port};transport=tcp", Headers.of([
        ("From", "<sip:switch@127.0.0.1>;tag=x"), ("To", f"<sip:127.0.0.1:{port}>"), ("Call-ID", "tcpfail"),
        ("CSeq", "1 OPTIONS")]))
    started = time.monotonic()
    switch4.endpoint.request(req, Peer("tcp", "127.0.0.1", port), lambda ev: got.done() or got.set_result(ev))
    ev = await asyncio.wait_for(got, 5)
    assert isinstance(ev, TransactionTimeout) and ev.timer == "transport"
    assert time.monotonic() - started < 2


async def test_port_zero_picks_again_when_the_tcp_twin_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """With port 0 the kernel chooses the UDP port; its TCP twin may be some client's
    ephemeral port (this failed a CI run). The endpoint picks again instead of failing."""
    from switch.transport import endpoint as endpoint_mod
    from switch.transport.endpoint import Endpoint

    real = endpoint_mod.open_tcp_server
    taken: list[int] = []

    async def first_port_taken(ep: Endpoint, host: str, port: int):  # type: ignore[no-untyped-def]
        if not taken:
            taken.append(port)
            # really occupy it, so the failure is the kernel's own EADDRINUSE
            blocker = socket.socket()
            blocker.bind((host, port))
            blocker.listen()
            try:
                return await real(ep, host, port)
            finally:
                blocker.close()
        return await real(ep, host, port)

    monkeypatch.setattr(endpoint_mod, "open_tcp_server", first_port_taken)
    ep = Endpoint()
    await ep.start([("127.0.0.1", 0)])
    try:
        assert taken and ep.addresses[0][1] != taken[0]
        assert len(ep.udp) == 1 and len(ep.tcp_servers) == 1
        assert ep.tcp_servers[0].sockets[0].getsockname()[1] == ep.addresses[0][1] == ep.udp[0].local[1]
    finally:
        await ep.stop()


async def test_a_fixed_port_whose_tcp_side_is_taken_fails_to_start() -> None:
    from switch.transport.endpoint import Endpoint

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        ep = Endpoint()
        with pytest.raises(OSError):
            await ep.start([("127.0.0.1", blocker.getsockname()[1])])
        await ep.stop()
    finally:
        blocker.close()
