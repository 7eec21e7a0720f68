"""Star-code policy rows (``feature_code_policies``): the operator's overrides of the defaults.

A code without a row has its default (``feature_codes.DEFAULT_POLICIES``).
Writes go with their audit event in one transaction. Which values may be
stored is decided by ``feature_codes.validate`` before anything gets here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from switch.store.base import utcnow
from switch.store.engine import SessionFactory
from switch.store.models import FeatureCodeAction, FeatureCodePolicy
from switch.store.repo_audit import add_audit_event

__all__ = ["FeatureCodeRow", "load_feature_code_policies", "feature_code_fingerprint", "write_feature_code_policy"]


@dataclass(frozen=True, slots=True)
class FeatureCodeRow:
    code: str
    enabled: bool
    announcement: str | None
    description: str


async def load_feature_code_policies(sf: SessionFactory) -> list[FeatureCodeRow]:
    async with sf() as session:
        rows = (await session.execute(select(FeatureCodePolicy).order_by(FeatureCodePolicy.code))).scalars()
        return [
            FeatureCodeRow(r.code, r.action is FeatureCodeAction.ALLOW, r.announcement, r.description or "")
            for r in rows
        ]


async def feature_code_fingerprint(sf: SessionFactory) -> tuple[Any, ...]:
    """Changes when a row is added, removed or updated (another process: SQL, an import)."""
    async with sf() as session:
        row = (
            await session.execute(
                select(func.count(FeatureCodePolicy.id), func.max(FeatureCodePolicy.updated_at), func.max(FeatureCodePolicy.id))
            )
        ).one()
        return tuple(row)


async def write_feature_code_policy(
    sf: SessionFactory, row: FeatureCodeRow, actor: str, previous: FeatureCodeRow | None
) -> None:
    """Upsert one code's row and its audit event together."""
    async with sf() as session, session.begin():
        existing = (
            await session.execute(select(FeatureCodePolicy).where(FeatureCodePolicy.code == row.code))
        ).scalar_one_or_none()
        action = FeatureCodeAction.ALLOW if row.enabled else FeatureCodeAction.REFUSE
        if existing is None:
            session.add(
                FeatureCodePolicy(
                    code=row.code, action=action, announcement=row.announcement, description=row.description,
                    updated_at=utcnow(),
                )
            )
        else:
            existing.action = action
            existing.announcement = row.announcement
            existing.description = row.description
            existing.updated_at = utcnow()
        before = None if previous is None else {"enabled": previous.enabled, "announcement": previous.announcement}
        add_audit_event(
            session,
            actor=actor,
            action="feature_code.policy",
            subject_type="feature_code",
            subject_id=row.code,
            details={"enabled": row.enabled, "announcement": row.announcement, "before": before},
        )
