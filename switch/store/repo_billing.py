"""Billing data: imported tariffs, who pays for a line, running period totals, re-rating.

The rater itself lives in ``switch.services.rating``; this module only moves
rows. Totals are kept additively (``total = total + delta``) so the running
switch and a ``softswitch rerate`` in another process can both adjust them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .base import utcnow
from .engine import SessionFactory
from .models import BillingTotal, CallRecord, Customer, Line, Tariff

__all__ = [
    "LineAccount",
    "TariffConflict",
    "add_totals",
    "document_sha256",
    "load_line_accounts",
    "load_tariff_documents",
    "period_totals",
    "save_tariff",
]


class TariffConflict(ValueError):
    """A tariff version that is already stored with other content."""


@dataclass(frozen=True, slots=True)
class LineAccount:
    """Who pays for a line's calls and on what terms."""

    line_id: int
    customer_id: int
    kind: str
    credit_limit_ore: int | None


def document_sha256(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def load_tariff_documents(sf: SessionFactory) -> list[dict[str, Any]]:
    async with sf() as session:
        rows = (await session.execute(select(Tariff.document).order_by(Tariff.valid_from, Tariff.version))).scalars()
        return [dict(d) for d in rows]


async def save_tariff(sf: SessionFactory, document: Mapping[str, Any], valid_from: datetime, actor: str) -> bool:
    """Store a tariff version; False when the same content is already there (idempotent import).

    A version already stored with different prices is refused: invoices
    already sent were rated by it. A corrected price list is a new version.
    """
    sha = document_sha256(document)
    version = int(document["version"])
    async with sf() as session:
        async with session.begin():
            existing = (await session.execute(select(Tariff).where(Tariff.version == version))).scalar_one_or_none()
            if existing is not None:
                if existing.sha256 == sha:
                    return False
                raise TariffConflict(
                    f"tariff version {version} is already imported with other content "
                    f"(on {existing.imported_at:%Y-%m-%d %H:%M} by {existing.imported_by or 'unknown'}); "
                    "give the corrected price list a new version number"
                )
            session.add(
                Tariff(
                    version=version,
                    name=str(document.get("name", ""))[:200],
                    valid_from=valid_from,
                    document=dict(document),
                    sha256=sha,
                    imported_by=actor[:100],
                )
            )
    return True


async def load_line_accounts(sf: SessionFactory) -> dict[int, LineAccount]:
    async with sf() as session:
        rows = await session.execute(
            select(Line.id, Customer.id, Customer.kind, Customer.credit_limit_ore).join(
                Customer, Line.customer_id == Customer.id
            )
        )
        return {
            line_id: LineAccount(line_id, customer_id, str(getattr(kind, "value", kind)), limit)
            for line_id, customer_id, kind, limit in rows
        }


def _insert_for(session: Any) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def add_totals(sf: SessionFactory, deltas: Mapping[tuple[int, datetime], tuple[int, int]]) -> None:
    """Add (øre, calls) to each (customer, period) total, creating rows as needed; one transaction."""
    if not deltas:
        return
    now = utcnow()
    async with sf() as session:
        async with session.begin():
            insert = _insert_for(session)
            for (customer_id, period), (ore, calls) in sorted(deltas.items()):
                stmt = insert(BillingTotal).values(
                    customer_id=customer_id, period_start=period, total_ore=ore, calls=calls, updated_at=now
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=[BillingTotal.customer_id, BillingTotal.period_start],
                    set_={
                        "total_ore": BillingTotal.total_ore + ore,
                        "calls": BillingTotal.calls + calls,
                        "updated_at": now,
                    },
                )
                await session.execute(stmt)


async def period_totals(sf: SessionFactory, period_start: datetime) -> dict[int, int]:
    """Customer id → total øre of the period starting at ``period_start``."""
    async with sf() as session:
        rows = await session.execute(
            select(BillingTotal.customer_id, BillingTotal.total_ore).where(BillingTotal.period_start == period_start)
        )
        return {cid: int(total) for cid, total in rows}


async def recompute_totals(
    sf: SessionFactory, periods: Iterable[tuple[datetime, datetime]], accounts: Mapping[int, LineAccount]
) -> dict[tuple[int, datetime], tuple[int, int]]:
    """Rebuild the totals of whole periods from the call records (after a re-rate); returns what was stored."""
    result: dict[tuple[int, datetime], tuple[int, int]] = {}
    now = utcnow()
    async with sf() as session:
        async with session.begin():
            for start, end in periods:
                rows = await session.execute(
                    select(CallRecord.calling_line_id, func.coalesce(func.sum(CallRecord.charge_ore), 0), func.count())
                    .where(
                        and_(
                            CallRecord.setup_at >= start,
                            CallRecord.setup_at < end,
                            CallRecord.calling_line_id.is_not(None),
                            CallRecord.charge_ore > 0,
                        )
                    )
                    .group_by(CallRecord.calling_line_id)
                )
                per_customer: dict[int, list[int]] = {}
                for line_id, ore, calls in rows:
                    account = None if line_id is None else accounts.get(int(line_id))
                    if account is None:
                        continue
                    acc = per_customer.setdefault(account.customer_id, [0, 0])
                    acc[0] += int(ore or 0)
                    acc[1] += int(calls or 0)
                await session.execute(
                    update(BillingTotal)
                    .where(BillingTotal.period_start == start)
                    .values(total_ore=0, calls=0, updated_at=now)
                )
                insert = _insert_for(session)
                for customer_id, (ore, calls) in per_customer.items():
                    stmt = insert(BillingTotal).values(
                        customer_id=customer_id, period_start=start, total_ore=ore, calls=calls, updated_at=now
                    )
                    stmt = stmt.on_conflict_do_update(
                        index_elements=[BillingTotal.customer_id, BillingTotal.period_start],
                        set_={"total_ore": ore, "calls": calls, "updated_at": now},
                    )
                    await session.execute(stmt)
                    result[(customer_id, start)] = (ore, calls)
    return result
