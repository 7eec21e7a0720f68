#!/usr/bin/env python3
"""REGISTER-with-digest load on a real `softswitch run`, on SQLite and on PostgreSQL.

For each database backend:

1. generate N lines (N/2 two-port adapters) and load them with `softswitch import`;
2. start the switch (``--rate-limit 0``; MD5 only, because SIPp 3.6.1 cannot answer
   a SHA-256 challenge);
3. **memory**: RSS of the idle switch, register every line once, RSS again:
   resident memory per 10,000 bindings;
4. **rate ladder**: SIPp (`sipp_scenarios/uac_register_digest.xml`: REGISTER, 401,
   REGISTER with Authorization, 200 = one "call") at increasing rates, ``--duration``
   seconds per step. Per step: achieved rate, failures, retransmissions, p50/p99 of the
   whole registration (both round trips), switch CPU per registration, RSS, and kernel
   UDP receive-buffer drops. A step passes with 0 failed registrations and >= 95 % of
   the target rate; the ladder stops at the first failing step.

**Overload** (``--overload 2,4``): after the ladder, ``bench/overload.py`` (an open-loop
asyncio client that ends an attempt at a 503) offers each multiple of the capacity
(``--capacity``, else the ladder's best passing rate) for ``--duration`` s and reports
accepted/s, shed (503), failed, and p50/p99 of the *accepted* registrations (target: p99
<= 1 s at 2x and 4x). **Storm** (``--storm 100000``): that many lines, all starting within
``--storm-window`` s (10), each waiting out its Retry-After after a 503: when the last one
is registered (target: all within 60 s, none lost), and the resident memory per 100,000
bindings (RSS after the storm minus before, ``--memory-settle`` later). The storm's client
is SIPp by default (``--storm-client sipp``: ``sipp_scenarios/uac_register_storm.xml``, one
call per line, ``-r lines/window -m lines -l lines -timeout deadline``; the figures and a
per-second timeline come from its -trace_rtt, -trace_stat and -trace_counts files), because
on 2 cores the asyncio client (``--storm-client python``, overload.py storm) was itself the
bottleneck: it stalled for whole seconds and counted its own starvation as lost lines.
``--skip-ladder`` / ``--skip-memory`` leave out those phases (a storm of 100,000 lines
registers them itself; the SIPp memory phase would take 400 s).

``--with-kamailio`` also measures Kamailio 5.6 in the same invocation, after the switch
(bench/peers/kamailio.cfg with WITH_HTABLE_AUTH: registrar + digest against credentials in
an htable, usrloc in memory; ``-n 1`` UDP worker, ``-m 1024``; bench/peers/setup_peers.sh
installs it): the same lines in its credential table, the same SIPp scenario and arguments,
one warm-up registration per line (no memory figure: its bindings live in shared memory),
then its own rate ladder (``--kamailio-rates``, higher than the switch's: it passed
20,000/s here). auth_db over db_text is not used: db_text scans the whole table per
lookup, which at 10,000 lines capped Kamailio near 2,800/s. Kamailio's CPU is
its main process and its children (worker, timers). Then the ratios switch / Kamailio of
the highest passing rate and of the CPU per registration.

Everything runs on 127.0.0.1 and shares the machine's cores with SIPp, like the
reference figures it is meant to be compared with. Usage: see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
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
from harness.ports import free_port  # noqa: E402
from harness.procs import cpu_seconds  # noqa: E402
from harness.sipp import SippResult, run_sipp, write_injection_csv  # noqa: E402
from harness.softswitch import SwitchProcess, import_file  # noqa: E402

DEFAULT_RATES = [250, 500, 1000, 1500, 2000, 3000, 4000]
#: Kamailio -n 1 did ~12,000 complete registrations/s on the 2-vCPU reference box: its ladder goes past that.
DEFAULT_KAMAILIO_RATES = [8000, 12000, 16000, 20000, 24000, 28000]
KAMAILIO_WORKERS, KAMAILIO_SHM_MB = 1, 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Line:
    number: str
    password: str


def make_lines(n: int) -> list[Line]:
    """Distinct 8-digit numbers 23000000.. with per-line passwords."""
    return [Line(f"23{i:06d}", f"Bench-{i:06d}-pw") for i in range(n)]


def import_document(lines: list[Line]) -> dict[str, Any]:
    """One customer per adapter, two lines per adapter (the real shape of the data)."""
    customers = []
    for a in range(0, len(lines), 2):
        idx = a // 2
        mac = f"02:00:{(idx >> 24) & 0xFF:02X}:{(idx >> 16) & 0xFF:02X}:{(idx >> 8) & 0xFF:02X}:{idx & 0xFF:02X}"
        ports = [{"port": p + 1, "number": li.number, "password": li.password} for p, li in enumerate(lines[a : a + 2])]
        customers.append(
            {"id": f"B{idx:07d}", "name": f"Bench Customer {idx}", "language": "nb",
             "adapters": [{"mac": mac, "model": "spa112", "lines": ports}]}
        )
    return {"customers": customers}


# ------------------------------------------------------------------- measurements


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def udp_rcvbuf_errors() -> int:
    with open("/proc/net/snmp") as f:
        rows = [ln.split() for ln in f if ln.startswith("Udp:")]
    head, vals = rows[0], rows[1]
    return int(vals[head.index("RcvbufErrors")])


def children_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@dataclass
class Step:
    backend: str
    target: int
    expected: int
    achieved: float
    ok: int
    failed: int
    retrans: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    switch_cpu_us_per_reg: float  # the server's: for the "kamailio" rows, Kamailio's (all its processes)
    sipp_cpu_us_per_reg: float
    rss_mib: float  # NaN for Kamailio
    udp_drops: int
    sipp_exit: int
    passed: bool
    workdir: str = ""


@dataclass
class Memory:
    backend: str
    bindings: int
    rss_before_mib: float
    rss_after_mib: float  # after the server transactions have expired (Timer J)
    rss_right_after_mib: float  # while the transactions of the burst are still held
    per_10k_bindings_mib: float
    register_seconds: float
    failed: int


@dataclass
class BackendResult:
    backend: str
    lines: int
    import_seconds: float
    start_seconds: float
    memory: Memory | None = None
    steps: list[Step] = field(default_factory=list)
    overload: list[dict[str, Any]] = field(default_factory=list)
    storm: dict[str, Any] | None = None
    rss_idle_kib: int = 0
    error: str = ""
    note: str = ""  # Kamailio: version, options, warm-up

    def best(self) -> Step | None:
        ok = [s for s in self.steps if s.passed]
        return max(ok, key=lambda s: s.target) if ok else None


@dataclass
class Target:
    """What SIPp registers with: the switch or Kamailio."""

    name: str
    sip_target: str
    pids: Callable[[], list[int]]
    """The server's processes, whose CPU time is counted."""
    alive: Callable[[], bool]
    returncode: Callable[[], int | None]
    rss_kib: Callable[[], int] | None
    """None: not measured (Kamailio: its bindings are in shared memory)."""


# ------------------------------------------------------------------------- database


def pg_base_url() -> str:
    url = os.environ.get("SOFTSWITCH_TEST_PG_URL") or os.environ.get("SOFTSWITCH_BENCH_PG_URL")
    if url:
        return url
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-postgres.sh")], capture_output=True, text=True,
                          timeout=600)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"no PostgreSQL (scripts/ensure-postgres.sh exit {proc.returncode}): {proc.stderr.strip()}")
    return lines[-1].strip()


async def _pg_admin(base: str, sql: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(base)
    conn = await asyncpg.connect(user=u.username or "postgres", password=u.password, host=u.host or "127.0.0.1",
                                 port=u.port or 5432, database=u.database or "postgres", timeout=10)
    try:
        if sql.startswith("DROP DATABASE"):
            name = sql.split('"')[1]
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name)
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_database(base: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    asyncio.run(_pg_admin(base, f'CREATE DATABASE "{name}"'))
    u = make_url(base)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+asyncpg")
    return u.set(database=name).render_as_string(hide_password=False)


# --------------------------------------------------------------------------- runner


def sipp_step(target: Target, csv: Path, rate: int, calls: int, duration: float, local_port: int,
              workdir: Path) -> tuple[SippResult, float, float, int]:
    """One bounded SIPp run; returns (result, server CPU s, SIPp CPU s, UDP drops)."""
    cpu0, kids0, drops0 = cpu_seconds(target.pids()), children_cpu_seconds(), udp_rcvbuf_errors()
    r = run_sipp(
        "uac_register_digest", target.sip_target, inf_csv=csv, calls=calls, rate=rate, transport="u1",
        extra=SIPP_TUNING, timeout=duration * 3 + 15, local_port=local_port, workdir=workdir,
        trace_msg=False, trace_rtt=True, limit=rate * 5 + 1000,
    )
    return (r, cpu_seconds(target.pids()) - cpu0, children_cpu_seconds() - kids0, udp_rcvbuf_errors() - drops0)


def summarise_step(backend: str, rate: int, expected: int, r: SippResult, scpu: float, kcpu: float, drops: int,
                   rss_kib: int | None) -> Step:
    rtts = r.rtts_ms()
    done = r.completion_times()
    span = (max(done) - min(done)) / 1000.0 if len(done) > 1 else 0.0
    achieved = (len(done) - 1) / span if span > 0 else 0.0
    ok, failed = r.successful, r.failed
    failed += max(0, expected - ok - failed)  # never completed (global timeout) = failed
    return Step(
        backend=backend, target=rate, expected=expected, achieved=round(achieved, 1), ok=ok, failed=failed,
        retrans=r.retransmissions, p50_ms=percentile(rtts, 0.50), p99_ms=percentile(rtts, 0.99),
        max_ms=max(rtts) if rtts else float("nan"),
        switch_cpu_us_per_reg=round(1e6 * scpu / ok, 1) if ok else float("nan"),
        sipp_cpu_us_per_reg=round(1e6 * kcpu / ok, 1) if ok else float("nan"),
        rss_mib=round(rss_kib / 1024, 1) if rss_kib is not None else float("nan"), udp_drops=drops,
        sipp_exit=r.returncode,
        passed=failed == 0 and achieved >= 0.95 * rate, workdir=str(r.workdir),
    )


def bench_backend(backend: str, db_url: str, args: argparse.Namespace, out: Path) -> BackendResult:
    home = out / backend
    home.mkdir(parents=True, exist_ok=True)
    key = home / "softswitch.key"
    lines = make_lines(args.lines)
    print(f"[{backend}] importing {len(lines)} lines ...", flush=True)
    t0 = time.monotonic()
    doc_path = home / "lines.json"
    doc_path.write_text(json.dumps(import_document(lines)))
    import_file(db_url, str(doc_path), key_file=key, cwd=home, timeout=1800)
    import_s = time.monotonic() - t0
    csv = write_injection_csv(home / "users.csv", [(li.number, li.password) for li in lines])

    extra = ["--rate-limit", "0", "--digest-algorithms", "MD5", "--qualify-interval", str(args.qualify_interval),
             *args.switch_arg]
    switch = SwitchProcess(db_url=db_url, workdir=home, key_file=key, extra_args=extra, start_timeout=120,
                           env={"SOFTSWITCH_LOG_LEVEL": args.log_level})
    t0 = time.monotonic()
    switch.start()
    res = BackendResult(backend=backend, lines=len(lines), import_seconds=round(import_s, 1),
                        start_seconds=round(time.monotonic() - t0, 1))
    spid = switch.pid or 0
    target = Target(backend, switch.sip_target, lambda: [spid], switch.alive,
                    lambda: switch.proc.returncode if switch.proc else None, switch.rss_kib)
    # One SIPp address for the whole run: every step refreshes the same bindings
    # instead of piling up new contacts per line.
    sipp_port = free_port("udp")
    try:
        print(f"[{backend}] switch pid {switch.pid} on {switch.sip_target}, log {switch.log_path}", flush=True)
        time.sleep(args.settle)
        rss0 = switch.rss_kib()
        res.rss_idle_kib = rss0
        if not args.skip_memory:
            # ---- memory: one registration per line
            rate = min(args.memory_rate, len(lines))
            r, scpu, kcpu, drops = sipp_step(target, csv, rate, len(lines), len(lines) / rate, sipp_port,
                                             home / "memory")
            reg_s = len(lines) / rate
            wait_idle(target.pids)
            rss_burst = switch.rss_kib()
            # RFC 3261 §17.2.2: a UDP server transaction stays Completed for Timer J = 64*T1
            # (32 s) after its final response. Read RSS once they are gone, so the figure is
            # the bindings' (and the line directory's) cost, not the burst's.
            time.sleep(args.memory_settle)
            rss1 = switch.rss_kib()
            failed = r.failed + max(0, len(lines) - r.successful - r.failed)
            res.memory = Memory(
                backend=backend, bindings=r.successful, rss_before_mib=round(rss0 / 1024, 1),
                rss_after_mib=round(rss1 / 1024, 1), rss_right_after_mib=round(rss_burst / 1024, 1),
                per_10k_bindings_mib=round((rss1 - rss0) / 1024 * 10000 / max(1, r.successful), 2),
                register_seconds=round(reg_s, 1), failed=failed,
            )
            print(f"[{backend}] memory: {asdict(res.memory)}", flush=True)
        if not args.skip_ladder:
            run_ladder(target, csv, args.rates, args, home, sipp_port, res)
        plain = _plain_csv(home, lines)
        run_storm(switch, plain, args, res, home)  # first: its memory figure wants bindings that did not exist yet
        run_overload(switch, plain, args, res)
    except Exception as exc:  # noqa: BLE001 - report and go on with the next backend
        res.error = f"{type(exc).__name__}: {exc}"
        print(f"[{backend}] ERROR {res.error}", flush=True)
    finally:
        switch.stop()
    return res


def _plain_csv(home: Path, lines: list[Line]) -> Path:
    plain = home / "lines.csv"
    plain.write_text("".join(f"{li.number};{li.password}\n" for li in lines))
    return plain


def _overload_client(switch: SwitchProcess, plain: Path, *argv: str, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(ROOT / "bench" / "overload.py"), *argv, "--target", switch.sip_target,
           "--lines-csv", str(plain)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"overload.py failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run_overload(switch: SwitchProcess, plain: Path, args: argparse.Namespace, res: BackendResult) -> None:
    """Offered load at multiples of the capacity: p99 of what is accepted, and what is shed."""
    if not args.overload:
        return
    best = res.best()
    capacity = args.capacity or (best.target if best else 0)
    if not capacity:
        print(f"[{res.backend}] overload: no capacity (give --capacity or let the ladder pass a step)", flush=True)
        return
    for mult in args.overload:
        rate = capacity * mult
        cpu0 = proc_cpu_seconds(switch.pid or 0)
        r = _overload_client(switch, plain, "rate", "--rate", str(rate), "--duration", str(args.duration),
                             timeout=args.duration * 3 + 90)
        r.update(multiple=mult, capacity=capacity,
                 switch_cpu_s=round(proc_cpu_seconds(switch.pid or 0) - cpu0, 1), rss_mib=round(switch.rss_kib() / 1024, 1))
        res.overload.append(r)
        print(f"[{res.backend}] overload {mult}x ({rate}/s): {json.dumps(r)}", flush=True)
        time.sleep(max(args.pause, 25.0))  # the shed ones were told to come back within 20 s


def run_storm(switch: SwitchProcess, plain: Path, args: argparse.Namespace, res: BackendResult,
              home: Path | None = None) -> None:
    """Every line re-registers within a few seconds (a mass reboot after a power cut)."""
    if not args.storm:
        return
    rss0 = switch.rss_kib()
    cpu0 = proc_cpu_seconds(switch.pid or 0)
    load = [round(x, 2) for x in os.getloadavg()]  # the import just before counts in it: the 1-min figure lags
    if args.storm_client == "sipp":
        r = sipp_storm(switch.sip_target, plain, args.storm, args.storm_window, args.storm_deadline,
                       (home or plain.parent) / "storm")
    else:
        r = _overload_client(switch, plain, "storm", "--limit", str(args.storm), "--window", str(args.storm_window),
                             "--deadline", str(args.storm_deadline), timeout=args.storm_deadline + 120)
    r["client"] = args.storm_client
    r["load_average_before"] = load
    r["switch_cpu_s"] = round(proc_cpu_seconds(switch.pid or 0) - cpu0, 1)
    time.sleep(args.memory_settle)
    rss1 = switch.rss_kib()
    before = switch_bindings_before = rss0
    registered = int(r.get("registered", 0)) or 1
    r.update(rss_before_mib=round(before / 1024, 1), rss_after_mib=round(rss1 / 1024, 1),
             mib_per_100k_bindings=round((rss1 - switch_bindings_before) / 1024 * 100_000 / registered, 1),
             note="per-100k figure valid when the storm's lines had no binding before (use --skip-memory)")
    res.storm = r
    timeline = r.pop("timeline", [])
    if isinstance(timeline, dict):  # overload.py: {"columns": [...], "per_second": [[...], ...]}, second 0 first
        timeline = [{"t": i, **dict(zip(timeline.get("columns", []), row, strict=False))}
                    for i, row in enumerate(timeline.get("per_second", []))]
    print(f"[{res.backend}] storm: {json.dumps(r)}", flush=True)
    if timeline:
        print(fmt_timeline(timeline), flush=True)
    r["timeline"] = timeline


def sipp_storm(target: str, plain: Path, lines: int, window: float, deadline: float, workdir: Path
               ) -> dict[str, Any]:
    """The storm with SIPp (``sipp_scenarios/uac_register_storm.xml``): one call per line, all
    started within ``window`` s (``-r lines/window``), each waiting out the Retry-After of a 503.

    SIPp is a C++ event loop: on the 2-core box it sends a 100,000-line storm on schedule,
    where the asyncio client (overload.py) stalled for whole seconds and counted its own
    starvation as lost lines. ``-l lines``: nothing waits for a free call slot; ``-timeout
    deadline``: what is not registered by then is lost. Figures from its files: ``-trace_rtt``
    (when each line's 200 came, rtd 1 from the call's start, rtd 2 the last attempt),
    ``-trace_stat`` and ``-trace_counts`` once a second (the timeline; 503s are the receptions
    at the scenario's 503 indexes).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(plain) as f:
        for row in f:
            number, password = row.strip().split(";")[:2]
            rows.append((number, password))
            if len(rows) >= lines:
                break
    csv = write_injection_csv(workdir / "storm_users.csv", rows)
    rate = len(rows) / window
    drops0, kids0 = udp_rcvbuf_errors(), children_cpu_seconds()
    t0 = time.monotonic()
    r = run_sipp(
        "uac_register_storm", target, inf_csv=csv, calls=len(rows), rate=rate, transport="u1",
        extra=[*SIPP_TUNING, "-trace_counts"], timeout=deadline, workdir=workdir, trace_msg=False,
        trace_rtt=True, limit=len(rows),
    )
    wall = time.monotonic() - t0
    out = summarise_sipp_storm(r, len(rows), window, deadline, wall=wall, udp_drops=udp_rcvbuf_errors() - drops0)
    out["sipp_cpu_s"] = round(children_cpu_seconds() - kids0, 1)  # the client's own cost (it is the only child here)
    return out


def _csv_rows(path: Path | None) -> list[dict[str, str]]:
    if path is None or not path.exists():
        return []
    text = [ln.rstrip("\n") for ln in path.read_text("utf-8", "replace").splitlines() if ln.strip()]
    if len(text) < 2:
        return []
    head = text[0].split(";")
    return [dict(zip(head, ln.split(";"), strict=False)) for ln in text[1:]]


def _epoch(stamp: str) -> float:
    """SIPp's time columns: "date<TAB>time<TAB>epoch.micro"."""
    try:
        return float(stamp.rsplit("\t", 1)[-1])
    except ValueError:
        return float("nan")


def _num(row: dict[str, str], key: str) -> int:
    try:
        return int(float(row.get(key, "0") or 0))
    except ValueError:
        return 0


def summarise_sipp_storm(r: SippResult, lines: int, window: float, deadline: float, *, wall: float = 0.0,
                         udp_drops: int = 0) -> dict[str, Any]:
    """The storm's figures from SIPp's files, in overload.py's storm keys (plus a timeline)."""
    stats = _csv_rows(r.stat_file)
    start = _epoch(stats[0]["StartTime"]) if stats else float("nan")
    counts_files = sorted(r.workdir.glob("uac_register_storm_*_counts.csv"), key=lambda p: p.stat().st_mtime)
    counts = _csv_rows(counts_files[-1] if counts_files else None)

    def sheds(row: dict[str, str]) -> int:  # a 503 to either REGISTER, and the late ones absorbed while waiting
        return sum(_num(row, k) for k in row if k.endswith("_503_Recv"))

    # -trace_rtt: "date_ms;response_time_ms;rtd" per timed exchange; the date is ms since SIPp started.
    done = r.completion_times(1)
    after_s = sorted(ms / 1000.0 for ms in done)
    registered = r.successful
    # Per second: the stat file's periodic (P) columns, the counts file's cumulative 503s differenced.
    timeline: list[dict[str, Any]] = []
    prev_shed = 0
    by_second: dict[int, int] = {}
    for c in counts:
        by_second[round(_epoch(c.get("CurrentTime", "")) - start)] = sheds(c)
    for row in stats[1:]:
        sec = round(_epoch(row["CurrentTime"]) - start)
        shed_c = by_second.get(sec, prev_shed)
        if timeline and timeline[-1]["t"] >= sec:  # the final dump at exit, within the last second
            sec = timeline[-1]["t"] + 1
        timeline.append({"t": sec, "started": _num(row, "OutgoingCall(P)"), "registered": _num(row, "SuccessfulCall(P)"),
                         "shed": shed_c - prev_shed, "retransmissions": _num(row, "Retransmissions(P)"),
                         "timeouts": _num(row, "FailedMaxUDPRetrans(P)"), "failed": _num(row, "FailedCall(P)"),
                         "open": _num(row, "CurrentCall")})
        prev_shed = max(prev_shed, shed_c)
    last = stats[-1] if stats else {}
    total_sheds = sheds(counts[-1]) if counts else 0
    lost = lines - registered
    return {
        "mode": "storm", "lines": lines, "window_s": window, "deadline_s": deadline, "registered": registered,
        "lost": lost,
        "all_registered_after_s": round(after_s[-1], 1) if after_s and lost == 0 else None,
        "p50_registered_after_s": round(percentile(after_s, 0.50), 1) if after_s else float("nan"),
        "p99_registered_after_s": round(percentile(after_s, 0.99), 1) if after_s else float("nan"),
        "last_registered_after_s": round(after_s[-1], 1) if after_s else None,
        "sheds": total_sheds, "timeouts": _num(last, "FailedMaxUDPRetrans(C)"),
        "failed": _num(last, "FailedCall(C)"), "unexpected": _num(last, "FailedUnexpectedMessage(C)"),
        "retransmissions": _num(last, "Retransmissions(C)"),
        "p99_last_attempt_ms": round(percentile(r.rtts_ms(2), 0.99), 1) if r.rtts_ms(2) else float("nan"),
        "sipp_exit": r.returncode, "sipp_wall_s": round(wall, 1), "udp_drops": udp_drops, "workdir": str(r.workdir),
        "timeline": timeline,
    }


def fmt_timeline(timeline: list[dict[str, Any]]) -> str:
    cols = ("t", "started", "registered", "shed", "retransmissions", "timeouts", "open")
    out = ["  " + " ".join(f"{c:>15}" if c != "t" else f"{c:>4}" for c in cols)]
    for row in timeline:
        out.append("  " + " ".join(f"{row.get(c, 0):>15}" if c != "t" else f"{row.get(c, 0):>4}" for c in cols))
    return "\n".join(out)


def run_ladder(target: Target, csv: Path, rates: list[int], args: argparse.Namespace, home: Path, sipp_port: int,
               res: BackendResult) -> None:
    """The rate ladder, the same for the switch and Kamailio: ``--duration`` s per step, stop at the first failure."""
    for rate in rates:
        calls = int(rate * args.duration)
        r, scpu, kcpu, drops = sipp_step(target, csv, rate, calls, args.duration, sipp_port, home / f"step_{rate}")
        if not target.alive():
            res.error = f"{target.name} died during the {rate}/s step (exit {target.returncode()})"
            print(f"[{target.name}] {res.error}", flush=True)
            break
        step = summarise_step(target.name, rate, calls, r, scpu, kcpu, drops,
                              target.rss_kib() if target.rss_kib else None)
        res.steps.append(step)
        print(f"[{target.name}] {fmt_step(step)}", flush=True)
        if not step.passed and not args.no_stop:
            break
        time.sleep(args.pause)
        wait_idle(target.pids)


def bench_kamailio(binary: str, args: argparse.Namespace, out: Path) -> BackendResult:
    """The same lines, scenario and SIPp arguments against Kamailio (registrar + auth_db, usrloc in memory)."""
    home = out / "kamailio"
    home.mkdir(parents=True, exist_ok=True)
    lines = make_lines(args.lines)
    users = [(li.number, li.password) for li in lines]
    csv = write_injection_csv(home / "users.csv", users)
    res = BackendResult(backend="kamailio", lines=len(lines), import_seconds=0.0, start_seconds=0.0)
    kam: Kamailio | None = None
    try:
        t0 = time.monotonic()
        kam = Kamailio(binary, home, users, workers=KAMAILIO_WORKERS, shm_mb=KAMAILIO_SHM_MB,
                       defines=["WITH_HTABLE_AUTH"])
        res.import_seconds = round(time.monotonic() - t0 - kam.start_seconds, 1)  # the db_text table
        res.start_seconds = round(kam.start_seconds, 1)
        target = Target("kamailio", kam.target, kam.pids, kam.alive, kam.proc.poll, None)
        print(f"[kamailio] {kam.version}, pid {kam.pid} (+{len(kam.pids()) - 1} children) on {kam.target}, "
              f"log {kam.log}", flush=True)
        sipp_port = free_port("udp")
        time.sleep(args.settle)
        # Warm-up, as the switch's memory phase: every line registered once, so the ladder
        # refreshes existing bindings on both. No memory figure: usrloc is in shared memory.
        rate = min(args.memory_rate, len(lines))
        r, _, _, _ = sipp_step(target, csv, rate, len(lines), len(lines) / rate, sipp_port, home / "warmup")
        failed = r.failed + max(0, len(lines) - r.successful - r.failed)
        res.note = (f"{kam.version}, -n {KAMAILIO_WORKERS} -m {KAMAILIO_SHM_MB}; warm-up: {r.successful} lines "
                    f"registered once at {rate}/s, {failed} failed")
        print(f"[kamailio] {res.note}", flush=True)
        wait_idle(target.pids)
        run_ladder(target, csv, args.kamailio_rates, args, home, sipp_port, res)
    except Exception as exc:  # noqa: BLE001 - report it with the rest
        res.error = f"{type(exc).__name__}: {exc}"
        print(f"[kamailio] ERROR {res.error}", flush=True)
    finally:
        if kam is not None:
            kam.stop()
    return res


# --------------------------------------------------------------------------- output


def _f(x: float) -> str:
    return "-" if x != x else f"{x:.0f}"  # NaN -> "-"


def fmt_step(s: Step) -> str:
    return (f"target={s.target}/s achieved={s.achieved:.0f}/s ok={s.ok} fail={s.failed} retrans={s.retrans} "
            f"p50={_f(s.p50_ms)}ms p99={_f(s.p99_ms)}ms server_cpu={_f(s.switch_cpu_us_per_reg)}us/reg "
            f"rss={_f(s.rss_mib)}MiB udp_drops={s.udp_drops} {'PASS' if s.passed else 'FAIL'}")


def ratios(results: list[BackendResult]) -> list[tuple[BackendResult, Step | None, Step | None]]:
    """(switch backend, its best step, Kamailio's best step) for each switch backend, when Kamailio ran."""
    kam = next((r for r in results if r.backend == "kamailio"), None)
    if kam is None:
        return []
    return [(r, r.best(), kam.best()) for r in results if r is not kam]


def ratio_lines(results: list[BackendResult]) -> list[str]:
    rows = ratios(results)
    if not rows:
        return []
    kam = next(r for r in results if r.backend == "kamailio")
    out = ["", "Ratio to Kamailio (same run, same lines, same SIPp scenario and arguments; CPU per registration "
               "at each one's highest passing step, Kamailio's summed over its main process and children):"]
    for res, a, b in rows:
        if a is None or b is None:
            out.append(f"  {res.backend} / kamailio: n/a (no passing step for "
                       f"{' and '.join(r.backend for r, s in ((res, a), (kam, b)) if s is None)})")
            continue
        notes = [f"{r.backend} passed its whole ladder: its maximum is higher" for r in (res, kam)
                 if r.steps and all(s.passed for s in r.steps) and not r.error]
        out.append(f"  {res.backend} / kamailio: max registrations/s {a.achieved:.0f} / {b.achieved:.0f} = "
                   f"{a.achieved / b.achieved:.2f}; CPU per registration {a.switch_cpu_us_per_reg:.0f} / "
                   f"{b.switch_cpu_us_per_reg:.0f} µs = {a.switch_cpu_us_per_reg / b.switch_cpu_us_per_reg:.2f}"
                   + "".join(f"  ({n})" for n in notes))
    return out


def table(results: list[BackendResult]) -> str:
    head = ("backend", "target/s", "achieved/s", "ok", "fail", "retrans", "p50 ms", "p99 ms", "max ms",
            "server µs/reg", "sipp µs/reg", "RSS MiB", "UDP drops", "")
    rows = [head]
    for res in results:
        for s in res.steps:
            rows.append((res.backend, str(s.target), f"{s.achieved:.0f}", str(s.ok), str(s.failed), str(s.retrans),
                         _f(s.p50_ms), _f(s.p99_ms), _f(s.max_ms), _f(s.switch_cpu_us_per_reg),
                         _f(s.sipp_cpu_us_per_reg), _f(s.rss_mib), str(s.udp_drops),
                         "PASS" if s.passed else "FAIL"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(r.backend == "kamailio" for r in results):
        lines.append("(server µs/reg: the switch process, or Kamailio's main process + children; "
                     "RSS: the switch only)")
    mem = ["", "Resident memory (switch RSS, idle -> after registering every line once and Timer J):"]
    for res in results:
        m = res.memory
        if m:
            mem.append(f"  {res.backend}: {m.bindings} bindings, {m.rss_before_mib:.1f} -> {m.rss_after_mib:.1f} MiB "
                       f"= {m.per_10k_bindings_mib:.1f} MiB per 10,000 bindings "
                       f"(RSS right after the burst: {m.rss_right_after_mib:.1f} MiB) "
                       f"(registered in {m.register_seconds:.0f}s, {m.failed} failed)")
        elif res.backend == "kamailio":
            mem.append("  kamailio: not measured (usrloc keeps the bindings in shared memory, preallocated with "
                       f"-m {KAMAILIO_SHM_MB}: not comparable by RSS)")
    best = ["", "Highest passing step (0 failures, >= 95% of target):"]
    for res in results:
        b = res.best()
        top = f"{b.achieved:.0f} registrations/s (p99 {_f(b.p99_ms)} ms)" if b else "none"
        where = (f"credentials of {res.lines} lines in an htable; {res.note}; start: {res.start_seconds:.0f}s"
                 if res.backend == "kamailio" else
                 f"import of {res.lines} lines: {res.import_seconds:.0f}s, start: {res.start_seconds:.0f}s")
        best.append(f"  {res.backend}: " + top + (f"  [{res.error}]" if res.error else "") + f"  ({where})")
    return "\n".join(lines + mem + best + ratio_lines(results))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short run: 2,000 lines, rates 250/500/1000, 3 s steps")
    p.add_argument("--backends", default="sqlite,postgresql",
                   help="comma list of sqlite, postgresql (none: only Kamailio, with --with-kamailio)")
    p.add_argument("--rates", default=None, help="comma list of registrations/s for the switch (default 250..4000)")
    p.add_argument("--with-kamailio", action="store_true",
                   help="also measure Kamailio (bench/peers/kamailio.cfg, -n 1) with the same lines, scenario and "
                        "SIPp arguments, and print the ratios (bench/peers/setup_peers.sh installs it)")
    p.add_argument("--kamailio-rates", default=None,
                   help="comma list of registrations/s for Kamailio (default 8000..28000)")
    p.add_argument("--duration", type=float, default=None, help="seconds per ladder step (default 10)")
    p.add_argument("--lines", type=int, default=None, help="distinct lines to import and register (default 10000)")
    p.add_argument("--memory-rate", type=int, default=250,
                   help="registrations/s for the memory phase (default 250: gentle, so every line registers)")
    p.add_argument("--qualify-interval", type=float, default=86400.0,
                   help="switch --qualify-interval (default: effectively off, SIPp does not answer OPTIONS)")
    p.add_argument("--switch-arg", action="append", default=[], help="extra `softswitch run` argument (repeatable)")
    p.add_argument("--log-level", default="WARNING", help="switch log level during the bench (default WARNING)")
    p.add_argument("--memory-settle", type=float, default=None,
                   help="seconds to wait after registering before reading RSS (default 35 = Timer J + 3; quick: 5)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds to wait before reading RSS")
    p.add_argument("--pause", type=float, default=2.0, help="seconds between ladder steps")
    p.add_argument("--no-stop", action="store_true", help="run every step even after one fails")
    p.add_argument("--out", default=None, help="output directory (default bench/out/register-<time>)")
    p.add_argument("--keep-db", action="store_true", help="do not drop the PostgreSQL bench database")
    p.add_argument("--overload", default="", help="comma list of capacity multiples to offer (e.g. 2,4)")
    p.add_argument("--capacity", type=int, default=0, help="registrations/s the overload multiples refer to "
                   "(default: the ladder's best passing rate)")
    p.add_argument("--storm", type=int, default=0, help="lines in a registration storm (e.g. 100000; 0 = none)")
    p.add_argument("--storm-window", type=float, default=10.0, help="seconds in which every storm line starts")
    p.add_argument("--storm-deadline", type=float, default=60.0, help="seconds by which all must be registered")
    p.add_argument("--storm-client", choices=["sipp", "python"], default="sipp",
                   help="storm client: SIPp (sipp_scenarios/uac_register_storm.xml, default) or bench/overload.py")
    p.add_argument("--skip-ladder", action="store_true", help="no SIPp rate ladder (give --capacity for --overload)")
    p.add_argument("--skip-memory", action="store_true", help="no SIPp memory phase")
    args = p.parse_args(argv)
    args.overload = [float(x) for x in args.overload.split(",") if x.strip()]
    args.rates = [int(x) for x in args.rates.split(",")] if args.rates else ([250, 500, 1000] if args.quick
                                                                              else DEFAULT_RATES)
    if args.kamailio_rates and not args.with_kamailio:
        p.error("--kamailio-rates needs --with-kamailio")
    args.kamailio_rates = ([int(x) for x in args.kamailio_rates.split(",")] if args.kamailio_rates
                           else DEFAULT_KAMAILIO_RATES)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.lines = max(args.lines or (2000 if args.quick else 10000), args.storm)
    if args.memory_settle is None:
        args.memory_settle = 5.0 if args.quick else 35.0
    if args.lines < 2:
        p.error("--lines must be at least 2")
    if shutil.which("sipp") is None:
        print("sipp not found: run scripts/bootstrap.sh --test (Debian package sip-tester)", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else ROOT / "bench" / "out" / time.strftime("register-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    print(f"# bench_register: {args.lines} lines, rates {args.rates}"
          + (f", Kamailio rates {args.kamailio_rates}" if args.with_kamailio else "")
          + f", {args.duration:g}s/step, {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, out={out}", flush=True)

    results: list[BackendResult] = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip() and b.strip() != "none"]:
        if backend == "sqlite":
            results.append(bench_backend(backend, f"sqlite+aiosqlite:///{out / 'sqlite' / 'bench.db'}", args, out))
        elif backend == "postgresql":
            base = pg_base_url()
            name = f"bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            url = pg_database(base, name)
            try:
                results.append(bench_backend(backend, url, args, out))
            finally:
                if not args.keep_db:
                    asyncio.run(_pg_admin(base, f'DROP DATABASE IF EXISTS "{name}"'))
        else:
            p.error(f"unknown backend {backend!r}")
    if args.with_kamailio:
        try:
            binary = setup_peers("kamailio").get("kamailio", "")
        except RuntimeError as exc:
            binary = ""
            print(f"kamailio unavailable: {exc}", flush=True)
        if binary:
            results.append(bench_kamailio(binary, args, out))
        else:
            results.append(BackendResult(backend="kamailio", lines=args.lines, import_seconds=0.0, start_seconds=0.0,
                                         error="unavailable (bench/peers/setup_peers.sh kamailio failed)"))

    text = table(results)
    print("\n" + text)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2, default=str))
    (out / "summary.txt").write_text(text + "\n")
    print(f"\nraw files: {out}")
    for r in results:
        for o in r.overload:
            print(f"OVERLOAD {r.backend} {o['multiple']:g}x of {o['capacity']}/s: offered {o['offered_per_s']}/s, "
                  f"accepted {o['goodput_per_s']}/s (p99 {o['p99_ms']} ms), shed {o['shed']}, failed {o['failed']}")
        if r.storm:
            st = r.storm
            print(f"STORM {r.backend}: {st['lines']} lines in {st['window_s']:g} s: all registered after "
                  f"{st['all_registered_after_s']} s, lost {st['lost']}, 503s {st['sheds']}; "
                  f"{st['mib_per_100k_bindings']} MiB per 100,000 bindings")
    all_ok = all(not r.error and (r.steps[0].passed if r.steps else args.skip_ladder) for r in results)
    summary = " ".join(
        f"{r.backend}={max((s.achieved for s in r.steps if s.passed), default=0):.0f}/s"
        + (f"(mem {r.memory.per_10k_bindings_mib if r.memory else float('nan'):.1f}MiB/10k)"
           if r.backend != "kamailio" else "") for r in results
    )
    for res, a, b in ratios(results):
        summary += (f" {res.backend}/kamailio={a.achieved / b.achieved:.2f}(rate),"
                    f"{a.switch_cpu_us_per_reg / b.switch_cpu_us_per_reg:.2f}(cpu)" if a and b
                    else f" {res.backend}/kamailio=n/a")
    print(f"SUMMARY bench_register: {summary}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
