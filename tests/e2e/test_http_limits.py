"""HTTP connection caps and timeouts against a real `softswitch run`, with raw sockets.

Before provisioning/connections.py the HTTP side had no cap and no request-head
timeout: idle connections took every descriptor (and TCP SIP and /health with
them), and a connection trickling a byte at a time stayed open for aiohttp's
keep-alive default of 3,630 s. Small caps and short timeouts via the options keep
these tests fast; each source address is a different 127.0.0.x. HTTPS connections
were counted only once their TLS handshake was done, and a request body could
trickle in for as long as the client liked; both are covered at the end.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import LOOPBACK
from harness.softswitch import SwitchProcess
from harness.tls import self_signed

pytestmark = pytest.mark.e2e


def _open(port: int, source: str) -> socket.socket:
    s = socket.create_connection((LOOPBACK, port), timeout=2.0, source_address=(source, 0))
    return s


def _closed_by_peer(s: socket.socket, within: float) -> bool:
    """True when the server closes (or resets) ``s`` within ``within`` seconds, sending nothing."""
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _health(port: int, source: str, tls: ssl.SSLContext | None = None) -> tuple[int, Any]:
    """``GET /health`` from ``source``, over HTTPS when ``tls`` is given."""
    conn = (http.client.HTTPConnection(LOOPBACK, port, timeout=5.0, source_address=(source, 0)) if tls is None else
            http.client.HTTPSConnection(LOOPBACK, port, timeout=5.0, source_address=(source, 0), context=tls))
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _sip_options_tcp(port: int, source: str) -> bytes:
    """One OPTIONS over a new TCP connection; the status line answered."""
    with socket.create_connection((LOOPBACK, port), timeout=3.0, source_address=(source, 0)) as s:
        local = s.getsockname()[1]
        branch = "z9hG4bK" + secrets.token_hex(8)
        s.sendall((
            f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {source}:{local};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{LOOPBACK}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{LOOPBACK}:{port}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}@{LOOPBACK}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0]


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchProcess]:
    """Caps of 3 per source and 6 in all for HTTP, 4 in all for SIP TCP; a 30 s head timeout (not hit
    here), a 2 s body timeout."""
    tmp = tmp_path_factory.mktemp("httplimits")
    sw = SwitchProcess(
        db_url=f"sqlite+aiosqlite:///{tmp / 'sw.db'}", workdir=tmp,
        extra_args=["--http-max-per-source", "3", "--http-max-connections", "6", "--http-header-timeout", "30",
                    "--http-body-timeout", "2", "--tcp-max-connections", "4"],
    )
    with sw:
        yield sw


def _hold(port: int, source: str, n: int) -> list[socket.socket]:
    socks = [_open(port, source) for _ in range(n)]
    time.sleep(0.2)
    for s in socks:
        assert not _closed_by_peer(s, 0.05), "a connection within the caps was closed"
    return socks


def test_per_source_cap_leaves_other_sources_served(switch: SwitchProcess) -> None:
    held = _hold(switch.http_port, "127.0.0.2", 3)
    try:
        extra = _open(switch.http_port, "127.0.0.2")
        assert _closed_by_peer(extra, 2.0), "the 4th connection from one source stayed open"
        extra.close()
        status, body = _health(switch.http_port, "127.0.0.3")
        assert status == 200
        assert body["http"]["refused_per_source"] >= 1
    finally:
        for s in held:
            s.close()


def test_global_cap_and_sip_tcp_unaffected(switch: SwitchProcess) -> None:
    held = _hold(switch.http_port, "127.0.0.4", 3) + _hold(switch.http_port, "127.0.0.5", 3)
    try:
        refused = []
        for _ in range(5):
            s = _open(switch.http_port, "127.0.0.6")
            refused.append(_closed_by_peer(s, 2.0))
            s.close()
        assert all(refused), refused
        # SIP over TCP has its own budget: it still answers while HTTP is full
        assert _sip_options_tcp(switch.sip_port, "127.0.0.6") == b"SIP/2.0 200 OK"
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)
    assert _health(switch.http_port, "127.0.0.6")[0] == 200  # the budget is given back
    log = switch.log_text()
    assert log.count("(the global cap)") == 1, log[-3000:]  # one line per condition, not per connection
    assert "Traceback" not in log


def test_http_works_while_sip_tcp_is_at_its_cap(switch: SwitchProcess) -> None:
    held = [socket.create_connection((LOOPBACK, switch.sip_port), timeout=2.0, source_address=("127.0.0.7", 0))
            for _ in range(4)]
    try:
        time.sleep(0.2)
        extra = socket.create_connection((LOOPBACK, switch.sip_port), timeout=2.0, source_address=("127.0.0.7", 0))
        assert _closed_by_peer(extra, 2.0), "SIP TCP over its global cap accepted a connection"
        extra.close()
        assert _health(switch.http_port, "127.0.0.8")[0] == 200
    finally:
        for s in held:
            s.close()


def _trickle_lifetime(port: int, first: bytes, limit: float) -> float:
    """Send ``first`` whole, then a request head one byte a second; seconds until the server closes."""
    s = _open(port, "127.0.0.9")
    try:
        if first:
            s.sendall(first)
            s.settimeout(2.0)
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        for byte in head:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                return time.monotonic() - start
            if _closed_by_peer(s, 1.0):
                return time.monotonic() - start
            if time.monotonic() - start > limit:
                break
        return time.monotonic() - start
    finally:
        s.close()


def test_trickled_request_head_is_closed_after_the_header_timeout(tmp_path: Path) -> None:
    with SwitchProcess(db_url=f"sqlite+aiosqlite:///{tmp_path / 'sw.db'}", workdir=tmp_path,
                       extra_args=["--http-header-timeout", "2", "--http-keepalive-timeout", "3"]) as sw:
        lasted = _trickle_lifetime(sw.http_port, b"", limit=8.0)
        assert 1.5 <= lasted <= 3.5, f"a trickled head held its connection {lasted:.1f} s (timeout 2 s)"
        # after a complete request: idle keep-alive, or a trickled next head, ends at the keep-alive timeout
        lasted = _trickle_lifetime(sw.http_port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", limit=10.0)
        assert 2.0 <= lasted <= 5.0, f"a keep-alive connection trickling its next head lasted {lasted:.1f} s"
        assert sw.log_text().count("without a complete request head") == 1


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5.0, source_address=("127.0.0.10", 0))
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_long_form_field_and_oversized_form_are_refused(switch: SwitchProcess) -> None:
    from urllib.parse import urlencode

    form = {"Content-Type": "application/x-www-form-urlencoded", "Accept-Language": "en"}
    status, html = _post(switch.http_port, "/min-side/login",
                         urlencode({"username": "C1", "password": "p" * 1001}).encode(), form)
    assert status == 400 and "“password” takes at most 1000 characters" in html, html[-500:]
    # a form body over 1 MiB is refused from its Content-Length, before it is read
    with _open(switch.http_port, "127.0.0.10") as s:
        s.sendall(b"POST /min-side/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 2000000\r\n\r\n")
        s.settimeout(3.0)
        assert s.recv(4096).startswith(b"HTTP/1.1 413")


def _trickled_body(s: socket.socket, limit: float) -> tuple[float, bytes]:
    """After a complete head, send the body a byte every 0.5 s; (seconds, bytes) until the server closes."""
    start = time.monotonic()
    got = b""
    s.settimeout(0.5)
    while time.monotonic() - start < limit:
        try:
            s.sendall(b"a")
        except OSError:
            break
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    return time.monotonic() - start, got


def test_trickled_request_body_gets_408_after_the_body_timeout(switch: SwitchProcess) -> None:
    head = (b"POST /min-side/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100000\r\n\r\n")
    for source in ("127.0.0.11", "127.0.0.12"):  # twice: the condition logs once
        with _open(switch.http_port, source) as s:
            s.sendall(head + b"username=C1&password=")
            lasted, answer = _trickled_body(s, limit=8.0)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"\r\nconnection: close\r\n" in answer.lower(), answer[:400]
        assert 1.5 <= lasted <= 3.5, f"a trickled body held its connection {lasted:.1f} s (timeout 2 s)"
    status, body = _health(switch.http_port, "127.0.0.13")
    assert status == 200 and body["http"]["body_timeouts"] == 2, body
    log = switch.log_text()
    assert log.count("did not arrive within 2 s") == 1, log[-3000:]
    assert "Traceback" not in log and "Unhandled exception" not in log


#: the first 11 bytes of a TLS 1.2 ClientHello record announcing 512 bytes that never come
PARTIAL_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


def test_tls_connections_count_from_accept_and_time_out_in_the_handshake(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, LOOPBACK)
    ctx = ssl.create_default_context(cafile=str(cert))
    sw = SwitchProcess(
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'sw.db'}", workdir=tmp_path,
        extra_args=["--tls-cert", str(cert), "--tls-key", str(key), "--http-max-per-source", "3",
                    "--http-header-timeout", "2"],
    )
    sw.launch()  # not sw.start(): its readiness probe speaks plain HTTP
    try:
        deadline = time.monotonic() + sw.start_timeout
        while True:
            try:
                if _health(sw.http_port, "127.0.0.21", ctx)[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            assert sw.alive() and time.monotonic() < deadline, sw.log_text(20_000)
            time.sleep(0.1)

        opened = time.monotonic()
        held = [_open(sw.http_port, "127.0.0.20") for _ in range(2)]
        held.append(_open(sw.http_port, "127.0.0.20"))
        held[-1].sendall(PARTIAL_CLIENT_HELLO)
        time.sleep(0.3)
        for s in held:
            assert not _closed_by_peer(s, 0.05), "a connection within the caps was closed"
        # connections still in (or not yet in) the handshake count against the per-source cap
        extra = _open(sw.http_port, "127.0.0.20")
        assert _closed_by_peer(extra, 1.0), "the 4th handshaking connection from one source stayed open"
        extra.close()
        status, body = _health(sw.http_port, "127.0.0.21", ctx)
        assert status == 200 and body["http"]["refused_per_source"] == 1 and body["http"]["open"] == 4, body
        # a completed handshake with no request head: closed at the same deadline from accept
        with _open(sw.http_port, "127.0.0.22") as raw:
            tls_opened = time.monotonic()
            with ctx.wrap_socket(raw, server_hostname=LOOPBACK) as tls:
                tls.settimeout(4.0)
                try:
                    assert tls.recv(1) == b""
                except (ssl.SSLError, ConnectionResetError):
                    pass
                tls_lasted = time.monotonic() - tls_opened
        assert 1.5 <= tls_lasted <= 3.0, f"a TLS connection without a head lasted {tls_lasted:.1f} s (timeout 2 s)"
        for s in held:
            assert _closed_by_peer(s, max(0.1, opened + 3.5 - time.monotonic())), "a handshaking connection outlived the timeout"
            assert time.monotonic() - opened >= 1.5
            s.close()
        time.sleep(0.2)
        # the places are given back: the same source is served again
        status, body = _health(sw.http_port, "127.0.0.20", ctx)
        assert status == 200 and body["http"]["open"] == 1 and body["http"]["header_timeouts"] == 4, body
        log = sw.log_text()
        assert log.count("without a complete request head") == 1, log[-3000:]
        assert log.count("(the per-source cap)") == 1, log[-3000:]
        assert "Traceback" not in log and "Unhandled exception" not in log
    finally:
        sw.stop()
