"""PolicyService: the policy state in memory, its changes, and the live counters.

No database read per call: the state is loaded at start, and every change
made through this service (API, star codes, the credit limit, the fraud
guard) is written with its audit event first and then applied to memory,
so the very next INVITE sees it. ``softswitch import`` runs in another
process; a cheap fingerprint query every few seconds notices its changes
and reloads (like ``LineDirectory.reload_if_changed``).

Live counters (calls in progress per line and customer, recent
international/premium attempts per line) are kept here too and handed to
the pure engine as a ``LiveView`` without copying.

Fraud alerts go to the log in one stable, fail2ban-style line::

    POLICY ALERT fraud customer=C1001 line=+4722000001 limit="20 international/premium attempts per hour" suspension=7

and to ``alerts()`` (the newest 500), which the API and the operator UI list.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from switch.store import repo_policy
from switch.store.engine import SessionFactory
from switch.store.models import BarringCategory, ForwardKind, SuspensionLevel, SuspensionReason
from switch.store.repo_policy import LineRef, PolicyRows, SuspensionRow

from ..lines import LineDirectory
from ..periodic import Periodic
from .engine import FraudTrip, Instant
from .model import (
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
from .validate import PolicyValidationError, validate_forward, validate_limits

__all__ = ["PolicyService", "Occupancy"]

log = logging.getLogger("switch.policy")

_KEEP_ATTEMPTS = 3600.0
_MAX_ALERTS = 500


def _epoch(dt: datetime) -> float:
    return dt.timestamp()


@dataclass(slots=True)
class Occupancy:
    """What one call holds: lines and customers it counts against (released when it ends)."""

    lines: list[int]
    customers: list[int]


class PolicyService:
    """See the module docstring. Methods that write are async; the call path only reads."""

    def __init__(
        self,
        session_factory: SessionFactory,
        lines: LineDirectory,
        config: PolicyConfig = PolicyConfig(),
        *,
        timezone: str = "Europe/Oslo",
        wall: Callable[[], float] = time.time,
        reload_interval: float = 5.0,
        country_code: str = "47",
        reach: Callable[[int], Reach] | None = None,
    ) -> None:
        self.sf = session_factory
        self.lines = lines
        self.config = config
        self.state = PolicyState(config=config)
        self.wall = wall
        self.tz = ZoneInfo(timezone)
        self.country_code = country_code
        self.reload_interval = reload_interval
        self.calls_on_line: dict[int, int] = {}
        self.calls_of_customer: dict[int, int] = {}
        self.attempts: dict[int, deque[float]] = {}
        self._alerts: deque[dict[str, Any]] = deque(maxlen=_MAX_ALERTS)
        #: how reachable a line is now (``policy.reach.LineReach``: registrations and pings), for CFNRc
        self.reach: Callable[[int], Reach] = reach or (lambda _line_id: Reach.REACHABLE)
        self.live = LiveView(self.calls_on_line, self.calls_of_customer, self.attempts, self._reach)
        self._fingerprint: object = None
        self._version = 0
        self._reload = Periodic("reloading call policy", self._reload_step, reload_interval)
        self._tripping: set[int] = set()
        self._background: set[asyncio.Task[Any]] = set()

    def _reach(self, line_id: int) -> Reach:
        return self.reach(line_id)

    # -- loading ------------------------------------------------------------------------
    async def load(self) -> None:
        """Read everything from the database and swap it in at once."""
        version = self._version
        fp = await repo_policy.policy_fingerprint(self.sf)
        rows = await repo_policy.load_policy(self.sf)
        if version != self._version:
            return  # a change made here meanwhile; the next tick reloads (its fingerprint differs)
        self.state = _build(rows, self.config)
        self._fingerprint = fp

    async def reload_if_changed(self) -> bool:
        fp = await repo_policy.policy_fingerprint(self.sf)
        if fp == self._fingerprint:
            return False
        await self.load()
        return True

    def start(self) -> None:
        self._reload.start()

    async def _reload_step(self) -> None:
        """A failed reload is logged by the job; the calls keep deciding with the state we have."""
        if await self.reload_if_changed():
            log.info("policy reloaded (changed in the database)")

    async def close(self) -> None:
        await self._reload.stop()
        for task in self._background:
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001
                    pass

    # -- the call path --------------------------------------------------------------------
    def now(self) -> Instant:
        t = self.wall()
        return Instant(t, datetime.fromtimestamp(t, self.tz).hour)

    def hold(self, lines: Iterable[int], customers: Iterable[int]) -> Occupancy:
        occ = Occupancy([], [])
        self.add(occ, lines, customers)
        return occ

    def add(self, occ: Occupancy, lines: Iterable[int], customers: Iterable[int]) -> None:
        for lid in lines:
            if lid not in occ.lines:
                occ.lines.append(lid)
                self.calls_on_line[lid] = self.calls_on_line.get(lid, 0) + 1
        for cid in customers:
            if cid not in occ.customers:
                occ.customers.append(cid)
                self.calls_of_customer[cid] = self.calls_of_customer.get(cid, 0) + 1

    def drop_line(self, occ: Occupancy, line_id: int) -> None:
        """The call left this line (forwarded away): it no longer rings there."""
        if line_id in occ.lines:
            occ.lines.remove(line_id)
            self._dec(self.calls_on_line, line_id)

    def release(self, occ: Occupancy) -> None:
        for lid in occ.lines:
            self._dec(self.calls_on_line, lid)
        for cid in occ.customers:
            self._dec(self.calls_of_customer, cid)
        occ.lines.clear()
        occ.customers.clear()

    @staticmethod
    def _dec(counts: dict[int, int], key: int) -> None:
        n = counts.get(key, 0) - 1
        if n > 0:
            counts[key] = n
        else:
            counts.pop(key, None)

    def customer_of(self, line_id: int) -> int | None:
        lp = self.state.lines.get(line_id)
        return None if lp is None else lp.customer_id

    def record_attempts(self, line_ids: Iterable[int], now: float) -> None:
        for lid in line_ids:
            q = self.attempts.get(lid)
            if q is None:
                q = self.attempts[lid] = deque()
            q.append(now)
            while q and q[0] <= now - _KEEP_ATTEMPTS:
                q.popleft()

    def tripped(self, trip: FraudTrip) -> None:
        """An attempt limit was crossed: soft-suspend the customer (reason fraud), alert, audit."""
        if trip.customer_id in self._tripping:
            return
        customer = self.state.customers.get(trip.customer_id)
        if customer is not None and any(s.reason is SuspensionReason.FRAUD for s in customer.suspensions):
            return
        self._tripping.add(trip.customer_id)
        task = asyncio.get_running_loop().create_task(self._suspend_for_fraud(trip))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _suspend_for_fraud(self, trip: FraudTrip) -> None:
        try:
            ref = self.state.customers[trip.customer_id].external_id if trip.customer_id in self.state.customers else "?"
            sid = await self.suspend(trip.customer_id, None, SuspensionLevel.SOFT, SuspensionReason.FRAUD,
                                     f"fraud guard: more than {trip.limit} on {trip.number}", "system:fraud")
            alert = {
                "at": datetime.fromtimestamp(self.wall(), UTC).isoformat(timespec="seconds"),
                "kind": "fraud",
                "customer": ref,
                "line": trip.number,
                "limit": trip.limit,
                "suspension": sid,
            }
            self._alerts.append(alert)
            log.warning('POLICY ALERT fraud customer=%s line=%s limit="%s" suspension=%d', ref, trip.number, trip.limit, sid)
        except Exception:  # noqa: BLE001
            log.exception("could not suspend customer %d for fraud", trip.customer_id)
        finally:
            self._tripping.discard(trip.customer_id)

    # -- reading ------------------------------------------------------------------------------
    def alerts(self) -> list[dict[str, Any]]:
        """Operator alerts (fraud guard), newest first; the last 500 since start."""
        return list(reversed(self._alerts))

    def forwarding(self, line_id: int) -> list[ForwardRule]:
        lp = self.state.lines.get(line_id)
        return [] if lp is None else [lp.forwards[k] for k in ForwardKind if k in lp.forwards]

    def active_suspensions(self, customer_id: int) -> list[ActiveSuspension]:
        c = self.state.customers.get(customer_id)
        own = list(c.suspensions) if c is not None else []
        for lp in self.state.lines.values():
            if lp.customer_id == customer_id:
                own.extend(lp.suspensions)
        return sorted(own, key=lambda s: s.id)

    def limits(self, customer_id: int) -> FraudLimits:
        return self.state.limits_for(customer_id)

    def attempts_last_hour(self, line_id: int) -> int:
        since = self.wall() - 3600.0
        return sum(1 for t in self.attempts.get(line_id, ()) if t > since)

    # -- changes --------------------------------------------------------------------------------
    async def _line(self, line_id: int) -> LineRef:
        lp = self.state.lines.get(line_id)
        info = self.lines.by_id.get(line_id)
        if lp is not None:
            ref = self.state.customers[lp.customer_id].external_id if lp.customer_id in self.state.customers else "?"
            return LineRef(line_id, lp.number, lp.customer_id, ref)
        if info is not None:
            found = await repo_policy.line_by_number(self.sf, info.number)
            if found is not None:
                return found
        raise PolicyValidationError("line", f"no line with id {line_id}")

    def _changed(self) -> None:
        self._version += 1

    def _put_line(self, lp: LinePolicy) -> None:
        lines = dict(self.state.lines)
        lines[lp.line_id] = lp
        self.state = replace(self.state, lines=lines)

    def _put_customer(self, cp: CustomerPolicy) -> None:
        customers = dict(self.state.customers)
        customers[cp.customer_id] = cp
        self.state = replace(self.state, customers=customers)

    def _line_policy(self, ref: LineRef) -> LinePolicy:
        return self.state.lines.get(ref.line_id) or LinePolicy(ref.line_id, ref.number, ref.customer_id)

    def _customer_policy(self, customer_id: int, external_id: str) -> CustomerPolicy:
        return self.state.customers.get(customer_id) or CustomerPolicy(customer_id, external_id, limits=self.config.default_limits)

    async def set_forwarding(self, line_id: int, kind: ForwardKind | str, target: str, timeout_s: int | None,
                             actor: str) -> ForwardRule:
        """Validate (``validate_forward``, the API's rules) and store; raises ``PolicyValidationError``."""
        ref = await self._line(line_id)
        valid = validate_forward(kind, target, timeout_s, line_number=ref.number, on_net=self.lines.by_number,
                                 allowed=self.config.forward_classes, country_code=self.country_code)
        await repo_policy.write_forwarding(self.sf, ref, valid.kind, valid.target, valid.timeout_s, actor)
        self._changed()
        rule = ForwardRule(valid.kind, valid.target, valid.timeout_s)
        lp = self._line_policy(ref)
        self._put_line(replace(lp, forwards={**lp.forwards, valid.kind: rule}))
        return rule

    async def clear_forwarding(self, line_id: int, kind: ForwardKind | None, actor: str) -> list[str]:
        ref = await self._line(line_id)
        kinds = list(ForwardKind) if kind is None else [kind]
        removed = await repo_policy.delete_forwarding(self.sf, ref, kinds, actor)
        self._changed()
        lp = self._line_policy(ref)
        self._put_line(replace(lp, forwards={k: r for k, r in lp.forwards.items() if k not in kinds}))
        return removed

    async def set_line_barring(self, line_id: int, categories: frozenset[BarringCategory], actor: str) -> None:
        ref = await self._line(line_id)
        await repo_policy.write_line_barring(self.sf, ref, categories, actor)
        self._changed()
        self._put_line(replace(self._line_policy(ref), barring=frozenset(categories)))

    async def set_customer_barring(self, customer_id: int, external_id: str, categories: frozenset[BarringCategory],
                                   actor: str) -> None:
        await repo_policy.write_customer_barring(self.sf, customer_id, external_id, categories, actor)
        self._changed()
        self._put_customer(replace(self._customer_policy(customer_id, external_id), barring=frozenset(categories)))

    async def set_fraud_limits(self, customer_id: int, external_id: str, raw: object, actor: str) -> FraudLimits:
        limits = validate_limits(raw)
        await repo_policy.write_fraud_limits(self.sf, customer_id, external_id, limits, actor)
        self._changed()
        merged = replace(self.config.default_limits, **limits)
        self._put_customer(replace(self._customer_policy(customer_id, external_id), limits=merged))
        return merged

    async def suspend(self, customer_id: int, line_id: int | None, level: SuspensionLevel, reason: SuspensionReason,
                      note: str, actor: str) -> int:
        ref = None if line_id is None else await self._line(line_id)
        if ref is not None and ref.customer_id != customer_id:
            raise PolicyValidationError("line", f"line {ref.number} does not belong to this customer")
        external = self.state.customers[customer_id].external_id if customer_id in self.state.customers else None
        if external is None:
            found = await repo_policy.load_policy(self.sf)
            external = found.customers.get(customer_id)
            if external is None:
                raise PolicyValidationError("customer", f"no customer with id {customer_id}")
        row = await repo_policy.insert_suspension(self.sf, customer_id, external, ref, level, reason, note, actor)
        self._changed()
        self._apply_suspension(row, external)
        log.info("suspension %d: %s %s (%s) of customer %s%s by %s", row.id, level.value, "line" if ref else "customer",
                 reason.value, external, f" line {ref.number}" if ref else "", actor)
        return row.id

    def _apply_suspension(self, row: SuspensionRow, external: str) -> None:
        active = ActiveSuspension(row.id, row.customer_id, row.line_id, row.level, row.reason, _epoch(row.created_at))
        if row.line_id is None:
            cp = self._customer_policy(row.customer_id, external)
            self._put_customer(replace(cp, suspensions=cp.suspensions + (active,)))
        else:
            lp = self.state.lines.get(row.line_id)
            if lp is not None:
                self._put_line(replace(lp, suspensions=lp.suspensions + (active,)))

    async def lift(self, suspension_id: int, note: str, actor: str) -> SuspensionRow | None:
        row = await repo_policy.lift_suspension(self.sf, suspension_id, note, actor)
        if row is None:
            return None
        self._changed()
        cp = self.state.customers.get(row.customer_id)
        if cp is not None:
            self._put_customer(replace(cp, suspensions=tuple(s for s in cp.suspensions if s.id != suspension_id)))
        if row.line_id is not None:
            lp = self.state.lines.get(row.line_id)
            if lp is not None:
                self._put_line(replace(lp, suspensions=tuple(s for s in lp.suspensions if s.id != suspension_id)))
        log.info("suspension %d lifted by %s", suspension_id, actor)
        return row


def _build(rows: PolicyRows, config: PolicyConfig) -> PolicyState:
    forwards: dict[int, dict[ForwardKind, ForwardRule]] = {}
    for lid, kind, target, timeout in rows.forwards:
        forwards.setdefault(lid, {})[kind] = ForwardRule(kind, target, timeout)
    line_barring: dict[int, set[BarringCategory]] = {}
    for lid, cat in rows.line_barring:
        line_barring.setdefault(lid, set()).add(cat)
    customer_barring: dict[int, set[BarringCategory]] = {}
    for cid, cat in rows.customer_barring:
        customer_barring.setdefault(cid, set()).add(cat)
    line_sus: dict[int, list[ActiveSuspension]] = {}
    customer_sus: dict[int, list[ActiveSuspension]] = {}
    for s in rows.suspensions:
        active = ActiveSuspension(s.id, s.customer_id, s.line_id, s.level, s.reason, _epoch(s.created_at))
        if s.line_id is None:
            customer_sus.setdefault(s.customer_id, []).append(active)
        else:
            line_sus.setdefault(s.line_id, []).append(active)
    lines = {
        ref.line_id: LinePolicy(
            ref.line_id, ref.number, ref.customer_id, frozenset(line_barring.get(ref.line_id, ())),
            forwards.get(ref.line_id, {}), tuple(line_sus.get(ref.line_id, ())),
        )
        for ref in rows.lines
    }
    customers = {
        cid: CustomerPolicy(
            cid, ref, frozenset(customer_barring.get(cid, ())), tuple(customer_sus.get(cid, ())),
            replace(config.default_limits, **rows.limits.get(cid, {})),
        )
        for cid, ref in rows.customers.items()
    }
    return PolicyState(lines, customers, config)
