"""Provisioning over HTTPS when a certificate is configured (--tls-cert/--tls-key)."""

from __future__ import annotations

import asyncio
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from harness.tls import self_signed
from provisioning.app import start_http
from switch import app as app_mod
from switch.settings import Settings


def _fetch(url: str, ctx: ssl.SSLContext | None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


async def test_bootstrap_and_configs_are_served_over_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    s = Settings()
    s.database_url = f"sqlite+aiosqlite:///{tmp_path}/sw.db"
    s.key_file = str(tmp_path / "k")
    s.sip_listen = [("127.0.0.1", 0)]
    s.qualify_interval = 0
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        s.http_listen = ("127.0.0.1", probe.getsockname()[1])
    s.tls_cert, s.tls_key = str(cert), str(key)
    services = await app_mod.start(s)
    runner = await start_http(services.http, s.http_listen, tls_cert=s.tls_cert, tls_key=s.tls_key)
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        base = f"https://127.0.0.1:{s.http_listen[1]}"
        status, body = await asyncio.to_thread(_fetch, f"{base}/spa112.cfg", ctx)
        assert status == 200 and b"Profile_Rule" in body
        # the bootstrap points the adapter at its authenticated URL on this HTTPS origin
        assert base.encode() in body
        status, _ = await asyncio.to_thread(_fetch, f"{base}/health", ctx)
        assert status == 200
        # plain HTTP to the TLS port gets nothing usable
        try:
            status, _ = await asyncio.to_thread(_fetch, f"http://127.0.0.1:{s.http_listen[1]}/health", None)
        except (urllib.error.URLError, ConnectionError, OSError):
            status = -1
        assert status != 200
    finally:
        await runner.cleanup()
        await app_mod.stop(services)
