"""Operator actions on tariffs and prices: import a price list, re-rate a period.

The rules live here (what a call costs); the reading and writing of call
records and totals is ``switch.store.repo_billing``'s.

Both are idempotent: importing the same file twice stores it once, and
re-rating a period twice changes nothing the second time (it reports how many
records changed). Re-rating recomputes the billing totals of every month it
touched from the call records themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from typing import Any

from switch.store.engine import SessionFactory
from switch.store.repo_billing import (
    Price,
    load_line_accounts,
    load_tariff_documents,
    recompute_totals,
    reprice_calls,
    save_tariff,
)

from .periods import MonthlyPeriods
from .rater import TariffBook
from .service import Account, RatingService
from .tariff import Tariff, bundled_tariff_paths, load_tariff, tariff_from_document

__all__ = ["RerateResult", "ensure_bundled_tariffs", "import_tariff", "load_book", "rerate"]

log = logging.getLogger(__name__)


async def import_tariff(sf: SessionFactory, tariff: Tariff | str | Path, actor: str) -> tuple[Tariff, bool]:
    """Store a tariff (a file is validated first); True when it was new."""
    t = tariff if isinstance(tariff, Tariff) else load_tariff(tariff)
    created = await save_tariff(sf, t.document(), t.valid_from, actor)
    return t, created


async def ensure_bundled_tariffs(sf: SessionFactory) -> list[int]:
    """On a database without any tariff, import the price list shipped with the switch.

    An operator who has imported their own keeps exactly what they imported.
    """
    if await load_tariff_documents(sf):
        return []
    versions = []
    for path in bundled_tariff_paths():
        t, created = await import_tariff(sf, path, "system:bundled")
        if created:
            log.info("imported the bundled tariff %s (version %d, valid from %s)", path.name, t.version, t.valid_from)
            versions.append(t.version)
    return versions


async def load_book(sf: SessionFactory) -> TariffBook:
    return TariffBook(tariff_from_document(d) for d in await load_tariff_documents(sf))


@dataclass(frozen=True, slots=True)
class RerateResult:
    examined: int
    changed: int
    difference_ore: int
    """New total minus old total over the changed records."""
    months: int


async def rerate(
    sf: SessionFactory,
    start: datetime,
    end: datetime,
    *,
    periods: MonthlyPeriods | None = None,
    country_code: str = "47",
    batch: int = 1000,
) -> RerateResult:
    """Re-price every call that started in [start, end) by the tariffs now stored."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("--from and --to need a time zone")
    if end <= start:
        raise ValueError("--to must be after --from")
    periods = periods or MonthlyPeriods()
    service = RatingService(await load_book(sf), periods=periods, country_code=country_code)
    accounts = await load_line_accounts(sf)
    service.set_accounts({lid: Account(a.customer_id, a.kind, a.credit_limit_ore) for lid, a in accounts.items()})

    def price(row: dict[str, Any]) -> Price:
        service.rate_row(row)
        return row["charge_ore"], row["zone"], row["tariff_version"]

    counts = await reprice_calls(sf, start, end, price, batch=batch)
    months = periods.months(start, end)
    await recompute_totals(sf, months, accounts)
    return RerateResult(counts.examined, counts.changed, counts.difference_ore, len(months))
