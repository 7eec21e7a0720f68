"""Billing data: imported tariffs, who pays for a line, running period totals, re-rating.

The rater itself lives in ``switch.services.rating``; this module only moves
rows. Totals are kept additively (``total = total + delta``) so the running
switch and a ``softswitch rerate`` in another process can both adjust them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .address import Address
from .base import utcnow
from .engine import SessionFactory
from .models import BillingTotal, CallRecord, Customer, CustomerState, Line, Tariff

__all__ = [
    "DirectoryEntry",
    "InactiveLine",
    "InvoiceLine",
    "LineAccount",
    "TariffConflict",
    "active_credit_suspensions",
    "add_totals",
    "credit_limit_of",
    "set_credit_limit",
    "customer_line_ids",
    "customer_ref",
    "directory_listing",
    "inactive_lines",
    "invoice_summary",
    "stream_invoice_lines",
    "document_sha256",
    "load_line_accounts",
    "load_tariff_documents",
    "period_totals",
    "save_tariff",
    "tariff_fingerprint",
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


async def tariff_fingerprint(sf: SessionFactory) -> tuple[tuple[int, str], ...]:
    """(version, sha256) of every stored tariff: the periodic reload rebuilds the book only when it changes."""
    async with sf() as session:
        rows = await session.execute(select(Tariff.version, Tariff.sha256).order_by(Tariff.valid_from, Tariff.version))
        return tuple((int(v), str(sha)) for v, sha in rows)


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


#: (charge in øre, zone, tariff version) of one call record; all None: not priced
Price = tuple[int | None, str | None, int | None]


@dataclass(frozen=True, slots=True)
class RepriceCounts:
    examined: int
    changed: int
    difference_ore: int
    """New total minus old total over the changed records."""


async def reprice_calls(
    sf: SessionFactory,
    start: datetime,
    end: datetime,
    price: Callable[[dict[str, Any]], Price],
    *,
    batch: int = 1000,
) -> RepriceCounts:
    """Give every call record that started in [start, end) the price ``price`` says, in id order.

    ``price`` gets the row as the rater reads it (call_id, calling_line_id,
    normalised, number_class, duration_s, setup_at); only records whose price,
    zone or tariff version changes are written, one transaction per batch, so
    a second run over the same period writes nothing.
    """
    examined = changed = diff = 0
    last_id = 0
    while True:
        async with sf() as session:
            async with session.begin():
                records = (
                    await session.execute(
                        select(
                            CallRecord.id, CallRecord.calling_line_id, CallRecord.normalised, CallRecord.number_class,
                            CallRecord.duration_s, CallRecord.setup_at, CallRecord.charge_ore, CallRecord.zone,
                            CallRecord.tariff_version,
                        )
                        .where(and_(CallRecord.setup_at >= start, CallRecord.setup_at < end, CallRecord.id > last_id))
                        .order_by(CallRecord.id)
                        .limit(batch)
                    )
                ).all()
                if not records:
                    return RepriceCounts(examined, changed, diff)
                for rec in records:
                    examined += 1
                    last_id = rec.id
                    new = price({
                        "call_id": rec.id,
                        "calling_line_id": rec.calling_line_id,
                        "normalised": rec.normalised,
                        "number_class": rec.number_class,
                        "duration_s": rec.duration_s,
                        "setup_at": rec.setup_at,
                    })
                    if new != (rec.charge_ore, rec.zone, rec.tariff_version):
                        changed += 1
                        diff += (new[0] or 0) - (rec.charge_ore or 0)
                        await session.execute(
                            update(CallRecord)
                            .where(CallRecord.id == rec.id)
                            .values(charge_ore=new[0], zone=new[1], tariff_version=new[2])
                        )


# ----------------------------------------------------------------- invoices and reports


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One billed call on an invoice specification."""

    setup_at: datetime
    line_number: str
    dialled: str
    normalised: str | None
    zone: str | None
    duration_s: int
    price_ore: int
    forwarded_from: str | None
    tariff_version: int | None


async def customer_ref(sf: SessionFactory, external_id: str) -> tuple[int, str] | None:
    """(id, name) of the customer with this customer number."""
    async with sf() as session:
        row = (
            await session.execute(select(Customer.id, Customer.name).where(Customer.external_id == external_id))
        ).first()
        return None if row is None else (int(row[0]), str(row[1]))


async def customer_line_ids(sf: SessionFactory, customer_id: int, number: str | None = None) -> list[int]:
    """The customer's lines (or the one with ``number``), for selecting its calls."""
    from .models import Number

    async with sf() as session:
        stmt = select(Line.id).where(Line.customer_id == customer_id)
        if number is not None:
            stmt = stmt.join(Number, Line.number_id == Number.id).where(Number.e164 == number)
        return [int(i) for i in (await session.execute(stmt)).scalars()]


def _billed(line_ids: list[int], start: datetime, end: datetime) -> Any:
    return and_(
        CallRecord.calling_line_id.in_(line_ids),
        CallRecord.setup_at >= start,
        CallRecord.setup_at < end,
        CallRecord.duration_s > 0,
        CallRecord.charge_ore.is_not(None),
    )


async def stream_invoice_lines(
    sf: SessionFactory, line_ids: list[int], start: datetime, end: datetime, chunk: int = 500
) -> AsyncIterator[InvoiceLine]:
    """The billed (answered) calls of these lines in [start, end), oldest first, streamed from the database."""
    if not line_ids:
        return
    stmt = (
        select(
            CallRecord.setup_at, CallRecord.calling_number, CallRecord.dialled, CallRecord.normalised,
            CallRecord.zone, CallRecord.duration_s, CallRecord.charge_ore, CallRecord.forwarded_from,
            CallRecord.tariff_version,
        )
        .where(_billed(line_ids, start, end))
        .order_by(CallRecord.setup_at, CallRecord.id)
        .execution_options(yield_per=chunk)
    )
    async with sf() as session:
        result = await session.stream(stmt)
        async for r in result:
            yield InvoiceLine(r[0], r[1], r[2], r[3], r[4], int(r[5]), int(r[6] or 0), r[7], r[8])


async def invoice_summary(
    sf: SessionFactory, line_ids: list[int], start: datetime, end: datetime
) -> list[tuple[str | None, int, int, int]]:
    """Per zone: (zone, calls, seconds, øre), by amount, largest first."""
    if not line_ids:
        return []
    async with sf() as session:
        rows = await session.execute(
            select(CallRecord.zone, func.count(), func.sum(CallRecord.duration_s), func.sum(CallRecord.charge_ore))
            .where(_billed(line_ids, start, end))
            .group_by(CallRecord.zone)
        )
        out = [(z, int(n or 0), int(s or 0), int(o or 0)) for z, n, s, o in rows]
    return sorted(out, key=lambda r: (-r[3], r[0] or ""))


@dataclass(frozen=True, slots=True)
class InactiveLine:
    number: str | None
    customer: str
    customer_name: str
    line_created_at: datetime
    last_outgoing_at: datetime | None
    last_answered_at: datetime | None


async def inactive_lines(sf: SessionFactory, cutoff: datetime) -> list[InactiveLine]:
    """Lines older than ``cutoff`` with no outgoing call and no answered incoming call since it.

    The terms of service let the operator terminate a line unused for six
    months; this lists the candidates with what was last seen, for a person
    to decide.
    """
    from .models import Number

    out_q = (
        select(CallRecord.calling_line_id.label("line_id"), func.max(CallRecord.setup_at).label("at"))
        .where(CallRecord.calling_line_id.is_not(None))
        .group_by(CallRecord.calling_line_id)
        .subquery()
    )
    in_q = (
        select(CallRecord.called_line_id.label("line_id"), func.max(CallRecord.setup_at).label("at"))
        .where(CallRecord.called_line_id.is_not(None), CallRecord.answer_at.is_not(None))
        .group_by(CallRecord.called_line_id)
        .subquery()
    )
    stmt = (
        select(Number.e164, Customer.external_id, Customer.name, Line.created_at, out_q.c.at, in_q.c.at)
        .select_from(Line)
        .join(Customer, Line.customer_id == Customer.id)
        .outerjoin(Number, Line.number_id == Number.id)
        .outerjoin(out_q, out_q.c.line_id == Line.id)
        .outerjoin(in_q, in_q.c.line_id == Line.id)
        .where(Line.created_at < cutoff, Customer.state == CustomerState.ACTIVE)
        .order_by(Customer.external_id, Number.e164)
    )
    from .base import UtcDateTime

    conv = UtcDateTime()
    async with sf() as session:
        rows = (await session.execute(stmt)).all()
        dialect = session.get_bind().dialect
    result: list[InactiveLine] = []
    for e164, ext, name, created, last_out, last_in in rows:
        # max() over a column loses its type on SQLite (a string comes back): convert like the column does.
        last_out = _as_dt(last_out, conv, dialect)
        last_in = _as_dt(last_in, conv, dialect)
        if (last_out is not None and last_out >= cutoff) or (last_in is not None and last_in >= cutoff):
            continue
        result.append(InactiveLine(e164, ext, name, created, last_out, last_in))
    return result


def _as_dt(value: Any, conv: Any, dialect: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    out: datetime | None = conv.process_result_value(value, dialect)
    return out


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    number: str
    name: str
    #: None: the customer has no postal address recorded
    address: Address | None


async def directory_listing(sf: SessionFactory) -> list[DirectoryEntry]:
    """Listed numbers in use with their subscriber's name and postal address (unlisted ones excluded), by number."""
    from .models import Number

    async with sf() as session:
        rows = await session.execute(
            select(Number.e164, Customer.name, Customer.address_street, Customer.address_postcode,
                   Customer.address_city)
            .join(Customer, Number.customer_id == Customer.id)
            .where(Number.unlisted.is_(False), Customer.state == CustomerState.ACTIVE)
            .order_by(Number.e164)
        )
        return [
            DirectoryEntry(e164, name, None if street is None or postcode is None or city is None
                           else Address(street, postcode, city))
            for e164, name, street, postcode, city in rows
        ]


async def set_credit_limit(sf: SessionFactory, customer_id: int, limit_ore: int | None, actor: str) -> int | None:
    """Set (None: remove) a customer's credit limit with an audit event; returns the old limit."""
    from .repo_audit import add_audit_event

    async with sf() as session:
        async with session.begin():
            customer = await session.get(Customer, customer_id)
            if customer is None:
                raise LookupError(customer_id)
            old = customer.credit_limit_ore
            customer.credit_limit_ore = limit_ore
            add_audit_event(session, actor=actor, action="customer.credit_limit", subject_type="customer",
                            subject_id=customer.external_id, customer_id=customer_id,
                            details={"old_ore": old, "new_ore": limit_ore})
    return old


async def credit_limit_of(sf: SessionFactory, customer_id: int) -> int | None:
    async with sf() as session:
        return (await session.execute(select(Customer.credit_limit_ore).where(Customer.id == customer_id))).scalar()


async def active_credit_suspensions(sf: SessionFactory) -> list[tuple[int, int]]:
    """(suspension id, customer id) of every credit-limit suspension not yet lifted."""
    from .models import Suspension, SuspensionReason

    async with sf() as session:
        rows = await session.execute(
            select(Suspension.id, Suspension.customer_id).where(
                Suspension.reason == SuspensionReason.CREDIT_LIMIT, Suspension.lifted_at.is_(None)
            )
        )
        return [(int(i), int(c)) for i, c in rows]
