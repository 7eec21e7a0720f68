"""Call policy in the import file: forwarding and barring per line, barring and fraud limits per customer.

The shape (documented in examples/customers.yaml)::

    customers:
      - id: C1001
        barring: [international, premium]          # every line of the customer
        fraud_limits: {calls_per_line: 2, calls_per_customer: 4, attempts_per_hour: 20, night_attempts_per_hour: 8}
        adapters:
          - lines:
              - number: "22000001"
                barring: [mobile]
                forwarding:
                  unconditional: "22000003"
                  no_answer: {target: "91234567", timeout_s: 20}

A key that is present sets the whole thing (``barring: []`` clears it,
``forwarding: {}`` removes every rule); a key that is absent leaves what is
stored alone. This module checks the shape and the enumerations; the rules
about forward targets (allowed classes, never 110/112/113, never the line
itself) are the policy's own (``switch.services.policy.validate``) and are
run by the import command through ``parse_import_document(checks=...)``.
The writes carry one audit event per changed setting (actor ``import``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from switch.store.base import utcnow
from switch.store.models import (
    BarringCategory,
    CustomerBarring,
    CustomerFraudLimits,
    ForwardingRule,
    ForwardKind,
    LineBarring,
)
from switch.store.repo_audit import add_audit_event

__all__ = ["LinePolicySpec", "CustomerPolicySpec", "parse_line_policy", "parse_customer_policy", "apply_line_policy",
           "apply_customer_policy", "LIMIT_NAMES"]

LIMIT_NAMES = ("calls_per_line", "calls_per_customer", "attempts_per_hour", "night_attempts_per_hour")


@dataclass(frozen=True, slots=True)
class LinePolicySpec:
    forwarding: tuple[tuple[ForwardKind, str, int | None], ...] | None = None
    """(kind, target as written, timeout_s); None = not in the file."""
    barring: frozenset[BarringCategory] | None = None


@dataclass(frozen=True, slots=True)
class CustomerPolicySpec:
    barring: frozenset[BarringCategory] | None = None
    fraud_limits: dict[str, int] | None = None


Err = Any  # the importer's checker: err(path, message)


def _categories(err: Err, raw: Any, path: str) -> frozenset[BarringCategory] | None:
    if not isinstance(raw, list):
        err(path, "must be a list of barring categories, e.g. [international, premium]")
        return None
    out: set[BarringCategory] = set()
    for i, c in enumerate(raw):
        try:
            out.add(BarringCategory(str(c)))
        except ValueError:
            err(f"{path}[{i}]", f"unknown barring category {c!r}; known: {', '.join(b.value for b in BarringCategory)}")
            return None
    return frozenset(out)


def parse_line_policy(err: Err, d: dict[str, Any], path: str) -> LinePolicySpec:
    forwarding: list[tuple[ForwardKind, str, int | None]] | None = None
    if "forwarding" in d:
        raw = d["forwarding"]
        if not isinstance(raw, dict):
            err(f"{path}.forwarding", "must be a mapping of kind to target, e.g. {unconditional: \"22000003\"}")
        else:
            forwarding = []
            for kind_raw, rule in raw.items():
                fpath = f"{path}.forwarding.{kind_raw}"
                try:
                    kind = ForwardKind(str(kind_raw))
                except ValueError:
                    err(fpath, f"unknown forwarding kind; known: {', '.join(k.value for k in ForwardKind)}")
                    continue
                timeout: Any = None
                if isinstance(rule, dict):
                    extra = set(rule) - {"target", "timeout_s"}
                    if extra:
                        err(f"{fpath}.{sorted(extra)[0]}", "unknown field (allowed: target, timeout_s)")
                        continue
                    target, timeout = rule.get("target"), rule.get("timeout_s")
                else:
                    target = rule
                if isinstance(target, int) and not isinstance(target, bool):
                    target = str(target)
                if not isinstance(target, str) or not target.strip():
                    err(f"{fpath}.target" if isinstance(rule, dict) else fpath, "must be a telephone number (quote it)")
                    continue
                if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)):
                    err(f"{fpath}.timeout_s", f"must be a whole number of seconds, got {timeout!r}")
                    continue
                forwarding.append((kind, target.strip(), timeout))
    barring = _categories(err, d["barring"], f"{path}.barring") if "barring" in d else None
    return LinePolicySpec(tuple(forwarding) if forwarding is not None else None, barring)


def parse_customer_policy(err: Err, d: dict[str, Any], path: str) -> CustomerPolicySpec:
    barring = _categories(err, d["barring"], f"{path}.barring") if "barring" in d else None
    limits: dict[str, int] | None = None
    if "fraud_limits" in d:
        raw = d["fraud_limits"]
        if not isinstance(raw, dict):
            err(f"{path}.fraud_limits", f"must be a mapping with some of {', '.join(LIMIT_NAMES)}")
        else:
            limits = {}
            for key, value in raw.items():
                if key not in LIMIT_NAMES:
                    err(f"{path}.fraud_limits.{key}", f"unknown limit; known: {', '.join(LIMIT_NAMES)}")
                elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
                    err(f"{path}.fraud_limits.{key}", f"must be a whole number from 1 to 1000, got {value!r}")
                else:
                    limits[str(key)] = value
    return CustomerPolicySpec(barring, limits)


async def apply_line_policy(session: AsyncSession, line_id: int, number: str, customer_id: int, spec: LinePolicySpec,
                            targets: dict[ForwardKind, str], actor: str) -> bool:
    """Write a line's forwarding/barring from the file; ``targets`` are the normalised forward targets."""
    changed = False
    if spec.forwarding is not None:
        old = {(ForwardKind(k), t, s) for k, t, s in await session.execute(
            select(ForwardingRule.kind, ForwardingRule.target, ForwardingRule.timeout_s)
            .where(ForwardingRule.line_id == line_id, ForwardingRule.enabled.is_(True)))}
        new = {(k, targets.get(k, t), s if k is ForwardKind.NO_ANSWER else None) for k, t, s in spec.forwarding}
        new = {(k, t, (s or 20) if k is ForwardKind.NO_ANSWER else None) for k, t, s in new}
        if old != new:
            await session.execute(delete(ForwardingRule).where(ForwardingRule.line_id == line_id))
            for k, t, s in sorted(new):
                session.add(ForwardingRule(line_id=line_id, kind=k, target=t, timeout_s=s, enabled=True,
                                           updated_by=actor, updated_at=utcnow()))
            add_audit_event(session, actor=actor, action="forwarding.set", subject_type="line", subject_id=number,
                            customer_id=customer_id,
                            details={"forwarding": {k.value: {"target": t, "timeout_s": s} for k, t, s in sorted(new)}})
            changed = True
    if spec.barring is not None:
        old_b = {BarringCategory(c) for c in (await session.execute(
            select(LineBarring.category).where(LineBarring.line_id == line_id))).scalars()}
        if old_b != set(spec.barring):
            await session.execute(delete(LineBarring).where(LineBarring.line_id == line_id))
            for c in sorted(spec.barring):
                session.add(LineBarring(line_id=line_id, category=c, created_by=actor, created_at=utcnow()))
            add_audit_event(session, actor=actor, action="barring.set", subject_type="line", subject_id=number,
                            customer_id=customer_id, details={"categories": sorted(c.value for c in spec.barring)})
            changed = True
    return changed


async def apply_customer_policy(session: AsyncSession, customer_id: int, ref: str, spec: CustomerPolicySpec,
                                actor: str) -> bool:
    changed = False
    if spec.barring is not None:
        old_b = {BarringCategory(c) for c in (await session.execute(
            select(CustomerBarring.category).where(CustomerBarring.customer_id == customer_id))).scalars()}
        if old_b != set(spec.barring):
            await session.execute(delete(CustomerBarring).where(CustomerBarring.customer_id == customer_id))
            for c in sorted(spec.barring):
                session.add(CustomerBarring(customer_id=customer_id, category=c, created_by=actor, created_at=utcnow()))
            add_audit_event(session, actor=actor, action="barring.set", subject_type="customer", subject_id=ref,
                            customer_id=customer_id, details={"categories": sorted(c.value for c in spec.barring)})
            changed = True
    if spec.fraud_limits is not None:
        row = await session.get(CustomerFraudLimits, customer_id)
        old = {} if row is None else {n: getattr(row, n) for n in LIMIT_NAMES if getattr(row, n) is not None}
        if old != spec.fraud_limits:
            if row is None:
                row = CustomerFraudLimits(customer_id=customer_id)
                session.add(row)
            for n in LIMIT_NAMES:
                setattr(row, n, spec.fraud_limits.get(n))
            row.updated_at, row.updated_by = utcnow(), actor
            add_audit_event(session, actor=actor, action="fraud_limits.set", subject_type="customer", subject_id=ref,
                            customer_id=customer_id, details=dict(spec.fraud_limits))
            changed = True
    return changed
