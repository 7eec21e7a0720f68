"""Qualify history survives restarts: ``qualify_stats.first_lost_at``.

The switch now keeps its per-binding OPTIONS history in ``qualify_stats``
(bindings are updated in place, so a binding's row id is stable across
refreshes). The lamps say "not answering pings since 12:03", which needs the
time the current run of lost pings began.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("qualify_stats") as batch:
        batch.add_column(sa.Column("first_lost_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("qualify_stats") as batch:
        batch.drop_column("first_lost_at")
