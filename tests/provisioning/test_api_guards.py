"""API guards over real HTTP: token throttling that spares valid tokens, string limits, access log."""

from __future__ import annotations

import logging

import pytest

from .test_http import OTHER_MAC, Prov, prov  # noqa: F401 - the fixture


async def test_bad_tokens_from_one_address_do_not_lock_out_valid_ones(prov: Prov) -> None:
    """A whole support desk behind one NAT: someone's 21 typos used to refuse everyone's valid token."""
    statuses = []
    for i in range(25):
        async with prov.client.get("/api/v1/unclaimed-adapters", headers={"Authorization": f"Bearer sst_wrong{i}"}) as r:
            statuses.append(r.status)
            retry = r.headers.get("Retry-After")
    assert statuses[:20] == [401] * 20 and statuses[-1] == 429
    assert retry is not None and 1 <= int(retry) <= 3600
    # the valid token from the same address still works while the address is blocked
    status, _ = await prov.api("GET", "/api/v1/unclaimed-adapters")
    assert status == 200
    # no token at all while blocked: 429 too (the block is per address)
    async with prov.client.get("/api/v1/unclaimed-adapters") as r:
        assert r.status == 429 and r.headers.get("Retry-After")


async def test_long_strings_and_huge_bodies_are_refused(prov: Prov) -> None:
    path = f"/api/v1/unclaimed-adapters/{OTHER_MAC}/assign"
    status, body = await prov.api("POST", path, json={"customer": "C1", "description": "x" * 1_000_000})
    assert status in (400, 413), body
    status, body = await prov.api("POST", path, json={"customer": "C1", "description": "x" * 1001})
    assert status == 400 and "description" in str(body) and "1000" in str(body)
    status, body = await prov.api("POST", path, json={"customer": "C1", "nested": [{"deep": "y" * 5000}]})
    assert status == 400 and "nested[0].deep" in str(body)
    async with prov.client.post(path, headers=prov.auth, data=b"{" + b" " * 300_000 + b"}",
                                 ) as r:
        assert r.status == 413


async def test_every_api_request_gets_one_access_log_line(prov: Prov, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "softswitch.access")
    status, _ = await prov.api("GET", "/api/v1/unclaimed-adapters?search=secret-query")
    assert status == 200
    async with prov.client.get("/api/v1/unclaimed-adapters") as r:
        assert r.status == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "softswitch.access"]
    assert len(lines) == 2
    assert lines[0].startswith("GET /api/v1/unclaimed-adapters 200 ") and "token=" in lines[0]
    assert "secret-query" not in lines[0] and prov.token not in lines[0]
    assert lines[1].startswith("GET /api/v1/unclaimed-adapters 401 ") and lines[1].endswith("token=-")


async def test_no_software_versions_in_the_server_header(prov: Prov) -> None:
    for path in ("/health", "/api/v1/unclaimed-adapters", "/no/such/page"):
        async with prov.client.get(path) as r:
            assert r.headers.get("Server") == "softswitch", path
