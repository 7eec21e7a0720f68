"""The management API against a real `softswitch run` (both databases): create, change, delete, live effect.

What support staff do on their first day without a YAML file: add a customer
with an adapter and lines, see the new line register at once, reset its
password (the old one stops working on the next REGISTER), swap a broken
adapter for a new one keeping the lines, disable and delete lines, terminate a
customer (numbers freed, history kept), manage tokens, and read the audit log.
Conflicts are 409/412 and leave everything as it was; bad input is a
problem+json answer naming the field.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness.sipp import run_sipp, write_injection_csv
from harness.softswitch import SwitchProcess, adapter_status, poll_until
from tests.conftest import AdapterData

pytestmark = pytest.mark.e2e


def call(switch: SwitchProcess, method: str, path: str, token: str | None, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(switch.http_url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, dict(resp.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, dict(err.headers), json.loads(raw) if raw else None


NEW_CUSTOMER = {
    "id": "C3003", "name": "Per Olsen", "language": "en",
    "adapters": [{"mac": "00:0E:08:AB:CD:33", "model": "spa112", "lines": [
        {"port": 1, "number": "22000033", "password": "Tel1-secret-33"},
    ]}],
}


def _register(switch: SwitchProcess, tmp_path: Path, number: str, password: str, name: str) -> bool:
    csv = write_injection_csv(tmp_path / f"{name}.csv", [(number, password)])
    return run_sipp("uac_register_digest", switch.sip_target, inf_csv=csv, calls=1).ok


def test_customer_lifecycle_with_etags_problems_and_audit(switch: SwitchProcess, api_token: str) -> None:
    s, h, body = call(switch, "POST", "/api/v1/customers", api_token, NEW_CUSTOMER)
    assert s == 201, body
    assert body["id"] == "C3003" and h["Location"] == "/api/v1/customers/C3003" and h["ETag"]
    s, _, body = call(switch, "POST", "/api/v1/customers", api_token, NEW_CUSTOMER)
    assert s == 409 and body["field"] == "id"
    bad = {**NEW_CUSTOMER, "id": "C4004", "adapters": [{"mac": "00:0E:08:AB:CD:44", "model": "spa112",
                                                         "lines": [{"port": 3, "number": "22000044"}]}]}
    s, h, body = call(switch, "POST", "/api/v1/customers", api_token, bad)
    assert s == 422 and h["Content-Type"].startswith("application/problem+json")
    assert body["field"] == "customers[0].adapters[0].lines[0].port" and body["status"] == 422
    s, _, body = call(switch, "GET", "/api/v1/customers/C4004", api_token)
    assert s == 404, "nothing was written by the refused request"

    s, _, page = call(switch, "GET", "/api/v1/customers?q=olsen", api_token)
    assert s == 200 and [c["id"] for c in page["items"]] == ["C3003"]
    s, _, page = call(switch, "GET", "/api/v1/customers?q=22000001", api_token)
    assert [c["id"] for c in page["items"]] == ["C1001"], "searchable by number"
    s, _, page = call(switch, "GET", "/api/v1/customers?limit=1&offset=1", api_token)
    assert page["total"] == 2 and len(page["items"]) == 1 and page["offset"] == 1
    s, _, body = call(switch, "GET", "/api/v1/customers?limit=0", api_token)
    assert s == 400 and body["field"] == "limit"

    s, h, body = call(switch, "GET", "/api/v1/customers/C3003", api_token)
    etag = h["ETag"]
    s, h2, body = call(switch, "PATCH", "/api/v1/customers/C3003", api_token, {"name": "Per K. Olsen"},
                       {"If-Match": etag})
    assert s == 200 and body["name"] == "Per K. Olsen" and h2["ETag"] != etag
    s, _, body = call(switch, "PATCH", "/api/v1/customers/C3003", api_token, {"name": "Someone Else"},
                      {"If-Match": etag})
    assert s == 412
    s, _, body = call(switch, "PATCH", "/api/v1/customers/C3003", api_token, {"language": "de"})
    assert s == 400 and body["field"] == "language"
    s, _, body = call(switch, "PATCH", "/api/v1/customers/C3003", api_token, {"state": "terminated"})
    assert s == 400 and body["field"] == "state"
    assert call(switch, "GET", "/api/v1/customers/C3003", api_token)[2]["name"] == "Per K. Olsen"
    s, _, audit = call(switch, "GET", "/api/v1/audit?subject_type=customer&subject_id=C3003", api_token)
    assert [e["action"] for e in audit["items"]] == ["customer.update"]
    assert audit["items"][0]["details"]["after"]["name"] == "Per K. Olsen"
    assert audit["items"][0]["actor"].startswith("token:")
    s, _, body = call(switch, "PATCH", "/api/v1/customers/C3003", None, {"name": "x"})
    assert s == 401


def test_new_line_registers_at_once_and_a_password_reset_applies_to_the_next_register(
    switch: SwitchProcess, api_token: str, tmp_path: Path
) -> None:
    s, _, body = call(switch, "POST", "/api/v1/customers", api_token, NEW_CUSTOMER)
    assert s == 201, body
    # No reload tick needed: the directory was reloaded by the API call.
    assert _register(switch, tmp_path, "22000033", "Tel1-secret-33", "first")
    s, _, body = call(switch, "POST", "/api/v1/lines", api_token,
                      {"customer": "C3003", "adapter": "00:0E:08:AB:CD:33", "port": 2, "number": "22000034"})
    assert s == 201, body
    generated = body["password"]
    assert body["number"] == "+4722000034" and len(generated) >= 12
    assert "password" not in call(switch, "GET", "/api/v1/lines/22000034", api_token)[2]
    assert _register(switch, tmp_path, "22000034", generated, "second")
    s, _, body = call(switch, "POST", "/api/v1/lines", api_token,
                      {"customer": "C3003", "adapter": "00:0E:08:AB:CD:33", "port": 2, "number": "22000035"})
    assert s == 409 and body["field"] == "port", "port 2 is taken"
    s, _, body = call(switch, "POST", "/api/v1/lines/22000033/password", api_token)
    assert s == 200
    assert not _register(switch, tmp_path, "22000033", "Tel1-secret-33", "old")
    assert _register(switch, tmp_path, "22000033", body["password"], "new")


def test_disable_swap_delete_and_terminate(switch: SwitchProcess, api_token: str, tmp_path: Path,
                                           imported_adapter: AdapterData) -> None:
    line = imported_adapter.lines[0]
    assert _register(switch, tmp_path, line.number, line.password, "reg")
    mac = imported_adapter.mac
    poll_until(lambda: adapter_status(switch, api_token, mac)["tel1"]["state"] == "ok", timeout=5)
    s, _, body = call(switch, "PATCH", f"/api/v1/lines/{line.number}", api_token, {"enabled": False})
    assert s == 200 and body["enabled"] is False
    poll_until(lambda: adapter_status(switch, api_token, mac)["tel1"]["state"] == "off", timeout=5)
    assert not _register(switch, tmp_path, line.number, line.password, "disabled")
    call(switch, "PATCH", f"/api/v1/lines/{line.number}", api_token, {"enabled": True})

    # A broken unit is swapped: the lines move to the new MAC.
    s, _, body = call(switch, "PATCH", f"/api/v1/adapters/{mac}", api_token, {"mac": "00:0E:08:AB:CD:99"})
    assert s == 200 and [li["number"] for li in body["lines"]] == ["+4722000001", "+4722000002"]
    assert call(switch, "GET", f"/api/v1/adapters/{mac}", api_token)[0] == 404
    s, _, body = call(switch, "DELETE", "/api/v1/adapters/00:0E:08:AB:CD:99", api_token)
    assert s == 409 and body["field"] == "lines"

    s, _, _ = call(switch, "DELETE", "/api/v1/lines/22000002", api_token)
    assert s == 204 and call(switch, "GET", "/api/v1/lines/22000002", api_token)[0] == 404

    s, _, body = call(switch, "POST", f"/api/v1/customers/{imported_adapter.customer_id}/terminate", api_token)
    assert s == 200 and body["state"] == "terminated"
    assert not _register(switch, tmp_path, line.number, line.password, "terminated")
    # The freed number can be given to a new customer.
    s, _, body = call(switch, "POST", "/api/v1/customers", api_token, {
        "id": "C5005", "name": "Ny Kunde", "adapters": [{"mac": "00:0E:08:AB:CD:55", "model": "ht802",
                                                          "lines": [{"port": 1, "number": line.number}]}]})
    assert s == 201, body
    s, _, calls = call(switch, "GET", "/api/v1/audit?actor=" + body["id"], api_token)
    assert s == 200


def test_tokens_are_listed_created_and_revoked_at_once(switch: SwitchProcess, api_token: str) -> None:
    s, _, body = call(switch, "POST", "/api/v1/tokens", api_token, {"role": "operator", "label": "desk 2"})
    assert s == 201 and body["token"].startswith("sst_")
    new = body["token"]
    assert call(switch, "GET", "/api/v1/customers", new)[0] == 200
    s, _, listing = call(switch, "GET", "/api/v1/tokens", api_token)
    assert "token" not in json.dumps(listing["items"]).replace('"tokens"', "")
    assert {t["label"] for t in listing["items"]} >= {"desk 2"}
    s, _, _ = call(switch, "POST", f"/api/v1/tokens/{body['id']}/revoke", api_token)
    assert s == 200
    assert call(switch, "GET", "/api/v1/customers", new)[0] == 401
    assert call(switch, "POST", "/api/v1/tokens/999999/revoke", api_token)[0] == 404
    s, _, body = call(switch, "POST", "/api/v1/tokens", api_token, {"role": "customer"})
    assert s == 400 and body["field"] == "customer"


def test_numbers_free_after_a_line_is_deleted_unlisted_and_given_back(switch: SwitchProcess, api_token: str) -> None:
    s, _, page = call(switch, "GET", "/api/v1/numbers?state=assigned", api_token)
    assert s == 200 and {n["number"] for n in page["items"]} == {"+4722000001", "+4722000002"}
    assert call(switch, "DELETE", "/api/v1/numbers/22000002", api_token)[0] == 409, "a line uses it"
    assert call(switch, "DELETE", "/api/v1/lines/22000002", api_token)[0] == 204
    s, _, page = call(switch, "GET", "/api/v1/numbers?state=free", api_token)
    assert [n["number"] for n in page["items"]] == ["+4722000002"]
    s, h, body = call(switch, "PATCH", "/api/v1/numbers/22000002", api_token, {"unlisted": True})
    assert s == 200 and body["unlisted"] is True
    s, _, body = call(switch, "PATCH", "/api/v1/numbers/22000002", api_token, {"unlisted": "yes"})
    assert s == 400 and body["field"] == "unlisted"
    assert call(switch, "DELETE", "/api/v1/numbers/22000002", api_token)[0] == 204
    assert call(switch, "GET", "/api/v1/numbers/22000002", api_token)[0] == 404
    assert call(switch, "GET", "/api/v1/numbers?state=gone", api_token)[0] == 400


def test_customer_contacts_and_the_min_side_password_reset(switch: SwitchProcess, api_token: str) -> None:
    s, h, body = call(switch, "GET", "/api/v1/customers/C1001", api_token)
    assert s == 200 and isinstance(body["contacts"], list)
    contacts = [{"name": "Kari Nordmann", "email": "kari@example.no", "phone": "+4791234567", "primary": True},
                {"name": "Ola (sønn)", "phone": "+4790000000"}]
    s, _, body = call(switch, "PATCH", "/api/v1/customers/C1001", api_token, {"contacts": contacts},
                      {"If-Match": h["ETag"]})
    assert s == 200, body
    assert body["contacts"][0]["email"] == "kari@example.no" and body["contacts"][1]["primary"] is False
    s, _, body = call(switch, "PATCH", "/api/v1/customers/C1001", api_token,
                      {"contacts": [{"email": "not-an-address"}]})
    assert s == 400 and body["field"] == "contacts[0].email"
    s, _, body = call(switch, "PATCH", "/api/v1/customers/C1001", api_token, {"contacts": [{"fax": "1"}]})
    assert s == 400 and body["field"] == "contacts[0].fax"
    assert len(call(switch, "GET", "/api/v1/customers/C1001", api_token)[2]["contacts"]) == 2, "nothing changed"
    s, h, body = call(switch, "POST", "/api/v1/customers/C1001/portal-password", api_token)
    assert s == 200 and len(body["password"]) >= 12 and h["Cache-Control"] == "no-store"
    assert call(switch, "POST", "/api/v1/customers/C9999/portal-password", api_token)[0] == 404
    s, _, audit = call(switch, "GET", "/api/v1/audit?subject_type=customer&subject_id=C1001", api_token)
    assert [e["action"] for e in audit["items"]][:2] == ["customer.portal_password_reset", "customer.update"]
