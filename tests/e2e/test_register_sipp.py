"""Registration end to end: `softswitch run` (SQLite and PostgreSQL) driven by SIPp.

What an operator relies on: both ports of an adapter register over UDP and TCP
with digest auth, the lamps follow, refresh and unregister behave as RFC 3261
§10 says, a wrong password ends in 403 without revealing whether the user
exists, and a crash (kill -9) forgets no binding a 200 promised.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
from pathlib import Path
from typing import Any

import pytest

from harness.db import count_rows
from harness.ports import free_port
from harness.sipp import SippResult, SippTransport, run_sipp, write_injection_csv
from harness.softswitch import SwitchProcess, adapter_status, http_get_json, poll_until
from tests.conftest import AdapterData, LineData, SwitchHome

pytestmark = pytest.mark.e2e

TRANSPORTS = [pytest.param("u1", id="udp"), pytest.param("t1", id="tcp")]
SIPP_TRANSPORT_NAME = {"u1": "UDP", "t1": "TCP"}


def _csv(tmp_path: Path, lines: tuple[LineData, ...] | list[LineData], *, password: str | None = None,
         name: str = "lines.csv") -> Path:
    return write_injection_csv(tmp_path / name, [(li.number, password or li.password) for li in lines])


def _lamps(switch: SwitchProcess, token: str, mac: str) -> dict[str, str]:
    body = adapter_status(switch, token, mac)
    return {k: v["state"] for k, v in body.items() if isinstance(v, dict) and "state" in v}


def _wait_lamps(switch: SwitchProcess, token: str, mac: str, want: dict[str, str], timeout: float = 5.0
                ) -> dict[str, str]:
    """Poll the status API until the named lamps are in the wanted states; return the last view."""
    last: dict[str, str] = {}

    def check() -> bool:
        nonlocal last
        last = _lamps(switch, token, mac)
        return all(last.get(k) == v for k, v in want.items())

    poll_until(check, timeout=timeout, interval=0.1)
    return last


def _contacts(msg: str) -> list[str]:
    return [ln.split(":", 1)[1].strip() for ln in msg.splitlines() if re.match(r"(?i)^(contact|m)\s*:", ln)]


def _bindings(db_url: str, number: str | None = None) -> int:
    if number is None:
        return count_rows(db_url, "SELECT count(*) FROM bindings")
    return count_rows(
        db_url,
        "SELECT count(*) FROM bindings b JOIN lines l ON l.id = b.line_id WHERE l.auth_user = :u",
        {"u": number},
    )


def _register(switch: SwitchProcess, tmp_path: Path, lines: tuple[LineData, ...], transport: SippTransport,
              local_port: int | None = None) -> SippResult:
    r = run_sipp("uac_register_digest", switch.sip_target, inf_csv=_csv(tmp_path, lines), calls=len(lines),
                 transport=transport, local_port=local_port)
    assert r.ok, r.describe()
    assert (r.successful, r.failed) == (len(lines), 0)
    return r


# ------------------------------------------------------------------------ registering


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_both_lines_register_and_lamps_turn_ok(
    switch: SwitchProcess, switch_home: SwitchHome, imported_adapter: AdapterData, api_token: str,
    tmp_path: Path, transport: SippTransport,
) -> None:
    port = free_port()
    r = _register(switch, tmp_path, imported_adapter.lines, transport, local_port=port)

    # Two registrations = two dialogs-worth of Call-IDs, each answered 401 then 200.
    received = r.received()
    assert sorted(m.splitlines()[0].split(" ", 2)[1] for m in received) == ["200", "200", "401", "401"], received
    call_ids = {m.group(1) for m in (re.search(r"(?im)^call-id:\s*(\S+)", x) for x in received) if m}
    assert len(call_ids) == 2
    oks = [m for m in received if m.startswith("SIP/2.0 200")]
    tp = SIPP_TRANSPORT_NAME[transport]
    for ok in oks:
        # each 200 lists exactly the contact we registered, with its expiry (§10.3 step 8)
        contacts = _contacts(ok)
        assert len(contacts) == 1, ok
        assert re.fullmatch(
            rf"<sip:\d{{8}}@127\.0\.0\.1:{port};transport={tp}>;expires=(3600|359\d)", contacts[0], re.I
        ), contacts
    assert {re.search(r"<sip:(\d+)@", _contacts(ok)[0]).group(1) for ok in oks} == {  # type: ignore[union-attr]
        li.number for li in imported_adapter.lines
    }

    lamps = _wait_lamps(switch, api_token, imported_adapter.mac, {"tel1": "ok", "tel2": "ok"})
    assert (lamps.get("tel1"), lamps.get("tel2")) == ("ok", "ok"), lamps
    assert _bindings(switch_home.db_url) == 2
    assert _bindings(switch_home.db_url, "22000001") == 1
    assert switch.alive()


# Line 1 over UDP and line 2 over TCP in one switch run: both transports are covered
# without paying a switch start for each.
LINE_TRANSPORTS: tuple[tuple[SippTransport, int], ...] = (("u1", 0), ("t1", 1))


def test_refresh_keeps_one_binding_with_new_expiry(
    switch: SwitchProcess, switch_home: SwitchHome, imported_adapter: AdapterData, api_token: str, tmp_path: Path,
) -> None:
    for transport, idx in LINE_TRANSPORTS:
        line = imported_adapter.lines[idx]
        r = run_sipp("uac_register_refresh", switch.sip_target, inf_csv=_csv(tmp_path, [line], name=f"{transport}.csv"),
                     transport=transport)
        assert r.ok, r.describe()
        # The refresh (same Call-ID, higher CSeq) replaced the binding instead of adding one.
        assert _bindings(switch_home.db_url, line.number) == 1
        cseq = count_rows(
            switch_home.db_url,
            "SELECT max(b.cseq) FROM bindings b JOIN lines l ON l.id = b.line_id WHERE l.auth_user = :u",
            {"u": line.number},
        )
        assert cseq in (3, 4)
        final = [m for m in r.received() if m.startswith("SIP/2.0 200")][-1]
        assert re.search(rf"(?im)^cseq:\s*{cseq} REGISTER", final), final
        contacts = _contacts(final)
        assert len(contacts) == 1 and re.search(r";expires=(1800|179\d)$", contacts[0]), contacts
        assert f"transport={SIPP_TRANSPORT_NAME[transport]}".lower() in contacts[0].lower(), contacts
    lamps = _wait_lamps(switch, api_token, imported_adapter.mac, {"tel1": "ok", "tel2": "ok"})
    assert (lamps.get("tel1"), lamps.get("tel2")) == ("ok", "ok"), lamps


def test_unregister_turns_the_line_lamp_off(
    switch: SwitchProcess, switch_home: SwitchHome, imported_adapter: AdapterData, api_token: str, tmp_path: Path,
) -> None:
    _register(switch, tmp_path, imported_adapter.lines, "u1")
    lamps = _wait_lamps(switch, api_token, imported_adapter.mac, {"tel1": "ok", "tel2": "ok"})
    assert (lamps.get("tel1"), lamps.get("tel2")) == ("ok", "ok"), lamps

    remaining = list(imported_adapter.lines)
    for transport, idx in LINE_TRANSPORTS:  # Contact: * for tel1 over UDP, then for tel2 over TCP
        line = imported_adapter.lines[idx]
        remaining.remove(line)
        r = run_sipp("uac_unregister", switch.sip_target, inf_csv=_csv(tmp_path, [line], name=f"{line.lamp}.csv"),
                     transport=transport)
        assert r.ok, r.describe()
        assert _bindings(switch_home.db_url, line.number) == 0
        for other in remaining:
            assert _bindings(switch_home.db_url, other.number) == 1

        def line_not_ok(lamp: str = line.lamp) -> dict[str, str] | None:
            lamps = _lamps(switch, api_token, imported_adapter.mac)
            return lamps if lamps.get(lamp) != "ok" else None

        lamps = poll_until(line_not_ok, timeout=5.0) or _lamps(switch, api_token, imported_adapter.mac)
        assert lamps.get(line.lamp) in ("off", "warning"), lamps
        for other in remaining:
            assert lamps.get(other.lamp) == "ok", lamps


def test_unregister_one_contact_with_expires_zero(
    switch: SwitchProcess, switch_home: SwitchHome, imported_adapter: AdapterData, tmp_path: Path,
) -> None:
    for transport, idx in LINE_TRANSPORTS:
        line = imported_adapter.lines[idx]
        r = run_sipp("uac_unregister_contact", switch.sip_target,
                     inf_csv=_csv(tmp_path, [line], name=f"{transport}.csv"), transport=transport)
        assert r.ok, r.describe()
        assert _bindings(switch_home.db_url, line.number) == 0
    assert _bindings(switch_home.db_url) == 0


def test_wrong_password_gets_403(
    switch: SwitchProcess, switch_home: SwitchHome, imported_adapter: AdapterData, api_token: str, tmp_path: Path,
) -> None:
    for transport, idx in LINE_TRANSPORTS:
        line = imported_adapter.lines[idx]
        r = run_sipp("uac_register_wrong_password", switch.sip_target,
                     inf_csv=_csv(tmp_path, [line], password="not-the-password", name=f"{transport}.csv"),
                     transport=transport)
        assert r.ok, r.describe()
        assert [m.splitlines()[0].split(" ", 2)[1] for m in r.received()] == ["401", "403"]
    assert _bindings(switch_home.db_url) == 0
    lamps = _lamps(switch, api_token, imported_adapter.mac)
    assert lamps.get("tel1") != "ok" and lamps.get("tel2") != "ok", lamps


# ----------------------------------------------- no user enumeration (raw UDP, own digest)


def _h(algorithm: str, text: str) -> str:
    fn = hashlib.sha256 if algorithm.upper().startswith("SHA-256") else hashlib.md5
    return fn(text.encode()).hexdigest()


def _params(challenge: str) -> dict[str, str]:
    return {k.lower(): v1 or v2 for k, v1, v2 in re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', challenge)}


class RawUac:
    """A minimal UDP UAC: one socket, our own REGISTERs, our own digest (RFC 7616 §3.4.1)."""

    def __init__(self, switch: SwitchProcess) -> None:
        self.target = ("127.0.0.1", switch.sip_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5.0)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def register(self, user: str, call_id: str, cseq: int, authorization: str | None = None) -> str:
        branch = "z9hG4bK" + secrets.token_hex(8)
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        msg = (
            f"REGISTER sip:{self.target[0]}:{self.target[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{user}@127.0.0.1>;tag=f{secrets.token_hex(4)}\r\n"
            f"To: <sip:{user}@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:{self.port}>\r\n"
            "Expires: 3600\r\n"
            f"{auth}"
            "User-Agent: raw-e2e\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        self.sock.sendto(msg.encode(), self.target)
        while True:
            data, _ = self.sock.recvfrom(65535)
            text = data.decode("utf-8", "replace")
            if branch in text and not re.match(r"SIP/2.0 1\d\d ", text):
                return text

    @staticmethod
    def authorization(challenge: str, user: str, password: str, uri: str) -> str:
        p = _params(challenge)
        alg = p.get("algorithm", "MD5")
        realm, nonce = p["realm"], p["nonce"]
        cnonce, nc = secrets.token_hex(8), "00000001"
        ha1 = _h(alg, f"{user}:{realm}:{password}")
        ha2 = _h(alg, f"REGISTER:{uri}")
        if "qop" in p:
            response = _h(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            qop = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        else:
            response = _h(alg, f"{ha1}:{nonce}:{ha2}")
            qop = ""
        opaque = f', opaque="{p["opaque"]}"' if "opaque" in p else ""
        return (
            f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm={alg}{qop}{opaque}'
        )


def _normalise(msg: str, user: str) -> str:
    """Blank out what legitimately differs between two otherwise identical answers."""
    out = msg.replace(user, "USER")
    for pattern, repl in [
        (r'nonce="[^"]*"', 'nonce="N"'),
        (r'opaque="[^"]*"', 'opaque="O"'),
        (r";tag=[^;>,\s]+", ";tag=T"),
        (r"branch=[^;,\s]+", "branch=B"),
        (r"(?im)^(call-id|i)\s*:.*$", "Call-ID: C"),
        (r"(?im)^date\s*:.*$", "Date: D"),
        (r";rport=\d+", ";rport=P"),
    ]:
        out = re.sub(pattern, repl, out)
    return out


@pytest.mark.switch_args("--digest-algorithms", "SHA-256,MD5")
def test_unknown_user_and_wrong_password_are_indistinguishable(
    switch: SwitchProcess, imported_adapter: AdapterData
) -> None:
    known = imported_adapter.lines[0].number
    unknown = "29999999"
    uri = f"sip:127.0.0.1:{switch.sip_port}"
    uac = RawUac(switch)
    try:
        seen: dict[str, tuple[str, str]] = {}
        for user in (known, unknown):
            call_id = secrets.token_hex(10) + "@127.0.0.1"
            challenge = uac.register(user, call_id, 1)
            assert challenge.startswith("SIP/2.0 401 "), challenge
            offers = [ln.split(":", 1)[1].strip() for ln in challenge.splitlines()
                      if ln.lower().startswith("www-authenticate:")]
            # RFC 8760 §2.4: one challenge per algorithm; MD5 first for an agent not known to skip
            # one it cannot use (this one sends no User-Agent), SHA-256 after it
            assert [_params(o).get("algorithm", "MD5").upper() for o in offers] == ["MD5", "SHA-256"], offers
            final = uac.register(user, call_id, 2, uac.authorization(offers[0], user, "wrong-password", uri))
            assert final.startswith("SIP/2.0 403 "), final
            seen[user] = (_normalise(challenge, user), _normalise(final, user))
        assert seen[known][0] == seen[unknown][0]
        assert seen[known][1] == seen[unknown][1]
    finally:
        uac.close()


# ------------------------------------------------------------------ crash and restart


def test_bindings_survive_kill9_and_restart(
    switch: SwitchProcess, switch_home: SwitchHome, imported_adapter: AdapterData, api_token: str, tmp_path: Path,
) -> None:
    port = free_port()
    _register(switch, tmp_path, imported_adapter.lines, "u1", local_port=port)
    lamps = _wait_lamps(switch, api_token, imported_adapter.mac, {"tel1": "ok", "tel2": "ok"})
    assert (lamps.get("tel1"), lamps.get("tel2")) == ("ok", "ok"), lamps

    old_pid = switch.pid
    switch.kill9()
    assert not switch.alive()
    switch.start()  # same ports, same database, same key
    assert switch.pid != old_pid

    assert _bindings(switch_home.db_url) == 2
    lamps = _wait_lamps(switch, api_token, imported_adapter.mac, {"tel1": "ok", "tel2": "ok"})
    assert (lamps.get("tel1"), lamps.get("tel2")) == ("ok", "ok"), lamps

    # A query REGISTER (no Contact, §10.2.3) lists the binding made before the crash.
    for line in imported_adapter.lines:
        q = run_sipp("uac_register_query", switch.sip_target, inf_csv=_csv(tmp_path, [line], name=f"q{line.port}.csv"))
        assert q.ok, q.describe()
        ok = [m for m in q.received() if m.startswith("SIP/2.0 200")][-1]
        contacts = _contacts(ok)
        assert len(contacts) == 1, ok
        assert re.fullmatch(rf"<sip:{line.number}@127\.0\.0\.1:{port};transport=UDP>;expires=\d+", contacts[0], re.I)
        assert 3000 < int(contacts[0].rsplit("=", 1)[1]) <= 3600


def _pings(switch: SwitchProcess, token: str, mac: str) -> dict[str, dict[str, Any]]:
    """Per registered contact: its ping history as the status API shows it."""
    body = adapter_status(switch, token, mac)
    return {c["contact"]: c["pings"] for line in body["lines"] for c in line["contacts"] if c["pings"]}


# Pings every 0.3 s, lost after 0.3 s: SIPp has exited, so nobody answers them.
@pytest.mark.switch_args("--qualify-interval", "0.3", "--qualify-timeout", "0.3")
def test_ping_history_and_wan_lamp_survive_a_restart(
    switch: SwitchProcess, imported_adapter: AdapterData, api_token: str, tmp_path: Path,
) -> None:
    """One lost ping must not flip a lamp, and neither may a restart: the WAN lamp of an
    adapter that stopped answering stays in warning, with the same ``since``, and the ping
    counts carry on from where they were."""
    _register(switch, tmp_path, imported_adapter.lines, "u1", local_port=free_port())
    mac = imported_adapter.mac
    _wait_lamps(switch, api_token, mac, {"wan": "warning"}, timeout=15.0)
    before = adapter_status(switch, api_token, mac)["wan"]
    pings = _pings(switch, api_token, mac)
    assert len(pings) == 2 and all(p["consecutive_lost"] >= 3 for p in pings.values()), pings

    switch.stop()  # SIGTERM: a clean stop writes the ping histories out
    switch.start()
    after = adapter_status(switch, api_token, mac)["wan"]
    assert (after["state"], after["since"]) == (before["state"], before["since"]), (before, after)
    restored = _pings(switch, api_token, mac)
    for contact, p in pings.items():
        assert restored[contact]["sent"] >= p["sent"] and restored[contact]["lost"] >= p["lost"], (p, restored)
    # No "ok" in between: the history has no WAN event after the warning began.
    status, body = switch.api_get(f"/api/v1/adapters/{mac}/lamp-events?limit=500", api_token)
    assert status == 200, body
    wan = [e for e in body["events"] if e["lamp"] == "wan"]
    assert wan and wan[0]["to"] == "warning", wan


def test_challenges_leave_no_transaction_behind(switch: SwitchProcess) -> None:
    """A REGISTER without credentials is challenged statelessly (RFC 3261 §8.2.7).

    A storm or flood of them must not pin 32 s of transaction state each, and a
    retransmission gets the same To tag it got the first time.
    """
    def live() -> int:
        status, body = http_get_json(f"{switch.http_url}/health")
        assert status == 200
        return int(body["sip"]["transactions"])

    before = live()
    tags: dict[str, set[str]] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(2.0)
        local = s.getsockname()[1]
        for i in range(40):
            branch = f"z9hG4bK-storm-{i}-{secrets.token_hex(4)}"
            msg = (
                f"REGISTER sip:127.0.0.1:{switch.sip_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch={branch};rport\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:22000001@127.0.0.1>;tag=storm\r\nTo: <sip:22000001@127.0.0.1>\r\n"
                f"Call-ID: storm-{i}@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:22000001@127.0.0.1:{local}>\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            for _ in range(2 if i % 4 == 0 else 1):  # every fourth one "retransmitted"
                s.sendto(msg, ("127.0.0.1", switch.sip_port))
                data = s.recv(65535).decode()
                assert data.startswith("SIP/2.0 401 "), data
                assert "WWW-Authenticate:" in data
                tag = re.search(r"(?im)^to:.*;tag=([^;\s]+)", data)
                assert tag, data
                tags.setdefault(branch, set()).add(tag.group(1))
    assert all(len(t) == 1 for t in tags.values()), tags  # retransmission -> same tag
    assert len({next(iter(t)) for t in tags.values()}) == 40  # different requests -> different tags
    assert live() - before < 5, (before, live())  # 40 challenges, no transactions kept
