"""The database reads behind the web pages (one function per page section).

Plain SQLAlchemy selects returning small dataclasses: templates never touch
ORM objects (no lazy loads under asyncio), and every query is bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from switch.store.address import Address
from switch.store import models as m
from switch.store.base import utcnow
from switch.store.engine import SessionFactory
from switch.store.repo_adapters import normalise_mac

__all__ = [
    "AdapterRow",
    "CallRow",
    "CustomerDetail",
    "LineRow",
    "SearchResult",
    "adapter_detail",
    "calls_per_minute",
    "customer_detail",
    "line_calls",
    "search",
]

_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}([:\-.]?[0-9A-Fa-f]{2}){5}$")


@dataclass(frozen=True, slots=True)
class LineRow:
    line_id: int
    number: str
    port: int
    adapter_mac: str
    customer_ref: str
    display_name: str | None
    enabled: bool
    alarm: bool
    language: str
    unlisted: bool


@dataclass(frozen=True, slots=True)
class AdapterRow:
    adapter_id: int
    mac: str
    model: str
    vendor: str
    customer_ref: str | None
    firmware: str | None
    last_fetch_at: datetime | None


@dataclass(frozen=True, slots=True)
class CustomerRow:
    customer_id: int
    external_id: str
    name: str
    kind: str
    language: str
    state: str
    #: "Storgata 1, 0150 Oslo", or None when no postal address is recorded
    address: str | None = None


@dataclass(frozen=True, slots=True)
class SearchResult:
    customers: list[CustomerRow]
    adapters: list[AdapterRow]
    lines: list[LineRow]

    @property
    def empty(self) -> bool:
        return not (self.customers or self.adapters or self.lines)


@dataclass(frozen=True, slots=True)
class SuspensionRow:
    id: int
    line_number: str | None
    level: str
    reason: str
    note: str
    created_at: datetime
    created_by: str
    lifted_at: datetime | None
    lifted_by: str | None
    lift_note: str | None


@dataclass(frozen=True, slots=True)
class CustomerDetail:
    customer: CustomerRow
    contacts: list[dict[str, Any]]
    adapters: list[AdapterRow]
    lines: list[LineRow]
    suspensions: list[SuspensionRow]


@dataclass(frozen=True, slots=True)
class CallRow:
    id: int
    setup_at: datetime
    direction: str
    calling_number: str
    dialled: str
    normalised: str | None
    duration_s: int
    final_code: int | None
    cause: str | None
    answered: bool
    forwarded_from: str | None
    trail: list[str]
    price_ore: int | None
    support_code: str | None


def _cust(c: m.Customer) -> CustomerRow:
    address = None
    if c.address_street is not None and c.address_postcode is not None and c.address_city is not None:
        address = Address(c.address_street, c.address_postcode, c.address_city).one_line()
    return CustomerRow(c.id, c.external_id, c.name, str(c.kind), str(c.language), str(c.state), address)


def _line_query() -> Any:
    return (
        select(m.Line, m.Number.e164, m.Number.unlisted, m.Adapter.mac, m.Customer.external_id)
        .join(m.Number, m.Number.id == m.Line.number_id)
        .join(m.Adapter, m.Adapter.id == m.Line.adapter_id)
        .join(m.Customer, m.Customer.id == m.Line.customer_id)
    )


def _line_row(row: Any) -> LineRow:
    line, e164, unlisted, mac, ref = row
    return LineRow(line.id, e164, line.port, mac, ref, line.display_name, line.enabled, line.alarm,
                   str(line.language), bool(unlisted))


def _adapter_query() -> Any:
    return select(m.Adapter, m.Customer.external_id).outerjoin(m.Customer, m.Customer.id == m.Adapter.customer_id)


def _adapter_row(row: Any) -> AdapterRow:
    a, ref = row
    return AdapterRow(a.id, a.mac, a.model, a.vendor, ref, a.firmware_seen, a.last_config_fetch_at)


def _number_candidates(q: str) -> list[str]:
    digits = re.sub(r"[\s\-.()]", "", q)
    if digits.startswith("+") and digits[1:].isdigit():
        return [digits]
    if not digits.isdigit():
        return []
    if digits.startswith("00"):
        return ["+" + digits[2:]]
    out = ["+47" + digits] if len(digits) <= 8 else []
    if len(digits) >= 10:
        out.append("+" + digits)
    return out


async def search(sf: SessionFactory, q: str, limit: int = 50) -> SearchResult:
    """Number (any dialling form, or its start), MAC, customer number or name."""
    q = q.strip()[:100]
    if not q:
        return SearchResult([], [], [])
    async with sf() as session:
        customers: dict[int, CustomerRow] = {}
        like = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = select(m.Customer).where(
            or_(
                func.lower(m.Customer.external_id) == q.lower(),
                func.lower(m.Customer.name).like(f"%{like.lower()}%", escape="\\"),
            )
        ).order_by(m.Customer.external_id).limit(limit)
        for c in (await session.execute(stmt)).scalars():
            customers[c.id] = _cust(c)
        adapters: list[AdapterRow] = []
        if _MAC_RE.match(q):
            mac = normalise_mac(q)
            adapters = [_adapter_row(r) for r in await session.execute(_adapter_query().where(m.Adapter.mac == mac))]
        lines: list[LineRow] = []
        numbers = _number_candidates(q)
        if numbers:
            conds = [m.Number.e164.like(n + "%") for n in numbers]
            rows = await session.execute(_line_query().where(or_(*conds)).order_by(m.Number.e164).limit(limit))
            lines = [_line_row(r) for r in rows]
        auth = await session.execute(_line_query().where(m.Line.auth_user == q).limit(1))
        lines += [r for r in (_line_row(x) for x in auth) if r.line_id not in {li.line_id for li in lines}]
    return SearchResult(list(customers.values()), adapters, lines)


async def customer_detail(sf: SessionFactory, external_id: str) -> CustomerDetail | None:
    async with sf() as session:
        c = (await session.execute(select(m.Customer).where(m.Customer.external_id == external_id))).scalar_one_or_none()
        if c is None:
            return None
        contacts = [
            {"name": x.name, "email": x.email, "phone": x.phone, "primary": x.is_primary}
            for x in (
                await session.execute(select(m.CustomerContact).where(m.CustomerContact.customer_id == c.id))
            ).scalars()
        ]
        adapters = [
            _adapter_row(r)
            for r in await session.execute(_adapter_query().where(m.Adapter.customer_id == c.id).order_by(m.Adapter.mac))
        ]
        lines = [
            _line_row(r)
            for r in await session.execute(_line_query().where(m.Line.customer_id == c.id).order_by(m.Number.e164))
        ]
        susp_rows = await session.execute(
            select(m.Suspension, m.Number.e164)
            .outerjoin(m.Line, m.Line.id == m.Suspension.line_id)
            .outerjoin(m.Number, m.Number.id == m.Line.number_id)
            .where(m.Suspension.customer_id == c.id)
            .order_by(m.Suspension.created_at.desc())
            .limit(100)
        )
        suspensions = [
            SuspensionRow(
                s.id, e164, str(getattr(s, "level", "soft")), str(s.reason), s.note, s.created_at, s.created_by,
                s.lifted_at, s.lifted_by, s.lift_note,
            )
            for s, e164 in susp_rows
        ]
    return CustomerDetail(_cust(c), contacts, adapters, lines, suspensions)


async def adapter_detail(sf: SessionFactory, mac: str) -> tuple[AdapterRow, list[LineRow], list[m.LampEvent]] | None:
    async with sf() as session:
        row = (await session.execute(_adapter_query().where(m.Adapter.mac == mac))).first()
        if row is None:
            return None
        adapter = _adapter_row(row)
        lines = [
            _line_row(r)
            for r in await session.execute(_line_query().where(m.Line.adapter_id == adapter.adapter_id).order_by(m.Line.port))
        ]
        events = list(
            (
                await session.execute(
                    select(m.LampEvent)
                    .where(m.LampEvent.adapter_id == adapter.adapter_id)
                    .order_by(m.LampEvent.at.desc(), m.LampEvent.id.desc())
                    .limit(100)
                )
            ).scalars()
        )
    return adapter, lines, events


def _trail(text: str | None) -> list[str]:
    if not text:
        return []
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return [text]
    if isinstance(data, list):
        return [str(x) if not isinstance(x, dict) else "; ".join(f"{k}: {v}" for k, v in x.items()) for x in data]
    return [str(data)]


async def line_by_number(sf: SessionFactory, number: str) -> LineRow | None:
    async with sf() as session:
        row = (await session.execute(_line_query().where(m.Number.e164 == number))).first()
    return _line_row(row) if row is not None else None


async def line_calls(sf: SessionFactory, line_id: int, limit: int = 100) -> list[CallRow]:
    async with sf() as session:
        rows = (
            await session.execute(
                select(m.CallRecord)
                .where(or_(m.CallRecord.calling_line_id == line_id, m.CallRecord.called_line_id == line_id))
                .order_by(m.CallRecord.setup_at.desc(), m.CallRecord.id.desc())
                .limit(limit)
            )
        ).scalars().all()
    out = []
    for r in rows:
        price = r.charge_ore  # the calls API's price_ore
        out.append(
            CallRow(
                r.id, r.setup_at, str(r.direction), r.calling_number, r.dialled, r.normalised, r.duration_s,
                r.final_code, r.cause, r.answer_at is not None, r.forwarded_from,
                _trail(getattr(r, "decision_trail", None)), price, getattr(r, "support_code", None),
            )
        )
    return out


async def calls_per_minute(sf: SessionFactory, minutes: int = 60) -> list[int]:
    """Calls set up per minute over the last ``minutes`` minutes, oldest first."""
    now = utcnow()
    start = now - timedelta(minutes=minutes)
    async with sf() as session:
        times = (
            await session.execute(select(m.CallRecord.setup_at).where(m.CallRecord.setup_at >= start).limit(200_000))
        ).scalars().all()
    buckets = [0] * minutes
    for t in times:
        i = int((t - start).total_seconds() // 60)
        if 0 <= i < minutes:
            buckets[i] += 1
    return buckets


async def dashboard_counts(sf: SessionFactory) -> dict[str, int]:
    async with sf() as session:
        lines = (await session.execute(select(func.count()).select_from(m.Line).where(m.Line.enabled))).scalar_one()
        suspensions = (
            await session.execute(select(func.count()).select_from(m.Suspension).where(m.Suspension.lifted_at.is_(None)))
        ).scalar_one()
        adapter_ids = list((await session.execute(select(m.Adapter.id, m.Adapter.mac))).all())
    return {"lines": int(lines), "suspensions": int(suspensions), "adapters": len(adapter_ids)}


async def adapters(sf: SessionFactory) -> list[tuple[int, str]]:
    async with sf() as session:
        return [(int(i), str(mac)) for i, mac in (await session.execute(select(m.Adapter.id, m.Adapter.mac))).all()]
