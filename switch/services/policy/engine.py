"""The call policy: one pure decision function, snapshot in, decision out.

``decide`` (a new call) and ``decide_forward`` (a conditional forward that
fired: busy, no answer, unreachable) never touch the network, the database
or a clock: ``now`` comes in as an argument, the configured state as a
``PolicyState`` and the live facts as a ``LiveView``. Every rule is a row of
``tests/services/test_policy_engine.py``, and a decision costs a few dict
probes (``bench/bench_policy.py``).

Fixed order (the first step that says no wins, and the trail records each):

1. **Emergency** (110/112/113 in any dialling form): routed at once, never
   barred, never suspended, never forwarded away, never counted.
2. **Suspension of the caller** (its line, or its customer): ``hard`` lets
   only emergency through; ``soft`` also the operator's customer-service
   numbers. Cause by reason: unpaid → ``suspended_unpaid``, credit_limit →
   ``credit_limit``, fraud → ``fraud``, else ``suspended``.
3. **Fraud guard of the caller**: calls in progress on the line and on the
   customer (``call_limit``); international + premium attempts per line in
   the last hour, and a lower limit between 00 and 06 local time. Crossing
   an attempt limit refuses with ``fraud`` and asks (``FraudTrip``) for the
   customer to be soft-suspended.
4. **Outgoing barring of the caller**, line and customer categories, by the
   number's category from the numbering table (``categories.category_of``);
   ``all_outgoing`` bars everything but emergency.
5. **Destination** (``routing.decide``): a trunk, or one of our lines. For a
   line: its own hard suspension refuses the call (``callee_suspended``);
   unconditional forwarding, or unreachable forwarding when the adapter has
   no binding or its pings are lost, forwards at once; a line already at its
   call limit is busy (busy forwarding, else ``busy``). Busy and no-answer
   forwarding otherwise wait for the callee (``Route.forward_on``).
6. **Each forwarded leg is decided again, as a call from the forwarding
   line** (steps 1-5 with the forwarder as caller): the forwarder's
   suspension, fraud limits and barring apply and it is billed for the leg.
   A refusal there is ``forward_not_allowed`` (the trail says why). Before
   that, loop and hop checks: a number seen twice in the chain (including
   numbers from the incoming Diversion/History-Info, and the calling line
   itself: A→B→A) is ``forward_loop``,
   more than ``hop_cap`` forwards is ``forward_hops``.

Calls from carrier trunks skip steps 2-4 (the caller is not ours) and reach
only our lines (routing never transits trunk to trunk).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from switch.store.models import BarringCategory, ForwardKind, SuspensionLevel

from ..b2bua.causes import Cause
from ..lines import LineInfo
from ..numbering import Normalised, NumberClass, normalise
from ..routing import Caller, Emergency, FromLine, FromTrunk, OnNet, Reject, RoutingSnapshot, Trunks
from ..routing import decide as route
from .categories import ATTEMPT_CATEGORIES, category_of
from .model import ActiveSuspension, FraudLimits, LiveView, LinePolicy, PolicyState, Reach, suspension_cause

__all__ = [
    "Hop",
    "FraudTrip",
    "Refuse",
    "Route",
    "Decision",
    "Instant",
    "decide",
    "decide_forward",
    "CONDITIONAL_KINDS",
    "DIVERSION_REASON",
]

#: RFC 5806 §3 reason values for each forward kind.
DIVERSION_REASON: dict[ForwardKind, str] = {
    ForwardKind.UNCONDITIONAL: "unconditional",
    ForwardKind.BUSY: "user-busy",
    ForwardKind.NO_ANSWER: "no-answer",
    ForwardKind.UNREACHABLE: "unavailable",
}
CONDITIONAL_KINDS = (ForwardKind.BUSY, ForwardKind.NO_ANSWER, ForwardKind.UNREACHABLE)
_NIGHT_HOURS = range(0, 6)
_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Instant:
    """The time a decision is made: epoch seconds and the hour on the operator's local clock."""

    epoch: float
    local_hour: int


@dataclass(frozen=True, slots=True)
class Hop:
    """One forward: ``from_number``'s line forwarded the call to ``to_number``."""

    from_number: str
    to_number: str
    kind: ForwardKind
    line_id: int

    def as_json(self) -> dict[str, str]:
        return {"from": self.from_number, "to": self.to_number, "reason": DIVERSION_REASON[self.kind]}


@dataclass(frozen=True, slots=True)
class FraudTrip:
    """An attempt limit was crossed: soft-suspend the customer with reason ``fraud``."""

    customer_id: int
    line_id: int
    number: str
    limit: str
    """'20 international/premium attempts per hour' — for the audit event and the alert."""


@dataclass(slots=True)
class Refuse:
    """Refuse the call with ``cause`` (treated as immutable; not frozen: a frozen init costs a µs per decision)."""

    cause: Cause
    trail: tuple[str, ...]
    hops: tuple[Hop, ...] = ()
    code: int = 0
    """SIP status; 0 = ``cause.code``."""
    trip: FraudTrip | None = None
    billed_line: int | None = None
    """The line whose call this was (the caller, or the last forwarder)."""
    attempts: tuple[int, ...] = ()
    """Lines whose international/premium attempt this was, though refused later (barring): they count."""

    @property
    def status(self) -> int:
        return self.code or self.cause.code


@dataclass(slots=True)
class Route:
    """Route the call (treated as immutable, like ``Refuse``)."""

    route: OnNet | Trunks | Emergency
    trail: tuple[str, ...]
    number: Normalised
    """The number this leg goes to (the forward target after a forward)."""
    hops: tuple[Hop, ...] = ()
    billed_line: int | None = None
    """The line that pays for this leg: the caller, or the forwarder after a forward."""
    attempts: tuple[int, ...] = ()
    """Lines whose international/premium attempt this was (the fraud guard counts them)."""
    forward_on: frozenset[ForwardKind] = frozenset()
    """For an on-net line: conditional forwards set for it (busy, no_answer, unreachable)."""
    ring_time: float | None = None
    """Seconds to ring before the no-answer forward."""
    seen: frozenset[str] = frozenset()
    """Numbers already in the chain (loop detection continues from here for conditional forwards)."""


Decision = Refuse | Route


class _Ctx:
    """One decision's working state: the trail grows as the steps run."""

    __slots__ = ("state", "live", "routing", "now", "trail", "seen", "incoming_hops", "attempts")

    def __init__(self, state: PolicyState, live: LiveView, routing: RoutingSnapshot, now: Instant,
                 trail: list[str] | None = None, seen: set[str] | None = None, incoming_hops: int = 0) -> None:
        self.state = state
        self.live = live
        self.routing = routing
        self.now = now
        self.trail: list[str] = [] if trail is None else trail
        self.seen: set[str] = set() if seen is None else seen
        self.incoming_hops = incoming_hops
        self.attempts: list[int] = []


def decide(
    caller: Caller,
    number: Normalised,
    routing: RoutingSnapshot,
    state: PolicyState,
    live: LiveView,
    now: Instant,
    *,
    diverted: Sequence[str] = (),
    incoming_hops: int = 0,
) -> Decision:
    """Decide a new call from ``caller`` to ``number`` (the order is in the module docstring).

    ``diverted``: numbers (E.164) the call was already forwarded from before it
    reached us (incoming Diversion / History-Info); ``incoming_hops`` how many
    forwards those headers count.
    """
    ctx = _Ctx(state, live, routing, now, None, set(diverted), max(incoming_hops, len(diverted)))
    if diverted:
        ctx.trail.append(f"incoming diversions: {', '.join(diverted)}")
    if isinstance(caller, FromTrunk):
        ctx.trail.append(f"caller: trunk {caller.trunk.name}")
    else:
        lp = state.lines.get(caller.line.line_id)
        ctx.trail.append(lp.caller_text if lp is not None else f"caller: line {caller.line.number} authenticated")
        # A→B→A: a forward back to the calling line is a loop too (it would ring the phone that is calling).
        ctx.seen.add(caller.line.number)
    return _call(ctx, caller, number, (), None)


def decide_forward(
    line: LineInfo,
    kind: ForwardKind,
    hops: tuple[Hop, ...],
    seen: Sequence[str],
    trail: Sequence[str],
    routing: RoutingSnapshot,
    state: PolicyState,
    live: LiveView,
    now: Instant,
    *,
    incoming_hops: int = 0,
) -> Decision | None:
    """The conditional forward ``kind`` of ``line`` fired (busy, no answer, unreachable).

    None when the line has no such forward. ``hops``, ``seen`` and ``trail``
    continue those of the decision that rang the line.
    """
    lp = state.lines.get(line.line_id)
    rule = lp.forwards.get(kind) if lp is not None else None
    if lp is None or rule is None:
        return None
    ctx = _Ctx(state, live, routing, now, trail=list(trail), seen=set(seen), incoming_hops=incoming_hops)
    return _forward(ctx, line, lp, kind, rule.target, hops)


# ----------------------------------------------------------------------------- steps


def _call(ctx: _Ctx, caller: Caller, number: Normalised, hops: tuple[Hop, ...], forwarder: LinePolicy | None) -> Decision:
    """Steps 1-5 for one leg; ``forwarder`` is set when this leg is a forward (step 6)."""
    trail = ctx.trail
    tag = "" if forwarder is None else f"forwarder {forwarder.number}: "
    billed = caller.line.line_id if isinstance(caller, FromLine) else None
    shown = number.e164 or number.national or number.dialled
    trail.append(f"{tag}number {shown}: {number.number_class._value_}")

    # 1. Emergency.
    if number.number_class is NumberClass.EMERGENCY:
        if forwarder is not None:  # forward targets are validated; an emergency number is never one
            return _refuse(ctx, Cause.FORWARD_NOT_ALLOWED, f"{tag}emergency numbers are never forward targets", hops, billed)
        decision = route(caller, number, ctx.routing)
        if isinstance(decision, Reject):
            return _refuse(ctx, decision.cause, "emergency: no trunk for it", hops, billed, decision.code)
        assert isinstance(decision, Emergency)
        trail.append("emergency: routed before any policy")
        return Route(decision, tuple(trail), number, hops, billed)

    category = category_of(number)
    if isinstance(caller, FromLine):
        lp = ctx.state.lines.get(caller.line.line_id)
        refused = _caller_checks(ctx, caller.line, lp, number, category, tag)
        if refused is not None:
            cause, text, trip = refused
            if forwarder is not None and cause not in (Cause.CALL_LIMIT,):
                cause = Cause.FORWARD_NOT_ALLOWED
            return Refuse(cause, tuple(trail), hops, 0, trip, billed, tuple(ctx.attempts))

    # 5. Destination.
    decision = route(caller, number, ctx.routing)
    if isinstance(decision, Reject):
        trail.append(f"{tag}destination: refused ({decision.cause.value})")
        return Refuse(decision.cause, tuple(trail), hops, decision.code, None, billed, tuple(ctx.attempts))
    if isinstance(decision, Emergency):  # not reached: emergency was step 1
        return Route(decision, tuple(trail), number, hops, billed)
    if isinstance(decision, Trunks):
        trail.append(f"{tag}destination: trunks {', '.join(t.name for t in decision.trunks)} (route {decision.prefix})")
        return Route(decision, tuple(trail), number, hops, billed, tuple(ctx.attempts))
    return _onnet(ctx, decision, number, hops, billed, tag)


def _caller_checks(
    ctx: _Ctx, line: LineInfo, lp: LinePolicy | None, number: Normalised, category: BarringCategory | None, tag: str
) -> tuple[Cause, str, FraudTrip | None] | None:
    """Steps 2-4 for a calling (or forwarding) line; None = allowed."""
    trail = ctx.trail
    state = ctx.state
    customer = state.customers.get(lp.customer_id) if lp is not None else None

    # 2. Suspension.
    own = lp.suspensions if lp is not None else ()
    inherited = customer.suspensions if customer is not None else ()
    suspension = _strongest(own + inherited) if own or inherited else None
    if suspension is not None:
        scope = "line" if suspension.line_id is not None else "customer"
        service = number.e164 in state.config.customer_service or number.national in state.config.customer_service
        if suspension.level is SuspensionLevel.SOFT and service:
            trail.append(f"{tag}suspension #{suspension.id} soft ({suspension.reason.value}, {scope}): customer service allowed")
        else:
            cause = suspension_cause(suspension.reason)
            text = f"{tag}suspension #{suspension.id} {suspension.level.value} ({suspension.reason.value}, {scope}): refused"
            trail.append(text)
            return cause, text, None
    else:
        trail.append(f"{tag}suspension: none" if tag else "suspension: none")

    # 3. Fraud guard.
    limits = customer.limits if customer is not None else state.config.default_limits
    live = ctx.live
    on_line = live.calls_on_line.get(line.line_id, 0)
    # A forwarded leg does not occupy the forwarder's own phone: only its customer's count applies.
    if not tag and on_line >= limits.calls_per_line:
        text = f"{tag}fraud guard: {on_line} calls in progress on the line, limit {limits.calls_per_line}: refused"
        trail.append(text)
        return Cause.CALL_LIMIT, text, None
    if customer is not None:
        on_customer = live.calls_of_customer.get(customer.customer_id, 0)
        if on_customer >= limits.calls_per_customer:
            text = (f"{tag}fraud guard: {on_customer} calls in progress on customer {customer.external_id}, "
                    f"limit {limits.calls_per_customer}: refused")
            trail.append(text)
            return Cause.CALL_LIMIT, text, None
    if category is BarringCategory.INTERNATIONAL or category is BarringCategory.PREMIUM:  # ATTEMPT_CATEGORIES
        tripped = _attempts(ctx, line, limits)
        if tripped is not None:
            text = f"{tag}fraud guard: more than {tripped}: refused, customer suspended"
            trail.append(text)
            trip = None
            if customer is not None:
                trip = FraudTrip(customer.customer_id, line.line_id, line.number, tripped)
            return Cause.FRAUD, text, trip
        ctx.attempts.append(line.line_id)
    trail.append(f"{tag}fraud guard: ok" if tag else "fraud guard: ok")

    # 4. Outgoing barring.
    # By value (str): membership of an enum member in a set calls its Python-level __hash__.
    line_barring = lp.barred if lp is not None else _NONE
    customer_barring = customer.barred if customer is not None else _NONE
    if line_barring or customer_barring:
        value = category._value_ if category is not None else None
        for scope, barred in (("line", line_barring), ("customer", customer_barring)):
            if not barred:
                continue
            if _ALL in barred:
                text = f"{tag}barring: all outgoing calls barred ({scope}): refused"
                trail.append(text)
                return Cause.BARRED_ALL_OUTGOING, text, None
            if value is not None and value in barred:
                text = f"{tag}barring: {value} barred ({scope}): refused"
                trail.append(text)
                return _BARRED_BY_VALUE[value], text, None
    if tag:
        trail.append(f"{tag}barring: {category._value_ if category else number.number_class._value_} not barred")
    else:
        trail.append(_NOT_BARRED[category._value_] if category is not None else _CLASS_NOT_BARRED[number.number_class._value_])
    return None


def _attempts(ctx: _Ctx, line: LineInfo, limits: FraudLimits) -> str | None:
    """The limit this attempt crosses, or None."""
    recent = ctx.live.attempts.get(line.line_id, ())
    since = ctx.now.epoch - _HOUR
    count = 1 + sum(1 for t in recent if t > since)
    if count > limits.attempts_per_hour:
        return f"{limits.attempts_per_hour} international/premium attempts per hour"
    if ctx.now.local_hour in _NIGHT_HOURS and count > limits.night_attempts_per_hour:
        return f"{limits.night_attempts_per_hour} international/premium attempts per hour at night"
    return None


def _onnet(ctx: _Ctx, decision: OnNet, number: Normalised, hops: tuple[Hop, ...], billed: int | None, tag: str) -> Decision:
    trail = ctx.trail
    line = decision.line
    lp = ctx.state.lines.get(line.line_id)
    trail.append(f"{tag}destination: on-net line {line.number}" if tag or lp is None else lp.dest_text)
    if not hops and line.number in ctx.seen:
        trail.append(f"forward loop: {line.number} already diverted this call before it reached us")
        return Refuse(Cause.FORWARD_LOOP, tuple(trail), hops, 0, None, billed)
    ctx.seen.add(line.number)
    if lp is None:
        return Route(decision, tuple(trail), number, hops, billed, tuple(ctx.attempts))
    customer = ctx.state.customers.get(lp.customer_id)
    hard = lp.hard or (customer.hard if customer is not None else None)
    if hard is not None:
        trail.append(f"callee {line.number}: hard suspension #{hard.id} ({hard.reason.value}): incoming refused")
        return Refuse(Cause.CALLEE_SUSPENDED, tuple(trail), hops, 0, None, billed)
    if lp.cfu is not None:
        return _forward(ctx, line, lp, ForwardKind.UNCONDITIONAL, lp.cfu, hops)
    if lp.cfnrc is not None:
        reach = ctx.live.reach(line.line_id)
        if reach is not Reach.REACHABLE:
            trail.append(f"callee {line.number}: {reach.value.replace('_', ' ')}")
            return _forward(ctx, line, lp, ForwardKind.UNREACHABLE, lp.cfnrc, hops)
    limits = customer.limits if customer is not None else ctx.state.config.default_limits
    busy = ctx.live.calls_on_line.get(line.line_id, 0) >= limits.calls_per_line
    if busy:
        trail.append(f"callee {line.number}: {limits.calls_per_line} calls in progress: busy")
        if lp.cfb is not None:
            return _forward(ctx, line, lp, ForwardKind.BUSY, lp.cfb, hops)
        return Refuse(Cause.BUSY, tuple(trail), hops, 0, None, billed)
    pending = lp.pending
    if pending:
        trail.append(lp.pending_text)
    return Route(decision, tuple(trail), number, hops, billed, tuple(ctx.attempts), pending, lp.ring_time, frozenset(ctx.seen))


def _forward(ctx: _Ctx, line: LineInfo, lp: LinePolicy, kind: ForwardKind, target: str, hops: tuple[Hop, ...]) -> Decision:
    """Step 6: forward ``line``'s call to ``target``, decided again as a call from that line."""
    trail = ctx.trail
    number = _target(target, ctx.routing.country_code)
    to = number.e164 or number.national or target
    hop = Hop(line.number, to, kind, line.line_id)
    chain = hops + (hop,)
    count = len(chain) + ctx.incoming_hops
    cap = ctx.state.config.hop_cap
    trail.append(f"forward {kind.value}: {line.number} -> {to} (hop {count}/{cap})")
    ctx.seen.add(line.number)
    if to in ctx.seen or to == line.number:
        trail.append(f"forward loop: {to} is already in the chain")
        return Refuse(Cause.FORWARD_LOOP, tuple(trail), chain, 0, None, line.line_id)
    if count > cap:
        trail.append(f"forward chain longer than {cap}")
        return Refuse(Cause.FORWARD_HOPS, tuple(trail), chain, 0, None, line.line_id)
    if number.number_class not in ctx.state.config.forward_classes and not _is_line(ctx, number):
        trail.append(f"forwarder {line.number}: {number.number_class.value} is not an allowed forward target")
        return Refuse(Cause.FORWARD_NOT_ALLOWED, tuple(trail), chain, 0, None, line.line_id)
    ctx.seen.add(to)
    return _call(ctx, FromLine(line), number, chain, lp)


@functools.lru_cache(maxsize=65536)
def _target(target: str, country_code: str) -> Normalised:
    """A forward target, normalised (the same few thousand targets, every call: cached)."""
    return normalise(target, country_code)


def _is_line(ctx: _Ctx, number: Normalised) -> bool:
    return number.e164 is not None and number.e164 in ctx.routing.lines_by_number


def _strongest(suspensions: tuple[ActiveSuspension, ...]) -> ActiveSuspension | None:
    """Hard before soft, then the oldest: the one whose cause the caller hears."""
    if not suspensions:
        return None
    return min(suspensions, key=lambda s: (s.level is not SuspensionLevel.HARD, s.created_at, s.id))


def _refuse(ctx: _Ctx, cause: Cause, text: str, hops: tuple[Hop, ...], billed: int | None, code: int = 0) -> Refuse:
    ctx.trail.append(text)
    return Refuse(cause, tuple(ctx.trail), hops, code, None, billed)


_BARRED: dict[BarringCategory, Cause] = {
    BarringCategory.INTERNATIONAL: Cause.BARRED_INTERNATIONAL,
    BarringCategory.MOBILE: Cause.BARRED_MOBILE,
    BarringCategory.PREMIUM: Cause.BARRED_PREMIUM,
    BarringCategory.DIRECTORY: Cause.BARRED_DIRECTORY,
    BarringCategory.SHARED_COST: Cause.BARRED_SHARED_COST,
    BarringCategory.SPECIAL: Cause.BARRED_SPECIAL,
    BarringCategory.ALL_OUTGOING: Cause.BARRED_ALL_OUTGOING,
}
assert set(_BARRED) == set(BarringCategory), "every barring category needs a cause"
assert ATTEMPT_CATEGORIES == {BarringCategory.INTERNATIONAL, BarringCategory.PREMIUM}, "the fraud guard's inline check"
_NONE: frozenset[str] = frozenset()
_ALL = BarringCategory.ALL_OUTGOING.value
_BARRED_BY_VALUE = {c.value: cause for c, cause in _BARRED.items()}
# Keyed by the enum's value: an enum member's hash is a Python-level call.
_NOT_BARRED = {c.value: f"barring: {c.value} not barred" for c in BarringCategory}
_CLASS_NOT_BARRED = {c.value: f"barring: {c.value} not barred" for c in NumberClass}
