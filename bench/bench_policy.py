"""The call-policy decision function in-process: decisions per second of CPU (aim ≥ 200,000/s).

Run: ``.venv/bin/python bench/bench_policy.py [--lines 10000] [--seconds 1.0] [--profile]``

The state is what ``bench_calls.py --policy`` gives the switch: every line
with two barring categories (international, premium) and a no-answer
forward to another line, plus a few hundred lines with an unconditional
forward. The calls are a mix: on-net to a line that rings with its
no-answer forward pending, on-net through an unconditional forward
(decided again from the forwarder), mobile, barred international, 112,
and a busy-limit check. The number is normalised outside the loop (the
manager normalises once per INVITE for routing anyway), so the figure is
the policy's own cost on top of routing: ``decide`` end to end, including
``routing.decide`` inside it.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switch.services.lines import LineInfo  # noqa: E402
from switch.services.numbering import normalise  # noqa: E402
from switch.services.policy.engine import Instant, decide, decide_forward  # noqa: E402
from switch.services.policy.model import CustomerPolicy, ForwardRule, LinePolicy, LiveView, PolicyState  # noqa: E402
from switch.services.routing import FromLine, RoutingSnapshot  # noqa: E402
from switch.services.routing import decide as route  # noqa: E402
from switch.services.trunks import RouteEntry, RoutingTable, TrunkInfo  # noqa: E402
from switch.store.models import BarringCategory, ForwardKind  # noqa: E402


def world(n: int) -> tuple[RoutingSnapshot, PolicyState, LiveView, list[LineInfo]]:
    lines = [LineInfo(i, f"u{i}", f"+47220{i:05d}", "", "", i // 2, 1 + i % 2) for i in range(1, n + 1)]
    by_number = {li.number: li for li in lines}
    barring = frozenset({BarringCategory.INTERNATIONAL, BarringCategory.PREMIUM})
    policies = {}
    for li in lines:
        other = lines[li.line_id % n].number
        forwards = {ForwardKind.NO_ANSWER: ForwardRule(ForwardKind.NO_ANSWER, other, 20)}
        if li.line_id % 50 == 0:
            forwards[ForwardKind.UNCONDITIONAL] = ForwardRule(ForwardKind.UNCONDITIONAL, other)
        policies[li.line_id] = LinePolicy(li.line_id, li.number, 1 + li.line_id // 2, barring, forwards)
    customers = {c: CustomerPolicy(c, f"C{c}") for c in {p.customer_id for p in policies.values()}}
    table = RoutingTable([TrunkInfo(1, "carrier", "192.0.2.1"), TrunkInfo(2, "nodnett", "192.0.2.2", emergency=True)],
                         [RouteEntry(1, "+", (1,)), RouteEntry(2, "+47", (1,))])
    live = LiveView(calls_on_line={lines[5].line_id: 1}, calls_of_customer={}, attempts={})
    return RoutingSnapshot(by_number, table), PolicyState(policies, customers), live, lines


def measure(label: str, fn: Callable[[int], None], seconds: float) -> float:
    n = 1000
    while True:
        t0 = time.process_time()
        fn(n)
        took = time.process_time() - t0
        if took >= seconds:
            rate = n / took
            print(f"{label:<22} {rate:>12,.0f} decisions/s  ({took * 1e6 / n:.2f} µs each, {n:,} in {took:.2f} s CPU)")
            return rate
        n *= 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    routing, state, live, lines = world(args.lines)
    rng = random.Random(7)
    now = Instant(time.time(), 14)
    callers = [FromLine(rng.choice(lines)) for _ in range(1024)]
    onnet = [normalise(rng.choice(lines).number) for _ in range(1024)]
    forwarded = [normalise(li.number) for li in lines if li.line_id % 50 == 0][:1024]
    mix = onnet[:700] + forwarded[:100] + [normalise("91234567")] * 100 + [normalise("+4681234567")] * 80 + \
        [normalise("112")] * 44
    rng.shuffle(mix)

    def run(numbers: list[object]) -> Callable[[int], None]:
        def go(n: int) -> None:
            k = len(numbers)
            for i in range(n):
                decide(callers[i & 1023], numbers[i % k], routing, state, live, now)  # type: ignore[arg-type]
        return go

    def conditional(n: int) -> None:
        for i in range(n):
            line = lines[i % len(lines)]
            decide_forward(line, ForwardKind.NO_ANSWER, (), (line.number,), (), routing, state, live, now)

    def routing_only(n: int) -> None:
        k = len(mix)
        for i in range(n):
            route(callers[i & 1023], mix[i % k], routing)  # type: ignore[arg-type]

    base = measure("routing.decide alone", routing_only, args.seconds)
    results = {
        "mix": measure("mix", run(mix), args.seconds),  # type: ignore[arg-type]
        "on-net (CFNR pending)": measure("on-net (CFNR pending)", run(onnet), args.seconds),  # type: ignore[arg-type]
        "through a CFU": measure("through a CFU", run(forwarded), args.seconds),  # type: ignore[arg-type]
        "barred international": measure("barred international", run([normalise("+4681234567")]), args.seconds),  # type: ignore[arg-type]
        "no-answer fired": measure("no-answer fired", conditional, args.seconds),
    }
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run(mix)(200_000)  # type: ignore[arg-type]
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(15)
    ok = results["mix"] >= 200_000
    per = 1e6 / results["mix"] - 1e6 / base
    print(f"policy on top of routing (mix): {per:.2f} µs per call")
    print(f"target 200,000 decisions/s (mix): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
