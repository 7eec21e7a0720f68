"""The policy decision function as a table: every rule of the fixed order and their interactions.

Each row: a world (lines, customers, barring, suspensions, forwards, live
counters), a call (caller, dialled), and the expected outcome: the cause of
a refusal, or where it goes (on-net line / trunk / emergency), the forward
chain, who is billed, and a word the trail must contain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pytest

from switch.services.b2bua.causes import Cause
from switch.services.lines import LineInfo
from switch.services.numbering import NumberClass, normalise
from switch.services.policy.categories import category_of
from switch.services.policy.engine import Instant, Refuse, Route, decide, decide_forward
from switch.services.policy.model import (
    ActiveSuspension,
    CustomerPolicy,
    ForwardRule,
    FraudLimits,
    LinePolicy,
    LiveView,
    PolicyConfig,
    PolicyState,
    Reach,
)
from switch.services.policy.validate import PolicyValidationError, validate_forward
from switch.services.routing import Emergency, FromLine, FromTrunk, OnNet, RoutingSnapshot, Trunks
from switch.services.trunks import RouteEntry, RoutingTable, TrunkInfo
from switch.store.models import BarringCategory as BC
from switch.store.models import ForwardKind as FK
from switch.store.models import SuspensionLevel, SuspensionReason

A, B, C, D = "+4722000001", "+4722000002", "+4722000003", "+4722000004"
MOBILE = "+4791234567"
SERVICE = "+4722990000"  # the operator's customer service (a line of another operator)
LINES = {n: LineInfo(i, f"u{i}", n, "", "", i, 1) for i, n in enumerate((A, B, C, D), start=1)}
CARRIER = TrunkInfo(1, "carrier", "192.0.2.1")
EMERG = TrunkInfo(2, "nodnett", "192.0.2.2", emergency=True)
ROUTING = RoutingSnapshot(
    lines_by_number=LINES, table=RoutingTable([CARRIER, EMERG], [RouteEntry(1, "+", (1,))])
)
DAY = Instant(1_800_000_000.0, 14)
NIGHT = Instant(1_800_000_000.0, 3)


def lid(number: str) -> int:
    return LINES[number].line_id


@dataclass
class World:
    """A test's policy state, built up by keyword: customers 1 (lines A, B) and 2 (C, D)."""

    barring: dict[str, set[BC]] = field(default_factory=dict)
    customer_barring: dict[int, set[BC]] = field(default_factory=dict)
    forwards: dict[str, dict[FK, str]] = field(default_factory=dict)
    suspended: dict[str, tuple[SuspensionLevel, SuspensionReason]] = field(default_factory=dict)
    customer_suspended: dict[int, tuple[SuspensionLevel, SuspensionReason]] = field(default_factory=dict)
    limits: dict[int, FraudLimits] = field(default_factory=dict)
    on_line: dict[str, int] = field(default_factory=dict)
    of_customer: dict[int, int] = field(default_factory=dict)
    attempts: dict[str, list[float]] = field(default_factory=dict)
    reach: dict[str, Reach] = field(default_factory=dict)
    hop_cap: int = 5

    def state(self) -> PolicyState:
        owner = {A: 1, B: 1, C: 2, D: 2}
        sid = iter(range(1, 100))
        lines = {}
        for n, info in LINES.items():
            sus = ()
            if n in self.suspended:
                level, reason = self.suspended[n]
                sus = (ActiveSuspension(next(sid), owner[n], info.line_id, level, reason, 1.0),)
            lines[info.line_id] = LinePolicy(
                info.line_id, n, owner[n], frozenset(self.barring.get(n, ())),
                {k: ForwardRule(k, t, 7 if k is FK.NO_ANSWER else None) for k, t in self.forwards.get(n, {}).items()},
                sus,
            )
        customers = {}
        for c in (1, 2):
            sus = ()
            if c in self.customer_suspended:
                level, reason = self.customer_suspended[c]
                sus = (ActiveSuspension(next(sid), c, None, level, reason, 2.0),)
            customers[c] = CustomerPolicy(c, f"C{c}", frozenset(self.customer_barring.get(c, ())), sus,
                                          self.limits.get(c, FraudLimits()))
        return PolicyState(lines, customers, PolicyConfig(hop_cap=self.hop_cap, customer_service=frozenset({SERVICE})))

    def live(self) -> LiveView:
        reach = {lid(n): r for n, r in self.reach.items()}
        return LiveView(
            calls_on_line={lid(n): v for n, v in self.on_line.items()},
            calls_of_customer=dict(self.of_customer),
            attempts={lid(n): v for n, v in self.attempts.items()},
            reach=lambda line_id: reach.get(line_id, Reach.REACHABLE),
        )


def run(world: World, caller: str, dialled: str, now: Instant = DAY, **kw: object) -> Refuse | Route:
    who = FromTrunk(CARRIER) if caller == "trunk" else FromLine(LINES[caller])
    return decide(who, normalise(dialled), ROUTING, world.state(), world.live(), now, **kw)  # type: ignore[arg-type]


def where(d: Refuse | Route) -> str:
    """'refused:<cause>', 'line:<number>', 'trunk:<number>' or 'emergency:<number>'."""
    if isinstance(d, Refuse):
        return f"refused:{d.cause.value}"
    r = d.route
    if isinstance(r, OnNet):
        return f"line:{r.line.number}"
    if isinstance(r, Trunks):
        return f"trunk:{r.number}"
    assert isinstance(r, Emergency)
    return f"emergency:{r.number}"


def chain(d: Refuse | Route) -> list[tuple[str, str, str]]:
    return [(h.from_number, h.to_number, h.kind.value) for h in d.hops]


ALL = set(BC)
S, H = SuspensionLevel.SOFT, SuspensionLevel.HARD
UNPAID, FRAUD, OTHER, CREDIT = (SuspensionReason.UNPAID, SuspensionReason.FRAUD, SuspensionReason.OTHER,
                                SuspensionReason.CREDIT_LIMIT)

# (id, world, caller, dialled, expected where, expected chain, billed line, word in trail)
TABLE: list[tuple[str, World, str, str, str, list[tuple[str, str, str]], str | None, str]] = [
    # 1. Emergency: before everything, in every dialling form.
    ("emergency-plain", World(), A, "112", "emergency:112", [], A, "emergency: routed"),
    ("emergency-barred-suspended", World(barring={A: ALL}, suspended={A: (H, UNPAID)}, on_line={A: 9},
                                          attempts={A: [DAY.epoch - 1] * 50}),
     A, "+47113", "emergency:113", [], A, "emergency"),
    ("emergency-customer-hard", World(customer_suspended={1: (H, FRAUD)}), A, "0047110", "emergency:110", [], A, "emergency"),
    # 2. Suspension of the caller.
    ("soft-unpaid-line", World(suspended={A: (S, UNPAID)}), A, C, "refused:suspended_unpaid", [], A, "soft (unpaid, line)"),
    ("soft-allows-customer-service", World(suspended={A: (S, UNPAID)}), A, SERVICE, "trunk:" + SERVICE, [], A, "customer service allowed"),
    ("hard-refuses-customer-service", World(suspended={A: (H, UNPAID)}), A, SERVICE, "refused:suspended_unpaid", [], A, "hard"),
    ("customer-suspension-covers-lines", World(customer_suspended={1: (S, OTHER)}), B, C, "refused:suspended", [], B, "customer"),
    ("credit-limit-cause", World(customer_suspended={1: (S, CREDIT)}), A, MOBILE, "refused:credit_limit", [], A, "credit_limit"),
    ("fraud-suspension-cause", World(customer_suspended={1: (S, FRAUD)}), A, MOBILE, "refused:fraud", [], A, "fraud"),
    ("hard-beats-soft", World(suspended={A: (S, UNPAID)}, customer_suspended={1: (H, OTHER)}), A, SERVICE,
     "refused:suspended", [], A, "hard"),
    ("other-customer-not-suspended", World(customer_suspended={2: (H, UNPAID)}), A, B, "line:" + B, [], A, "suspension: none"),
    # 2 before 3 before 4.
    ("suspension-before-barring", World(suspended={A: (S, UNPAID)}, barring={A: {BC.MOBILE}}), A, MOBILE,
     "refused:suspended_unpaid", [], A, "suspension"),
    ("call-limit-before-barring", World(on_line={A: 2}, barring={A: {BC.MOBILE}}), A, MOBILE, "refused:call_limit", [], A, "2 calls"),
    # 3. Fraud guard.
    ("line-limit", World(on_line={A: 2}), A, C, "refused:call_limit", [], A, "limit 2"),
    ("line-under-limit", World(on_line={A: 1}), A, C, "line:" + C, [], A, "fraud guard: ok"),
    ("customer-limit", World(of_customer={1: 4}), A, C, "refused:call_limit", [], A, "customer C1"),
    ("customer-own-limit", World(of_customer={1: 4}, limits={1: FraudLimits(calls_per_customer=10)}), A, C,
     "line:" + C, [], A, "ok"),
    ("attempts-20-ok", World(attempts={A: [DAY.epoch - 100] * 19}), A, "+4681234567", "trunk:+4681234567", [], A, "ok"),
    ("attempts-21-trips", World(attempts={A: [DAY.epoch - 100] * 20}), A, "+4681234567", "refused:fraud", [], A, "20 international"),
    ("old-attempts-forgotten", World(attempts={A: [DAY.epoch - 4000] * 30}), A, "+4681234567", "trunk:+4681234567", [], A, "ok"),
    ("night-burst-trips", World(attempts={A: [NIGHT.epoch - 100] * 8}), A, "82012345", "refused:fraud", [], A, "at night"),
    ("night-7-ok", World(attempts={A: [NIGHT.epoch - 100] * 7}), A, "82912345", "trunk:+4782912345", [], A, "ok"),
    ("attempts-not-for-mobile", World(attempts={A: [DAY.epoch] * 50}), A, MOBILE, "trunk:" + MOBILE, [], A, "ok"),
    # 4. Barring, every category, line and customer.
    ("barred-international", World(barring={A: {BC.INTERNATIONAL}}), A, "004681234567", "refused:barred_international", [], A, "international barred (line)"),
    ("barred-mobile", World(barring={A: {BC.MOBILE}}), A, MOBILE, "refused:barred_mobile", [], A, "mobile barred"),
    ("barred-m2m-as-mobile", World(barring={A: {BC.MOBILE}}), A, "580012345678", "refused:barred_mobile", [], A, "mobile"),
    ("barred-premium-820", World(barring={A: {BC.PREMIUM}}), A, "82012345", "refused:barred_premium", [], A, "premium"),
    ("barred-premium-829", World(barring={A: {BC.PREMIUM}}), A, "82912345", "refused:barred_premium", [], A, "premium"),
    ("barred-premium-815", World(barring={A: {BC.PREMIUM}}), A, "81512345", "refused:barred_premium", [], A, "premium"),
    ("barred-directory-1881", World(barring={A: {BC.DIRECTORY}}), A, "1881", "refused:barred_directory", [], A, "directory"),
    ("barred-shared-cost-810", World(barring={A: {BC.SHARED_COST}}), A, "81012345", "refused:barred_shared_cost", [], A, "shared_cost"),
    ("barred-special-5digit", World(barring={A: {BC.SPECIAL}}), A, "02800", "refused:barred_special", [], A, "special"),
    ("barred-special-1xx", World(barring={A: {BC.SPECIAL}}), A, "115", "refused:barred_special", [], A, "special"),
    ("all-outgoing-fixed", World(barring={A: {BC.ALL_OUTGOING}}), A, "23456789", "refused:barred_all_outgoing", [], A, "all outgoing"),
    ("all-outgoing-onnet", World(barring={A: {BC.ALL_OUTGOING}}), A, C, "refused:barred_all_outgoing", [], A, "all outgoing"),
    ("all-outgoing-freephone", World(barring={A: {BC.ALL_OUTGOING}}), A, "80012345", "refused:barred_all_outgoing", [], A, "all"),
    ("customer-barring", World(customer_barring={1: {BC.INTERNATIONAL}}), B, "+4681234567", "refused:barred_international", [], B, "(customer)"),
    ("onnet-is-fixed", World(barring={A: {BC.INTERNATIONAL, BC.MOBILE, BC.PREMIUM, BC.DIRECTORY, BC.SHARED_COST, BC.SPECIAL}}),
     A, C, "line:" + C, [], A, "fixed not barred"),
    ("freephone-not-barred", World(barring={A: ALL - {BC.ALL_OUTGOING}}), A, "80012345", "trunk:+4780012345", [], A, "freephone not barred"),
    ("mobile-barring-not-international", World(barring={A: {BC.MOBILE}}), A, "+4681234567", "trunk:+4681234567", [], A, "not barred"),
    # 5. Destination: the callee.
    ("callee-hard-suspended", World(suspended={C: (H, UNPAID)}), A, C, "refused:callee_suspended", [], A, "incoming refused"),
    ("callee-soft-suspended-rings", World(suspended={C: (S, UNPAID)}), A, C, "line:" + C, [], A, "on-net"),
    ("callee-customer-hard", World(customer_suspended={2: (H, OTHER)}), "trunk", C, "refused:callee_suspended", [], None, "hard"),
    ("callee-busy-by-limit", World(on_line={C: 2}), A, C, "refused:busy", [], A, "busy"),
    ("trunk-to-line", World(barring={C: ALL}, suspended={C: (S, UNPAID)}), "trunk", C, "line:" + C, [], None, "trunk carrier"),
    ("trunk-no-transit", World(), "trunk", MOBILE, "refused:number_not_in_use", [], None, "destination: refused"),
    # 6. Forwarding: unconditional, unreachable, busy by limit; the forwarder's policy applies.
    ("cfu-onnet", World(forwards={C: {FK.UNCONDITIONAL: D}}), A, C, "line:" + D, [(C, D, "unconditional")], C, "forward unconditional"),
    ("cfu-to-trunk-billed-to-forwarder", World(forwards={C: {FK.UNCONDITIONAL: MOBILE}}), A, C, "trunk:" + MOBILE,
     [(C, MOBILE, "unconditional")], C, "forwarder +4722000003: barring"),
    ("cfu-forwarder-barred", World(forwards={C: {FK.UNCONDITIONAL: MOBILE}}, barring={C: {BC.MOBILE}}), A, C,
     "refused:forward_not_allowed", [(C, MOBILE, "unconditional")], C, "mobile barred"),
    ("cfu-caller-barred-not-forwarder", World(forwards={C: {FK.UNCONDITIONAL: MOBILE}}, barring={A: {BC.MOBILE}}), A, C,
     "trunk:" + MOBILE, [(C, MOBILE, "unconditional")], C, "fixed not barred"),
    ("cfu-forwarder-customer-barred", World(forwards={C: {FK.UNCONDITIONAL: MOBILE}}, customer_barring={2: {BC.MOBILE}}),
     A, C, "refused:forward_not_allowed", [(C, MOBILE, "unconditional")], C, "(customer)"),
    ("cfu-forwarder-suspended", World(forwards={C: {FK.UNCONDITIONAL: D}}, suspended={C: (S, UNPAID)}), A, C,
     "refused:forward_not_allowed", [(C, D, "unconditional")], C, "forwarder +4722000003: suspension"),
    ("cfu-forwarder-line-busy-still-forwards", World(forwards={C: {FK.UNCONDITIONAL: MOBILE}}, on_line={C: 2}), A, C,
     "trunk:" + MOBILE, [(C, MOBILE, "unconditional")], C, "forwarder +4722000003: fraud guard: ok"),
    ("cfu-forwarder-customer-call-limit", World(forwards={C: {FK.UNCONDITIONAL: MOBILE}}, of_customer={2: 4}), A, C,
     "refused:call_limit", [(C, MOBILE, "unconditional")], C, "on customer C2"),
    ("cfu-international-not-allowed-by-default", World(forwards={C: {FK.UNCONDITIONAL: "+4681234567"}}),
     A, C, "refused:forward_not_allowed", [(C, "+4681234567", "unconditional")], C, "not an allowed forward target"),
    ("cfu-from-trunk", World(forwards={C: {FK.UNCONDITIONAL: MOBILE}}), "trunk", C, "trunk:" + MOBILE,
     [(C, MOBILE, "unconditional")], C, "trunk carrier"),
    ("cfu-beats-hard-suspension-no", World(forwards={C: {FK.UNCONDITIONAL: D}}, suspended={C: (H, OTHER)}), A, C,
     "refused:callee_suspended", [], A, "incoming refused"),
    ("cfu-class-not-allowed", World(forwards={C: {FK.UNCONDITIONAL: "82012345"}}), A, C, "refused:forward_not_allowed",
     [(C, "+4782012345", "unconditional")], C, "not an allowed forward target"),
    ("cfu-target-hard-suspended", World(forwards={C: {FK.UNCONDITIONAL: D}}, suspended={D: (H, UNPAID)}), A, C,
     "refused:callee_suspended", [(C, D, "unconditional")], C, "incoming refused"),
    ("chain-a-b-c", World(forwards={B: {FK.UNCONDITIONAL: C}, C: {FK.UNCONDITIONAL: D}}), A, B, "line:" + D,
     [(B, C, "unconditional"), (C, D, "unconditional")], C, "hop 2/5"),
    ("loop-b-c-b", World(forwards={B: {FK.UNCONDITIONAL: C}, C: {FK.UNCONDITIONAL: B}}), A, B, "refused:forward_loop",
     [(B, C, "unconditional"), (C, B, "unconditional")], C, "already in the chain"),
    ("loop-self", World(forwards={C: {FK.UNCONDITIONAL: C}}), A, C, "refused:forward_loop", [(C, C, "unconditional")], C, "loop"),
    ("loop-a-b-a", World(forwards={C: {FK.UNCONDITIONAL: A}}), A, C, "refused:forward_loop",
     [(C, A, "unconditional")], C, "already in the chain"),
    ("forward-to-a-third-line-of-the-callers-customer", World(forwards={C: {FK.UNCONDITIONAL: A}}), B, C, "line:" + A,
     [(C, A, "unconditional")], C, "hop 1/5"),
    ("hop-cap", World(forwards={A: {FK.UNCONDITIONAL: B}, B: {FK.UNCONDITIONAL: C}, C: {FK.UNCONDITIONAL: D}}, hop_cap=2),
     "trunk", A, "refused:forward_hops", [(A, B, "unconditional"), (B, C, "unconditional"), (C, D, "unconditional")], C,
     "longer than 2"),
    ("cfnrc-no-binding", World(forwards={C: {FK.UNREACHABLE: D}}, reach={C: Reach.NO_BINDING}), A, C, "line:" + D,
     [(C, D, "unreachable")], C, "no binding"),
    ("cfnrc-pings-lost", World(forwards={C: {FK.UNREACHABLE: MOBILE}}, reach={C: Reach.PINGS_LOST}), A, C,
     "trunk:" + MOBILE, [(C, MOBILE, "unreachable")], C, "pings lost"),
    ("cfnrc-reachable-rings", World(forwards={C: {FK.UNREACHABLE: D}}), A, C, "line:" + C, [], A, "forwards on unreachable"),
    ("cfb-by-call-limit", World(forwards={C: {FK.BUSY: D}}, on_line={C: 2}), A, C, "line:" + D, [(C, D, "busy")], C, "busy"),
    ("cfb-waits-for-486", World(forwards={C: {FK.BUSY: D}, }), A, C, "line:" + C, [], A, "forwards on busy"),
    ("cfu-before-cfnrc", World(forwards={C: {FK.UNCONDITIONAL: D, FK.UNREACHABLE: MOBILE}}, reach={C: Reach.NO_BINDING}),
     A, C, "line:" + D, [(C, D, "unconditional")], C, "unconditional"),
    # Incoming Diversion / History-Info.
    ("carrier-bounce-loop", World(), "trunk", C, "refused:forward_loop", [], None, "already diverted"),
    ("diverted-elsewhere-ok", World(), "trunk", D, "line:" + D, [], None, "incoming diversions"),
    ("diverted-then-forward-back", World(forwards={D: {FK.UNCONDITIONAL: MOBILE}}), "trunk", D, "refused:forward_loop",
     [(D, MOBILE, "unconditional")], D, "already in the chain"),
    ("incoming-hops-count", World(forwards={D: {FK.UNCONDITIONAL: B}}, hop_cap=2), "trunk", D, "refused:forward_hops",
     [(D, B, "unconditional")], D, "hop 3/2"),
]
# Rows that arrive with incoming Diversion headers: (numbers, counted hops).
DIVERTED: Mapping[str, tuple[tuple[str, ...], int]] = {
    "carrier-bounce-loop": ((MOBILE, C), 2),
    "diverted-elsewhere-ok": ((MOBILE, C), 2),
    "diverted-then-forward-back": ((MOBILE,), 1),
    "incoming-hops-count": (("+4791111111", "+4792222222"), 2),
}


@pytest.mark.parametrize(("name", "world", "caller", "dialled", "expected", "hops", "billed", "word"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_decision_table(name: str, world: World, caller: str, dialled: str, expected: str,
                        hops: list[tuple[str, str, str]], billed: str | None, word: str) -> None:
    diverted, counted = DIVERTED.get(name, ((), 0))
    now = NIGHT if name.startswith("night") else DAY
    d = run(world, caller, dialled, now, diverted=diverted, incoming_hops=counted)
    assert where(d) == expected, d.trail
    assert chain(d) == hops, d.trail
    assert d.billed_line == (lid(billed) if billed else None), d.trail
    assert any(word in step for step in d.trail), d.trail


def test_trail_reads_in_order() -> None:
    d = run(World(barring={A: {BC.INTERNATIONAL}}), A, "+4681234567")
    assert d.trail == (
        "caller: line +4722000001 authenticated",
        "number +4681234567: international",
        "suspension: none",
        "fraud guard: ok",
        "barring: international barred (line): refused",
    )


def test_attempts_are_reported_for_counting_only_for_international_and_premium() -> None:
    d = run(World(), A, "+4681234567")
    assert isinstance(d, Route) and d.attempts == (lid(A),)
    assert run(World(), A, "82012345").attempts == (lid(A),)  # type: ignore[union-attr]
    assert run(World(), A, MOBILE).attempts == ()  # type: ignore[union-attr]
    assert run(World(), A, "112").attempts == ()  # type: ignore[union-attr]
    barred = run(World(barring={A: {BC.INTERNATIONAL}}), A, "+4681234567")
    assert isinstance(barred, Refuse) and barred.attempts == (lid(A),)  # refused by barring, still an attempt
    fwd = run(World(forwards={C: {FK.UNCONDITIONAL: "+4681234567"}}), A, C)
    # Only allowed forward classes are fixed/mobile by default; with international allowed the forwarder counts.
    assert isinstance(fwd, Refuse) and fwd.cause is Cause.FORWARD_NOT_ALLOWED


def test_forward_to_international_counts_against_the_forwarder_when_allowed() -> None:
    w = World(forwards={C: {FK.UNCONDITIONAL: "+4681234567"}})
    state = w.state()
    state = replace(state, config=replace(state.config, forward_classes=frozenset(
        {NumberClass.FIXED, NumberClass.MOBILE, NumberClass.INTERNATIONAL})))
    d = decide(FromLine(LINES[A]), normalise(C), ROUTING, state, w.live(), DAY)
    assert isinstance(d, Route) and d.attempts == (lid(C),) and d.billed_line == lid(C)
    w.attempts = {C: [DAY.epoch - 10] * 20}
    tripped = decide(FromLine(LINES[A]), normalise(C), ROUTING, state, w.live(), DAY)
    assert isinstance(tripped, Refuse) and tripped.cause is Cause.FORWARD_NOT_ALLOWED
    assert tripped.trip is not None and (tripped.trip.customer_id, tripped.trip.line_id) == (2, lid(C))


def test_fraud_trip_names_the_customer_to_suspend() -> None:
    d = run(World(attempts={A: [DAY.epoch - 1] * 20}), A, "+4681234567")
    assert isinstance(d, Refuse) and d.trip is not None
    assert (d.trip.customer_id, d.trip.line_id, d.trip.number) == (1, lid(A), A)
    assert run(World(on_line={A: 2}), A, "+4681234567").trip is None  # type: ignore[union-attr]


def test_pending_conditional_forwards_and_ring_time() -> None:
    d = run(World(forwards={C: {FK.BUSY: D, FK.NO_ANSWER: MOBILE, FK.UNREACHABLE: D}}), A, C)
    assert isinstance(d, Route) and isinstance(d.route, OnNet)
    assert d.forward_on == {FK.BUSY, FK.NO_ANSWER, FK.UNREACHABLE}
    assert d.ring_time == 7.0


@pytest.mark.parametrize(
    ("kind", "world", "target_where", "cause_or_none"),
    [
        (FK.BUSY, World(forwards={C: {FK.BUSY: D}}), "line:" + D, None),
        (FK.NO_ANSWER, World(forwards={C: {FK.NO_ANSWER: MOBILE}}), "trunk:" + MOBILE, None),
        (FK.NO_ANSWER, World(forwards={C: {FK.NO_ANSWER: MOBILE}}, barring={C: {BC.MOBILE}}), "refused:forward_not_allowed", None),
        (FK.UNREACHABLE, World(forwards={C: {FK.UNREACHABLE: B}, B: {FK.UNCONDITIONAL: C}}), "refused:forward_loop", None),
        (FK.BUSY, World(forwards={C: {FK.NO_ANSWER: D}}), "", "none"),
    ],
)
def test_conditional_forward_decided_when_it_fires(kind: FK, world: World, target_where: str, cause_or_none: str | None) -> None:
    first = run(world, A, C)
    assert isinstance(first, Route)
    d = decide_forward(LINES[C], kind, first.hops, [C], first.trail, ROUTING, world.state(), world.live(), DAY)
    if cause_or_none == "none":
        assert d is None
        return
    assert d is not None and where(d) == target_where, d.trail
    assert d.hops[0].kind is kind and d.hops[0].line_id == lid(C) and d.billed_line == d.hops[-1].line_id
    assert d.trail[: len(first.trail)] == first.trail


@pytest.mark.parametrize(
    ("dialled", "category"),
    [("+4681234567", BC.INTERNATIONAL), ("91234567", BC.MOBILE), ("41234567", BC.MOBILE), ("82012345", BC.PREMIUM),
     ("81512345", BC.PREMIUM), ("1881", BC.DIRECTORY), ("1888", BC.DIRECTORY), ("81012345", BC.SHARED_COST),
     ("81412345", BC.SHARED_COST), ("02800", BC.SPECIAL), ("1412", BC.SPECIAL), ("177", BC.SPECIAL),
     ("81912345", BC.SPECIAL), ("22000001", None), ("80012345", None), ("116117", None), ("112", None)],
)
def test_categories_come_from_the_numbering_table(dialled: str, category: BC | None) -> None:
    assert category_of(normalise(dialled)) is category


@pytest.mark.parametrize(
    ("kind", "target", "timeout", "field", "words"),
    [
        (FK.UNCONDITIONAL, "112", None, "target", "emergency"),
        (FK.UNCONDITIONAL, "+47112", None, "target", "emergency"),
        (FK.UNCONDITIONAL, A, None, "target", "itself"),
        (FK.UNCONDITIONAL, "22000001", None, "target", "itself"),
        (FK.UNCONDITIONAL, "hello", None, "target", "not a telephone number"),
        (FK.UNCONDITIONAL, "", None, "target", "required"),
        (FK.UNCONDITIONAL, "82012345", None, "target", "premium_rate"),
        (FK.UNCONDITIONAL, "+4681234567", None, "target", "international"),
        (FK.UNCONDITIONAL, "1881", None, "target", "service"),
        (FK.UNCONDITIONAL, "81012345", None, "target", "shared_cost"),
        (FK.UNCONDITIONAL, MOBILE, 20, "timeout_s", "no_answer forwarding only"),
        (FK.NO_ANSWER, MOBILE, 4, "timeout_s", "from 5 to 120"),
        (FK.NO_ANSWER, MOBILE, 121, "timeout_s", "from 5 to 120"),
        (FK.NO_ANSWER, MOBILE, "20", "timeout_s", "whole number"),
        ("sometimes", MOBILE, None, "kind", "must be one of"),
    ],
)
def test_forward_target_validation(kind: FK | str, target: str, timeout: object, field: str, words: str) -> None:
    with pytest.raises(PolicyValidationError) as err:
        validate_forward(kind, target, timeout, line_number=A, on_net=LINES)
    assert err.value.field == field and words in err.value.message


def test_valid_forward_targets() -> None:
    assert validate_forward(FK.UNCONDITIONAL, "22000003", None, line_number=A, on_net=LINES).target == C
    assert validate_forward(FK.NO_ANSWER, "912 34 567", None, line_number=A).timeout_s == 20
    assert validate_forward(FK.NO_ANSWER, MOBILE, 120, line_number=A).timeout_s == 120
    allowed = frozenset({NumberClass.FIXED, NumberClass.MOBILE, NumberClass.INTERNATIONAL})
    assert validate_forward(FK.BUSY, "004681234567", None, line_number=A, allowed=allowed).target == "+4681234567"
