"""API roles: every route's declared roles follow the rule, and the real HTTP app enforces them.

The rule (provisioning/auth.py): ``admin`` everything; ``support`` all but tokens,
operator users, trunks and routes; ``readonly`` GET only; ``customer`` only its own
lines' forwarding and barring, its call list and its invoice. The walk below reads the
declarations from the router itself, so a new route that forgets one fails here; the
live tests run a real ``softswitch run`` on both databases with two customers' data.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, update

from harness.softswitch import SwitchProcess, _cli, poll_until
from provisioning import app as provisioning_app
from provisioning.auth import require
from switch.store import models as m
from switch.store.engine import make_engine, make_session_factory, write_session
from tests.conftest import AdapterData, SwitchHome
from tests.provisioning.test_manage_api import call

#: (method, path) a customer token may use, on its own objects only.
CUSTOMER_ROUTES = {
    ("GET", "/api/v1/lines/{number}/policy"),
    ("PUT", "/api/v1/lines/{number}/forwarding/{kind}"),
    ("DELETE", "/api/v1/lines/{number}/forwarding/{kind}"),
    ("PUT", "/api/v1/lines/{number}/barring"),
    ("GET", "/api/v1/lines/{number}/calls"),
    ("GET", "/api/v1/customers/{customer}/invoice"),
    ("GET", "/api/v1/customers/{customer}/invoice/summary"),
    ("GET", "/api/v1/customers/{customer}/credit"),
}
#: Routes only an admin may use (by path prefix).
ADMIN_ONLY = ("/api/v1/tokens", "/api/v1/users", "/api/v1/trunks", "/api/v1/routes")
#: GET routes that hand out a secret (the adapter's own config URL): not for readonly.
SECRET_READS = {("GET", "/api/v1/adapters/{mac}/profile-url")}
#: Routes without a bearer token (the API description itself).
PUBLIC = {("GET", "/api/v1/openapi.json")}


def _routes() -> list[tuple[str, str, Any]]:
    out = []
    for table in provisioning_app.API_ROUTES:
        for r in table:
            assert isinstance(r, web.RouteDef)
            out.append((r.method, r.path, r.handler))
    return out


def test_every_route_declares_roles_that_follow_the_rule() -> None:
    seen_customer = set()
    for method, path, handler in _routes():
        if (method, path) in PUBLIC:
            assert not hasattr(handler, "roles")
            continue
        roles = getattr(handler, "roles", None)
        where = f"{method} {path}"
        assert isinstance(roles, frozenset) and roles, f"{where} declares no roles (use provisioning.auth.require)"
        assert "admin" in roles, where
        if path.startswith(ADMIN_ONLY):
            assert roles == {"admin"}, f"{where}: tokens, users, trunks and routes are admin only"
            continue
        assert "support" in roles, f"{where}: support may use every route but tokens, users, trunks, routes"
        if method != "GET":
            assert "readonly" not in roles, f"{where}: readonly is GET only"
        elif (method, path) not in SECRET_READS:
            assert "readonly" in roles, f"{where}: readonly may read what support reads"
        if "customer" in roles:
            seen_customer.add((method, path))
            assert (method, path) in CUSTOMER_ROUTES, f"{where}: not a customer route"
    assert seen_customer == CUSTOMER_ROUTES, CUSTOMER_ROUTES - seen_customer


def test_a_route_cannot_declare_the_old_operator_role() -> None:
    with pytest.raises(ValueError, match="operator"):
        require("operator")
    with pytest.raises(ValueError):
        require()


# ----------------------------------------------------------------------------- live

OTHER = {
    "id": "C2002", "name": "Brita Berg", "language": "nb",
    "adapters": [{"mac": "00:0E:08:AB:CD:55", "model": "spa112", "lines": [
        {"port": 1, "number": "22000055", "password": "Tel1-secret-55"},
    ]}],
}
#: Only in C2002's data: never in an answer to C1001's token.
OTHER_MARKERS = ("Brita Berg", "+4791234567", "+4799887766", "C2002-secret")


def _token(switch: SwitchProcess, admin: str, **body: Any) -> str:
    s, _, got = call(switch, "POST", "/api/v1/tokens", admin, body)
    assert s == 201, got
    return str(got["token"])


def _fill(path: str, number: str, customer: str) -> str:
    return (path.replace("{number}", number).replace("{customer}", customer).replace("{kind}", "unconditional"))


def _body_for(method: str, path: str) -> Any:
    if path.endswith("/forwarding/{kind}") and method == "PUT":
        return {"target": "22000002"}
    if path.endswith("/barring"):
        return {"categories": ["premium"]}
    return None


async def _add_calls(db_url: str, numbers: dict[str, str]) -> None:
    """One priced, answered call per line this month (what the CDR writer stores), by number → dialled."""
    engine = make_engine(db_url)
    try:
        sf = make_session_factory(engine)
        now = datetime.now(UTC).replace(microsecond=0)
        async with write_session(sf) as session:
            for number, dialled in numbers.items():
                line_id = (await session.execute(
                    select(m.Line.id).join(m.Number, m.Line.number_id == m.Number.id)
                    .where(m.Number.e164 == number))).scalar_one()
                session.add(m.CallRecord(
                    call_id=f"roles-{number}", direction=m.CallDirection.OUTGOING, calling_line_id=line_id,
                    calling_number=number, dialled=dialled, normalised=dialled, number_class="mobile",
                    setup_at=now, answer_at=now, end_at=now, duration_s=61, final_code=200, cause="normal",
                    charge_ore=123, zone="mobile"))
    finally:
        await engine.dispose()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.e2e
def test_a_customer_token_never_gets_another_customers_data(switch: SwitchProcess, api_token: str) -> None:
    s, _, body = call(switch, "POST", "/api/v1/customers", api_token, OTHER)
    assert s == 201, body
    # C2002's own data: a call, a forward and a barring, which C1001 must never see or change.
    _run(_add_calls(switch.db_url, {"+4722000055": "+4799887766", "+4722000001": "+4741111111"}))
    s, _, body = call(switch, "PUT", "/api/v1/lines/22000055/forwarding/busy", api_token, {"target": "91234567"})
    assert s == 200, body
    assert call(switch, "PUT", "/api/v1/lines/22000055/barring", api_token, {"categories": ["international"]})[0] == 200
    before = call(switch, "GET", "/api/v1/lines/22000055/policy", api_token)[2]
    assert before["forwarding"] and before["barring"]["line"] == ["international"]

    mine = _token(switch, api_token, role="customer", customer="C1001", label="kari")
    walked = 0
    for method, path, handler in _routes():
        if "customer" not in getattr(handler, "roles", ()):
            continue
        walked += 1
        url = _fill(path, "22000055", "C2002")
        s, _, answer = call(switch, method, url, mine, _body_for(method, path))
        assert s in (403, 404), f"{method} {url} gave {s}: {answer}"
        text = json.dumps(answer)
        for marker in OTHER_MARKERS:
            assert marker not in text, f"{method} {url} leaked {marker}"
        # The same with the line given in E.164 and as a query filter on the invoice.
        if "{number}" in path:
            s, _, _ = call(switch, method, _fill(path, "+4722000055", "C2002"), mine, _body_for(method, path))
            assert s in (403, 404)
    assert walked == len(CUSTOMER_ROUTES)
    s, _, _ = call(switch, "GET", "/api/v1/customers/C1001/invoice?line=22000055", mine)
    assert s == 404, "another customer's line as the invoice filter"
    assert call(switch, "GET", "/api/v1/lines/22000055/policy", api_token)[2] == before, "nothing changed"

    # Its own objects answer, with its own data (so the refusals above are about ownership).
    own = sorted(((mt, p) for mt, p, h in _routes() if "customer" in getattr(h, "roles", ())),
                 key=lambda r: r[0] == "DELETE")
    for method, path in own:
        url = _fill(path, "22000001", "C1001")
        s, _, answer = call(switch, method, url, mine, _body_for(method, path))
        assert 200 <= s < 300, f"{method} {url} gave {s}: {answer}"
    calls = call(switch, "GET", "/api/v1/lines/22000001/calls", mine)[2]
    assert [c["dialled"] for c in calls["calls"]] == ["+4741111111"]
    invoice = call(switch, "GET", "/api/v1/customers/C1001/invoice", mine)[2]
    assert "+4741111111" in json.dumps(invoice) and "+4799887766" not in json.dumps(invoice)
    # Everything else is refused to a customer token, even its own customer record.
    for method, url in (("GET", "/api/v1/customers/C1001"), ("GET", "/api/v1/lines"), ("GET", "/api/v1/audit"),
                        ("POST", "/api/v1/suspensions"), ("GET", "/api/v1/tokens"), ("GET", "/metrics")):
        assert call(switch, method, url, mine, {} if method == "POST" else None)[0] == 403, url


@pytest.mark.e2e
def test_readonly_support_and_admin_over_http(switch: SwitchProcess, api_token: str,
                                              imported_adapter: AdapterData) -> None:
    readonly = _token(switch, api_token, role="readonly", label="wallboard")
    support = _token(switch, api_token, role="support", label="desk")
    routes = [(mt, p) for mt, p, h in _routes() if hasattr(h, "roles")]
    for method, path in routes:
        url = re.sub(r"\{[^}]+\}", "x1", path)
        if method != "GET":
            s, _, body = call(switch, method, url, readonly, {})
            assert s == 403, f"readonly {method} {url}: {s} {body}"
        if path.startswith(ADMIN_ONLY):
            s, _, body = call(switch, method, url, support, {} if method != "GET" else None)
            assert s == 403, f"support {method} {url}: {s} {body}"
    assert call(switch, "GET", "/api/v1/customers", readonly)[0] == 200
    assert call(switch, "GET", f"/api/v1/adapters/{imported_adapter.mac}/profile-url", readonly)[0] == 403
    # Support does the daily work, but no trunks or routes even through an import.
    s, _, body = call(switch, "POST", "/api/v1/customers", support, OTHER)
    assert s == 201, body
    s, _, body = call(switch, "POST", "/api/v1/imports", support, {"routes": []})
    assert s == 403 and body["field"] == "routes"
    s, _, body = call(switch, "POST", "/api/v1/imports", support, {"customers": [{**OTHER, "name": "Brita B."}]})
    assert s == 200, body
    # The token from before roles existed (`token create --role operator`) is an admin.
    assert call(switch, "GET", "/api/v1/tokens", api_token)[0] == 200
    listing = call(switch, "GET", "/api/v1/tokens", api_token)[2]["items"]
    assert {t["role"] for t in listing} >= {"operator", "readonly", "support"}
    s, _, body = call(switch, "POST", "/api/v1/tokens", api_token, {"role": "superuser"})
    assert s == 400 and body["field"] == "role"
    s, _, body = call(switch, "POST", "/api/v1/tokens", api_token, {"role": "support", "customer": "C1001"})
    assert s == 400 and body["field"] == "customer"


@pytest.mark.e2e
def test_user_tokens_take_the_users_role_and_stop_with_the_user(switch: SwitchProcess, api_token: str,
                                                                switch_home: SwitchHome, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("a-long-enough-password\n")
    out = _cli(switch.db_url, switch_home.key_file, "user", "create", "--username", "kari", "--role", "support",
               "--password-file", str(pw), cwd=switch_home.dir).stdout
    assert "support user kari" in out and "a-long-enough-password" not in out
    out = _cli(switch.db_url, switch_home.key_file, "token", "create", "--user", "kari", "--name", "kari's script",
               cwd=switch_home.dir).stdout
    assert "support token for user kari" in out
    kari = out.strip().splitlines()[-1]
    assert call(switch, "GET", "/api/v1/tokens", kari)[0] == 403
    s, _, body = call(switch, "POST", "/api/v1/customers", kari, OTHER)
    assert s == 201, body
    audit = call(switch, "GET", "/api/v1/audit?actor=operator:kari", api_token)[2]["items"]
    assert audit and {e["actor"] for e in audit} == {"operator:kari"}
    # The API's own token form for a user: the user's role, never a role given on top.
    s, _, body = call(switch, "POST", "/api/v1/tokens", api_token, {"user": "kari", "label": "second"})
    assert s == 201 and body["role"] == "support" and body["user"] == "kari"
    second = body["token"]
    s, _, body = call(switch, "POST", "/api/v1/tokens", api_token, {"user": "nobody"})
    assert s == 404 and body["field"] == "user"

    async def disable() -> None:
        engine = make_engine(switch.db_url)
        try:
            async with write_session(make_session_factory(engine)) as session:
                await session.execute(update(m.OperatorUser).where(m.OperatorUser.username == "kari")
                                      .values(enabled=False))
        finally:
            await engine.dispose()

    _run(disable())
    # `second` was never used, so no cache stands between the database and the answer.
    assert call(switch, "GET", "/api/v1/customers", second)[0] == 401


@pytest.mark.e2e
def test_operator_users_over_the_api(switch: SwitchProcess, api_token: str) -> None:
    s, h, body = call(switch, "POST", "/api/v1/users", api_token,
                      {"username": "kari", "role": "support", "display_name": "Kari N."})
    assert s == 201, body
    assert h["Location"] == "/api/v1/users/kari" and h["Cache-Control"] == "no-store" and len(body["password"]) >= 12
    first_password = body["password"]
    s, _, body = call(switch, "POST", "/api/v1/users", api_token, {"username": "kari", "role": "admin"})
    assert s == 409 and body["field"] == "username"
    s, _, body = call(switch, "POST", "/api/v1/users", api_token, {"username": "per", "role": "customer"})
    assert s == 400 and body["field"] == "role"
    s, _, body = call(switch, "POST", "/api/v1/users", api_token, {"username": "two words", "role": "admin"})
    assert s == 400 and body["field"] == "username"
    s, h, listing = call(switch, "GET", "/api/v1/users", api_token)
    assert listing["items"] == [{"username": "kari", "display_name": "Kari N.", "role": "support", "enabled": True}]
    assert first_password not in json.dumps(listing)

    kari = _token(switch, api_token, user="kari", label="kari's script")
    assert call(switch, "GET", "/api/v1/customers", kari)[0] == 200
    assert call(switch, "GET", "/api/v1/users", kari)[0] == 403
    # A role change applies to the user's (cached) token at once.
    s, h, body = call(switch, "PATCH", "/api/v1/users/kari", api_token, {"role": "readonly"})
    assert s == 200 and body["role"] == "readonly" and "password" not in body
    etag = h["ETag"]
    assert call(switch, "POST", "/api/v1/customers", kari, OTHER)[0] == 403
    assert call(switch, "GET", "/api/v1/customers", kari)[0] == 200
    s, _, body = call(switch, "PATCH", "/api/v1/users/kari", api_token, {"enabled": "no"})
    assert s == 400 and body["field"] == "enabled"
    s, _, body = call(switch, "PATCH", "/api/v1/users/kari", api_token, {"colour": "red"})
    assert s == 400 and body["field"] == "colour"
    s, _, body = call(switch, "PATCH", "/api/v1/users/nobody", api_token, {"enabled": False})
    assert s == 404
    s, h, body = call(switch, "PATCH", "/api/v1/users/kari", api_token, {"reset_password": True}, {"If-Match": etag})
    assert s == 200 and body["password"] != first_password and h["Cache-Control"] == "no-store"
    s, _, body = call(switch, "PATCH", "/api/v1/users/kari", api_token, {"enabled": False}, {"If-Match": '"stale"'})
    assert s == 412 and call(switch, "GET", "/api/v1/customers", kari)[0] == 200, "nothing changed on 412"
    s, _, body = call(switch, "PATCH", "/api/v1/users/kari", api_token, {"enabled": False})
    assert s == 200 and body["enabled"] is False
    assert call(switch, "GET", "/api/v1/customers", kari)[0] == 401, "a disabled user's token stops at once"
    audit = call(switch, "GET", "/api/v1/audit?subject_type=user&subject_id=kari", api_token)[2]["items"]
    assert [e["action"] for e in audit] == ["user.update", "user.update", "user.update", "user.create"]
    assert audit[0]["details"] == {"enabled": ["True", "False"]} and audit[1]["details"] == {"password": ["", "reset"]}


@pytest.mark.e2e
def test_trunks_and_routes_over_the_api_apply_at_once(switch: SwitchProcess, api_token: str) -> None:
    support = _token(switch, api_token, role="support")
    carrier = {"name": "carrierA", "host": "127.0.0.1", "port": 5999, "username": "acct", "password": "t-secret",
               "allowed_sources": ["127.0.0.0/30"], "emergency": True}
    assert call(switch, "POST", "/api/v1/trunks", support, carrier)[0] == 403
    s, h, body = call(switch, "POST", "/api/v1/trunks", api_token, carrier)
    assert s == 201, body
    assert h["Location"] == "/api/v1/trunks/carrierA" and body["has_password"] is True and "t-secret" not in str(body)
    # The running switch reloaded its table now (it logs when an emergency trunk appears), not at the 30 s tick.
    assert poll_until(lambda: "emergency trunk enabled again" in switch.log_text(), timeout=3)
    s, _, body = call(switch, "POST", "/api/v1/trunks", api_token, carrier)
    assert s == 409 and body["field"] == "name"
    s, _, body = call(switch, "POST", "/api/v1/trunks", api_token, {**carrier, "name": "carrierB", "port": 70000})
    assert s == 422 and body["field"] == "port"
    s, _, body = call(switch, "POST", "/api/v1/trunks", api_token, {**carrier, "name": "carrierB",
                                                                    "allowed_sources": ["nonsense"]})
    assert s == 422 and body["field"] == "allowed_sources"
    assert call(switch, "GET", "/api/v1/trunks/carrierB", api_token)[0] == 404, "nothing stored on error"
    s, _, body = call(switch, "PATCH", "/api/v1/trunks/carrierA", api_token, {"transport": "carrier-pigeon"})
    assert s == 422 and body["field"] == "transport"
    s, _, body = call(switch, "PATCH", "/api/v1/trunks/carrierA", api_token, {"port": 5998, "password": ""})
    assert s == 200 and body["port"] == 5998 and body["has_password"] is False

    s, _, body = call(switch, "PUT", "/api/v1/routes/+47", api_token, {"trunks": ["carrierA"]})
    assert s == 201 and body == {"prefix": "+47", "trunks": ["carrierA"], "enabled": True, "description": ""}
    s, _, body = call(switch, "PUT", "/api/v1/routes/+", api_token, {"trunks": ["carrierA"], "description": "default"})
    assert s == 201 and body["prefix"] == "+"
    s, _, body = call(switch, "PUT", "/api/v1/routes/+47", api_token, {"trunks": ["nope"]})
    assert s == 422 and body["field"] == "trunks"
    s, _, body = call(switch, "PUT", "/api/v1/routes/47x", api_token, {"trunks": ["carrierA"]})
    assert s == 400 and body["field"] == "prefix"
    s, _, listing = call(switch, "GET", "/api/v1/routes", api_token)
    assert [r["prefix"] for r in listing["items"]] == ["+", "+47"]
    s, _, body = call(switch, "DELETE", "/api/v1/trunks/carrierA", api_token)
    assert s == 409 and "+47" in body["detail"]
    assert call(switch, "DELETE", "/api/v1/routes/+47", api_token)[0] == 204
    assert call(switch, "DELETE", "/api/v1/routes/%2B", api_token)[0] == 204
    assert call(switch, "GET", "/api/v1/routes/+47", api_token)[0] == 404
    assert call(switch, "DELETE", "/api/v1/trunks/carrierA", api_token)[0] == 204
    audit = call(switch, "GET", "/api/v1/audit?subject_type=trunk&subject_id=carrierA", api_token)[2]["items"]
    assert [e["action"] for e in audit] == ["trunk.delete", "trunk.update", "trunk.create"]
    assert "t-secret" not in json.dumps(audit)
