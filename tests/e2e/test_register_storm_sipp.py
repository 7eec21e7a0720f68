"""The SIPp storm client (sipp_scenarios/uac_register_storm.xml) behaves like an adapter.

bench_register.py --storm counts on it: after a 503 it waits the Retry-After and
starts again with a new transaction (CSeq one higher, a new branch), whether the 503
answered the first REGISTER or the authenticated one, and a 200 ends the line. A SIPp
registrar (uas_register_shed.xml) sheds on cue, so the whole loop runs in ~3 s; the
digest half runs against the real switch, whose answers the bench's summary then reads.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from bench.bench_register import summarise_sipp_storm
from harness import LOOPBACK
from harness.ports import free_port
from harness.sipp import SippServer, header, run_sipp, write_injection_csv
from harness.softswitch import SwitchProcess
from tests.conftest import AdapterData

pytestmark = pytest.mark.e2e


def _received_requests(log: Path) -> list[tuple[datetime, str]]:
    """(when, message) for each request in a -trace_msg log."""
    out = []
    for m in re.finditer(r"^-{10,} (\S+ \S+)\n(.*?)(?=^-{10,} |\Z)", log.read_text("utf-8", "replace"), re.M | re.S):
        head, _, body = m.group(2).partition("\n")
        if "message received" in head and body.strip().startswith("REGISTER"):
            out.append((datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f"), body.strip("\r\n")))
    return out


def test_a_503_is_waited_out_and_answered_with_a_new_transaction(tmp_path: Path) -> None:
    port = free_port("udp")
    uas = SippServer("uas_register_shed", LOOPBACK, port, tmp_path / "uas", extra=["-m", "1"], once=False,
                     timeout=20).start()
    try:
        csv = write_injection_csv(tmp_path / "line.csv", [("23000001", "Storm-pw-1")])
        r = run_sipp("uac_register_storm", f"{LOOPBACK}:{port}", inf_csv=csv, calls=1, timeout=15,
                     workdir=tmp_path / "uac", trace_rtt=True)
    finally:
        uas.wait(timeout=5)
    assert r.ok and r.successful == 1, r.describe()
    got = _received_requests(uas.message_log)
    assert len(got) == 5, [m for _, m in got]
    cseqs = [header(m, "CSeq") for _, m in got]
    assert cseqs == [f"{n} REGISTER" for n in range(1, 6)]
    assert len({header(m, "Call-ID") for _, m in got}) == 1  # one line, one Call-ID
    branches = [re.search(r"branch=([^;\s]+)", header(m, "Via") or "").group(1) for _, m in got]  # type: ignore[union-attr]
    assert len(set(branches)) == 5, branches
    authorized = [header(m, "Authorization") is not None for _, m in got]
    assert authorized == [False, False, True, False, True]
    assert 'nonce="storm-nonce-2"' in (header(got[4][1], "Authorization") or "")
    # Retry-After: 1 -> the next REGISTER a second later (not at once, not SIPp's 5 s default)
    for shed, again in ((0, 1), (2, 3)):
        gap = (got[again][0] - got[shed][0]).total_seconds()
        assert 0.95 <= gap < 2.0, (shed, gap)
    # rtd 1 spans the whole line (both waits), rtd 2 only the last attempt
    assert r.rtts_ms(1) and r.rtts_ms(1)[0] >= 1900
    assert r.rtts_ms(2) and r.rtts_ms(2)[0] < 900


def test_the_storm_scenario_registers_lines_on_the_switch(switch: SwitchProcess, imported_adapter: AdapterData,
                                                          tmp_path: Path) -> None:
    csv = write_injection_csv(tmp_path / "lines.csv", [(li.number, li.password) for li in imported_adapter.lines])
    n = len(imported_adapter.lines)
    r = run_sipp("uac_register_storm", switch.sip_target, inf_csv=csv, calls=n, rate=n, limit=n, timeout=15,
                 workdir=tmp_path / "storm", trace_msg=False, trace_rtt=True, extra=["-trace_counts"])
    assert r.ok and r.successful == n, r.describe()
    s = summarise_sipp_storm(r, n, 1.0, 15.0)
    assert s["registered"] == n and s["lost"] == 0 and s["sheds"] == 0, s
    assert s["all_registered_after_s"] is not None and s["all_registered_after_s"] < 5, s
    assert sum(row["registered"] for row in s["timeline"]) == n, s["timeline"]
