"""SIPp OPTIONS rate against `softswitch run` over UDP (the SIP core's plain throughput).

Each SIPp "call" is one OPTIONS transaction answered by the switch itself: parse,
validate, transaction layer, response, send. A rate ladder with 0-failure steps,
p50/p99 response time and the switch's CPU µs per request.

    .venv/bin/python bench/bench_options.py [--rates 1000,2000,4000,6000] [--duration 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_register import SIPP_TUNING, percentile, proc_cpu_seconds, udp_rcvbuf_errors  # noqa: E402

from harness.ports import free_port  # noqa: E402
from harness.sipp import run_sipp  # noqa: E402
from harness.softswitch import SwitchProcess  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="1000,2000,3000,4000,6000,8000")
    ap.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_options_"))
    sw = SwitchProcess(
        db_url=f"sqlite+aiosqlite:///{work}/sw.db", workdir=work,
        extra_args=("--rate-limit", "0", "--qualify-interval", "0"),
    )
    sw.start()
    best = 0.0
    rows = []
    try:
        assert sw.pid is not None
        for rate in (int(r) for r in args.rates.split(",")):
            calls = int(rate * args.duration)
            cpu0, drops0 = proc_cpu_seconds(sw.pid), udp_rcvbuf_errors()
            r = run_sipp(
                "uac_options", sw.sip_target, calls=calls, rate=rate, transport="u1", extra=SIPP_TUNING,
                timeout=args.duration * 3 + 15, local_port=free_port("udp"), workdir=work / f"r{rate}",
                trace_msg=False, trace_rtt=True, limit=rate * 5 + 1000,
            )
            cpu = proc_cpu_seconds(sw.pid) - cpu0
            done = r.completion_times()
            span = (max(done) - min(done)) / 1000.0 if len(done) > 1 else 0.0
            achieved = (len(done) - 1) / span if span > 0 else 0.0
            failed = r.failed + max(0, calls - r.successful - r.failed)
            rtts = r.rtts_ms()
            ok = failed == 0 and achieved >= 0.95 * rate
            rows.append(
                f"{rate:>7} {achieved:>9.0f} {failed:>6} {r.retransmissions:>7} {percentile(rtts, 0.5):>6.0f} "
                f"{percentile(rtts, 0.99):>6.0f} {1e6 * cpu / max(1, r.successful):>8.0f} "
                f"{udp_rcvbuf_errors() - drops0:>6}  {'pass' if ok else 'FAIL'}"
            )
            print(rows[-1], flush=True)
            if ok:
                best = max(best, achieved)
            else:
                break
    finally:
        sw.stop()
    print()
    print("target  achieved failed retrans p50ms  p99ms  cpu_us/req drops")
    print("\n".join(rows))
    print(f"SUMMARY options_udp_max_rate={best:.0f}/s (0 failures, >=95% of target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
