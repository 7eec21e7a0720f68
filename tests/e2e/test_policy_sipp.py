"""Call policy end to end: `softswitch run` (SQLite and PostgreSQL) with SIPp callers, callees and carriers.

Forwarding (CFU, CFB on 486, CFNR after the ring time, CFNRc with no binding
and with lost pings, to a trunk as the forwarder's own call), the forwarder's
barring and suspension, loops (A→B→A, a carrier bouncing our forward back
with Diversion), the hop cap, suspension (emergency still works; soft vs
hard for incoming calls; applied and lifted while the switch runs), the
third concurrent call, an international burst that suspends the customer,
barring by every category, and the management API's validation and
customer scoping. Every refusal is checked in what the caller got (status +
Reason) and in the CDR (cause, trail, chain).

Speed: one switch per database serves every test of this module (they use
separate lines, so they do not interfere); settings are changed through the
API, which is itself under test. About 45 s per database.
Addresses: lines on 127.0.0.1, the carrier on 127.0.0.3, the emergency
gateway on 127.0.0.4 (as in test_calls_sipp.py).
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import LOOPBACK
from harness.db import run_sql as sql
from harness.ports import free_port_on
from harness.sipp import SippResult, SippServer, run_sipp, write_injection_csv
from harness.softswitch import SwitchProcess, _cli, create_token, import_file
from tests.conftest import SIPP_SWITCH_ARGS, attach_log
from tests.conftest_db import BACKENDS
from tests.e2e.test_calls_sipp import CARRIER_OK_IP, EMERGENCY_IP, finals, flow, header, requests, status_of

pytestmark = [pytest.mark.e2e]

CALLER = "22100001"
CONCURRENT_CALLER = "22100002"
NOBODY = "22100191"  # a line of its own customer that never registers


def pw(number: str) -> str:
    return f"pw-{number}"


CUSTOMERS: dict[str, list[str]] = {
    "C3001": [CALLER, CONCURRENT_CALLER],
    "C3002": [f"221001{i:02d}" for i in range(1, 19)],  # forwarders and their targets
    "C3003": [f"221001{i}" for i in range(21, 28)],  # a chain longer than the hop cap
    "C3004": ["22100131"],  # suspended while the switch runs
    "C3005": ["22100141", "22100142"],  # soft / hard suspended callees
    "C3006": ["22100161"],  # international burst
    "C3007": ["22100171", "22100172"],  # line barring
    "C3008": ["22100173"],  # customer barring
    "C3009": ["22100181"],  # forwarded out, bounced back by the carrier
    "C3010": [NOBODY],
    "C3011": ["22100201"],  # barred by an import while the switch runs
}


def document(carrier_port: int, emergency_port: int) -> dict[str, Any]:
    customers = []
    mac = 0x0E08AB0000
    for cid, numbers in CUSTOMERS.items():
        adapters = []
        for i in range(0, len(numbers), 2):
            mac += 1
            adapters.append({
                "mac": f"{mac:012x}", "model": "spa112",
                "lines": [{"port": p + 1, "number": n, "password": pw(n)} for p, n in enumerate(numbers[i:i + 2])],
            })
        customers.append({"id": cid, "name": f"Kunde {cid}", "language": "nb", "adapters": adapters})
    return {
        "customers": customers,
        "trunks": [
            {"name": "carrierOk", "host": CARRIER_OK_IP, "port": carrier_port, "allowed_sources": [f"{CARRIER_OK_IP}/32"]},
            {"name": "nodnett", "host": EMERGENCY_IP, "port": emergency_port, "emergency": True},
        ],
        "routes": [{"prefix": "+", "trunks": ["carrierOk"]}],
    }


@dataclass
class World:
    switch: SwitchProcess
    db_url: str
    token: str
    customer_token: str
    carrier_port: int
    emergency_port: int
    dir: Path
    servers: list[SippServer] = field(default_factory=list)

    # -- HTTP --------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(LOOPBACK, self.switch.http_port, timeout=10)
        try:
            data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            conn.request(method, path, body=data, headers={
                "Authorization": f"Bearer {token or self.token}", "Content-Type": "application/json"})
            resp = conn.getresponse()
            text = resp.read().decode()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text
        finally:
            conn.close()

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.api(method, path, body)
        assert status in (200, 201), (method, path, status, answer)
        return answer

    # -- SIP ---------------------------------------------------------------------
    def scratch(self) -> Path:
        d = self.dir / uuid.uuid4().hex[:8]
        d.mkdir()
        return d

    def register(self, number: str, port: int) -> None:
        csv = write_injection_csv(self.scratch() / "reg.csv", [(number, pw(number))])
        r = run_sipp("uac_register_digest", self.switch.sip_target, inf_csv=csv, calls=1, local_port=port,
                     workdir=self.scratch(), timeout=10)
        assert r.ok and r.successful == 1, r.describe()

    def serve(self, scenario: str, ip: str, port: int, *extra: str, once: bool = True) -> SippServer:
        s = SippServer(scenario, ip, port, self.scratch(), extra=extra, timeout=60, once=once)
        self.servers.append(s)
        return s.start()

    def adapter(self, number: str, scenario: str = "uas_answer", *extra: str) -> SippServer:
        """A registered callee: a SIPp UAS that REGISTERed line ``number`` from its own port."""
        port = free_port_on(LOOPBACK)
        self.register(number, port)
        return self.serve(scenario, LOOPBACK, port, *extra)

    def call(self, caller: str, dialled: str, scenario: str = "uac_invite_refused", *extra: str,
             timeout: float = 20.0) -> SippResult:
        csv = write_injection_csv(self.scratch() / "caller.csv", [(caller, pw(caller))])
        return run_sipp(scenario, self.switch.sip_target, inf_csv=csv, calls=1, timeout=timeout,
                        workdir=self.scratch(), extra=("-set", "dialled", dialled, *extra))

    def carrier_call(self, scenario: str, dialled: str, caller: str, *extra: str) -> SippResult:
        return run_sipp(scenario, self.switch.sip_target, calls=1, timeout=20, workdir=self.scratch(),
                        local_port=free_port_on(CARRIER_OK_IP),
                        extra=("-i", CARRIER_OK_IP, "-set", "dialled", dialled, "-set", "caller", caller, *extra))

    # -- records -------------------------------------------------------------------
    def cdrs(self, r: SippResult, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The CDRs of the caller's call (one per leg), once ``count`` are written."""
        call_id = header(r.received()[0], "Call-ID")
        deadline = time.monotonic() + timeout
        while True:
            rows = sql(self.db_url, "SELECT * FROM call_records WHERE call_id = :c ORDER BY id", {"c": call_id})
            if len(rows) >= count or time.monotonic() > deadline:
                assert len(rows) == count, rows
                return rows
            time.sleep(0.1)


def refused(r: SippResult, status: int, cause: str) -> None:
    got = finals(r.received())
    assert got, r.describe()
    assert {status_of(m) for m in got} == {status}, flow(r.received())
    assert header(got[0], "Reason") is not None and f'text="{cause}"' in (header(got[0], "Reason") or ""), got[0]


def trail(row: dict[str, Any]) -> list[str]:
    return json.loads(row["decision_trail"])


def chain(row: dict[str, Any]) -> list[dict[str, str]]:
    return json.loads(row["forward_chain"]) if row["forward_chain"] else []


PINGS_LOST_LINE = "22100109"


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One switch per database for the whole module: customers C3001-C3010, a carrier, an emergency gateway."""
    home = tmp_path_factory.mktemp(f"policy_{request.param}")
    name = None
    if request.param == "sqlite":
        db_url = f"sqlite+aiosqlite:///{home / 'policy.db'}"
    else:
        admin = request.getfixturevalue("_pg_admin")
        name = f"sst_policy_{uuid.uuid4().hex[:10]}"
        db_url = admin.create(name)
    carrier, emergency = free_port_on(CARRIER_OK_IP), free_port_on(EMERGENCY_IP)
    key = home / "softswitch.key"
    import_file(db_url, document(carrier, emergency), key_file=key, cwd=home)
    proc = SwitchProcess(db_url=db_url, workdir=home, key_file=key, extra_args=[
        *SIPP_SWITCH_ARGS, "--qualify-interval", "1", "--qualify-timeout", "1"])
    proc.launch()
    try:
        token = create_token(db_url, key_file=key, cwd=home)
        out = _cli(db_url, key, "token", "create", "--role", "customer", "--customer", "C3002", cwd=home).stdout
        customer_token = out.strip().splitlines()[-1].strip()
        proc.wait_ready()
        w = World(proc, db_url, token, customer_token, carrier, emergency, home)
        # Registered from a port nobody listens on: its pings are lost while the other tests run.
        w.register(PINGS_LOST_LINE, free_port_on(LOOPBACK))
        yield w
    finally:
        for s in w.servers if "w" in locals() else []:
            if s.running():
                s.stop()
        proc.stop()
        if name is not None:
            request.getfixturevalue("_pg_admin").drop(name)


@pytest.fixture
def w(world: World, request: pytest.FixtureRequest) -> World:
    attach_log(request, lambda: (f"softswitch log ({world.switch.log_path})", world.switch.log_text()))
    return world


# ============================================================================== forwarding


def test_cfu_to_another_line_carries_diversion_and_history_info(w: World) -> None:
    w.ok("PUT", "/api/v1/lines/22100101/forwarding/unconditional", {"target": "22100102"})
    target = w.adapter("22100102")
    r = w.call(CALLER, "22100101", "uac_call_auth", "-d", "200")
    assert r.ok and r.successful == 1, r.describe()
    u = target.wait()
    assert u.ok, u.describe()
    (invite,) = requests(u.received(), "INVITE")
    assert "<sip:22100001@" in (header(invite, "From") or "")  # the final callee sees the original caller
    assert header(invite, "Diversion") == "<sip:22100101@127.0.0.1>;reason=unconditional;counter=1;privacy=off"
    hi = header(invite, "History-Info") or ""
    assert hi.startswith("<sip:22100101@127.0.0.1?Reason=SIP%3Bcause%3D302") and ";cause=302>;index=1.1;mp=1" in hi, hi
    first, forwarded = w.cdrs(r, 2)
    assert (first["direction"], first["calling_number"], first["normalised"], first["cause"]) == (
        "onnet", "+4722100001", "+4722100101", "normal")
    assert (forwarded["direction"], forwarded["calling_number"], forwarded["normalised"], forwarded["forwarded_from"],
            forwarded["cause"]) == ("onnet", "+4722100101", "+4722100102", "+4722100101", "normal")
    assert chain(forwarded) == [{"from": "+4722100101", "to": "+4722100102", "reason": "unconditional"}]
    assert any(s.startswith("forward unconditional") for s in trail(first))
    # The calls API gives support the trail and the chain from one record.
    status, calls = w.api("GET", "/api/v1/lines/22100101/calls")
    assert status == 200
    newest = calls["calls"][0]
    assert newest["forward_chain"] == chain(forwarded) and newest["decision_trail"] == trail(forwarded)


def test_cfb_forwards_when_the_callee_answers_486(w: World) -> None:
    w.ok("PUT", "/api/v1/lines/22100103/forwarding/busy", {"target": "22100104"})
    busy = w.adapter("22100103", "uas_busy")
    target = w.adapter("22100104")
    r = w.call(CALLER, "22100103", "uac_call_auth", "-d", "200")
    assert r.ok and r.successful == 1, r.describe()
    assert busy.wait().ok
    u = target.wait()
    assert u.ok, u.describe()
    (invite,) = requests(u.received(), "INVITE")
    assert ";reason=user-busy;" in (header(invite, "Diversion") or "")
    assert ";cause=486>" in (header(invite, "History-Info") or "")
    _, forwarded = w.cdrs(r, 2)
    assert chain(forwarded) == [{"from": "+4722100103", "to": "+4722100104", "reason": "user-busy"}]


def test_cfnr_forwards_after_the_ring_time_while_the_caller_hears_ringing(w: World) -> None:
    w.ok("PUT", "/api/v1/lines/22100105/forwarding/no_answer", {"target": "22100106", "timeout_s": 5})
    ringing = w.adapter("22100105", "uas_ring_cancel")
    target = w.adapter("22100106")
    t0 = time.monotonic()
    r = w.call(CALLER, "22100105", "uac_call_auth", "-d", "200", timeout=30)
    took = time.monotonic() - t0
    assert r.ok and r.successful == 1, r.describe()
    assert 4.5 <= took <= 12, took
    assert ringing.wait().ok  # it was CANCELled when the ring time ran out
    u = target.wait()
    assert u.ok, u.describe()
    got = flow(r.received())
    assert got.count("180") >= 1 and "200" in got and "486" not in got and "480" not in got, got
    (invite,) = requests(u.received(), "INVITE")
    assert ";reason=no-answer;" in (header(invite, "Diversion") or "")


def test_cfnrc_without_a_binding_forwards_at_once(w: World) -> None:
    w.ok("PUT", "/api/v1/lines/22100107/forwarding/unreachable", {"target": "22100108"})
    target = w.adapter("22100108")
    r = w.call(CALLER, "22100107", "uac_call_auth", "-d", "200")
    assert r.ok and r.successful == 1, r.describe()
    u = target.wait()
    assert u.ok, u.describe()
    (invite,) = requests(u.received(), "INVITE")
    assert ";reason=unavailable;" in (header(invite, "Diversion") or "")
    first, _ = w.cdrs(r, 2)
    assert "callee +4722100107: no binding" in trail(first)


def test_forward_to_a_trunk_is_the_forwarders_outgoing_call(w: World) -> None:
    w.ok("PUT", "/api/v1/lines/22100111/forwarding/unconditional", {"target": "91234567"})
    carrier = w.serve("uas_answer", CARRIER_OK_IP, w.carrier_port)
    r = w.call(CALLER, "22100111", "uac_call_auth", "-d", "200")
    assert r.ok and r.successful == 1, r.describe()
    c = carrier.wait()
    assert c.ok, c.describe()
    (invite,) = requests(c.received(), "INVITE")
    assert invite.startswith(f"INVITE sip:+4791234567@{CARRIER_OK_IP}:{w.carrier_port}"), invite.splitlines()[0]
    assert header(invite, "P-Asserted-Identity") == "<sip:+4722100001@127.0.0.1;user=phone>"
    assert (header(invite, "Diversion") or "").startswith("<sip:+4722100111@127.0.0.1;user=phone>;reason=unconditional")
    first, forwarded = w.cdrs(r, 2)
    line_id = sql(w.db_url, "SELECT l.id FROM lines l JOIN numbers n ON n.id = l.number_id WHERE n.e164 = '+4722100111'")[0]["id"]
    assert (forwarded["direction"], forwarded["calling_line_id"], forwarded["normalised"], forwarded["number_class"],
            forwarded["trunk_name"], forwarded["cause"]) == ("outgoing", line_id, "+4791234567", "mobile", "carrierOk", "normal")
    assert (first["direction"], first["called_line_id"], first["trunk_name"]) == ("onnet", line_id, None)


def test_the_forwarders_barring_and_suspension_apply_to_the_forwarded_leg(w: World) -> None:
    # A may call mobiles; 22100113 may not: its forward to a mobile is refused.
    w.ok("PUT", "/api/v1/lines/22100113/forwarding/unconditional", {"target": "91234568"})
    w.ok("PUT", "/api/v1/lines/22100113/barring", {"categories": ["mobile"]})
    r = w.call(CALLER, "22100113")
    assert r.ok, r.describe()
    refused(r, 403, "forward_not_allowed")
    first, forwarded = w.cdrs(r, 2)
    assert forwarded["cause"] == "forward_not_allowed"
    assert "forwarder +4722100113: barring: mobile barred (line): refused" in trail(forwarded)
    # 22100115 forwards to a line, but is itself suspended (soft: its own outgoing calls are blocked).
    w.ok("PUT", "/api/v1/lines/22100115/forwarding/unconditional", {"target": "22100116"})
    w.ok("POST", "/api/v1/suspensions", {"customer": "C3002", "line": "22100115", "level": "soft", "reason": "unpaid",
                                          "note": "invoice 4711"})
    r = w.call(CALLER, "22100115")
    refused(r, 403, "forward_not_allowed")
    _, forwarded = w.cdrs(r, 2)
    assert any("forwarder +4722100115: suspension" in s and "soft (unpaid, line)" in s for s in trail(forwarded))


def test_a_forward_loop_and_a_chain_over_the_hop_cap_are_refused(w: World) -> None:
    w.ok("PUT", "/api/v1/lines/22100117/forwarding/unconditional", {"target": "22100118"})
    w.ok("PUT", "/api/v1/lines/22100118/forwarding/unconditional", {"target": "22100117"})
    r = w.call(CALLER, "22100117")
    refused(r, 482, "forward_loop")
    rows = w.cdrs(r, 3)
    assert [c["to"] for c in chain(rows[-1])] == ["+4722100118", "+4722100117"]
    # A→B→A: the callee forwards back to the caller.
    w.ok("PUT", "/api/v1/lines/22100114/forwarding/unconditional", {"target": CALLER})
    r = w.call(CALLER, "22100114")
    refused(r, 482, "forward_loop")
    chain_lines = CUSTOMERS["C3003"]
    for a, b in zip(chain_lines, chain_lines[1:]):
        w.ok("PUT", f"/api/v1/lines/{a}/forwarding/unconditional", {"target": b})
    r = w.call(CALLER, chain_lines[0])
    refused(r, 483, "forward_hops")
    rows = w.cdrs(r, 7)
    assert "forward chain longer than 5" in trail(rows[-1])
    assert w.switch.alive()


def test_a_carrier_bouncing_our_forward_back_is_stopped_as_a_loop(w: World) -> None:
    w.ok("PUT", "/api/v1/lines/22100181/forwarding/unconditional", {"target": "92345678"})
    r = w.carrier_call("uac_invite_trunk_diverted", "+4722100181", "+4799999999",
                       "-set", "diverted_from", "+4722100181", "-set", "diverted_to", "+4792345678")
    assert r.ok, r.describe()
    refused(r, 482, "forward_loop")
    (row,) = w.cdrs(r, 1)
    assert row["direction"] == "incoming" and row["cause"] == "forward_loop"
    assert trail(row)[0] == "incoming diversions: +4722100181, +4792345678"  # oldest first


# ============================================================================== validation, scoping


def test_forward_target_validation_over_the_api_changes_nothing(w: World) -> None:
    before = w.ok("GET", "/api/v1/lines/22100110/policy")
    for path, body, status, fld in [
        ("/api/v1/lines/22100110/forwarding/unconditional", {"target": "112"}, 422, "target"),
        ("/api/v1/lines/22100110/forwarding/unconditional", {"target": "22100110"}, 422, "target"),
        ("/api/v1/lines/22100110/forwarding/unconditional", {"target": "82012345"}, 422, "target"),
        ("/api/v1/lines/22100110/forwarding/unconditional", {"target": "+4681234567"}, 422, "target"),
        ("/api/v1/lines/22100110/forwarding/unconditional", {"target": "x"}, 422, "target"),
        ("/api/v1/lines/22100110/forwarding/unconditional", {}, 422, "target"),
        ("/api/v1/lines/22100110/forwarding/unconditional", {"target": "22100102", "timeout_s": 20}, 422, "timeout_s"),
        ("/api/v1/lines/22100110/forwarding/no_answer", {"target": "22100102", "timeout_s": 121}, 422, "timeout_s"),
        ("/api/v1/lines/22100110/forwarding/no_answer", {"target": "22100102", "ring": 20}, 400, "ring"),
        ("/api/v1/lines/22100110/forwarding/sometimes", {"target": "22100102"}, 404, "kind"),
        ("/api/v1/lines/22999999/forwarding/busy", {"target": "22100102"}, 404, "number"),
        ("/api/v1/lines/22100110/barring", {"categories": ["international", "jazz"]}, 422, "categories"),
    ]:
        status_got, answer = w.api("PUT", path, body)
        assert (status_got, answer.get("field")) == (status, fld), (path, body, answer)
    assert w.api("PUT", "/api/v1/lines/22100110/forwarding/busy", b"{not json")[0] == 400
    assert w.ok("GET", "/api/v1/lines/22100110/policy") == before
    assert before["forwarding"] == [] and before["fraud"]["limits"]["calls_per_line"] == 2


def test_a_customer_token_manages_only_its_own_lines_forwarding_and_barring(w: World) -> None:
    own, other, ct = "22100112", CALLER, w.customer_token
    status, answer = w.api("PUT", f"/api/v1/lines/{own}/forwarding/busy", {"target": "91234567"}, token=ct)
    assert status == 200 and answer["target"] == "+4791234567", answer
    assert w.api("PUT", f"/api/v1/lines/{own}/barring", {"categories": ["premium"]}, token=ct)[0] == 200
    assert w.api("GET", f"/api/v1/lines/{own}/policy", token=ct)[1]["barring"]["line"] == ["premium"]
    assert w.api("DELETE", f"/api/v1/lines/{own}/forwarding/busy", token=ct)[0] == 200
    for method, path, body in [
        ("PUT", f"/api/v1/lines/{other}/forwarding/busy", {"target": "91234567"}),
        ("PUT", f"/api/v1/lines/{other}/barring", {"categories": []}),
        ("GET", f"/api/v1/lines/{other}/policy", None),
        ("DELETE", f"/api/v1/lines/{other}/forwarding/busy", None),
    ]:
        assert w.api(method, path, body, token=ct)[0] == 404, (method, path)
    for method, path, body in [
        ("PUT", "/api/v1/customers/C3002/barring", {"categories": []}),
        ("POST", "/api/v1/suspensions", {"customer": "C3002", "level": "soft", "reason": "other"}),
        ("GET", "/api/v1/customers/C3002/suspensions", None),
        ("GET", "/api/v1/alerts", None),
    ]:
        assert w.api(method, path, body, token=ct)[0] == 403, (method, path)
    # Every change is audited with who made it.
    actors = {r["actor"] for r in sql(w.db_url, "SELECT actor FROM audit_events WHERE subject_id = '+4722100112'")}
    assert actors == {"customer:C3002"}


# ============================================================================== suspension


def test_suspension_while_running_applies_to_the_next_call_and_112_still_works(w: World) -> None:
    line = "22100131"
    created = w.ok("POST", "/api/v1/suspensions", {"customer": "C3004", "line": line, "level": "hard", "reason": "unpaid",
                                                    "note": "faktura 2026-11"})
    r = w.call(line, NOBODY)  # at once: no restart, no reload tick
    refused(r, 403, "suspended_unpaid")
    (row,) = w.cdrs(r)
    assert row["cause"] == "suspended_unpaid" and f"suspension #{created['id']} hard (unpaid, line): refused" in trail(row)
    psap = w.serve("uas_answer", EMERGENCY_IP, w.emergency_port)
    r = w.call(line, "112", "uac_call_auth", "-d", "200")
    assert r.ok and r.successful == 1, r.describe()
    assert psap.wait().ok
    lifted = w.ok("POST", f"/api/v1/suspensions/{created['id']}/lift", {"note": "paid"})
    assert lifted["active"] is False and lifted["lifted_by"].startswith("operator:")
    r = w.call(line, NOBODY)
    refused(r, 480, "unregistered")  # not suspended any more: the call reached the (unregistered) line
    history = w.ok("GET", "/api/v1/customers/C3004/suspensions")["suspensions"]
    assert [(s["id"], s["active"], s["note"], s["lift_note"]) for s in history] == [
        (created["id"], False, "faktura 2026-11", "paid")]
    assert w.api("POST", "/api/v1/suspensions/999999/lift", {})[0] == 404
    assert w.api("POST", "/api/v1/suspensions", {"customer": "C3004", "level": "medium", "reason": "unpaid"})[1]["field"] == "level"


def test_soft_suspension_lets_incoming_calls_ring_hard_refuses_them(w: World) -> None:
    w.ok("POST", "/api/v1/suspensions", {"customer": "C3005", "line": "22100141", "level": "soft", "reason": "unpaid"})
    w.ok("POST", "/api/v1/suspensions", {"customer": "C3005", "line": "22100142", "level": "hard", "reason": "unpaid"})
    soft = w.adapter("22100141")
    r = w.call(CALLER, "22100141", "uac_call_auth", "-d", "200")
    assert r.ok and r.successful == 1, r.describe()
    assert soft.wait().ok
    r = w.call(CALLER, "22100142")
    refused(r, 480, "callee_suspended")


def test_the_third_concurrent_call_of_a_line_is_refused(w: World) -> None:
    carrier = w.serve("uas_answer", CARRIER_OK_IP, w.carrier_port, once=False)
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(w.call, CONCURRENT_CALLER, f"9123456{i}", "uac_call_auth", "-d", "4000") for i in (1, 2)]
        time.sleep(1.5)  # both answered and held
        status = w.ok("GET", f"/api/v1/lines/{CONCURRENT_CALLER}/policy")["fraud"]["calls_in_progress"]
        r = w.call(CONCURRENT_CALLER, "91234563")
        results = [f.result() for f in held]
    refused(r, 403, "call_limit")
    assert status == {"line": 2, "customer": 2}, status
    assert all(x.ok for x in results), [x.describe() for x in results]
    (row,) = w.cdrs(r)
    assert "fraud guard: 2 calls in progress on the line, limit 2: refused" in trail(row)
    carrier.stop()
    assert w.ok("GET", f"/api/v1/lines/{CONCURRENT_CALLER}/policy")["fraud"]["calls_in_progress"] == {"line": 0, "customer": 0}


def test_an_international_burst_suspends_the_customer_with_audit_and_alert(w: World) -> None:
    line = "22100161"
    w.ok("PUT", "/api/v1/customers/C3006/fraud-limits", {"attempts_per_hour": 3, "night_attempts_per_hour": 3})
    w.ok("PUT", f"/api/v1/lines/{line}/barring", {"categories": ["international"]})  # attempts still count
    for _ in range(3):
        refused(w.call(line, "+4681234567"), 403, "barred_international")
    r = w.call(line, "+4681234567")
    refused(r, 403, "fraud")
    deadline = time.monotonic() + 5
    while not (sus := w.ok("GET", "/api/v1/customers/C3006/suspensions")["suspensions"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [(s["level"], s["reason"], s["active"], s["created_by"]) for s in sus] == [("soft", "fraud", True, "system:fraud")]
    alerts = w.ok("GET", "/api/v1/alerts")["alerts"]
    assert any(a["customer"] == "C3006" and a["line"] == "+4722100161" and a["suspension"] == sus[0]["id"] for a in alerts)
    assert "POLICY ALERT fraud customer=C3006 line=+4722100161" in w.switch.log_text()
    audit = sql(w.db_url, "SELECT actor, action FROM audit_events WHERE action = 'suspension.create' AND actor = 'system:fraud'")
    assert audit
    # Now suspended for fraud: a fixed-line call is refused too, 112 is not (checked above for another line).
    refused(w.call(line, NOBODY), 403, "fraud")


def test_barring_by_each_category_line_and_customer(w: World) -> None:
    w.ok("PUT", "/api/v1/lines/22100171/barring",
         {"categories": ["international", "mobile", "premium", "directory", "shared_cost", "special"]})
    for dialled, cause in [("+4681234567", "barred_international"), ("91234567", "barred_mobile"),
                           ("82012345", "barred_premium"), ("1881", "barred_directory"),
                           ("81012345", "barred_shared_cost"), ("02800", "barred_special")]:
        r = w.call("22100171", dialled)
        refused(r, 403, cause)
    (row,) = w.cdrs(r)
    assert row["cause"] == "barred_special" and "barring: special barred (line): refused" in trail(row)
    refused(w.call("22100171", NOBODY), 480, "unregistered")  # an on-net fixed number is not barred by those
    w.ok("PUT", "/api/v1/lines/22100172/barring", {"categories": ["all_outgoing"]})
    refused(w.call("22100172", NOBODY), 403, "barred_all_outgoing")
    w.ok("PUT", "/api/v1/customers/C3008/barring", {"categories": ["mobile"]})
    refused(w.call("22100173", "41234567"), 403, "barred_mobile")
    assert w.ok("GET", "/api/v1/lines/22100173/policy")["barring"] == {"line": [], "customer": ["mobile"]}


def test_an_import_while_the_switch_runs_reaches_the_policy(w: World) -> None:
    # `softswitch import` is another process: the switch notices the change by itself (fingerprint, every 5 s).
    full = document(w.carrier_port, w.emergency_port)
    (customer,) = [c for c in full["customers"] if c["id"] == "C3011"]
    customer["adapters"][0]["lines"][0]["barring"] = ["all_outgoing"]
    import_file(w.db_url, {"customers": [customer]}, key_file=w.switch.key_file, cwd=w.dir)
    deadline = time.monotonic() + 10
    while True:
        r = w.call("22100201", NOBODY)
        got = finals(r.received())
        if status_of(got[0]) == 403 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    refused(r, 403, "barred_all_outgoing")


def test_cfnrc_when_the_adapters_pings_are_lost(w: World) -> None:
    # Registered at the start of the module from a port nobody answers on; by now its pings are lost.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = sql(w.db_url, "SELECT 1 FROM bindings b JOIN lines l ON l.id = b.line_id JOIN numbers n ON n.id = l.number_id "
                             "WHERE n.e164 = '+4722100109'")
        assert rows
        status = w.ok("GET", "/api/v1/adapters/" + _mac_of(PINGS_LOST_LINE) + "/status")
        if "not answering pings" in status["tel1"]["reason"] + status["tel2"]["reason"]:
            break
        time.sleep(0.3)
    w.ok("PUT", f"/api/v1/lines/{PINGS_LOST_LINE}/forwarding/unreachable", {"target": "22100110"})
    target = w.adapter("22100110")
    t0 = time.monotonic()
    r = w.call(CALLER, PINGS_LOST_LINE, "uac_call_auth", "-d", "200")
    assert r.ok and r.successful == 1, r.describe()
    assert time.monotonic() - t0 < 3.0  # decided at once, not after ringing into the void
    assert target.wait().ok
    first, _ = w.cdrs(r, 2)
    assert f"callee +47{PINGS_LOST_LINE}: pings lost" in trail(first)


def _mac_of(number: str) -> str:
    mac = 0x0E08AB0000
    for numbers in CUSTOMERS.values():
        for i in range(0, len(numbers), 2):
            mac += 1
            if number in numbers[i:i + 2]:
                raw = f"{mac:012x}"
                return ":".join(raw[j:j + 2] for j in range(0, 12, 2))
    raise KeyError(number)
