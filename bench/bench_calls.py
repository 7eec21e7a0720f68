#!/usr/bin/env python3
"""Call load through a real `softswitch run` (the B2BUA), on SQLite and on PostgreSQL, with SIPp at both ends.

For each database backend:

1. import N caller lines and one callee line (`softswitch import`), plus a carrier trunk whose
   allowed source is 127.0.0.3 (for the trunk ladder);
2. start the switch with ``--rate-limit 0 --qualify-interval 0 --digest-algorithms MD5``;
3. the callee: a SIPp UAS (`sipp_scenarios/uas_answer.xml`: 100, 180, 200, ACK, BYE → 200) that
   first REGISTERs its line from the port it then listens on;
4. **lines ladder**: SIPp UAC (`uac_call_auth.xml`: INVITE, 407, ACK, INVITE with Proxy-Authorization,
   100, 180, 200, ACK, hold, BYE, 200; no media) at 50, 100, 200, 300, 400, 600, 800 calls/s, 10 s
   each. Per step: achieved calls/s, failed calls (calls that never finish count), retransmissions,
   post-dial delay first INVITE → 180 p50/p99/max (what the caller hears, 407 round trip included)
   and authenticated INVITE → 180 p50/p99, peak concurrent calls (SIPp's CurrentCall), switch CPU
   (% of one core, µs per call), switch RSS, kernel UDP receive-buffer drops, load average. A step
   passes with 0 failed calls and >= 95 % of the target; the ladder stops at the first failing step;
5. **held calls** (run first, on the fresh switch, then ``--held-settle`` s for their transactions
   to expire, Timer J = 32 s): ``--hold-calls`` calls set up at ``--hold-rate`` and all held at once
   (hold time long enough that every call is up together); RSS before and at the peak → KiB per
   held call;
6. CDR check: one ``call_records`` row per completed call (calls SIPp gave up on may have one too).

``--policy`` then gives every line (callers and callee) the call policy a real subscriber has, two
barring categories (international, premium) and a no-answer forward to another line, with a second
`softswitch import` into the *running* switch (it picks the change up by itself within 5 s), and
runs the lines ladder again as ``lines+policy``: the same calls, now decided through barring and
forwarding (the forward never fires: the callee answers). It prints calls/s at 0 failures and PDD p99
with and without policy; the aim is both within 10 %.

``--with-peers`` also measures, in the same invocation and on the same box, one after the other:

* **Kamailio 5.6** (bench/peers/kamailio.cfg, 1 UDP worker): registrar + digest + stateful proxy,
  INVITEs challenged with 407 too, driven by the *same* SIPp scenarios (uac_call_auth / uas_answer).
  A proxy keeps no dialog and originates nothing, so it is the ceiling, not a twin;
* **sippy/b2bua 2.5** (PyPI, in a venv outside the repo; `b2bua_radius -u -A 0 -s UAS`): a Python
  B2BUA without digest, driven by `uac_invite_b2b.xml`. The switch runs the same scenario from a
  trunk's address (no digest either): the **trunk ladder**.

and prints the ratios (max calls/s at 0 failures, CPU per call). Everything runs on loopback and
shares the cores with SIPp: compare figures only from one run, and read the load average first.
Usage: see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the shared harness package lives at the repository root
    sys.path.insert(0, str(ROOT))

from bench._common import SIPP_TUNING, Kamailio, percentile, setup_peers, wait_idle  # noqa: E402
from bench.bench_register import _pg_admin, pg_base_url, pg_database, udp_rcvbuf_errors  # noqa: E402
from harness.db import count_rows  # noqa: E402
from harness.ports import free_port, free_port_on  # noqa: E402
from harness.procs import cpu_seconds, rss_kib, start_process, stop_process, tree, wait_udp_bound  # noqa: E402
from harness.sipp import SippResult, SippServer, run_sipp, write_injection_csv  # noqa: E402
from harness.softswitch import SwitchProcess, create_token, http_get_json, import_file  # noqa: E402

#: A late 180 (sippy sends some after the 200) is logged, not fatal; a failed call sends no BYE.
SIPP_BEHAVIOURS = ["-default_behaviors", "all,-bye,-abortunexp"]
DEFAULT_RATES = [50, 100, 200, 300, 400, 600, 800]
QUICK_RATES = [100, 200, 400]
KAMAILIO_EXTRA_RATES = [800, 1200, 1600, 2400, 3200, 4000]
CALLEE = ("24999999", "Bench-callee-pw")
CARRIER_IP = "127.0.0.3"
TARGET_CPS, TARGET_P99_MS = 400, 20.0


# ------------------------------------------------------------------------- data


def caller_lines(n: int) -> list[tuple[str, str]]:
    return [(f"24{i:06d}", f"Bench-{i:06d}-pw") for i in range(n)]


def import_document(callers: list[tuple[str, str]], trunk_port: int, *, policy: bool = False) -> dict[str, Any]:
    """Two lines per adapter, one customer per adapter; the callee on an adapter of its own; one carrier.

    ``policy``: every line also gets barring [international, premium] and a no-answer forward (20 s)
    to the next line.
    """
    lines = [*callers, CALLEE]
    customers = []
    for a in range(0, len(lines), 2):
        idx = a // 2
        mac = f"02:01:{(idx >> 24) & 0xFF:02X}:{(idx >> 16) & 0xFF:02X}:{(idx >> 8) & 0xFF:02X}:{idx & 0xFF:02X}"
        ports: list[dict[str, Any]] = [{"port": p + 1, "number": num, "password": pw}
                                       for p, (num, pw) in enumerate(lines[a : a + 2])]
        if policy:
            for i, port in enumerate(ports):
                nxt = lines[(a + i + 1) % len(lines)][0]
                port["barring"] = ["international", "premium"]
                port["forwarding"] = {"no_answer": {"target": nxt, "timeout_s": 20}}
        customer: dict[str, Any] = {"id": f"K{idx:07d}", "name": f"Bench Customer {idx}", "language": "nb",
                                    "adapters": [{"mac": mac, "model": "spa112", "lines": ports}]}
        # The callee stands for hundreds of simultaneous calls (a SIPp UAS, not a phone), and in the
        # held-calls phase each caller line has ~25 calls up at once: the fraud guard's residential
        # limits (2 per line, 4 per customer) would refuse them (403 call_limit) at once. The guard
        # still runs its check on every call; it just never trips.
        customer["fraud_limits"] = {"calls_per_line": 1000, "calls_per_customer": 1000}
        customers.append(customer)
    return {
        "customers": customers,
        "trunks": [{"name": "bench-carrier", "host": CARRIER_IP, "port": trunk_port,
                    "allowed_sources": [f"{CARRIER_IP}/32"]}],
    }


# ------------------------------------------------------------------- measurements


def max_column(stat_file: Path, name: str) -> int:
    """Largest value of one column over every row of a SIPp -trace_stat file (one row per second)."""
    try:
        rows = [ln.split(";") for ln in stat_file.read_text("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return 0
    if len(rows) < 2 or name not in rows[0]:
        return 0
    i = rows[0].index(name)
    return max((int(r[i]) for r in rows[1:] if len(r) > i and r[i].isdigit()), default=0)


def load1() -> float:
    return os.getloadavg()[0]


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """Whatever the SIPp caller talks to: the switch, Kamailio or sippy."""

    name: str
    target: str
    main_pid: int
    alive: Callable[[], bool]
    stop: Callable[[], object]

    def pids(self) -> list[int]:
        return tree(self.main_pid)


@dataclass
class Ladder:
    """One rate ladder: which server, which caller scenario, from where."""

    label: str
    server: Server
    scenario: str
    uac_ip: str
    extra: list[str]
    inf_csv: Path | None
    done_rtd: int
    """The RTD that ends at the 200 (its completion times give the achieved rate)."""
    auth_rtd: int | None
    """Authenticated INVITE -> 180, when the scenario has one."""


@dataclass
class Step:
    ladder: str
    target: int
    expected: int
    achieved: float
    ok: int
    failed: int
    retrans: int
    pdd_p50_ms: float
    pdd_p99_ms: float
    pdd_max_ms: float
    auth_invite_p50_ms: float
    auth_invite_p99_ms: float
    max_concurrent: int
    cpu_pct: float
    cpu_us_per_call: float
    rss_mib: float
    udp_drops: int
    load1: float
    sipp_exit: int
    passed: bool
    workdir: str = ""


@dataclass
class Held:
    ladder: str
    calls: int
    rate: int
    hold_s: float
    max_concurrent: int
    failed: int
    rss_before_mib: float
    rss_peak_mib: float
    kib_per_call: float
    cpu_pct_while_held: float


@dataclass
class Afterwards:
    """RSS after the lines ladder, against the RSS right before it (the issue's "within ~10 %
    of its baseline within a minute" after load)."""

    before_mib: float
    peak_mib: float
    samples: list[tuple[float, float]]
    """(seconds after the ladder ended, RSS MiB)"""
    back_within_10pct_after_s: float | None


@dataclass
class Result:
    name: str
    steps: list[Step] = field(default_factory=list)
    held: Held | None = None
    afterwards: Afterwards | None = None
    repeats: list[Afterwards] = field(default_factory=list)
    """--memory-rounds: the same ladder again on the same switch, and the RSS after each"""
    cold_mib: float | None = None
    """--warmup-calls: the RSS before any call (the ladder's baseline is then the RSS after the warm-up)"""
    cdr_rows: int | None = None
    calls_completed: int = 0
    calls_failed: int = 0
    error: str = ""

    def best(self, ladder: str | None = None) -> Step | None:
        ok = [s for s in self.steps if s.passed and (ladder is None or s.ladder == ladder)]
        return max(ok, key=lambda s: s.target) if ok else None


def run_step(lad: Ladder, rate: int, args: argparse.Namespace, workdir: Path) -> Step:
    calls = int(rate * args.duration)
    srv = lad.server
    pids = srv.pids()
    cpu0, drops0, la = cpu_seconds(pids), udp_rcvbuf_errors(), load1()
    t0 = time.monotonic()
    r = run_sipp(
        lad.scenario, srv.target, inf_csv=lad.inf_csv, calls=calls, rate=rate, transport="u1",
        extra=[*SIPP_TUNING, *SIPP_BEHAVIOURS, "-i", lad.uac_ip, "-d", str(args.hold_ms), *lad.extra],
        timeout=args.duration * 3 + 15, local_port=free_port_on(lad.uac_ip), workdir=workdir,
        trace_msg=False, trace_rtt=True, limit=rate * 5 + 1000,
    )
    wall = time.monotonic() - t0
    cpu = cpu_seconds(srv.pids()) - cpu0
    return summarise(lad, rate, calls, r, cpu, wall, udp_rcvbuf_errors() - drops0, la)


def summarise(lad: Ladder, rate: int, expected: int, r: SippResult, cpu: float, wall: float, drops: int,
              la: float) -> Step:
    done = r.completion_times(lad.done_rtd)
    span = (max(done) - min(done)) / 1000.0 if len(done) > 1 else 0.0
    achieved = (len(done) - 1) / span if span > 0 else 0.0
    pdd = r.rtts_ms(1)
    auth = r.rtts_ms(lad.auth_rtd) if lad.auth_rtd else []
    ok, failed = r.successful, r.failed
    failed += max(0, expected - ok - failed)  # never completed (global timeout) = failed
    return Step(
        ladder=lad.label, target=rate, expected=expected, achieved=round(achieved, 1), ok=ok, failed=failed,
        retrans=r.retransmissions, pdd_p50_ms=percentile(pdd, 0.5), pdd_p99_ms=percentile(pdd, 0.99),
        pdd_max_ms=max(pdd) if pdd else float("nan"), auth_invite_p50_ms=percentile(auth, 0.5),
        auth_invite_p99_ms=percentile(auth, 0.99), max_concurrent=max_column(r.stat_file, "CurrentCall"),
        cpu_pct=round(100 * cpu / wall, 1) if wall > 0 else float("nan"),
        cpu_us_per_call=round(1e6 * cpu / ok) if ok else float("nan"),
        rss_mib=round(rss_kib(lad.server.main_pid) / 1024, 1), udp_drops=drops, load1=round(la, 2),
        sipp_exit=r.returncode, passed=failed == 0 and achieved >= 0.95 * rate, workdir=str(r.workdir),
    )


def run_ladder(lad: Ladder, rates: list[int], args: argparse.Namespace, out: Path, res: Result) -> None:
    for rate in rates:
        step = run_step(lad, rate, args, out / f"{lad.label}_{rate}")
        if not lad.server.alive():
            res.error = f"{lad.server.name} died during the {rate}/s step"
            print(f"[{res.name}] {res.error}", flush=True)
            break
        res.steps.append(step)
        res.calls_completed += step.ok
        res.calls_failed += step.failed
        print(f"[{res.name}] {fmt_step(step)}", flush=True)
        if not step.passed and not args.no_stop:
            break
        time.sleep(args.pause)
        wait_idle(lad.server.pids)


def watch_after(pid: int, before_kib: int, peak_kib: int, seconds: float, name: str) -> Afterwards:
    """RSS every 5 s for ``seconds`` after a ladder: is the memory of the load given back?"""
    samples: list[tuple[float, float]] = []
    back: float | None = None
    t0 = time.monotonic()
    while True:
        t = time.monotonic() - t0
        kib = rss_kib(pid)
        samples.append((round(t, 1), round(kib / 1024, 1)))
        if back is None and kib <= before_kib * 1.10:
            back = round(t, 1)
        if t >= seconds:
            break
        time.sleep(min(5.0, max(0.0, seconds - t)))
    after = Afterwards(round(before_kib / 1024, 1), round(max(peak_kib, *(int(m * 1024) for _, m in samples)) / 1024, 1),
                  samples, back)
    print(f"[{name}] memory after the ladder: {asdict(after)}", flush=True)
    return after


def switch_memory(switch: SwitchProcess, name: str, when: str) -> None:
    """The switch's own account of its memory (``/health`` memory: C heap, SQLite, lingering transactions)."""
    try:
        _status, body = http_get_json(f"{switch.http_url}/health")
        print(f"[{name}] switch's memory {when}: {body.get('memory')}", flush=True)
    except OSError as exc:
        print(f"[{name}] switch's memory {when}: /health failed ({exc})", flush=True)


def run_held(lad: Ladder, args: argparse.Namespace, out: Path, res: Result) -> None:
    """``--hold-calls`` calls, all up at the same time: memory per held call."""
    n, rate = args.hold_calls, args.hold_rate
    hold_s = n / rate + 3.0
    pid = lad.server.main_pid
    rss0 = rss_kib(pid)
    peak = [rss0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0 = cpu_seconds(lad.server.pids())
    try:
        r = run_sipp(
            lad.scenario, lad.server.target, inf_csv=lad.inf_csv, calls=n, rate=rate, transport="u1",
            extra=[*SIPP_TUNING, *SIPP_BEHAVIOURS, "-i", lad.uac_ip, "-d", str(int(hold_s * 1000)), *lad.extra],
            timeout=hold_s + n / rate + 60, local_port=free_port_on(lad.uac_ip), workdir=out / f"{lad.label}_held",
            trace_msg=False, trace_rtt=False, limit=n + 100,
        )
    finally:
        stop.set()
        sampler.join()
    # CPU while every call is up and nothing happens (the last second of the hold is not measured).
    cpu_held = cpu_seconds(lad.server.pids()) - cpu0
    failed = r.failed + max(0, n - r.successful - r.failed)
    res.held = Held(
        ladder=lad.label, calls=n, rate=rate, hold_s=round(hold_s, 1),
        max_concurrent=max_column(r.stat_file, "CurrentCall"), failed=failed,
        rss_before_mib=round(rss0 / 1024, 1), rss_peak_mib=round(peak[0] / 1024, 1),
        kib_per_call=round((peak[0] - rss0) / max(1, n), 1),
        cpu_pct_while_held=round(100 * cpu_held / (hold_s + n / rate), 1),
    )
    res.calls_completed += r.successful
    res.calls_failed += failed
    print(f"[{res.name}] held: {asdict(res.held)}", flush=True)


def start_callee(target: str, workdir: Path, register: bool, csv: Path | None) -> SippServer:
    """The SIPp UAS. ``register``: REGISTER the callee line from the UAS's own port first."""
    port = free_port_on("127.0.0.1")
    if register:
        assert csv is not None
        r = run_sipp("uac_register_digest", target, inf_csv=csv, calls=1, local_port=port,
                     workdir=workdir / "register", timeout=10)
        if not r.ok:
            raise RuntimeError("callee registration failed\n" + r.describe())
    uas = SippServer("uas_answer", "127.0.0.1", port, workdir / "uas", once=False, trace_msg=False, timeout=36000,
                     extra=[*SIPP_TUNING, "-default_behaviors", "all,-abortunexp"])
    return uas.start()


# --------------------------------------------------------------------------- the switch


def bench_switch(backend: str, db_url: str, args: argparse.Namespace, out: Path) -> Result:
    home = out / backend
    home.mkdir(parents=True, exist_ok=True)
    key = home / "softswitch.key"
    res = Result(name=f"softswitch/{backend}")
    callers = caller_lines(args.lines)
    doc = home / "lines.json"
    doc.write_text(json.dumps(import_document(callers, free_port_on(CARRIER_IP))))
    import_file(db_url, str(doc), key_file=key, cwd=home, timeout=600)
    csv = write_injection_csv(home / "callers.csv", callers)
    callee_csv = write_injection_csv(home / "callee.csv", [CALLEE])
    switch = SwitchProcess(
        db_url=db_url, workdir=home, key_file=key, start_timeout=120, env={"SOFTSWITCH_LOG_LEVEL": args.log_level},
        extra_args=["--rate-limit", "0", "--qualify-interval", "0", "--digest-algorithms", "MD5", *args.switch_arg],
    )
    switch.start()
    assert switch.pid is not None
    server = Server(res.name, switch.sip_target, switch.pid, switch.alive, lambda: None)
    uas: SippServer | None = None
    try:
        print(f"[{res.name}] switch pid {switch.pid} on {switch.sip_target}, log {switch.log_path}", flush=True)
        uas = start_callee(switch.sip_target, home, True, callee_csv)
        time.sleep(1.0)
        lines = Ladder("lines", server, "uac_call_auth", "127.0.0.1", ["-set", "dialled", CALLEE[0]], csv,
                       done_rtd=3, auth_rtd=2)
        if args.hold_calls:
            # First, on the fresh switch: Python keeps the memory a load peak made it allocate
            # (pymalloc arenas), so after a ladder the held calls would fit in and show ~0 KiB.
            run_held(lines, args, home, res)
            wait_idle(server.pids)
            # RFC 3261 Timer J/K: the held calls' transactions linger 32 s; the ladder starts clean.
            time.sleep(args.held_settle)
        if args.warmup_calls:
            # A switch in service has placed calls before: its SQLite page caches and prepared
            # statements, its CDR writer and its thread pools are warm. The ladder's baseline is
            # that idle switch, after its transactions' 32 s and a full collection (tune_gc: 30 s).
            res.cold_mib = round(rss_kib(switch.pid) / 1024, 1)
            r = run_sipp(
                lines.scenario, lines.server.target, inf_csv=lines.inf_csv, calls=args.warmup_calls,
                rate=min(100, args.warmup_calls), transport="u1",
                extra=[*SIPP_TUNING, *SIPP_BEHAVIOURS, "-i", lines.uac_ip, "-d", str(args.hold_ms), *lines.extra],
                timeout=args.warmup_calls / 100 * 3 + 30, local_port=free_port_on(lines.uac_ip),
                workdir=home / "warmup", trace_msg=False, trace_rtt=False, limit=1000,
            )
            res.calls_completed += r.successful  # their CDRs are counted with the rest
            res.calls_failed += args.warmup_calls - r.successful
            print(f"[{res.name}] warm-up: {r.successful}/{args.warmup_calls} calls; RSS before them "
                  f"{res.cold_mib} MiB", flush=True)
            wait_idle(server.pids)
            time.sleep(args.warmup_settle)
        rss_before = rss_kib(switch.pid)
        switch_memory(switch, res.name, "before the ladder")
        run_ladder(lines, args.rates, args, home, res)
        if args.memory_after and switch.alive():
            peak = max([rss_before, *(int(st.rss_mib * 1024) for st in res.steps)])
            res.afterwards = watch_after(switch.pid, rss_before, peak, args.memory_after, res.name)
            switch_memory(switch, res.name, f"{args.memory_after:g} s after the ladder")
            for _ in range(args.memory_rounds - 1):
                # Is what the first ladder left reused by the next one (allocator high-water mark),
                # or does every ladder add to it (a leak)?
                n_steps = len(res.steps)
                run_ladder(lines, args.rates, args, home, res)
                if not switch.alive():
                    break
                peak = max([rss_before, *(int(st.rss_mib * 1024) for st in res.steps[n_steps:])])
                res.repeats.append(watch_after(switch.pid, rss_before, peak, args.memory_after, res.name))
                switch_memory(switch, res.name, f"{args.memory_after:g} s after ladder {len(res.repeats) + 1}")
        if args.policy and switch.alive():
            wait_idle(server.pids)
            policy_doc = home / "policy.json"
            policy_doc.write_text(json.dumps(import_document(callers, free_port_on(CARRIER_IP), policy=True)))
            import_file(db_url, str(policy_doc), key_file=key, cwd=home, timeout=600)
            # The running switch reloads its policy when the tables change (a fingerprint every 5 s).
            token = create_token(db_url, key_file=key, cwd=home)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                _status, body = http_get_json(f"{switch.http_url}/api/v1/lines/{CALLEE[0]}/policy", token=token)
                if isinstance(body, dict) and body.get("barring", {}).get("line") == ["international", "premium"]:
                    break
                time.sleep(0.5)
            else:
                raise RuntimeError("the switch did not pick up the imported policy within 30 s")
            print(f"[{res.name}] policy imported for {len(callers) + 1} lines and in effect", flush=True)
            with_policy = Ladder("lines+policy", server, "uac_call_auth", "127.0.0.1", ["-set", "dialled", CALLEE[0]],
                                 csv, done_rtd=3, auth_rtd=2)
            run_ladder(with_policy, args.rates, args, home, res)
        if args.with_peers and switch.alive():
            wait_idle(server.pids)
            trunk = Ladder("trunk", server, "uac_invite_b2b", CARRIER_IP,
                           ["-set", "dialled", CALLEE[0], "-set", "caller", "+4791234567"], None, done_rtd=2,
                           auth_rtd=None)
            run_ladder(trunk, args.rates, args, home, res)
        # Every completed call has its CDR (the writer batches: give it a moment).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            res.cdr_rows = count_rows(db_url, "SELECT count(*) FROM call_records")
            if res.cdr_rows >= res.calls_completed:
                break
            time.sleep(0.5)
    except Exception as exc:  # noqa: BLE001 - report and go on with the next backend
        res.error = f"{type(exc).__name__}: {exc}"
        print(f"[{res.name}] ERROR {res.error}", flush=True)
    finally:
        if uas is not None:
            uas.stop()
        switch.stop()
    return res


# --------------------------------------------------------------------------- peers


def bench_kamailio(args: argparse.Namespace, out: Path, kamailio: str) -> Result:
    home = out / "kamailio"
    home.mkdir(parents=True, exist_ok=True)
    res = Result(name="kamailio")
    callers = caller_lines(args.lines)
    csv = write_injection_csv(home / "callers.csv", callers)
    callee_csv = write_injection_csv(home / "callee.csv", [CALLEE])
    kam: Kamailio | None = None
    uas: SippServer | None = None
    try:
        kam = Kamailio(kamailio, home, [*callers, CALLEE], workers=1, shm_mb=1024,
                       defines=["WITH_INVITE_AUTH", "WITH_HTABLE_AUTH"])
        server = Server("kamailio", kam.target, kam.pid, kam.alive, kam.stop)
        uas = start_callee(server.target, home, True, callee_csv)
        time.sleep(1.0)
        lad = Ladder("lines", server, "uac_call_auth", "127.0.0.1", ["-set", "dialled", CALLEE[0]], csv,
                     done_rtd=3, auth_rtd=2)
        # A stateful proxy in C goes far beyond the switch's ladder: extend it so it saturates.
        rates = args.peer_rates or sorted({*args.rates, *KAMAILIO_EXTRA_RATES})
        run_ladder(lad, rates, args, home, res)
    except Exception as exc:  # noqa: BLE001
        res.error = f"{type(exc).__name__}: {exc}"
        print(f"[kamailio] ERROR {res.error}", flush=True)
    finally:
        if uas is not None:
            uas.stop()
        if kam is not None:
            kam.stop()
    return res


def bench_sippy(args: argparse.Namespace, out: Path, b2bua: str) -> Result:
    home = out / "sippy"
    home.mkdir(parents=True, exist_ok=True)
    res = Result(name="sippy")
    uas: SippServer | None = None
    proc: subprocess.Popen[bytes] | None = None
    try:
        uas = start_callee("", home, False, None)
        port = free_port("udp")
        proc = start_process([b2bua, "-f", "-u", "-A", "0", "-l", "127.0.0.1", "-p", str(port),
                       "-s", f"127.0.0.1:{uas.port}", "-c", str(home / "b2bua.sock")], home / "sippy.log",
                      env={"SIPLOG_BEND": "none"})
        p = proc
        server = Server("sippy", f"127.0.0.1:{port}", proc.pid, lambda: p.poll() is None, lambda: stop_process(p))
        wait_udp_bound(port, proc, "sippy b2bua_radius")
        time.sleep(1.0)
        lad = Ladder("trunk", server, "uac_invite_b2b", "127.0.0.1",
                     ["-set", "dialled", CALLEE[0], "-set", "caller", "+4791234567"], None, done_rtd=2, auth_rtd=None)
        run_ladder(lad, args.peer_rates or args.rates, args, home, res)
    except Exception as exc:  # noqa: BLE001
        res.error = f"{type(exc).__name__}: {exc}"
        print(f"[sippy] ERROR {res.error}", flush=True)
    finally:
        if uas is not None:
            uas.stop()
        if proc is not None:
            stop_process(proc)
    return res


# --------------------------------------------------------------------------- output


def _ms(x: float) -> str:
    return "-" if x != x else f"{x:.0f}"  # NaN -> "-"


def fmt_step(s: Step) -> str:
    return (f"{s.ladder} target={s.target}/s achieved={s.achieved:.0f}/s ok={s.ok} fail={s.failed} "
            f"retrans={s.retrans} pdd(INVITE->180) p50={_ms(s.pdd_p50_ms)}ms p99={_ms(s.pdd_p99_ms)}ms "
            f"max={_ms(s.pdd_max_ms)}ms auth-INVITE->180 p99={_ms(s.auth_invite_p99_ms)}ms "
            f"concurrent={s.max_concurrent} cpu={s.cpu_pct:.0f}% {s.cpu_us_per_call:.0f}us/call rss={s.rss_mib:.0f}MiB "
            f"udp_drops={s.udp_drops} load1={s.load1:.1f} {'PASS' if s.passed else 'FAIL'}")


def table(results: list[Result]) -> str:
    head = ("server", "ladder", "target/s", "achieved/s", "ok", "fail", "retrans", "PDD p50", "PDD p99", "PDD max",
            "authINV p99", "concurrent", "CPU %", "µs/call", "RSS MiB", "UDP drops", "load1", "")
    rows = [head]
    for res in results:
        for s in res.steps:
            rows.append((res.name, s.ladder, str(s.target), f"{s.achieved:.0f}", str(s.ok), str(s.failed),
                         str(s.retrans), _ms(s.pdd_p50_ms), _ms(s.pdd_p99_ms), _ms(s.pdd_max_ms),
                         _ms(s.auth_invite_p99_ms), str(s.max_concurrent), f"{s.cpu_pct:.0f}",
                         _ms(s.cpu_us_per_call), f"{s.rss_mib:.0f}", str(s.udp_drops), f"{s.load1:.1f}",
                         "PASS" if s.passed else "FAIL"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    out = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    out += ["", "PDD = first INVITE -> 180 at the caller (ms, SIPp whole-ms resolution; for lines it includes the "
                "407 round trip); authINV = authenticated INVITE -> 180.",
            "", "Highest step with 0 failed calls and >= 95% of the target:"]
    for res in results:
        for lad in sorted({s.ladder for s in res.steps}):
            b = res.best(lad)
            top = (f"{b.achieved:.0f} calls/s (target {b.target}; PDD p50 {_ms(b.pdd_p50_ms)} ms, "
                   f"p99 {_ms(b.pdd_p99_ms)} ms; {_ms(b.cpu_us_per_call)} µs CPU/call; {b.cpu_pct:.0f}% of a core)"
                   if b else "none")
            out.append(f"  {res.name} [{lad}]: {top}")
        if res.error:
            out.append(f"  {res.name}: ERROR {res.error}")
        if res.held:
            h = res.held
            out.append(f"  {res.name} held calls: {h.max_concurrent} concurrent ({h.calls} set up at {h.rate}/s, "
                       f"held {h.hold_s:.0f} s, {h.failed} failed), RSS {h.rss_before_mib:.0f} -> "
                       f"{h.rss_peak_mib:.0f} MiB = {h.kib_per_call:.1f} KiB per held call, "
                       f"{h.cpu_pct_while_held:.0f}% CPU over the phase (set-up included)")
        if res.afterwards:
            a = res.afterwards
            back = f"back within 10 % after {a.back_within_10pct_after_s:.0f} s" if a.back_within_10pct_after_s is not None \
                else f"NOT back within 10 % after {a.samples[-1][0]:.0f} s"
            if res.cold_mib is not None:
                out.append(f"  {res.name} memory: RSS {res.cold_mib:.0f} MiB before any call, {a.before_mib:.0f} MiB idle "
                           "after the warm-up calls (the baseline below)")
            out.append(f"  {res.name} memory: RSS {a.before_mib:.0f} MiB before the lines ladder, peak {a.peak_mib:.0f}, "
                       f"{a.samples[-1][1]:.0f} MiB {a.samples[-1][0]:.0f} s after it: {back}")
            for n, r in enumerate(res.repeats, start=2):
                out.append(f"  {res.name} memory, ladder {n} on the same switch: peak {r.peak_mib:.0f} MiB, "
                           f"{r.samples[-1][1]:.0f} MiB {r.samples[-1][0]:.0f} s after it")
        if res.cdr_rows is not None:
            # A call SIPp gave up on (failed) still ends in the switch, usually with a CDR.
            ok = res.calls_completed <= res.cdr_rows <= res.calls_completed + res.calls_failed
            out.append(f"  {res.name} CDRs: {res.cdr_rows} call_records rows for {res.calls_completed} completed "
                       f"and {res.calls_failed} failed calls" + ("" if ok else "  <-- MISMATCH"))
    return "\n".join(out)


def target_lines(results: list[Result]) -> list[str]:
    out = [f"Target ({TARGET_CPS} calls/s at 0 failures with PDD p99 <= {TARGET_P99_MS:.0f} ms, lines ladder):"]
    for res in results:
        if not res.name.startswith("softswitch"):
            continue
        met = [s for s in res.steps if s.ladder == "lines" and s.passed and s.target >= TARGET_CPS
               and s.pdd_p99_ms <= TARGET_P99_MS]
        out.append(f"  {res.name}: {'MET' if met else 'NOT MET'}"
                   + (f" (best such step: {max(met, key=lambda s: s.target).target}/s)" if met else ""))
    return out


def policy_lines(results: list[Result]) -> list[str]:
    """With vs without policy (--policy): best calls/s at 0 failures and its PDD p99, aim within 10 %."""
    out: list[str] = []
    for res in results:
        a, b = res.best("lines"), res.best("lines+policy")
        if b is None and not any(s.ladder == "lines+policy" for s in res.steps):
            continue
        if a is None or b is None:
            out.append(f"  {res.name}: n/a (a ladder has no passing step)")
            continue
        cps = b.achieved / a.achieved
        p99 = (b.pdd_p99_ms / a.pdd_p99_ms) if a.pdd_p99_ms > 0 else float("nan")
        within = cps >= 0.9 and (p99 != p99 or p99 <= 1.1 or b.pdd_p99_ms - a.pdd_p99_ms <= 1.0)
        out.append(f"  {res.name}: calls/s {b.achieved:.0f} with policy / {a.achieved:.0f} without = {cps:.2f}; "
                   f"PDD p99 {_ms(b.pdd_p99_ms)} / {_ms(a.pdd_p99_ms)} ms; CPU per call {_ms(b.cpu_us_per_call)} / "
                   f"{_ms(a.cpu_us_per_call)} µs; {'within 10 %' if within else 'NOT within 10 %'} "
                   "(PDD in whole ms: a 1 ms difference counts as within)")
    return (["", "Policy (every line with two barring categories and a no-answer forward):"] + out) if out else []


def ratio_lines(results: list[Result]) -> list[str]:
    peers = {r.name: r for r in results if not r.name.startswith("softswitch")}
    out: list[str] = []
    for res in results:
        if not res.name.startswith("softswitch"):
            continue
        for peer, lad in (("kamailio", "lines"), ("sippy", "trunk")):
            p = peers.get(peer)
            if p is None:
                continue
            a, b = res.best(lad), p.best(lad)
            if a is None or b is None:
                out.append(f"  {res.name} / {peer} [{lad}]: n/a (a ladder has no passing step)")
                continue
            unsaturated = all(s.passed for s in p.steps if s.ladder == lad)
            out.append(f"  {res.name} / {peer} [{lad}]: max calls/s {a.achieved:.0f} / {b.achieved:.0f} = "
                       f"{a.achieved / b.achieved:.2f}; CPU per call {a.cpu_us_per_call:.0f} / {b.cpu_us_per_call:.0f} µs"
                       f" = {a.cpu_us_per_call / b.cpu_us_per_call:.2f}"
                       + (f"  ({peer} passed its whole ladder: its maximum is higher)" if unsaturated else ""))
    return (["", "Ratios (same box, same run, same SIPp scenarios; lines = with 407 digest, "
                 "trunk = carrier call without digest):"] + out) if out else []


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default=None, choices=["sqlite", "postgresql", "both", "none"],
                   help="switch database backend(s) (default both; quick: sqlite); none = peers only")
    p.add_argument("--quick", action="store_true",
                   help="short run: rates 100/200/400, 3 s steps, 500 held calls, SQLite only unless --db is given")
    p.add_argument("--rates", default=None, help="comma list of calls/s (default 50,100,200,300,400,600,800)")
    p.add_argument("--peer-rates", default=None,
                   help="calls/s for the peers (default: --rates; Kamailio also 1200..4000)")
    p.add_argument("--duration", type=float, default=None, help="seconds per step (default 10; quick 3)")
    p.add_argument("--hold-ms", type=int, default=500, help="call hold between ACK and BYE (default 500 ms)")
    p.add_argument("--lines", type=int, default=200, help="caller lines (used in turn by SIPp; default 200)")
    p.add_argument("--hold-calls", type=int, default=None,
                   help="calls held at once in the held-calls phase (default 5000; quick 500; 0 skips it)")
    p.add_argument("--hold-rate", type=int, default=250, help="set-up rate of the held-calls phase (default 250/s)")
    p.add_argument("--held-settle", type=float, default=None,
                   help="seconds to wait after the held-calls phase, so its transactions (Timer J, 32 s) "
                        "are gone before the ladder (default 35; quick 3)")
    p.add_argument("--memory-after", type=float, default=60.0,
                   help="seconds to watch the switch's RSS after the lines ladder (0 = not; default 60)")
    p.add_argument("--warmup-calls", type=int, default=0,
                   help="calls at 100/s before the lines ladder, then --warmup-settle s idle: the memory baseline is "
                        "then a switch that has served calls (0 = the RSS of the fresh switch; default 0)")
    p.add_argument("--warmup-settle", type=float, default=40.0,
                   help="seconds idle after the warm-up calls (Timer J's 32 s and a full collection; default 40)")
    p.add_argument("--memory-rounds", type=int, default=1,
                   help="run the lines ladder this many times on the same switch, watching the RSS after each "
                        "(does a second ladder reuse the first one's memory or add to it?)")
    p.add_argument("--with-peers", action="store_true",
                   help="also measure Kamailio and sippy/b2bua (bench/peers/setup_peers.sh installs them)")
    p.add_argument("--policy", action="store_true",
                   help="after the lines ladder, give every line two barring categories and a no-answer forward "
                   "(imported into the running switch) and run the ladder again as lines+policy")
    p.add_argument("--switch-arg", action="append", default=[], help="extra `softswitch run` argument (repeatable)")
    p.add_argument("--log-level", default="WARNING", help="switch log level during the bench (default WARNING)")
    p.add_argument("--pause", type=float, default=2.0, help="seconds between steps (then wait until idle)")
    p.add_argument("--no-stop", action="store_true", help="run every step even after one fails")
    p.add_argument("--out", default=None, help="output directory (default bench/out/calls-<time>)")
    args = p.parse_args(argv)
    if args.db is None:
        args.db = "sqlite" if args.quick else "both"
    args.rates = [int(x) for x in args.rates.split(",")] if args.rates else (QUICK_RATES if args.quick
                                                                              else DEFAULT_RATES)
    args.peer_rates = [int(x) for x in args.peer_rates.split(",")] if args.peer_rates else None
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    if args.hold_calls is None:
        args.hold_calls = 500 if args.quick else 5000
    if args.held_settle is None:
        args.held_settle = 3.0 if args.quick else 35.0
    if shutil.which("sipp") is None:
        print("sipp not found: run scripts/bootstrap.sh --test (Debian package sip-tester)", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else ROOT / "bench" / "out" / time.strftime("calls-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    print(f"# bench_calls: rates {args.rates}, {args.duration:g}s/step, hold {args.hold_ms} ms, {args.lines} caller "
          f"lines, {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, out={out}",
          flush=True)

    results: list[Result] = []
    backends = {"both": ["sqlite", "postgresql"], "none": []}.get(args.db, [args.db])
    for backend in backends:
        if backend == "sqlite":
            results.append(bench_switch(backend, f"sqlite+aiosqlite:///{out / 'sqlite' / 'bench.db'}", args, out))
        else:
            base = pg_base_url()
            name = f"bench_calls_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            url = pg_database(base, name)
            try:
                results.append(bench_switch(backend, url, args, out))
            finally:
                asyncio.run(_pg_admin(base, f'DROP DATABASE IF EXISTS "{name}"'))
    if args.with_peers:
        try:
            found = setup_peers()
        except RuntimeError as exc:
            print(f"peers unavailable: {exc}", flush=True)
            found = {}
        if found.get("kamailio"):
            results.append(bench_kamailio(args, out, found["kamailio"]))
        if found.get("b2bua_radius"):
            results.append(bench_sippy(args, out, found["b2bua_radius"]))

    text = "\n".join([table(results), "", *target_lines(results), *policy_lines(results), *ratio_lines(results),
                      "", f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"])
    print("\n" + text)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2, default=str))
    (out / "summary.txt").write_text(text + "\n")
    print(f"\nraw files: {out}")
    summary = " ".join(
        f"{r.name}[{lad}]={b.achieved:.0f}cps(p99 {_ms(b.pdd_p99_ms)}ms)" if (b := r.best(lad)) else f"{r.name}[{lad}]=none"
        for r in results for lad in sorted({s.ladder for s in r.steps}) or ["lines"]
    )
    print(f"SUMMARY bench_calls: {summary}")
    ok = all(not r.error and r.steps and r.steps[0].passed for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
