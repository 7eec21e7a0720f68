"""Where a call goes: a pure decision over a snapshot of the switch's tables.

``decide(caller, number, snapshot)`` never touches the network, the database
or a clock, so every routing rule is a table-driven unit test, and the call
path costs a few dict probes. The snapshot is assembled from in-memory state
(line directory, trunk table, trunk liveness) that other services keep
current.

Order of checks for a call from one of our lines (STYLE.md §2, INVITE step 3):

1. **Emergency first.** 110/112/113 (in any dialling form the numbering plan
   accepts, also ``+47112``) go to the trunks flagged ``emergency``, then to
   every other enabled trunk as a fallback, before barring, suspension,
   credit or forwarding are even looked at. Dead-looking trunks are tried
   last rather than skipped: a stale liveness mark must never refuse an
   emergency call.
2. Operator policy: the call policy (``switch/services/policy/engine.py``:
   suspension, fraud guard, barring, forwarding) runs *around* this
   function and calls it for the destination; ``snapshot.policy`` is an
   extra refusal hook for callers outside the B2BUA (``None`` = allow).
3. Invalid numbers: 484 when it looks like the caller stopped dialling too
   early, else 404.
4. On-net: the E.164 number belongs to one of our lines.
5. Off-net: longest-prefix match in the route table (``+47``, ``+4781``, ``+``
   for a default), trunks in the route's order; trunks whose OPTIONS pings
   fail are moved to the end.

Calls *from a carrier trunk* only ever reach our own lines: the switch does
not transit trunk to trunk, which rules out toll fraud and trunk loops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass

from .b2bua.causes import Cause
from .lines import LineInfo
from .numbering import Normalised, NumberClass
from .trunks import RouteEntry, RoutingTable, TrunkInfo

__all__ = [
    "FromLine",
    "FromTrunk",
    "Caller",
    "RoutingSnapshot",
    "OnNet",
    "Trunks",
    "Emergency",
    "Reject",
    "RouteDecision",
    "PolicyCheck",
    "decide",
    "route_key",
    "offnet_number",
]


@dataclass(frozen=True, slots=True)
class FromLine:
    """The call comes from one of our lines (authenticated by digest)."""

    line: LineInfo


@dataclass(frozen=True, slots=True)
class FromTrunk:
    """The call comes from a carrier trunk (authenticated by source address)."""

    trunk: TrunkInfo


Caller = FromLine | FromTrunk

#: Barring / suspension / credit check: a refusing cause, or None to allow.
PolicyCheck = Callable[[LineInfo, Normalised], Cause | None]


@dataclass(frozen=True, slots=True)
class RoutingSnapshot:
    lines_by_number: Mapping[str, LineInfo]
    """E.164 ('+47…') → line, as ``LineDirectory.by_number``."""
    table: RoutingTable
    dead_trunks: Set[int] = frozenset()
    """Trunk ids that stopped answering OPTIONS."""
    policy: PolicyCheck | None = None
    country_code: str = "47"


@dataclass(frozen=True, slots=True)
class OnNet:
    """Ring one of our lines at its registered contacts."""

    line: LineInfo


@dataclass(frozen=True, slots=True)
class Trunks:
    """Send to carrier trunks in this order (failover on timeout, 5xx, 503)."""

    trunks: tuple[TrunkInfo, ...]
    prefix: str
    """The matching route's prefix ('+47'), for the CDR."""
    route_id: int | None
    number: str
    """The number to put in the Request-URI: E.164, or the national short code."""


@dataclass(frozen=True, slots=True)
class Emergency:
    """110/112/113: the emergency trunks first, then every other enabled trunk."""

    trunks: tuple[TrunkInfo, ...]
    number: str
    """The national short code (e.g. '112') as carriers expect it."""

    @property
    def trunk(self) -> TrunkInfo:
        return self.trunks[0]


@dataclass(frozen=True, slots=True)
class Reject:
    cause: Cause
    code: int = 0
    """SIP status for the caller; 0 means ``cause.code``."""

    @property
    def status(self) -> int:
        return self.code or self.cause.code


RouteDecision = OnNet | Trunks | Emergency | Reject


def route_key(number: Normalised, country_code: str = "47") -> str | None:
    """The digit string looked up in the route table (E.164 without '+').

    Short codes without an E.164 form (1881, 115, 116117) are routed as if
    they were '+47' + the code, so the national route carries them.
    """
    if number.e164 is not None:
        return number.e164[1:]
    if number.national is not None:
        return country_code + number.national
    return None


def offnet_number(number: Normalised) -> str:
    """What a carrier gets in the Request-URI: E.164 when it exists, else the short code."""
    if number.e164 is not None:
        return number.e164
    return number.national or number.dialled


def _alive_first(trunks: list[TrunkInfo], dead: Set[int]) -> list[TrunkInfo]:
    return [t for t in trunks if t.trunk_id not in dead] + [t for t in trunks if t.trunk_id in dead]


def _emergency(number: Normalised, snap: RoutingSnapshot) -> Emergency | Reject:
    table = snap.table
    primary = [t for t in table.trunks.values() if t.enabled and t.emergency]
    fallback = [t for t in table.trunks.values() if t.enabled and not t.emergency]
    order = _alive_first(primary, snap.dead_trunks) + _alive_first(fallback, snap.dead_trunks)
    if not order:
        return Reject(Cause.EMERGENCY_UNAVAILABLE)
    return Emergency(tuple(order), number.national or number.dialled)


def _invalid(number: Normalised) -> Reject:
    digits = "".join(ch for ch in number.dialled.split("@", 1)[0].split(":")[-1] if ch not in " -.()")
    if digits.isdigit() and len(digits) < 8 and not digits.startswith("00"):
        return Reject(Cause.INCOMPLETE_NUMBER)
    return Reject(Cause.INVALID_NUMBER)


def _onnet(line: LineInfo) -> OnNet | Reject:
    return OnNet(line) if line.enabled else Reject(Cause.NUMBER_NOT_IN_USE)


def _offnet(number: Normalised, snap: RoutingSnapshot) -> Trunks | Reject:
    key = route_key(number, snap.country_code)
    found: tuple[str, RouteEntry] | None = None
    if key is not None:
        found = snap.table.routes.lookup_with_prefix(key)
    if found is None:
        return Reject(Cause.NO_ROUTE)
    entry = found[1]
    trunks = [t for t in (snap.table.trunks.get(i) for i in entry.trunk_ids) if t is not None and t.enabled]
    if not trunks:
        return Reject(Cause.CONGESTION)
    return Trunks(tuple(_alive_first(trunks, snap.dead_trunks)), entry.prefix, entry.route_id, offnet_number(number))


def decide(caller: Caller, number: Normalised, snap: RoutingSnapshot) -> RouteDecision:
    """Route ``number`` for ``caller`` (see the module docstring for the order)."""
    if isinstance(caller, FromTrunk):
        # Incoming: only our own lines, never transit to another trunk.
        line = snap.lines_by_number.get(number.e164) if number.e164 is not None else None
        if line is None:
            return Reject(Cause.NUMBER_NOT_IN_USE)
        return _onnet(line)

    if number.number_class is NumberClass.EMERGENCY:
        return _emergency(number, snap)
    if snap.policy is not None:
        refused = snap.policy(caller.line, number)
        if refused is not None:
            return Reject(refused)
    if number.number_class is NumberClass.INVALID:
        return _invalid(number)
    if number.e164 is not None:
        line = snap.lines_by_number.get(number.e164)
        if line is not None:
            return _onnet(line)
    return _offnet(number, snap)
