"""Invoice specification, period summary and reports over real HTTP, on SQLite and PostgreSQL.

The CDRs go through the switch's own writer, so they are rated as in production.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from harness.ports import free_port
from provisioning.app import create_app
from switch import app as switch_app
from switch.app import Switch as Services
from switch.services.cdr import CdrDraft
from switch.settings import Settings
from switch.store import models as m
from switch.store import repo_tokens
from switch.store.crypto import generate_key
from switch.store.import_validation import parse_import_document
from switch.store.importer import import_document
from switch.store.models import TokenRole
from tests.conftest_db import MigratedDb

DOC = {
    "customers": [
        {"id": "C1001", "name": "Kari Nordmann", "adapters": [
            {"mac": "00:0E:08:AB:CD:01", "model": "spa112", "lines": [
                {"port": 1, "number": "22000001", "password": "Tel1-secret-01"},
                {"port": 2, "number": "22000002", "password": "Tel2-secret-02", "unlisted": True}]}]},
        {"id": "C1002", "name": "Ola Nordmann", "adapters": [
            {"mac": "C0:74:AD:AB:CD:02", "model": "ht802", "lines": [
                {"port": 1, "number": "22000003", "password": "Tel3-secret-03"}]}]},
    ]
}
NOV = datetime(2026, 11, 10, 12, 0, tzinfo=UTC).timestamp()


@dataclass
class Api:
    client: TestClient  # type: ignore[type-arg]
    services: Services
    operator: str
    kari: str

    async def get(self, path: str, token: str | None = None) -> tuple[int, str, str]:
        async with self.client.get(path, headers={"Authorization": f"Bearer {token or self.operator}"}) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.text()


@pytest.fixture
async def api(migrated_db: MigratedDb) -> AsyncIterator[Api]:
    settings = Settings(sip_listen=[("127.0.0.1", free_port("both"))], http_listen=("127.0.0.1", 0),
                        database_url=migrated_db.url, key=generate_key().encode(), qualify_interval=0.0,
                        key_file="/nonexistent/never-read.key", cdr_spill_file=None)
    services = await switch_app.start(settings)
    try:
        await import_document(services.session_factory, parse_import_document(DOC), services.secret_box,
                              settings.effective_realm())
        await services.lines.reload()
        operator, _ = await repo_tokens.create_token(services.session_factory, TokenRole.OPERATOR, label="test")
        kari, _ = await repo_tokens.create_token(services.session_factory, TokenRole.CUSTOMER, customer_ref="C1001")
        client = TestClient(TestServer(create_app(services.http), host="127.0.0.1"))
        await client.start_server()
        try:
            yield Api(client, services, operator, kari)
        finally:
            await client.close()
    finally:
        await switch_app.stop(services)


async def _line_ids(services: Services) -> dict[str, int]:
    async with services.session_factory() as s:
        rows = await s.execute(select(m.Number.e164, m.Line.id).join(m.Line, m.Line.number_id == m.Number.id))
        return dict(rows.all())


async def _calls(api: Api) -> None:
    ids = await _line_ids(api.services)

    def d(n: int, line: str, number: str, cls: str, seconds: float | None, at: float = NOV,
          forwarded_from: str | None = None) -> CdrDraft:
        rec = CdrDraft(call_id=f"c{n}", direction=m.CallDirection.OUTGOING, calling_number=line, dialled=number,
                       setup_at=at + n * 60, calling_line_id=ids[line], normalised=number, number_class=cls)
        rec.forwarded_from = forwarded_from
        if seconds is None:
            rec.end_at, rec.end_mono, rec.final_code, rec.cause = at + n * 60 + 5, 5.0, 486, "busy"
        else:
            rec.answer_at, rec.answer_mono = at + n * 60 + 2, 2.0
            rec.end_at, rec.end_mono, rec.final_code, rec.cause = at + n * 60 + 2 + seconds, 2.0 + seconds, 200, "normal"
        return rec

    writer = api.services.calls.cdr
    for rec in (
        d(1, "+4722000001", "+46812345678", "international", 61),       # 241
        d(2, "+4722000001", "+46812345678", "international", 60),       # 238
        d(3, "+4722000002", "1881", "service", 60),                     # 2853
        d(4, "+4722000001", "+4791234567", "mobile", 120),              # 0, included
        d(5, "+4722000001", "+46812345678", "international", None),     # busy: not on the invoice
        d(6, "+4722000002", "+12125550123", "international", 30, forwarded_from="+4722000002"),  # 59 + 80
        d(7, "+4722000003", "+46812345678", "international", 61),       # Ola's
        d(8, "+4722000001", "+46812345678", "international", 61, at=NOV + 30 * 86400),  # December
    ):
        writer.submit(rec)
    # the writer commits in batches: wait until all eight are there
    for _ in range(200):
        async with api.services.session_factory() as s:
            if len((await s.execute(select(m.CallRecord.id))).all()) == 8:
                return
        await asyncio.sleep(0.02)
    raise AssertionError("CDRs not written")


async def test_invoice_json_csv_and_summary(api: Api) -> None:
    await _calls(api)
    status, ctype, body = await api.get("/api/v1/customers/C1001/invoice?period=2026-11")
    assert status == 200 and ctype.startswith("application/json"), body
    data = json.loads(body)
    assert (data["customer"], data["period"], data["count"]) == ("C1001", "2026-11", 5)
    assert data["from"] == "2026-10-31T23:00:00+00:00" and data["to"] == "2026-11-30T23:00:00+00:00"
    assert [(c["dialled"], c["zone"], c["duration_s"], c["price_ore"]) for c in data["calls"]] == [
        ("+46812345678", "nordic", 61, 241),
        ("+46812345678", "nordic", 60, 238),
        ("1881", "service_1881", 60, 2853),
        ("+4791234567", "norway_mobile", 120, 0),
        ("+12125550123", "usa_canada", 30, 59 + 80),
    ]
    assert data["calls"][4]["forwarded_from"] == "+4722000002" and data["calls"][0]["line"] == "+4722000001"
    assert data["total_ore"] == 241 + 238 + 2853 + 139
    status, ctype, body = await api.get("/api/v1/customers/C1001/invoice?period=2026-11&format=csv&line=22000002")
    assert status == 200 and ctype.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(r["dialled"], r["price_ore"], r["forwarded_from"]) for r in rows] == [
        ("1881", "2853", ""), ("+12125550123", "139", "+4722000002")]
    status, _, body = await api.get("/api/v1/customers/C1001/invoice/summary?period=2026-11")
    summary = json.loads(body)
    assert (summary["calls"], summary["amount_ore"], summary["minutes"]) == (5, 3471, round(331 / 60, 2))
    assert summary["zones"][0] == {"zone": "service_1881", "calls": 1, "seconds": 60, "minutes": 1.0, "amount_ore": 2853}
    assert {z["zone"]: z["calls"] for z in summary["zones"]} == {
        "service_1881": 1, "nordic": 2, "usa_canada": 1, "norway_mobile": 1}
    status, _, body = await api.get("/api/v1/customers/C1001/invoice?period=2026-12")
    assert json.loads(body)["count"] == 1


async def test_a_customer_token_sees_only_its_own_invoice(api: Api) -> None:
    await _calls(api)
    status, _, body = await api.get("/api/v1/customers/C1001/invoice?period=2026-11", api.kari)
    assert status == 200 and json.loads(body)["count"] == 5
    status, _, body = await api.get("/api/v1/customers/C1002/invoice?period=2026-11", api.kari)
    assert status == 403 and "own customer" in body
    status, _, body = await api.get("/api/v1/reports/directory", api.kari)
    assert status == 403


@pytest.mark.parametrize(("query", "status", "words"), [
    ("period=2026-13", 400, "YYYY-MM"),
    ("period=last", 400, "YYYY-MM"),
    ("format=xml", 400, "json or csv"),
    ("line=abc", 400, "telephone number"),
    ("line=22000003", 404, "no line with the number"),
])
async def test_bad_invoice_requests_say_what_is_wrong(api: Api, query: str, status: int, words: str) -> None:
    got, _, body = await api.get(f"/api/v1/customers/C1001/invoice?{query}")
    assert got == status and words in body


async def test_unknown_customer_is_404(api: Api) -> None:
    status, _, body = await api.get("/api/v1/customers/C9999/invoice/summary")
    assert status == 404 and "C9999" in body


async def test_inactive_lines_report(api: Api) -> None:
    await _calls(api)
    old = datetime.now(UTC) - timedelta(days=400)
    async with api.services.session_factory() as s, s.begin():
        await s.execute(update(m.Line).values(created_at=old))
    # All lines are old; lines 1 and 3 made calls recently. Line 2's calls move back past the cutoff.
    ids = await _line_ids(api.services)
    async with api.services.session_factory() as s, s.begin():
        await s.execute(update(m.CallRecord).where(m.CallRecord.calling_line_id == ids["+4722000002"])
                        .values(setup_at=old))
    status, _, body = await api.get("/api/v1/reports/inactive-lines?months=6")
    assert status == 200
    lines = json.loads(body)["lines"]
    assert [(x["number"], x["customer"]) for x in lines] == [("+4722000002", "C1001")]
    assert lines[0]["last_outgoing_at"] == old.isoformat(timespec="seconds") and lines[0]["last_answered_at"] is None
    status, ctype, body = await api.get("/api/v1/reports/inactive-lines?months=6&format=csv")
    assert ctype.startswith("text/csv") and body.splitlines()[1].startswith("+4722000002,C1001,Kari Nordmann,")
    status, _, body = await api.get("/api/v1/reports/inactive-lines?months=0")
    assert status == 400 and "months" in body


async def test_directory_export_leaves_unlisted_numbers_out(api: Api) -> None:
    status, ctype, body = await api.get("/api/v1/reports/directory")
    assert status == 200 and ctype.startswith("text/csv")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows == [["number", "name", "street", "postcode", "city"], ["+4722000001", "Kari Nordmann", "", "", ""],
                    ["+4722000003", "Ola Nordmann", "", "", ""]]
    status, _, body = await api.get("/api/v1/reports/directory?format=json")
    assert status == 200 and [e["address"] for e in json.loads(body)["entries"]] == [None, None]


OSLO = {"street": "Storgata 1", "postcode": "0150", "city": "Oslo"}


async def test_directory_export_carries_the_postal_address(api: Api) -> None:
    status, _ = await _send(api, "PATCH", "/api/v1/customers/C1001", {"address": OSLO})
    assert status == 200
    doc = {"customers": [{"id": "C1002", "name": "Ola Nordmann",
                          "address": {"street": "Kongens gate 2", "postcode": "7011", "city": "Trondheim"}}]}
    status, _ = await _send(api, "POST", "/api/v1/imports", doc)
    assert status == 200
    status, _, body = await api.get("/api/v1/reports/directory")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows == [["number", "name", "street", "postcode", "city"],
                    ["+4722000001", "Kari Nordmann", "Storgata 1", "0150", "Oslo"],
                    ["+4722000003", "Ola Nordmann", "Kongens gate 2", "7011", "Trondheim"]]
    assert "+4722000002" not in body, "the unlisted number stays out, address or not"
    status, ctype, body = await api.get("/api/v1/reports/directory?format=json")
    assert status == 200 and ctype.startswith("application/json"), body
    assert json.loads(body) == {"entries": [
        {"number": "+4722000001", "name": "Kari Nordmann", "address": OSLO},
        {"number": "+4722000003", "name": "Ola Nordmann",
         "address": {"street": "Kongens gate 2", "postcode": "7011", "city": "Trondheim"}}]}
    assert (await api.get("/api/v1/reports/directory?format=csv"))[2] == (await api.get("/api/v1/reports/directory"))[2]


async def test_report_formats_other_than_json_and_csv_are_problems_naming_the_parameter(api: Api) -> None:
    for path in ("/api/v1/reports/directory", "/api/v1/reports/inactive-lines", "/api/v1/customers/C1001/invoice"):
        status, ctype, body = await api.get(f"{path}?format=xml")
        assert (status, ctype.split(";")[0]) == (400, "application/problem+json"), (path, body)
        problem = json.loads(body)
        assert problem["field"] == "format" and "json or csv" in problem["detail"], (path, problem)


async def test_customer_address_through_the_api_with_etag_and_audit(api: Api) -> None:
    auth = {"Authorization": f"Bearer {api.operator}"}
    async with api.client.get("/api/v1/customers/C1001", headers=auth) as r:
        assert r.status == 200 and (await r.json())["address"] is None
        etag = r.headers["ETag"]
    async with api.client.patch("/api/v1/customers/C1001", json={"address": OSLO},
                                headers={**auth, "If-Match": etag}) as r:
        assert r.status == 200 and (await r.json())["address"] == OSLO
        new_etag = r.headers["ETag"]
    assert new_etag != etag, "the address is part of the ETag"
    async with api.client.patch("/api/v1/customers/C1001", json={"address": None},
                                headers={**auth, "If-Match": etag}) as r:
        assert r.status == 412, "a stale ETag is refused"
    async with api.client.get("/api/v1/customers/C1001", headers=auth) as r:
        assert (await r.json())["address"] == OSLO and r.headers["ETag"] == new_etag
    status, body = await _send(api, "GET", "/api/v1/customers?q=C1001", None)
    assert body["items"][0]["address"] == OSLO
    async with api.client.patch("/api/v1/customers/C1001", json={"address": None},
                                headers={**auth, "If-Match": new_etag}) as r:
        assert r.status == 200 and (await r.json())["address"] is None
    async with api.services.session_factory() as s:
        events = (await s.execute(select(m.AuditEvent).where(m.AuditEvent.action == "customer.update")
                                  .order_by(m.AuditEvent.id))).scalars().all()
    assert [(e.details["before"]["address"], e.details["after"]["address"]) for e in events] == [
        (None, OSLO), (OSLO, None)]


async def test_a_new_customer_comes_with_its_address(api: Api) -> None:
    status, body = await _send(api, "POST", "/api/v1/customers", {"id": "C1003", "name": "Per", "address": OSLO})
    assert status == 201 and body["address"] == OSLO
    status, body = await _send(api, "POST", "/api/v1/customers",
                               {"id": "C1004", "name": "Per", "address": {**OSLO, "postcode": "015"}})
    assert status == 422 and body["field"] == "customers[0].address.postcode"
    status, _ = await _send(api, "GET", "/api/v1/customers/C1004", None)
    assert status == 404


@pytest.mark.parametrize(("address", "field", "words"), [
    ({**OSLO, "postcode": "150"}, "address.postcode", "4 digits"),
    ({**OSLO, "postcode": 150}, "address.postcode", "must be a string"),
    ({"street": "Storgata 1", "postcode": "0150"}, "address.city", "required"),
    ({**OSLO, "street": ""}, "address.street", "must not be empty"),
    ({**OSLO, "zip": "0150"}, "address.zip", "unknown field"),
    ("Storgata 1, 0150 Oslo", "address", "must be an object"),
])
async def test_bad_addresses_are_problems_naming_the_field(api: Api, address: object, field: str, words: str) -> None:
    async with api.client.patch("/api/v1/customers/C1001", json={"address": address, "name": "Changed"},
                                headers={"Authorization": f"Bearer {api.operator}"}) as r:
        assert r.status == 400 and r.content_type == "application/problem+json"
        body = await r.json()
    assert body["field"] == field and words in body["detail"]
    status, got = await _send(api, "GET", "/api/v1/customers/C1001", None)
    assert got["address"] is None and got["name"] == "Kari Nordmann", "nothing changed"



async def _send(api: Api, method: str, path: str, body: object, token: str | None = None) -> tuple[int, Any]:
    async with api.client.request(method, path, json=body,
                                  headers={"Authorization": f"Bearer {token or api.operator}"}) as r:
        return r.status, await r.json()


async def test_credit_limit_is_set_shown_and_checked(api: Api) -> None:
    status, body = await _send(api, "PUT", "/api/v1/customers/C1001/credit-limit", {"credit_limit_ore": 50000})
    assert status == 200 and body["credit_limit_ore"] == 50000 and body["period_total_ore"] == 0
    ids = await _line_ids(api.services)
    now = time.time()
    rec = CdrDraft(call_id="now", direction=m.CallDirection.OUTGOING, calling_number="+4722000001",
                   dialled="+46812345678", setup_at=now - 70, calling_line_id=ids["+4722000001"],
                   normalised="+46812345678", number_class="international")
    rec.answer_at, rec.answer_mono, rec.end_at, rec.end_mono = now - 61, 0.0, now, 61.0
    rec.final_code, rec.cause = 200, "normal"
    api.services.calls.cdr.submit(rec)
    for _ in range(200):
        status, body = await _send(api, "GET", "/api/v1/customers/C1001/credit", None, api.kari)
        if body["period_total_ore"]:
            break
        await asyncio.sleep(0.02)
    assert status == 200 and (body["period_total_ore"], body["remaining_ore"]) == (241, 50000 - 241)
    status, body = await _send(api, "PUT", "/api/v1/customers/C1001/credit-limit", {"credit_limit_ore": None})
    assert status == 200 and body["credit_limit_ore"] is None and body["remaining_ore"] is None
    async with api.services.session_factory() as s:
        events = (await s.execute(select(m.AuditEvent).where(m.AuditEvent.action == "customer.credit_limit"))).scalars()
        assert [e.details for e in events] == [{"old_ore": None, "new_ore": 50000}, {"old_ore": 50000, "new_ore": None}]


@pytest.mark.parametrize("body", [{"credit_limit_ore": -1}, {"credit_limit_ore": "500"}, {"credit_limit_ore": 1.5},
                                  {"limit": 5}, [500]])
async def test_bad_credit_limits_are_refused_and_change_nothing(api: Api, body: object) -> None:
    status, answer = await _send(api, "PUT", "/api/v1/customers/C1001/credit-limit", body)
    assert status == 400 and "credit_limit_ore" in answer["error"]
    status, answer = await _send(api, "GET", "/api/v1/customers/C1001/credit", None)
    assert answer["credit_limit_ore"] is None


async def test_customers_cannot_set_their_own_limit(api: Api) -> None:
    status, _ = await _send(api, "PUT", "/api/v1/customers/C1001/credit-limit", {"credit_limit_ore": 10**9}, api.kari)
    assert status == 403
    status, _ = await _send(api, "GET", "/api/v1/customers/C1002/credit", None, api.kari)
    assert status == 403


async def test_price_look_up_prices_as_the_call_records_do(api: Api) -> None:
    """The look-up and a written CDR of the same call agree (both go through Rater.rate)."""
    await _calls(api)
    async with api.services.session_factory() as s:
        written = {(r.normalised, r.duration_s): (r.zone, r.charge_ore, r.tariff_version) for r in
                   (await s.execute(select(m.CallRecord).where(m.CallRecord.duration_s > 0))).scalars()}
    for number, seconds in (("+46812345678", 61), ("+46812345678", 60), ("1881", 60), ("+4791234567", 120)):
        status, _, body = await api.get(f"/api/v1/tariffs/price?number={number.replace('+', '%2B')}"
                                        f"&seconds={seconds}&at=2026-11-10T13:00:00%2B01:00")
        assert status == 200, body
        got = json.loads(body)
        assert (got["zone"], got["price_ore"], got["tariff_version"]) == written[(number, seconds)]
    status, _, body = await api.get("/api/v1/tariffs/price?number=0046812345678")
    got = json.loads(body)
    assert status == 200 and (got["number"], got["zone"], got["prefix"], got["seconds"]) == (
        "+46812345678", "nordic", "46", 60)
    assert (got["start_ore"], got["per_minute_ore"], got["price_ore"], got["included"]) == (59, 179, 238, False)
    assert got["kind"] == "private" and got["customer"] is None and got["tariff_name"]


async def test_price_look_up_by_kind_customer_included_and_emergency(api: Api) -> None:
    status, _, body = await api.get("/api/v1/tariffs/price?number=22000003&seconds=60")
    got = json.loads(body)
    assert (got["zone"], got["included"], got["price_ore"]) == ("norway_fixed", True, 0)
    status, _, body = await api.get("/api/v1/tariffs/price?number=22000003&seconds=60&kind=business")
    got = json.loads(body)
    assert (got["kind"], got["per_minute_ore"], got["included"], got["price_ore"]) == ("business", 15, False, 15)
    status, _ = await _send(api, "PATCH", "/api/v1/customers/C1002", {"kind": "business"})
    assert status == 200
    status, _, body = await api.get("/api/v1/tariffs/price?number=22000001&seconds=120&customer=C1002")
    got = json.loads(body)
    assert (got["customer"], got["kind"], got["price_ore"]) == ("C1002", "business", 30)
    status, _, body = await api.get("/api/v1/tariffs/price?number=81549100&seconds=61")
    got = json.loads(body)
    assert (got["zone"], got["prefix"], got["start_ore"]) == ("special_815_5digit", "47815", 52)
    assert got["price_ore"] == 52 + -(-241 * 61 // 60)
    status, _, body = await api.get("/api/v1/tariffs/price?number=112&seconds=600")
    got = json.loads(body)
    assert (got["zone"], got["price_ore"], got["included"], got["prefix"]) == ("emergency", 0, True, None)


@pytest.mark.parametrize(("query", "status", "field", "words"), [
    ("", 400, "number", "required"),
    ("number=abc", 400, "number", "not a number"),
    ("number=22000001&seconds=-1", 400, "seconds", "whole number"),
    ("number=22000001&seconds=1.5", 400, "seconds", "whole number"),
    ("number=22000001&seconds=86401", 400, "seconds", "whole number"),
    ("number=22000001&kind=household", 400, "kind", "private or business"),
    ("number=22000001&kind=private&customer=C1001", 400, "kind", "not both"),
    ("number=22000001&customer=C9999", 404, "customer", "C9999"),
    ("number=22000001&at=yesterday", 400, "at", "ISO 8601"),
    ("number=22000001&at=2026-11-10T12:00:00", 400, "at", "time zone"),
    ("number=22000001&at=2001-01-01T00:00:00Z", 404, "at", "no tariff is valid"),
])
async def test_bad_price_look_ups_say_what_is_wrong(api: Api, query: str, status: int, field: str,
                                                    words: str) -> None:
    got, ctype, body = await api.get(f"/api/v1/tariffs/price?{query}")
    assert got == status and ctype.startswith("application/problem+json"), body
    problem = json.loads(body)
    assert problem["field"] == field and words in problem["detail"]


async def test_price_look_up_is_for_staff_only(api: Api) -> None:
    status, _, _ = await api.get("/api/v1/tariffs/price?number=22000001", api.kari)
    assert status == 403
