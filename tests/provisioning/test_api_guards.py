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


async def test_every_error_is_problem_json_naming_the_status_and_successes_stay_json(prov: Prov) -> None:
    """The older routes answered application/json: now every error is application/problem+json (RFC 9457)."""
    big = b"{" + b" " * 300_000 + b"}"
    cases = [
        ("GET", "/api/v1/unclaimed-adapters", {}, None, 401),  # auth: no token
        ("GET", "/api/v1/adapters/zz/status", prov.auth, None, 400),  # an older route's own check
        ("GET", f"/api/v1/adapters/{OTHER_MAC}/status", prov.auth, None, 404),
        ("GET", "/api/v1/no-such-route", prov.auth, None, 404),  # aiohttp's 404, through the middleware
        ("DELETE", "/api/v1/openapi.json", prov.auth, None, 405),  # aiohttp's 405, through the middleware
        ("POST", f"/api/v1/unclaimed-adapters/{OTHER_MAC}/assign", prov.auth, big, 413),  # the body guard
        ("GET", "/cfg/spa000e08ffff99.xml", {}, None, 404),  # an unknown adapter's config fetch (not /api/)
    ]
    for method, path, headers, data, status in cases:
        async with prov.client.request(method, path, headers=headers, data=data) as r:
            body = await r.json(content_type=None)
            assert (r.status, r.content_type) == (status, "application/problem+json"), (method, path, body)
        assert body["status"] == status and body["detail"] and body["title"] not in ("", "Error"), (path, body)
    async with prov.client.get("/api/v1/unclaimed-adapters", headers=prov.auth) as r:
        assert r.status == 200 and r.content_type == "application/json"


@pytest.mark.parametrize("bad", ["²", "10522735685832933376", "9" * 40, "-1", "1e3", " 7"])
async def test_numbers_in_queries_and_paths_are_checked_before_use(prov: Prov, bad: str) -> None:
    """'²' passes str.isdigit but not int(); an id past a database integer passes int() but not the
    driver: both were 500s (found by the schemathesis fuzz test, GET /api/v1/customers?offset=...)."""
    from urllib.parse import quote

    q = quote(bad)
    for method, path, expected in [
        ("GET", f"/api/v1/customers?offset={q}", 400),
        ("GET", f"/api/v1/customers?limit={q}", 400),
        ("GET", f"/api/v1/adapters/00:0E:08:AB:CD:01/lamp-events?limit={q}", 400),
        ("GET", f"/api/v1/lines/22000001/calls?limit={q}", 400),
        ("GET", f"/api/v1/reports/inactive-lines?months={q}", 400),
        ("POST", f"/api/v1/tokens/{q}/revoke", 400),
        ("POST", f"/api/v1/suspensions/{q}/lift", 404),
    ]:
        status, body = await prov.api(method, path)
        assert status == expected, (path, status, body)
        assert body["status"] == expected and body["detail"], (path, body)
