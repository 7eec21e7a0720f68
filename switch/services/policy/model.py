"""The policy state the decision function reads: plain frozen data, no I/O.

``PolicyService`` (service.py) keeps one ``PolicyState`` in memory, built from
the database at start and replaced (copy-on-write, one assignment) on every
change, so a call never sees half an update and the engine never waits.
Live, per-call facts (calls in progress, recent attempts, reachability) are
handed to the engine next to it in ``LiveView``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from switch.store.models import BarringCategory, ForwardKind, SuspensionLevel, SuspensionReason

from ..b2bua.causes import Cause
from ..numbering import NumberClass

__all__ = [
    "SuspensionLevel",
    "Reach",
    "FraudLimits",
    "ForwardRule",
    "ActiveSuspension",
    "LinePolicy",
    "CustomerPolicy",
    "PolicyConfig",
    "PolicyState",
    "LiveView",
    "DEFAULT_FORWARD_CLASSES",
    "DEFAULT_RING_TIME_S",
    "suspension_cause",
]

DEFAULT_RING_TIME_S = 20
_CONDITIONAL = (ForwardKind.BUSY, ForwardKind.NO_ANSWER, ForwardKind.UNREACHABLE)
RING_TIME_RANGE = (5, 120)
#: Classes a line may forward to unless the operator allows more (on-net lines are FIXED).
DEFAULT_FORWARD_CLASSES: frozenset[NumberClass] = frozenset({NumberClass.FIXED, NumberClass.MOBILE})


class Reach(enum.Enum):
    """Can the line's adapter be reached now? (bindings + qualify pings)."""

    REACHABLE = "reachable"
    NO_BINDING = "no_binding"
    PINGS_LOST = "pings_lost"


@dataclass(frozen=True, slots=True)
class FraudLimits:
    """Residential defaults; a customer may have its own (``customers.fraud_*``)."""

    calls_per_line: int = 2
    calls_per_customer: int = 4
    attempts_per_hour: int = 20
    """International + premium attempts per line in any hour."""
    night_attempts_per_hour: int = 8
    """The same between 00:00 and 06:00 local time."""

    def as_json(self) -> dict[str, int]:
        return {
            "calls_per_line": self.calls_per_line,
            "calls_per_customer": self.calls_per_customer,
            "attempts_per_hour": self.attempts_per_hour,
            "night_attempts_per_hour": self.night_attempts_per_hour,
        }


@dataclass(frozen=True, slots=True)
class ForwardRule:
    kind: ForwardKind
    target: str
    """E.164 ('+4791234567'), or the national form for numbers without one."""
    timeout_s: int | None = None
    """Ring time before a ``no_answer`` forward."""


@dataclass(frozen=True, slots=True)
class ActiveSuspension:
    id: int
    customer_id: int
    line_id: int | None
    level: SuspensionLevel
    reason: SuspensionReason
    created_at: float


def suspension_cause(reason: SuspensionReason) -> Cause:
    """The refusal cause a caller under this suspension gets (agreed in COORD.md)."""
    if reason is SuspensionReason.UNPAID:
        return Cause.SUSPENDED_UNPAID
    if reason is SuspensionReason.CREDIT_LIMIT:
        return Cause.CREDIT_LIMIT
    if reason is SuspensionReason.FRAUD:
        return Cause.FRAUD
    return Cause.SUSPENDED


@dataclass(frozen=True, slots=True)
class LinePolicy:
    line_id: int
    number: str
    customer_id: int
    barring: frozenset[BarringCategory] = frozenset()
    forwards: Mapping[ForwardKind, ForwardRule] = field(default_factory=dict)
    suspensions: tuple[ActiveSuspension, ...] = ()
    """Active suspensions of this line alone (the customer's are on ``CustomerPolicy``)."""
    # Derived once here, not per call (the engine reads them on every INVITE to this line):
    pending: frozenset[ForwardKind] = field(init=False, default=frozenset(), compare=False)
    """Conditional forwards set (busy, no_answer, unreachable)."""
    pending_text: str = field(init=False, default="", compare=False)
    """The trail step for a call that rings here with forwards pending."""
    ring_time: float | None = field(init=False, default=None, compare=False)
    hard: ActiveSuspension | None = field(init=False, default=None, compare=False)
    """The first hard suspension of the line itself, if any."""
    cfu: str | None = field(init=False, default=None, compare=False)
    cfb: str | None = field(init=False, default=None, compare=False)
    cfnrc: str | None = field(init=False, default=None, compare=False)
    """Targets of the unconditional, busy and unreachable forwards (enum-keyed lookups cost µs per call)."""

    barred: frozenset[str] = field(init=False, default=frozenset(), compare=False)
    """``barring`` as values (str membership is C-level; an enum member's hash is a Python call)."""
    caller_text: str = field(init=False, default="", compare=False)
    dest_text: str = field(init=False, default="", compare=False)
    """Trail steps naming this line, built once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "barred", frozenset(c.value for c in self.barring))
        object.__setattr__(self, "caller_text", f"caller: line {self.number} authenticated")
        object.__setattr__(self, "dest_text", f"destination: on-net line {self.number}")
        for attr, kind in (("cfu", ForwardKind.UNCONDITIONAL), ("cfb", ForwardKind.BUSY), ("cfnrc", ForwardKind.UNREACHABLE)):
            rule = self.forwards.get(kind)
            object.__setattr__(self, attr, None if rule is None else rule.target)
        pending = frozenset(k for k in _CONDITIONAL if k in self.forwards)
        object.__setattr__(self, "pending", pending)
        kinds = ", ".join(sorted(k.value for k in pending))
        object.__setattr__(self, "pending_text", f"callee {self.number}: rings; forwards on {kinds}" if pending else "")
        rule = self.forwards.get(ForwardKind.NO_ANSWER)
        object.__setattr__(self, "ring_time", None if rule is None else float(rule.timeout_s or DEFAULT_RING_TIME_S))
        object.__setattr__(self, "hard", next((x for x in self.suspensions if x.level is SuspensionLevel.HARD), None))


@dataclass(frozen=True, slots=True)
class CustomerPolicy:
    customer_id: int
    external_id: str
    barring: frozenset[BarringCategory] = frozenset()
    suspensions: tuple[ActiveSuspension, ...] = ()
    """Active customer-wide suspensions."""
    limits: FraudLimits = FraudLimits()
    hard: ActiveSuspension | None = field(init=False, default=None, compare=False)
    """The first hard customer-wide suspension, if any (derived)."""
    barred: frozenset[str] = field(init=False, default=frozenset(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "barred", frozenset(c.value for c in self.barring))
        object.__setattr__(self, "hard", next((x for x in self.suspensions if x.level is SuspensionLevel.HARD), None))


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    hop_cap: int = 5
    """At most this many forwards per call (incoming Diversion/History-Info entries count)."""
    customer_service: frozenset[str] = frozenset()
    """Numbers a soft-suspended line may still call (E.164 or short codes as normalised)."""
    forward_classes: frozenset[NumberClass] = DEFAULT_FORWARD_CLASSES
    default_limits: FraudLimits = FraudLimits()


@dataclass(frozen=True, slots=True)
class PolicyState:
    """Everything configured: lines and customers by id, plus the operator's settings."""

    lines: Mapping[int, LinePolicy] = field(default_factory=dict)
    customers: Mapping[int, CustomerPolicy] = field(default_factory=dict)
    config: PolicyConfig = PolicyConfig()

    def customer_of(self, line_id: int) -> CustomerPolicy | None:
        lp = self.lines.get(line_id)
        return None if lp is None else self.customers.get(lp.customer_id)

    def limits_for(self, customer_id: int | None) -> FraudLimits:
        c = self.customers.get(customer_id) if customer_id is not None else None
        return c.limits if c is not None else self.config.default_limits


def _reachable(line_id: int) -> Reach:
    return Reach.REACHABLE


@dataclass(frozen=True, slots=True)
class LiveView:
    """What changes call by call: in-progress calls, recent attempts, reachability."""

    calls_on_line: Mapping[int, int] = field(default_factory=dict)
    calls_of_customer: Mapping[int, int] = field(default_factory=dict)
    attempts: Mapping[int, Sequence[float]] = field(default_factory=dict)
    """Line id → epoch times of its recent international/premium attempts (oldest first)."""
    reach: Callable[[int], Reach] = _reachable
    """Line id → reachability (from bindings and the qualify pings)."""
