"""Prices CDR rows as they are written, keeps per-customer period totals.

Who pays: the calling line's customer (``calling_line_id``). A forwarded leg
carries the forwarding line there, so the forwarder pays for the leg it
created; a carrier's call to us has no calling line and is not billed
(``charge_ore``, ``zone`` and ``tariff_version`` stay NULL). An unanswered
call of a line costs 0 and still says which zone it would have been.

The writer calls ``rate_rows`` for each new batch (in the group committer's
task, not the call path), and writes through ``wrap_write``, which adds the
written rows' amounts to ``billing_totals`` after the CDR insert succeeded;
if that update fails the amounts are kept and added with the next batch (the
CDRs themselves are never written twice for it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from switch.store.engine import SessionFactory
from switch.store.repo_billing import (
    add_totals,
    load_line_accounts,
    load_tariff_documents,
    period_totals,
    tariff_fingerprint,
)

from ..periodic import Periodic
from .credit import CreditControl, Suspender
from .periods import MonthlyPeriods
from .rater import Rating, TariffBook
from .tariff import tariff_from_document

__all__ = ["Account", "Quote", "RatingService", "TotalsListener"]

log = logging.getLogger(__name__)

Rows = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Account:
    customer_id: int
    kind: str = "private"
    credit_limit_ore: int | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    """A price look-up's answer: the tariff, the entry that matched and the call's price."""

    tariff_version: int
    tariff_name: str
    valid_from: datetime
    #: the matched prefix (E.164 digits without "+"); None for emergency numbers (always free)
    prefix: str | None
    zone_name: str
    rating: Rating


class TotalsListener(Protocol):
    """Told of every priced call (the credit limit)."""

    def charged(self, customer_id: int, period_start: datetime, ore: int, cut: bool = False) -> None: ...


class RatingService:
    def __init__(
        self,
        book: TariffBook,
        *,
        periods: MonthlyPeriods | None = None,
        country_code: str = "47",
        session_factory: SessionFactory | None = None,
        credit: Callable[[RatingService], CreditControl] | None = None,
    ) -> None:
        """``credit`` builds the credit limit from this service (it reads the accounts and prices
        it is told of); it is then told of every priced call. None: no credit limit (re-rating)."""
        self.book = book
        self.periods = periods or MonthlyPeriods()
        self.country_code = country_code
        self.accounts: dict[int, Account] = {}
        #: customer id → credit limit (øre) or None, rebuilt with the accounts
        self.customer_limits: dict[int, int | None] = {}
        self._sf = session_factory
        self._unsaved: dict[tuple[int, datetime], list[int]] = {}
        self._accounts_loaded_at = 0.0
        #: the stored tariffs' (version, sha256) the book was built from
        self._tariffs_seen: object = None
        self._reload: Periodic | None = None
        self._adopted = False
        self.rated = 0
        self.unpriced = 0
        self.credit: CreditControl | None = None if credit is None else credit(self)
        self.listeners: tuple[TotalsListener, ...] = () if self.credit is None else (self.credit,)

    @classmethod
    async def open(
        cls,
        sf: SessionFactory,
        *,
        tz: str = "Europe/Oslo",
        country_code: str = "47",
        reload_interval: float = 30.0,
        margin_ore: int = 5000,
        suspender: Callable[[], Suspender | None] = lambda: None,
        credit: bool = True,
    ) -> RatingService:
        """Load tariffs (importing the bundled price list into an empty database), accounts and this
        period's totals; start the credit limit (unless ``credit`` is False: ``run --rating off``, where
        the tariffs serve only the price look-up); keep them fresh."""
        from .admin import ensure_bundled_tariffs

        await ensure_bundled_tariffs(sf)
        def credit_limit(s: RatingService) -> CreditControl:
            return CreditControl(s, margin_ore=margin_ore, suspender=suspender)

        service = cls(TariffBook(), periods=MonthlyPeriods(tz), country_code=country_code, session_factory=sf,
                      credit=credit_limit if credit else None)
        await service.reload()
        if service.credit is not None:
            service.credit.load_totals(await period_totals(sf, service.credit.period))
        service._reload = Periodic("reloading tariffs, billing accounts and totals", service._reload_step,
                                   reload_interval)
        service._reload.start()
        return service

    async def _reload_step(self) -> None:
        """A failed step is logged by the job; rating goes on with what we have."""
        await self.flush_totals()
        await self.reload()
        credit = self.credit
        if credit is not None and self._sf is not None:
            credit.tick()
            # Re-read the totals: a ``softswitch rerate`` in another process may have changed them.
            totals = await period_totals(self._sf, credit.period)
            for (cid, period), (ore, _calls) in self._unsaved.items():
                if period == credit.period:
                    totals[cid] = totals.get(cid, 0) + ore
            credit.load_totals(totals)
            if not self._adopted and credit.suspender() is not None:
                await credit.adopt_existing(self._sf)
                self._adopted = True

    async def close(self) -> None:
        """Stop reloading; write totals still owed (call after the CDR writer has closed)."""
        if self._reload is not None:
            await self._reload.stop()
        await self.flush_totals()
        if self.credit is not None:
            await self.credit.close()

    # -- loading ---------------------------------------------------------------------
    def set_accounts(self, accounts: Mapping[int, Account]) -> None:
        self.accounts = dict(accounts)
        self.customer_limits = {a.customer_id: a.credit_limit_ore for a in self.accounts.values()}
        if self.credit is not None:
            self.credit.accounts_changed()

    async def reload(self) -> None:
        """Tariffs and line → customer accounts from the database.

        What did not change is kept, not rebuilt: rebuilding every 30 s re-allocated the whole
        price list and 10,000 accounts, and copies made just after a burst of calls land in the
        burst's memory and keep it from being returned (see bench/README.md, call-ladder memory).
        """
        assert self._sf is not None
        seen = await tariff_fingerprint(self._sf)
        if seen != self._tariffs_seen:
            docs = await load_tariff_documents(self._sf)
            self.book = TariffBook(tariff_from_document(d) for d in docs)
            self._tariffs_seen = seen
        await self.reload_accounts()

    async def reload_accounts(self) -> None:
        assert self._sf is not None
        loaded = await load_line_accounts(self._sf)
        accounts = {line_id: Account(a.customer_id, a.kind, a.credit_limit_ore) for line_id, a in loaded.items()}
        if accounts != self.accounts:
            self.set_accounts(accounts)
        self._accounts_loaded_at = time.monotonic()

    # -- rating ------------------------------------------------------------------------
    def quote(self, number: str, number_class: str | None, seconds: int, kind: str, epoch: float) -> Quote:
        """What a call to ``number`` (as a CDR stores it: E.164 or a national short code) of ``seconds``
        costs a ``kind`` customer if it started at ``epoch``: the price look-up of support staff.

        Priced by ``Rater.rate``, the call records' own code; LookupError says why there is no price.
        """
        rater = self.book.rater_at(epoch)
        if rater is None:
            raise LookupError("no tariff is valid at that time")
        rating = rater.rate(number, seconds, kind, number_class, self.country_code)
        if rating is None:
            raise LookupError(f"no entry of tariff version {rater.version} prices {number}")
        entry = None if number_class == "emergency" else rater.entry_for(number, self.country_code)
        zone_name = "emergency" if entry is None else entry[1].name
        return Quote(tariff_version=rater.version, tariff_name=rater.tariff.name,
                     valid_from=rater.tariff.valid_from, prefix=None if entry is None else entry[0],
                     zone_name=zone_name, rating=rating)

    def rating_for(self, line_id: int | None, number: str | None, number_class: str | None,
                   seconds: int, epoch: float) -> Rating | None:
        """What a call costs (None: nobody billed, no tariff, or no zone)."""
        if line_id is None or number is None:
            return None
        rater = self.book.rater_at(epoch)
        if rater is None:
            return None
        account = self.accounts.get(line_id)
        kind = account.kind if account is not None else "private"
        return rater.rate(number, seconds, kind, number_class, self.country_code)

    def rate_row(self, row: dict[str, Any]) -> None:
        """Fill ``charge_ore``, ``zone`` and ``tariff_version`` of one CDR row in place."""
        try:
            self._rate_row(row)
        except Exception:  # noqa: BLE001 - the CDR is written, unpriced, whatever happens here
            log.exception("cannot rate CDR %s", row.get("call_id"))
            row["charge_ore"] = row["zone"] = row["tariff_version"] = None
            self.unpriced += 1

    def _rate_row(self, row: dict[str, Any]) -> None:
        line_id = row.get("calling_line_id")
        if line_id is None:
            row["charge_ore"] = row["zone"] = row["tariff_version"] = None
            return
        setup: datetime = row["setup_at"]
        epoch = setup.timestamp()
        rater = self.book.rater_at(epoch)
        if rater is None:
            row["charge_ore"] = row["zone"] = row["tariff_version"] = None
            self.unpriced += 1
            return
        seconds = int(row.get("duration_s") or 0)
        number = row.get("normalised")
        account = self.accounts.get(line_id)
        rating = None
        if number is not None:
            kind = account.kind if account is not None else "private"
            rating = rater.rate(number, seconds, kind, row.get("number_class"), self.country_code)
        row["tariff_version"] = rater.version
        if rating is None:
            # Not a number any zone knows (refused as invalid): free when it never connected.
            row["zone"] = None
            row["charge_ore"] = 0 if seconds == 0 else None
            if seconds:
                self.unpriced += 1
            return
        row["zone"] = rating.zone
        row["charge_ore"] = rating.price_ore
        self.rated += 1
        if rating.price_ore > 0 and account is not None:
            period = self.periods.start_of(epoch)
            cut = row.get("cause") == "credit_limit"
            for listener in self.listeners:
                listener.charged(account.customer_id, period, rating.price_ore, cut)

    async def rate_rows(self, rows: Rows) -> None:
        """The CdrWriter hook: reload accounts first if a line is unknown (created since the last load)."""
        if self._sf is not None and time.monotonic() - self._accounts_loaded_at > 1.0:
            accounts = self.accounts
            if any(r.get("calling_line_id") is not None and r["calling_line_id"] not in accounts for r in rows):
                try:
                    await self.reload_accounts()
                except Exception:  # noqa: BLE001 - rate with what we have
                    log.exception("reloading billing accounts failed")
        for row in rows:
            if "tariff_version" not in row:  # a row retried after a database outage is priced (and counted) once
                self.rate_row(row)

    # -- totals in the database ------------------------------------------------------------
    def wrap_write(self, write: Callable[[Rows], Awaitable[None]]) -> Callable[[Rows], Awaitable[None]]:
        """A CDR write that also adds the written rows' amounts to the period totals."""

        async def write_and_total(rows: Rows) -> None:
            await write(rows)
            self._collect(rows)
            await self.flush_totals()

        return write_and_total

    def _collect(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            ore = row.get("charge_ore")
            line_id = row.get("calling_line_id")
            if not ore or line_id is None:
                continue
            account = self.accounts.get(line_id)
            if account is None:
                continue
            key = (account.customer_id, self.periods.start_of(row["setup_at"].timestamp()))
            acc = self._unsaved.setdefault(key, [0, 0])
            acc[0] += int(ore)
            acc[1] += 1

    async def flush_totals(self) -> None:
        if not self._unsaved or self._sf is None:
            return
        pending, self._unsaved = self._unsaved, {}
        try:
            await add_totals(self._sf, {k: (v[0], v[1]) for k, v in pending.items()})
        except asyncio.CancelledError:
            self._merge(pending)
            raise
        except Exception:  # noqa: BLE001 - the CDRs are stored; the totals catch up with the next batch
            log.exception("updating billing totals failed; kept for the next batch")
            self._merge(pending)

    def _merge(self, pending: dict[tuple[int, datetime], list[int]]) -> None:
        for key, (ore, calls) in pending.items():
            acc = self._unsaved.setdefault(key, [0, 0])
            acc[0] += ore
            acc[1] += calls
