#!/usr/bin/env python3
"""Memory after a flood of unauthenticated INVITEs: does the switch's RSS come back?

The hardening review sent 15,000 unauthenticated INVITEs (5 sources at 300/s,
under the per-source limit) to `softswitch run`: 15,057 live transactions were
left and RSS went 109 → 202 MB and stayed. Now each such INVITE gets one
stateless 407 and no transaction, and full garbage collections run every 30 s
while quiet (then ``malloc_trim``). This script measures it:

1. start `softswitch run` (SQLite, a few lines imported), wait, read RSS (baseline);
2. ``--sources`` UDP sockets each send ``--rate`` INVITEs/s for ``--seconds`` s, no
   credentials, each a new Call-ID (and counts the answers: 407s, anything else);
3. read RSS right after and then every 5 s for ``--watch`` s (default 60), and the
   live transaction count from ``/health``.

It prints one line per sample and a ``SUMMARY bench_flood_memory:`` line with
baseline, peak and final RSS and whether the final one is within 10 % of the
baseline (the issue's target). Small check: ``--seconds 5 --watch 40``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.softswitch import SwitchProcess, http_get_json, import_file  # noqa: E402

DOC = {"customers": [{"id": "C1", "name": "Bench", "adapters": [{"mac": "00:0E:08:00:00:01", "model": "spa112",
        "lines": [{"port": 1, "number": "22000001", "password": "Bench-pw-0001"}]}]}]}


def flood(port: int, src: str, rate: float, seconds: float, counts: dict[str, int], lock: threading.Lock) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(0.0)
    lport = s.getsockname()[1]
    n = int(rate * seconds)
    start = time.monotonic()
    got: dict[str, int] = {}
    for i in range(n):
        due = start + i / rate
        while True:
            now = time.monotonic()
            try:
                data = s.recv(65535)
                key = data.split(b" ", 2)[1].decode() if data.startswith(b"SIP/2.0 ") else "request"
                got[key] = got.get(key, 0) + 1
            except (BlockingIOError, OSError):
                if now >= due:
                    break
                time.sleep(min(0.001, due - now))
        cid = uuid.uuid4().hex
        msg = (f"INVITE sip:+4790000000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {src}:{lport};branch=z9hG4bK{cid}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:22000001@127.0.0.1>;tag={cid[:8]}\r\nTo: <sip:+4790000000@127.0.0.1>\r\n"
               f"Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:22000001@{src}:{lport}>\r\nContent-Length: 0\r\n\r\n")
        s.sendto(msg.encode(), ("127.0.0.1", port))
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        try:
            data = s.recv(65535)
            key = data.split(b" ", 2)[1].decode() if data.startswith(b"SIP/2.0 ") else "request"
            got[key] = got.get(key, 0) + 1
        except (BlockingIOError, OSError):
            time.sleep(0.01)
    s.close()
    with lock:
        for k, v in got.items():
            counts[k] = counts.get(k, 0) + v


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sources", type=int, default=5)
    p.add_argument("--rate", type=float, default=300.0, help="INVITEs/s per source (under the 400/s limit)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--watch", type=float, default=60.0)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    out = Path(args.out) if args.out else ROOT / "bench" / "out" / time.strftime("flood-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    db = f"sqlite+aiosqlite:///{out / 'flood.db'}"
    (out / "doc.json").write_text(json.dumps(DOC))
    import_file(db, str(out / "doc.json"), key_file=out / "softswitch.key", cwd=out)
    sw = SwitchProcess(db_url=db, workdir=out, key_file=out / "softswitch.key", extra_args=["--qualify-interval", "0"],
                       env={"SOFTSWITCH_LOG_LEVEL": "WARNING"})
    with sw:
        time.sleep(5.0)
        base = sw.rss_kib()
        counts: dict[str, int] = {}
        lock = threading.Lock()
        threads = [threading.Thread(target=flood, args=(sw.sip_port, f"127.0.0.{10 + i}", args.rate, args.seconds, counts, lock))
                   for i in range(args.sources)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent = int(args.rate * args.seconds) * args.sources
        peak = sw.rss_kib()
        print(f"flood: {sent} INVITEs in {time.monotonic() - t0:.1f} s, answers {counts}", flush=True)
        samples = []
        t1 = time.monotonic()
        while True:
            rss = sw.rss_kib()
            peak = max(peak, rss)
            _, health = http_get_json(sw.http_url + "/health")
            txns = health.get("sip", {}).get("transactions") if isinstance(health, dict) else None
            after = time.monotonic() - t1
            samples.append((after, rss, txns))
            print(f"  +{after:5.1f} s  RSS {rss / 1024:7.1f} MiB  transactions {txns}", flush=True)
            if after >= args.watch:
                break
            time.sleep(5.0)
    final = samples[-1][1]
    ok = final <= base * 1.10
    print(f"SUMMARY bench_flood_memory: baseline {base / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
          f"after {samples[-1][0]:.0f} s {final / 1024:.1f} MiB ({(final / base - 1) * 100:+.1f} %), "
          f"{'within' if ok else 'NOT within'} 10 % of baseline; live transactions at the end {samples[-1][2]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
