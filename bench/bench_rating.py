"""Rating throughput in-process: finished calls priced per second of CPU (target ≥ 100,000/s).

Run: ``.venv/bin/python bench/bench_rating.py [--seconds 1.0] [--profile]``

Two figures, in CPU time of this process:

* ``rater``: ``Rater.rate(number, seconds, kind)`` alone (prefix lookup + price);
* ``cdr rows``: ``RatingService.rate_row(row)`` on CDR rows as the writer builds
  them (tariff version by start time, the line's customer and kind, the
  customer's running period total for the credit limit).

The numbers are a realistic mix: mostly Norwegian fixed/mobile, some
international over the NANP and +7 look-alikes, special numbers, unanswered calls.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switch.services.rating.rater import Rater, TariffBook  # noqa: E402
from switch.services.rating.tariff import bundled_tariff_paths, load_tariff  # noqa: E402

NUMBERS = [
    "+4722334455", "+4791234567", "+4741234567", "+4773123456", "+4755123456", "+4722000001",
    "+46812345678", "+4533123456", "+12125550123", "+18095551234", "+17875551234", "+74951234567",
    "+77272123456", "+4930123456", "+442071234567", "+5511987654321", "+41441234567",
    "1881", "02800", "+4781549100", "+4780012345", "+4782071234", "112", "+4782045123",
]


def measure(label: str, fn: Callable[[int], None], seconds: float) -> float:
    n = 1000
    while True:
        t0 = time.process_time()
        fn(n)
        took = time.process_time() - t0
        if took >= seconds:
            rate = n / took
            print(f"{label:<12} {rate:>12,.0f} ratings/s  ({took * 1e6 / n:.2f} µs each, {n:,} in {took:.2f} s CPU)")
            return rate
        n *= 2


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    tariff = load_tariff(bundled_tariff_paths()[0])
    rater = Rater(tariff)
    rnd = random.Random(7)
    calls = [(rnd.choice(NUMBERS), rnd.choice((0, 0, 12, 61, 185, 3600)), rnd.choice(("private", "business")))
             for _ in range(4096)]

    def rate_only(n: int) -> None:
        rate = rater.rate
        for i in range(n):
            number, secs, kind = calls[i & 4095]
            rate(number, secs, kind)

    results = {"rater": measure("rater", rate_only, args.seconds)}

    try:
        from switch.services.rating.service import Account, RatingService
    except ImportError:  # the row-level service is not there in every checkout
        RatingService = None  # type: ignore[assignment,misc]
    if RatingService is not None:
        service = RatingService(TariffBook([tariff]))
        service.set_accounts({i: Account(customer_id=i // 2, kind="business" if i % 5 == 0 else "private")
                              for i in range(1, 2001)})
        start = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
        rows = [
            {"calling_line_id": rnd.randint(1, 2000), "normalised": number, "number_class": None,
             "duration_s": secs, "setup_at": start, "direction": "outgoing"}
            for number, secs, _kind in calls
        ]

        def rate_rows(n: int) -> None:
            rate_row = service.rate_row
            for i in range(n):
                rate_row(dict(rows[i & 4095]))

        results["cdr rows"] = measure("cdr rows", rate_rows, args.seconds)
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(rate_only, 200_000)
        pstats.Stats(prof).sort_stats("tottime").print_stats(8)
    worst = min(results.values())
    print(f"target ≥ 100,000 ratings/s: {'met' if worst >= 100_000 else 'NOT met'} (slowest {worst:,.0f}/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
