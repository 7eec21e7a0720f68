"""Calls end to end: `softswitch run` (SQLite and PostgreSQL) between SIPp callers and SIPp callees.

Every callee is a real SIPp UAS: a line's adapter that REGISTERed (from the very
port it then listens on: the switch sends INVITEs to the address a binding came
from, RFC 3581 / NAT), or a carrier trunk. Every caller is a SIPp UAC that
answers the switch's 407 with digest (RFC 3261 §22.3), or a carrier calling in
from a trunk's address. What an operator relies on, one scenario per test:
on-net call, unregistered callee, busy, no answer, caller cancels, callee hangs
up, failover over a dead and a failing trunk, inbound from a trunk (and not from
a stranger), 112 from a barred and suspended line, a routing loop. After each
call the CDR (``call_records``) is checked: final code, cause, number class.

Addresses: lines and the switch on 127.0.0.1; carriers on 127.0.0.2 (answers
503), 127.0.0.3 (answers), 127.0.0.5 (dead: nobody listens); the emergency
gateway on 127.0.0.4; a stranger on 127.0.0.9. A trunk is recognised by its
source address, so no trunk may own 127.0.0.1.

The SIPp scenarios are in sipp_scenarios/: ``uac_call_*`` (complete calls from a
line), ``uac_invite_*`` (calls that fail, calls from a carrier), ``uas_*``
(callees; each also answers the trunk liveness OPTIONS, and ``-set once 1``
stops it after its first call so its exit status says whether the callee saw
exactly the scripted dialogue). ``SippServer`` and ``free_port_on`` come from the shared
``harness`` package (bench/bench_calls.py uses them too).

Run time: about 3 minutes for both databases on the shared 2-core machine (18 of the 20
took 172 s there); the no-answer test runs the switch with ``--no-answer-timeout 6``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import LOOPBACK
from harness.db import run_sql, wait_for_rows
from harness.ports import free_port_on
from harness.sipp import (
    SippResult,
    SippServer,
    finals,
    flow,
    header,
    requests,
    run_sipp,
    status_of,
    write_injection_csv,
)
from harness.softswitch import SwitchProcess, import_file
from tests.conftest import ADAPTER, AdapterData, SwitchHome

pytestmark = [
    pytest.mark.e2e,
    # The calls are what is tested here: no qualify OPTIONS to the SIPp callees (the uas_*
    # scenarios would answer them, as extra SIPp calls). --rate-limit stays at its default.
    pytest.mark.switch_args("--qualify-interval", "0"),
]

CALLER = ADAPTER.lines[0]  # 22000001: dials, never needs to register (INVITEs carry digest)
CALLEE = ADAPTER.lines[1]  # 22000002: registered by the SIPp UAS that plays its adapter
NEVER_REGISTERED = "22000003"
SIPP_CALL_TIMEOUT = 20.0

CARRIER_503_IP = "127.0.0.2"
CARRIER_OK_IP = "127.0.0.3"
EMERGENCY_IP = "127.0.0.4"
DEAD_IP = "127.0.0.5"
STRANGER_IP = "127.0.0.9"


# ============================================================================ CDRs


def cdr_rows(db_url: str, count: int, *, timeout: float = 5.0, settle: float = 0.0) -> list[dict[str, Any]]:
    """``call_records`` once ``count`` rows are there (the CDR writer commits in batches)."""
    return wait_for_rows(db_url, "SELECT * FROM call_records ORDER BY id", count, timeout=timeout, settle=settle)


def brief(row: dict[str, Any]) -> tuple[Any, ...]:
    """The CDR fields every test checks: direction, calling, normalised, class, trunk, final code, cause."""
    return (
        row["direction"], row["calling_number"], row["normalised"], row["number_class"], row["trunk_name"],
        row["final_code"], row["cause"],
    )


# ============================================================================ the network


@dataclass(frozen=True)
class Net:
    """Where every SIPp peer of a test lives (ports are fixed before the switch starts)."""

    carrier_503: int
    carrier_ok: int
    emergency: int
    dead: int
    callee_port: int

    def document(self) -> dict[str, Any]:
        doc = ADAPTER.document()
        doc["customers"].append(  # type: ignore[union-attr]
            {
                "id": "C2002",
                "name": "Ola Nordmann",
                "language": "nb",
                "adapters": [
                    {"mac": "00:0E:08:AB:CD:02", "model": "spa112",
                     "lines": [{"port": 1, "number": NEVER_REGISTERED, "password": "Tel3-secret-03"}]}
                ],
            }
        )
        doc["trunks"] = [
            {"name": "carrierDead", "host": DEAD_IP, "port": self.dead},
            {"name": "carrier503", "host": CARRIER_503_IP, "port": self.carrier_503},
            {"name": "carrierOk", "host": CARRIER_OK_IP, "port": self.carrier_ok,
             "allowed_sources": [f"{CARRIER_OK_IP}/32"]},
            {"name": "nodnett", "host": EMERGENCY_IP, "port": self.emergency, "emergency": True},
        ]
        doc["routes"] = [
            {"prefix": "+46", "trunks": ["carrierDead", "carrier503", "carrierOk"]},
            {"prefix": "+47", "trunks": ["carrierOk"]},
        ]
        return doc


@pytest.fixture
def net() -> Net:
    return Net(
        carrier_503=free_port_on(CARRIER_503_IP),
        carrier_ok=free_port_on(CARRIER_OK_IP),
        emergency=free_port_on(EMERGENCY_IP),
        dead=free_port_on(DEAD_IP),
        callee_port=free_port_on(LOOPBACK),
    )


@pytest.fixture
def imported_adapter(switch_home: SwitchHome, net: Net) -> AdapterData:
    """Overrides conftest's: the adapter, a second customer, the trunks and the routes, before the switch starts."""
    import_file(switch_home.db_url, net.document(), key_file=switch_home.key_file, cwd=switch_home.dir)
    return ADAPTER


@pytest.fixture
def barred_and_suspended(switch_home: SwitchHome, imported_adapter: AdapterData) -> int:
    """The caller's line barred for all outgoing calls and suspended (unpaid bill), before the switch starts.

    The rows go in with SQL, as the models define them (tests/e2e/test_policy_sipp.py uses the API).
    """
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    (line,) = run_sql(switch_home.db_url, "SELECT id, customer_id FROM lines WHERE auth_user = :u", {"u": CALLER.number})
    run_sql(switch_home.db_url,
        "INSERT INTO line_barrings (line_id, category, created_at, created_by) VALUES (:l, 'all_outgoing', :t, 'test')",
        {"l": line["id"], "t": now})
    run_sql(switch_home.db_url,
        "INSERT INTO suspensions (customer_id, line_id, reason, level, note, created_at, created_by) "
        "VALUES (:c, :l, 'unpaid', 'hard', 'e2e', :t, 'test')",  # hard: not even customer service, but 112
        {"c": line["customer_id"], "l": line["id"], "t": now})
    return int(line["id"])


@pytest.fixture
def uas_dir(tmp_path: Path) -> Path:
    d = tmp_path / "sipp"
    d.mkdir()
    return d


@pytest.fixture
def servers() -> Iterator[list[SippServer]]:
    """SIPp callees started by the test; every one still running is stopped by PID afterwards."""
    started: list[SippServer] = []
    yield started
    for s in started:
        if s.proc is not None and s.running():
            s.stop()


def serve(servers: list[SippServer], scenario: str, ip: str, port: int, workdir: Path, *extra: str) -> SippServer:
    s = SippServer(scenario, ip, port, workdir, extra=extra, timeout=90)
    servers.append(s)
    return s.start()


def register_callee(switch: SwitchProcess, tmp_path: Path, port: int) -> None:
    """REGISTER line 22000002 from ``port``: the switch will send its INVITEs there."""
    csv = write_injection_csv(tmp_path / "callee.csv", [(CALLEE.number, CALLEE.password)])
    r = run_sipp("uac_register_digest", switch.sip_target, inf_csv=csv, calls=1, local_port=port,
                 workdir=tmp_path / "register", timeout=10)
    assert r.ok and r.successful == 1, r.describe()


def caller_csv(tmp_path: Path) -> Path:
    return write_injection_csv(tmp_path / "caller.csv", [(CALLER.number, CALLER.password)])


def call(switch: SwitchProcess, tmp_path: Path, scenario: str, dialled: str, *extra: str,
         timeout: float = SIPP_CALL_TIMEOUT) -> SippResult:
    """One call from line 22000001 (a SIPp UAC that answers the 407 with digest)."""
    return run_sipp(scenario, switch.sip_target, inf_csv=caller_csv(tmp_path), calls=1, timeout=timeout,
                    workdir=tmp_path / "uac", extra=("-set", "dialled", dialled, *extra))


def carrier_call(switch: SwitchProcess, tmp_path: Path, scenario: str, ip: str, dialled: str, caller: str,
                 *extra: str) -> SippResult:
    """One call from a carrier (no digest), sent from ``ip``."""
    return run_sipp(scenario, switch.sip_target, calls=1, timeout=SIPP_CALL_TIMEOUT,
                    workdir=tmp_path / f"carrier_{ip}", local_port=free_port_on(ip),
                    extra=("-i", ip, "-set", "dialled", dialled, "-set", "caller", caller, *extra))


def assert_caller_got(r: SippResult, status: int, reason: str | None) -> str:
    """The caller's call ended with ``status`` (and Q.850 ``Reason``); returns that response."""
    got = finals(r.received())
    assert got, r.describe()
    assert {status_of(m) for m in got} == {status}, flow(r.received())
    if reason is not None:
        assert header(got[0], "Reason") == reason, got[0]
    return got[0]


# ============================================================================ tests


def test_on_net_call_rings_answers_and_the_caller_hangs_up(
    switch: SwitchProcess, switch_home: SwitchHome, net: Net, tmp_path: Path, uas_dir: Path,
    servers: list[SippServer],
) -> None:
    register_callee(switch, tmp_path, net.callee_port)
    callee = serve(servers, "uas_answer", LOOPBACK, net.callee_port, uas_dir)

    r = call(switch, tmp_path, "uac_call_auth", CALLEE.number, "-d", "300")
    assert r.ok and (r.successful, r.failed) == (1, 0), r.describe()
    u = callee.wait()
    assert u.ok, u.describe()

    got = r.received()
    assert flow(got)[0] in ("100", "407")
    assert "407" in flow(got) and "180" in flow(got) and "200" in flow(got), flow(got)
    challenge = next(m for m in got if status_of(m) == 407)
    assert 'algorithm=MD5' in (header(challenge, "Proxy-Authenticate") or ""), challenge
    # The callee's side: exactly one INVITE, a dialog of the switch's own (a B2BUA), then ACK and BYE.
    at_callee = u.received()
    assert [m for m in flow(at_callee) if m != "OPTIONS"] == ["INVITE", "ACK", "BYE"], flow(at_callee)
    (invite,) = requests(at_callee, "INVITE")
    assert invite.startswith(f"INVITE sip:{CALLEE.number}@127.0.0.1:{net.callee_port}"), invite.splitlines()[0]
    assert header(invite, "Call-ID") != header(got[0], "Call-ID")
    assert re.search(rf"<sip:{CALLER.number}@", header(invite, "From") or ""), header(invite, "From")
    assert header(invite, "P-Asserted-Identity") == f"<sip:{CALLER.number}@127.0.0.1>"
    assert "m=audio" in invite  # the caller's SDP offer went through

    (cdr,) = cdr_rows(switch_home.db_url, 1)
    assert brief(cdr) == ("onnet", "+4722000001", "+4722000002", "fixed", None, 200, "normal")
    assert cdr["answer_at"] is not None and cdr["end_at"] is not None
    assert cdr["dialled"] == CALLEE.number
    assert switch.alive()


def test_callee_hangs_up(
    switch: SwitchProcess, switch_home: SwitchHome, net: Net, tmp_path: Path, uas_dir: Path,
    servers: list[SippServer],
) -> None:
    register_callee(switch, tmp_path, net.callee_port)
    callee = serve(servers, "uas_answer_hangup", LOOPBACK, net.callee_port, uas_dir, "-d", "300")

    r = call(switch, tmp_path, "uac_call_callee_hangup", CALLEE.number)
    assert r.ok and (r.successful, r.failed) == (1, 0), r.describe()
    u = callee.wait()
    assert u.ok, u.describe()
    # The callee's BYE was answered by the switch (200), and the caller got a BYE of its own dialog.
    assert [m for m in flow(u.received()) if m != "OPTIONS"] == ["INVITE", "ACK", "200"], flow(u.received())
    (bye,) = requests(r.received(), "BYE")
    ok = next(m for m in r.received() if status_of(m) == 200)
    assert header(bye, "Call-ID") == header(ok, "Call-ID")

    (cdr,) = cdr_rows(switch_home.db_url, 1)
    assert brief(cdr) == ("onnet", "+4722000001", "+4722000002", "fixed", None, 200, "normal")
    assert cdr["answer_at"] is not None


def test_unregistered_callee_is_480(switch: SwitchProcess, switch_home: SwitchHome, tmp_path: Path) -> None:
    r = call(switch, tmp_path, "uac_invite_refused", NEVER_REGISTERED)
    assert r.ok, r.describe()
    assert_caller_got(r, 480, 'Q.850;cause=20;text="unregistered"')
    (cdr,) = cdr_rows(switch_home.db_url, 1)
    assert brief(cdr) == ("onnet", "+4722000001", "+4722000003", "fixed", None, 480, "unregistered")
    assert cdr["answer_at"] is None and cdr["duration_s"] == 0
    assert cdr["called_line_id"] is not None


def test_busy_callee_is_486(
    switch: SwitchProcess, switch_home: SwitchHome, net: Net, tmp_path: Path, uas_dir: Path,
    servers: list[SippServer],
) -> None:
    register_callee(switch, tmp_path, net.callee_port)
    callee = serve(servers, "uas_busy", LOOPBACK, net.callee_port, uas_dir)

    r = call(switch, tmp_path, "uac_invite_refused", CALLEE.number)
    assert r.ok, r.describe()
    assert_caller_got(r, 486, 'Q.850;cause=17;text="busy"')
    u = callee.wait()
    assert u.ok, u.describe()  # the switch ACKed the 486 (same branch: the UAS stopped retransmitting)
    (cdr,) = cdr_rows(switch_home.db_url, 1)
    assert brief(cdr) == ("onnet", "+4722000001", "+4722000002", "fixed", None, 486, "busy")


@pytest.mark.switch_args("--no-answer-timeout", "6")
def test_no_answer_is_cancelled_towards_the_callee_and_480_to_the_caller(
    switch: SwitchProcess, switch_home: SwitchHome, net: Net, tmp_path: Path, uas_dir: Path,
    servers: list[SippServer],
) -> None:
    # --no-answer-timeout 6: the default is 60 s; the test checks the timer, not its length.
    register_callee(switch, tmp_path, net.callee_port)
    callee = serve(servers, "uas_ring_cancel", LOOPBACK, net.callee_port, uas_dir)

    t0 = time.monotonic()
    r = call(switch, tmp_path, "uac_invite_refused", CALLEE.number, timeout=40)
    rang_for = time.monotonic() - t0
    assert r.ok, r.describe()
    assert "180" in flow(r.received()), flow(r.received())
    assert_caller_got(r, 480, 'Q.850;cause=19;text="no_answer"')
    assert 5.5 <= rang_for <= 15.0, rang_for
    u = callee.wait()
    assert u.ok, u.describe()  # the callee got a CANCEL, answered 200 and 487, and the 487 was ACKed
    assert [m for m in flow(u.received()) if m != "OPTIONS"] == ["INVITE", "CANCEL", "ACK"], flow(u.received())
    (cdr,) = cdr_rows(switch_home.db_url, 1)
    assert brief(cdr) == ("onnet", "+4722000001", "+4722000002", "fixed", None, 480, "no_answer")


def test_caller_cancels_while_it_rings(
    switch: SwitchProcess, switch_home: SwitchHome, net: Net, tmp_path: Path, uas_dir: Path,
    servers: list[SippServer],
) -> None:
    register_callee(switch, tmp_path, net.callee_port)
    callee = serve(servers, "uas_ring_cancel", LOOPBACK, net.callee_port, uas_dir)

    r = call(switch, tmp_path, "uac_call_cancel", CALLEE.number, "-d", "300")
    assert r.ok and (r.successful, r.failed) == (1, 0), r.describe()
    assert_caller_got(r, 487, 'Q.850;cause=16;text="cancelled"')
    u = callee.wait()
    assert u.ok, u.describe()
    assert [m for m in flow(u.received()) if m != "OPTIONS"] == ["INVITE", "CANCEL", "ACK"], flow(u.received())
    (cdr,) = cdr_rows(switch_home.db_url, 1)
    assert brief(cdr) == ("onnet", "+4722000001", "+4722000002", "fixed", None, 487, "cancelled")


def test_outbound_call_fails_over_from_a_dead_and_a_503_trunk_to_a_working_one(
    switch: SwitchProcess, switch_home: SwitchHome, net: Net, tmp_path: Path, uas_dir: Path,
    servers: list[SippServer],
) -> None:
    failing = serve(servers, "uas_reject_503", CARRIER_503_IP, net.carrier_503, uas_dir / "c503")
    carrier = serve(servers, "uas_answer", CARRIER_OK_IP, net.carrier_ok, uas_dir / "cok")

    t0 = time.monotonic()
    r = call(switch, tmp_path, "uac_call_auth", "+4681234567", "-d", "200")
    took = time.monotonic() - t0
    assert r.ok and (r.successful, r.failed) == (1, 0), r.describe()
    f = failing.wait()
    c = carrier.wait()
    assert f.ok, f.describe()
    assert c.ok, c.describe()
    # The dead trunk is abandoned after the B-leg setup timeout (4 s), the 503 is not relayed.
    assert 3.5 <= took <= 12.0, took
    assert 503 not in {status_of(m) for m in r.received()}
    (inv503,) = requests(f.received(), "INVITE")
    (inv,) = requests(c.received(), "INVITE")
    assert inv.startswith(f"INVITE sip:+4681234567@{CARRIER_OK_IP}:{net.carrier_ok} SIP/2.0"), inv.splitlines()[0]
    assert header(inv, "P-Asserted-Identity") == "<sip:+4722000001@127.0.0.1;user=phone>"
    assert header(inv, "Call-ID") != header(inv503, "Call-ID")

    (cdr,) = cdr_rows(switch_home.db_url, 1)
    assert brief(cdr) == ("outgoing", "+4722000001", "+4681234567", "international", "carrierOk", 200, "normal")
    assert cdr["route_prefix"] == "+46"


def test_inbound_call_from_a_trunk_reaches_the_line_but_not_from_a_stranger(
    switch: SwitchProcess, switch_home: SwitchHome, net: Net, tmp_path: Path, uas_dir: Path,
    servers: list[SippServer],
) -> None:
    register_callee(switch, tmp_path, net.callee_port)
    callee = serve(servers, "uas_answer", LOOPBACK, net.callee_port, uas_dir)

    # Not a trunk's address: the switch takes it for a would-be line and asks for credentials.
    stranger = carrier_call(switch, tmp_path, "uac_invite_trunk_refused", STRANGER_IP, "+4722000002", "+4791234567")
    assert stranger.ok, stranger.describe()
    assert_caller_got(stranger, 407, None)

    r = carrier_call(switch, tmp_path, "uac_invite_trunk", CARRIER_OK_IP, "+4722000002", "+4791234567", "-d", "200")
    assert r.ok and (r.successful, r.failed) == (1, 0), r.describe()
    u = callee.wait()
    assert u.ok, u.describe()
    (invite,) = requests(u.received(), "INVITE")  # only the carrier's call reached the line
    assert invite.startswith(f"INVITE sip:{CALLEE.number}@127.0.0.1:{net.callee_port}"), invite.splitlines()[0]
    # The adapter shows the caller's national number (identity_for: national form towards lines).
    assert re.search(r"<sip:91234567@", header(invite, "From") or ""), header(invite, "From")

    (cdr,) = cdr_rows(switch_home.db_url, 1, settle=0.3)
    assert brief(cdr) == ("incoming", "+4791234567", "+4722000002", "fixed", None, 200, "normal")


def test_emergency_call_from_a_barred_suspended_line_reaches_the_emergency_trunk(
    barred_and_suspended: int, switch: SwitchProcess, switch_home: SwitchHome, net: Net, tmp_path: Path,
    uas_dir: Path, servers: list[SippServer],
) -> None:
    psap = serve(servers, "uas_answer", EMERGENCY_IP, net.emergency, uas_dir)
    r = call(switch, tmp_path, "uac_call_auth", "112", "-d", "200")
    assert r.ok and (r.successful, r.failed) == (1, 0), r.describe()
    p = psap.wait()
    assert p.ok, p.describe()
    (invite,) = requests(p.received(), "INVITE")
    assert invite.startswith(f"INVITE sip:112@{EMERGENCY_IP}:{net.emergency} SIP/2.0"), invite.splitlines()[0]
    assert header(invite, "P-Asserted-Identity") == "<sip:+4722000001@127.0.0.1;user=phone>"
    (cdr,) = cdr_rows(switch_home.db_url, 1)
    assert brief(cdr) == ("outgoing", "+4722000001", "112", "emergency", "nodnett", 200, "normal")
    assert cdr["calling_line_id"] == barred_and_suspended


def test_a_route_back_to_the_switch_itself_is_stopped_not_multiplied(
    switch: SwitchProcess, switch_home: SwitchHome, tmp_path: Path,
) -> None:
    # A trunk that is the switch itself. Its ACL must not cover 127.0.0.1 (the lines' address).
    import_file(
        switch_home.db_url,
        {"trunks": [{"name": "self", "host": "127.0.0.1", "port": switch.sip_port,
                     "allowed_sources": ["127.0.0.98/32"]}],
         "routes": [{"prefix": "+45", "trunks": ["self"]}]},
        key_file=switch_home.key_file, cwd=switch_home.dir,
    )
    switch.restart()  # trunks and routes are read at start (and every 30 s)

    r = call(switch, tmp_path, "uac_invite_refused", "+4512345678")
    assert r.ok, r.describe()
    final = finals(r.received())[0]
    assert status_of(final) in (482, 483), flow(r.received())
    assert header(final, "Reason") in ('Q.850;cause=25;text="loop"', 'Q.850;cause=25;text="too_many_hops"'), final
    # One call, one CDR: the INVITE that came back was refused, not routed again.
    rows = cdr_rows(switch_home.db_url, 1, settle=1.0)
    assert [brief(c) for c in rows] == [
        ("outgoing", "+4722000001", "+4512345678", "international", "self", status_of(final), "loop")
    ]
    assert switch.alive()
