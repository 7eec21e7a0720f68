"""Credit limit per customer and billing period: running totals, suspension, cutting long calls.

The terms of service (§5): "I prislisten kan det fastsettes kredittgrense ...
Ved overskridelse av kredittgrensen kan Phonect midlertidig stenge tjenesten".
So, per customer with a ``credit_limit_ore``:

* The running total of the period's rated calls is kept in memory (loaded
  from ``billing_totals`` at start, then added to as each CDR is priced).
* When it reaches the limit, the customer gets a **soft suspension with
  reason credit_limit** through the policy service (outgoing calls refused
  with cause ``credit_limit``, except emergency and customer service;
  incoming calls still ring). Actor ``system:credit_limit``.
* The suspension is lifted automatically at the period rollover (the first
  of the month, Europe/Oslo) or when the limit is raised above the total (or
  removed) — but only suspensions this module made (reason credit_limit).
* A call in progress is cut when the customer's total *including what the
  live calls have cost so far* passes the limit by more than the margin:
  at each answer and each priced call, the customer's live calls get their
  maximum-duration timer moved to the moment their combined per-second
  price would cross ``limit + margin``. Emergency calls are never cut
  (``Call.limit_duration`` refuses them too).

The policy service is looked up when needed (``suspender()``), so wiring
order does not matter and the module works, without suspensions, where no
policy service runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from switch.store.engine import SessionFactory
from switch.store.models import SuspensionLevel, SuspensionReason
from switch.store.repo_billing import active_credit_suspensions

from ..b2bua.causes import Cause
from .periods import MonthlyPeriods
from .tariff import Price

if TYPE_CHECKING:
    from ..b2bua.call import Call
    from .service import Account, RatingService

__all__ = ["CreditControl", "Suspender"]

log = logging.getLogger(__name__)

ACTOR = "system:credit_limit"


class _Suspension(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def reason(self) -> SuspensionReason: ...
    @property
    def line_id(self) -> int | None: ...


class Suspender(Protocol):
    """The part of ``switch.services.policy.PolicyService`` the credit limit uses."""

    async def suspend(self, customer_id: int, line_id: int | None, level: SuspensionLevel, reason: SuspensionReason,
                      note: str, actor: str) -> int: ...

    async def lift(self, suspension_id: int, note: str, actor: str) -> Any: ...

    def active_suspensions(self, customer_id: int) -> list[Any]: ...


@dataclass(slots=True)
class _Live:
    price: Price
    answered: float  # monotonic


class CreditControl:
    def __init__(
        self,
        rating: RatingService,
        *,
        margin_ore: int = 5000,
        suspender: Callable[[], Suspender | None] = lambda: None,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rating = rating
        self.periods: MonthlyPeriods = rating.periods
        self.margin_ore = margin_ore
        self.suspender = suspender
        self.wall = wall
        self.mono = mono
        now = wall()
        self.period: datetime = self.periods.start_of(now)
        self.period_end: float = self.periods.end_of(now)
        self.totals: dict[int, int] = {}
        #: customers we suspended (or are suspending) in this period
        self.suspended: set[int] = set()
        self.live: dict[int, weakref.WeakKeyDictionary[Call, _Live]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.cuts_armed = 0

    # -- limits ---------------------------------------------------------------------------
    def limit_of(self, customer_id: int) -> int | None:
        return self.rating.customer_limits.get(customer_id)

    def _limits(self) -> dict[int, int | None]:
        return self.rating.customer_limits

    # -- totals ---------------------------------------------------------------------------
    def load_totals(self, totals: Mapping[int, int]) -> None:
        """The current period's totals from the database (at start, and re-read every reload).

        Unchanged totals keep their dict: a copy every 30 s would move them into whatever memory
        a burst of calls has just left (see ``RatingService.reload``)."""
        if totals != self.totals:
            self.totals = dict(totals)

    def charged(self, customer_id: int, period_start: datetime, ore: int, cut: bool = False) -> None:
        """A call of ``customer_id`` was priced (the RatingService listener); ``cut``: it was ended
        for the credit limit (it may have stopped a few øre short of it: suspended all the same)."""
        self.tick()
        if period_start != self.period:
            return  # a late record of an earlier period: its invoice, not this month's limit
        total = self.totals.get(customer_id, 0) + ore
        self.totals[customer_id] = total
        limit = self.limit_of(customer_id)
        if limit is None:
            return
        if (total >= limit or cut) and customer_id not in self.suspended:
            self.suspended.add(customer_id)
            self._spawn(self._suspend(customer_id, total, limit))
        self._recompute(customer_id, limit)

    def tick(self) -> None:
        """Roll the period over when the wall clock has passed its end."""
        now = self.wall()
        if now < self.period_end:
            return
        self.period = self.periods.start_of(now)
        self.period_end = self.periods.end_of(now)
        self.totals = {}
        lifted, self.suspended = self.suspended, set()
        log.info("billing period %s begins: credit totals reset, %d credit-limit suspensions lifted",
                 self.period.date(), len(lifted))
        for customer_id in lifted:
            self._spawn(self._lift(customer_id, "new billing period"))

    def accounts_changed(self) -> None:
        """After an accounts reload: lift suspensions whose limit was raised above the total or removed."""
        self.tick()
        limits = self._limits()
        for customer_id in list(self.suspended):
            limit = limits.get(customer_id)
            if limit is None or self.totals.get(customer_id, 0) < limit:
                self.suspended.discard(customer_id)
                self._spawn(self._lift(customer_id, "credit limit raised" if limit is not None else "credit limit removed"))

    async def adopt_existing(self, sf: SessionFactory) -> None:
        """At start: take over credit-limit suspensions made before a restart, lift those no longer due
        (the month rolled over or the limit was raised while the switch was down)."""
        policy = self.suspender()
        if policy is None:
            return
        limits = self._limits()
        for suspension_id, customer_id in await active_credit_suspensions(sf):
            limit = limits.get(customer_id)
            if limit is not None and self.totals.get(customer_id, 0) >= limit:
                self.suspended.add(customer_id)
            else:
                await policy.lift(suspension_id, "credit limit no longer exceeded (new period or limit raised)", ACTOR)

    # -- suspension -------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no loop (offline re-rating): nothing to enforce
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _suspend(self, customer_id: int, total: int, limit: int) -> None:
        policy = self.suspender()
        if policy is None:
            log.warning("customer %d passed the credit limit (%d of %d øre) but no policy service runs to suspend",
                        customer_id, total, limit)
            self.suspended.discard(customer_id)  # try again with the next priced call
            return
        try:
            if any(s.reason is SuspensionReason.CREDIT_LIMIT and s.line_id is None
                   for s in policy.active_suspensions(customer_id)):
                return
            sid = await policy.suspend(
                customer_id, None, SuspensionLevel.SOFT, SuspensionReason.CREDIT_LIMIT,
                f"credit limit {limit / 100:.2f} NOK reached: {total / 100:.2f} NOK this period", ACTOR,
            )
            log.warning("customer %d suspended (credit limit): %d of %d øre this period, suspension %d",
                        customer_id, total, limit, sid)
        except Exception:  # noqa: BLE001 - try again with the next priced call
            self.suspended.discard(customer_id)
            log.exception("cannot suspend customer %d for the credit limit", customer_id)

    async def _lift(self, customer_id: int, why: str) -> None:
        policy = self.suspender()
        if policy is None:
            return
        try:
            for s in policy.active_suspensions(customer_id):
                if s.reason is SuspensionReason.CREDIT_LIMIT:
                    await policy.lift(s.id, why, ACTOR)
                    log.info("customer %d: credit-limit suspension %d lifted (%s)", customer_id, s.id, why)
        except Exception:  # noqa: BLE001
            log.exception("cannot lift the credit-limit suspension of customer %d", customer_id)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- calls in progress -----------------------------------------------------------------------
    def on_answer(self, call: Call) -> None:
        """The B2BUA's hook at answer: register the call and (re)arm the customer's cut-off timers."""
        rec = call.record
        line_id = rec.calling_line_id
        if line_id is None or call.emergency:
            return
        account: Account | None = self.rating.accounts.get(line_id)
        if account is None or account.credit_limit_ore is None:
            return
        rating = self.rating.rating_for(line_id, rec.normalised, rec.number_class, 60, rec.setup_at)
        if rating is None or (rating.price.per_minute_ore == 0 and rating.price.start_ore == 0):
            return
        calls = self.live.setdefault(account.customer_id, weakref.WeakKeyDictionary())
        calls[call] = _Live(rating.price, self.mono())
        self._recompute(account.customer_id, account.credit_limit_ore)

    def _recompute(self, customer_id: int, limit: int) -> None:
        calls = self.live.get(customer_id)
        if not calls:
            return
        from ..b2bua.call import CallState

        now = self.mono()
        spent = self.totals.get(customer_id, 0)
        per_second = 0.0
        running = []
        for call, live in list(calls.items()):
            if call.state is not CallState.CONNECTED:
                del calls[call]
                continue
            spent += live.price.for_seconds(max(1, int(now - live.answered) + 1))
            per_second += live.price.per_minute_ore / 60.0
            running.append(call)
        if not running:
            return
        budget = limit + self.margin_ore - spent
        seconds = 0.0 if budget <= 0 else (budget / per_second if per_second > 0 else float("inf"))
        if seconds == float("inf"):
            return
        for call in running:
            call.limit_duration(seconds, Cause.CREDIT_LIMIT)
            self.cuts_armed += 1
