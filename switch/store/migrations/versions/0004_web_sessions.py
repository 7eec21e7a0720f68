"""Browser logins for the operator web UI and Min side: ``web_sessions``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("operator_user_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remote_addr", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=255), nullable=False),
        sa.CheckConstraint("kind IN ('operator', 'customer')", name=op.f("ck_web_sessions_kind")),
        sa.CheckConstraint(
            "(kind = 'operator' AND operator_user_id IS NOT NULL) OR (kind = 'customer' AND customer_id IS NOT NULL)",
            name=op.f("ck_web_sessions_subject"),
        ),
        sa.ForeignKeyConstraint(
            ["operator_user_id"], ["operator_users.id"],
            name=op.f("fk_web_sessions_operator_user_id_operator_users"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_web_sessions_customer_id_customers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    op.create_index(op.f("ix_web_sessions_operator_user_id"), "web_sessions", ["operator_user_id"])
    op.create_index(op.f("ix_web_sessions_customer_id"), "web_sessions", ["customer_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_web_sessions_customer_id"), table_name="web_sessions")
    op.drop_index(op.f("ix_web_sessions_operator_user_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
