"""Call policy rows: forwarding, barring (line and customer), suspensions, fraud limits.

The switch reads all of it once into memory (``load_policy``) and writes each
change here together with its audit event, in one transaction: an API call
either changes the setting and records who did it, or does neither.
Suspension rows are never deleted; lifting one fills ``lifted_*``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from switch.store.base import utcnow
from switch.store.engine import SessionFactory
from switch.store.models import (
    BarringCategory,
    Customer,
    CustomerBarring,
    CustomerFraudLimits,
    ForwardingRule,
    ForwardKind,
    Line,
    LineBarring,
    Number,
    Suspension,
    SuspensionLevel,
    SuspensionReason,
)
from switch.store.repo_audit import add_audit_event

__all__ = [
    "PolicyRows",
    "SuspensionRow",
    "LineRef",
    "load_policy",
    "policy_fingerprint",
    "line_by_number",
    "customer_by_ref",
    "write_forwarding",
    "delete_forwarding",
    "write_line_barring",
    "write_customer_barring",
    "write_fraud_limits",
    "insert_suspension",
    "lift_suspension",
    "suspension_history",
]

LIMIT_COLUMNS = ("calls_per_line", "calls_per_customer", "attempts_per_hour", "night_attempts_per_hour")


@dataclass(frozen=True, slots=True)
class SuspensionRow:
    id: int
    customer_id: int
    line_id: int | None
    level: SuspensionLevel
    reason: SuspensionReason
    note: str
    created_at: datetime
    created_by: str
    lifted_at: datetime | None = None
    lifted_by: str | None = None
    lift_note: str | None = None

    def as_json(self, numbers: dict[int, str] | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "line": (numbers or {}).get(self.line_id) if self.line_id is not None else None,
            "level": self.level.value,
            "reason": self.reason.value,
            "note": self.note,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "created_by": self.created_by,
            "active": self.lifted_at is None,
            "lifted_at": None if self.lifted_at is None else self.lifted_at.isoformat(timespec="seconds"),
            "lifted_by": self.lifted_by,
            "lift_note": self.lift_note,
        }


@dataclass(frozen=True, slots=True)
class LineRef:
    line_id: int
    number: str
    customer_id: int
    customer_ref: str


@dataclass(slots=True)
class PolicyRows:
    """Everything the policy service holds, as read from the database."""

    lines: list[LineRef] = field(default_factory=list)
    customers: dict[int, str] = field(default_factory=dict)
    forwards: list[tuple[int, ForwardKind, str, int | None]] = field(default_factory=list)
    line_barring: list[tuple[int, BarringCategory]] = field(default_factory=list)
    customer_barring: list[tuple[int, BarringCategory]] = field(default_factory=list)
    suspensions: list[SuspensionRow] = field(default_factory=list)
    limits: dict[int, dict[str, int]] = field(default_factory=dict)


def _suspension(s: Suspension) -> SuspensionRow:
    return SuspensionRow(
        id=s.id, customer_id=s.customer_id, line_id=s.line_id, level=SuspensionLevel(s.level),
        reason=SuspensionReason(s.reason), note=s.note, created_at=s.created_at, created_by=s.created_by,
        lifted_at=s.lifted_at, lifted_by=s.lifted_by, lift_note=s.lift_note,
    )


async def load_policy(sf: SessionFactory) -> PolicyRows:
    rows = PolicyRows()
    async with sf() as session:
        for lid, e164, cid, ref in await session.execute(
            select(Line.id, Number.e164, Line.customer_id, Customer.external_id)
            .join(Number, Line.number_id == Number.id)
            .join(Customer, Line.customer_id == Customer.id)
        ):
            rows.lines.append(LineRef(lid, e164, cid, ref))
        rows.customers = {cid: ref for cid, ref in await session.execute(select(Customer.id, Customer.external_id))}
        rows.forwards = [
            (lid, ForwardKind(kind), target, timeout)
            for lid, kind, target, timeout in await session.execute(
                select(ForwardingRule.line_id, ForwardingRule.kind, ForwardingRule.target, ForwardingRule.timeout_s)
                .where(ForwardingRule.enabled.is_(True))
            )
        ]
        rows.line_barring = [(lid, BarringCategory(c)) for lid, c in await session.execute(select(LineBarring.line_id, LineBarring.category))]
        rows.customer_barring = [
            (cid, BarringCategory(c)) for cid, c in await session.execute(select(CustomerBarring.customer_id, CustomerBarring.category))
        ]
        rows.suspensions = [
            _suspension(s) for s in (await session.execute(select(Suspension).where(Suspension.lifted_at.is_(None)))).scalars()
        ]
        for lim in (await session.execute(select(CustomerFraudLimits))).scalars():
            rows.limits[lim.customer_id] = {c: getattr(lim, c) for c in LIMIT_COLUMNS if getattr(lim, c) is not None}
    return rows


async def policy_fingerprint(sf: SessionFactory) -> tuple[Any, ...]:
    """A cheap aggregate over the policy tables: it changes whenever any of them does."""
    def agg(*cols: Any) -> list[Any]:
        return [select(c).scalar_subquery() for c in cols]

    stmt = select(
        *agg(func.count(ForwardingRule.id), func.max(ForwardingRule.updated_at)),
        *agg(func.count(LineBarring.line_id), func.max(LineBarring.created_at)),
        *agg(func.count(CustomerBarring.customer_id), func.max(CustomerBarring.created_at)),
        *agg(func.count(Suspension.id), func.count(Suspension.lifted_at), func.max(Suspension.id)),
        *agg(func.count(CustomerFraudLimits.customer_id), func.max(CustomerFraudLimits.updated_at)),
        *agg(func.count(Line.id), func.max(Line.updated_at), func.count(Customer.id)),
    )
    async with sf() as session:
        return tuple((await session.execute(stmt)).one())


async def line_by_number(sf: SessionFactory, e164: str) -> LineRef | None:
    async with sf() as session:
        row = (
            await session.execute(
                select(Line.id, Number.e164, Line.customer_id, Customer.external_id)
                .join(Number, Line.number_id == Number.id)
                .join(Customer, Line.customer_id == Customer.id)
                .where(Number.e164 == e164)
            )
        ).one_or_none()
    return None if row is None else LineRef(*row)


async def customer_by_ref(sf: SessionFactory, ref: str) -> tuple[int, str] | None:
    async with sf() as session:
        row = (await session.execute(select(Customer.id, Customer.external_id).where(Customer.external_id == ref))).one_or_none()
    return None if row is None else (int(row[0]), str(row[1]))


def _audit(session: AsyncSession, actor: str, action: str, subject_type: str, subject_id: str, customer_id: int | None,
           details: dict[str, Any]) -> None:
    add_audit_event(session, actor=actor, action=action, subject_type=subject_type, subject_id=subject_id,
                    customer_id=customer_id, details=details)


async def write_forwarding(sf: SessionFactory, line: LineRef, kind: ForwardKind, target: str, timeout_s: int | None,
                           actor: str) -> None:
    async with sf() as session, session.begin():
        rule = (
            await session.execute(select(ForwardingRule).where(ForwardingRule.line_id == line.line_id, ForwardingRule.kind == kind))
        ).scalar_one_or_none()
        old = None if rule is None else {"target": rule.target, "timeout_s": rule.timeout_s, "enabled": rule.enabled}
        if rule is None:
            rule = ForwardingRule(line_id=line.line_id, kind=kind, target=target)
            session.add(rule)
        rule.target = target
        rule.timeout_s = timeout_s
        rule.enabled = True
        rule.updated_by = actor[:100]
        rule.updated_at = utcnow()
        _audit(session, actor, "forwarding.set", "line", line.number, line.customer_id,
               {"kind": kind.value, "target": target, "timeout_s": timeout_s, "previous": old})


async def delete_forwarding(sf: SessionFactory, line: LineRef, kinds: Iterable[ForwardKind], actor: str) -> list[str]:
    """Remove the rules of ``kinds``; returns the kinds that existed."""
    async with sf() as session, session.begin():
        kinds = list(kinds)
        existing = (
            await session.execute(
                select(ForwardingRule.kind, ForwardingRule.target)
                .where(ForwardingRule.line_id == line.line_id, ForwardingRule.kind.in_(kinds))
            )
        ).all()
        await session.execute(
            delete(ForwardingRule).where(ForwardingRule.line_id == line.line_id, ForwardingRule.kind.in_(kinds))
        )
        removed = [str(getattr(k, "value", k)) for k, _ in existing]
        _audit(session, actor, "forwarding.clear", "line", line.number, line.customer_id,
               {"kinds": removed, "targets": {str(getattr(k, "value", k)): t for k, t in existing}})
    return removed


async def write_line_barring(sf: SessionFactory, line: LineRef, categories: frozenset[BarringCategory], actor: str) -> None:
    async with sf() as session, session.begin():
        old = {str(getattr(c, "value", c)) for c in (await session.execute(
            select(LineBarring.category).where(LineBarring.line_id == line.line_id))).scalars()}
        await session.execute(delete(LineBarring).where(LineBarring.line_id == line.line_id))
        for c in sorted(categories):
            session.add(LineBarring(line_id=line.line_id, category=c, created_by=actor[:100], created_at=utcnow()))
        _audit(session, actor, "barring.set", "line", line.number, line.customer_id,
               {"categories": sorted(c.value for c in categories), "previous": sorted(old)})


async def write_customer_barring(sf: SessionFactory, customer_id: int, ref: str, categories: frozenset[BarringCategory],
                                 actor: str) -> None:
    async with sf() as session, session.begin():
        old = {str(getattr(c, "value", c)) for c in (await session.execute(
            select(CustomerBarring.category).where(CustomerBarring.customer_id == customer_id))).scalars()}
        await session.execute(delete(CustomerBarring).where(CustomerBarring.customer_id == customer_id))
        for c in sorted(categories):
            session.add(CustomerBarring(customer_id=customer_id, category=c, created_by=actor[:100], created_at=utcnow()))
        _audit(session, actor, "barring.set", "customer", ref, customer_id,
               {"categories": sorted(c.value for c in categories), "previous": sorted(old)})


async def write_fraud_limits(sf: SessionFactory, customer_id: int, ref: str, limits: dict[str, int], actor: str) -> None:
    async with sf() as session, session.begin():
        row = await session.get(CustomerFraudLimits, customer_id)
        if row is None:
            row = CustomerFraudLimits(customer_id=customer_id)
            session.add(row)
        for c in LIMIT_COLUMNS:
            setattr(row, c, limits.get(c))
        row.updated_at = utcnow()
        row.updated_by = actor[:100]
        _audit(session, actor, "fraud_limits.set", "customer", ref, customer_id, dict(limits))


async def insert_suspension(sf: SessionFactory, customer_id: int, ref: str, line: LineRef | None, level: SuspensionLevel,
                            reason: SuspensionReason, note: str, actor: str) -> SuspensionRow:
    async with sf() as session, session.begin():
        s = Suspension(customer_id=customer_id, line_id=None if line is None else line.line_id, level=level, reason=reason,
                       note=note, created_by=actor[:100], created_at=utcnow())
        session.add(s)
        await session.flush()
        _audit(session, actor, "suspension.create", "customer", ref, customer_id,
               {"id": s.id, "line": None if line is None else line.number, "level": level.value, "reason": reason.value,
                "note": note})
        return _suspension(s)


async def lift_suspension(sf: SessionFactory, suspension_id: int, note: str, actor: str) -> SuspensionRow | None:
    """Lift an active suspension; None when there is no such id. Lifting a lifted one changes nothing."""
    async with sf() as session, session.begin():
        s = await session.get(Suspension, suspension_id)
        if s is None:
            return None
        if s.lifted_at is None:
            s.lifted_at = utcnow()
            s.lifted_by = actor[:100]
            s.lift_note = note
            ref = (await session.execute(select(Customer.external_id).where(Customer.id == s.customer_id))).scalar_one()
            _audit(session, actor, "suspension.lift", "customer", ref, s.customer_id, {"id": s.id, "note": note})
        return _suspension(s)


async def suspension_history(sf: SessionFactory, customer_id: int) -> list[SuspensionRow]:
    async with sf() as session:
        return [
            _suspension(s)
            for s in (
                await session.execute(
                    select(Suspension).where(Suspension.customer_id == customer_id).order_by(Suspension.id.desc())
                )
            ).scalars()
        ]
