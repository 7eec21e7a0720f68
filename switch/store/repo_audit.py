"""Audit trail: who did what to which object. Written inside the caller's
transaction, so an action and its audit row commit (or roll back) together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switch.store.base import utcnow
from switch.store.engine import SessionFactory
from switch.store.models import AuditEvent

__all__ = ["AuditEntry", "add_audit_event", "list_audit_events"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    customer_id: int | None
    details: dict[str, Any]


def add_audit_event(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    customer_id: int | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    session.add(
        AuditEvent(
            at=at or utcnow(),
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            customer_id=customer_id,
            details=details or {},
        )
    )


async def list_audit_events(
    session_factory: SessionFactory,
    *,
    customer_id: int | None = None,
    subject: tuple[str, str] | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Newest first; by customer, ``(subject_type, subject_id)``, actor and time range, combined."""
    stmt = select(AuditEvent)
    if actor is not None:
        stmt = stmt.where(AuditEvent.actor == actor)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    if customer_id is not None:
        stmt = stmt.where(AuditEvent.customer_id == customer_id)
    if subject is not None:
        stmt = stmt.where(AuditEvent.subject_type == subject[0], AuditEvent.subject_id == subject[1])
    stmt = stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    async with session_factory() as session:
        return [
            AuditEntry(
                at=e.at,
                actor=e.actor,
                action=e.action,
                subject_type=e.subject_type,
                subject_id=e.subject_id,
                customer_id=e.customer_id,
                details=dict(e.details),
            )
            for e in (await session.execute(stmt)).scalars()
        ]
