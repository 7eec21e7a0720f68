"""Call policy: customer barring, suspension levels, fraud limits, the decision trail in CDRs.

* ``customer_barrings``: barring categories that apply to every line of a customer.
* ``special`` joins the barring categories (5-digit business numbers, service codes).
* ``suspensions.level``: ``soft`` (outgoing only emergency + customer service,
  incoming rings) or ``hard`` (only emergency; incoming refused). Rows from
  before this migration were outgoing-only blocks: ``soft``.
* ``customer_fraud_limits``: per-customer fraud guard limits (no row / NULL = default).
* ``call_records.decision_trail`` / ``forward_chain``: JSON text, so support
  can read from one record why a call failed or where it was forwarded.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_CATEGORIES = "'international', 'mobile', 'premium', 'directory', 'shared_cost', 'all_outgoing'"
_NEW_CATEGORIES = _OLD_CATEGORIES + ", 'special'"


def upgrade() -> None:
    op.create_table(
        "customer_barrings",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_barrings_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(f"category IN ({_NEW_CATEGORIES})", name=op.f("ck_customer_barrings_category")),
        sa.PrimaryKeyConstraint("customer_id", "category", name=op.f("pk_customer_barrings")),
    )
    with op.batch_alter_table("line_barrings") as batch:
        batch.drop_constraint(op.f("ck_line_barrings_category"), type_="check")
        batch.create_check_constraint(op.f("ck_line_barrings_category"), f"category IN ({_NEW_CATEGORIES})")
    with op.batch_alter_table("suspensions") as batch:
        batch.add_column(sa.Column("level", sa.String(length=8), nullable=False, server_default="soft"))
        batch.create_check_constraint(op.f("ck_suspensions_level"), "level IN ('soft', 'hard')")
    with op.batch_alter_table("suspensions") as batch:
        batch.alter_column("level", server_default=None)
    op.create_table(
        "customer_fraud_limits",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("calls_per_line", sa.Integer(), nullable=True),
        sa.Column("calls_per_customer", sa.Integer(), nullable=True),
        sa.Column("attempts_per_hour", sa.Integer(), nullable=True),
        sa.Column("night_attempts_per_hour", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_fraud_limits_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_fraud_limits")),
    )
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(sa.Column("decision_trail", sa.Text(), nullable=True))
        batch.add_column(sa.Column("forward_chain", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_records") as batch:
        batch.drop_column("forward_chain")
        batch.drop_column("decision_trail")
    op.drop_table("customer_fraud_limits")
    with op.batch_alter_table("suspensions") as batch:
        batch.drop_constraint(op.f("ck_suspensions_level"), type_="check")
        batch.drop_column("level")
    op.execute("DELETE FROM line_barrings WHERE category = 'special'")
    with op.batch_alter_table("line_barrings") as batch:
        batch.drop_constraint(op.f("ck_line_barrings_category"), type_="check")
        batch.create_check_constraint(op.f("ck_line_barrings_category"), f"category IN ({_OLD_CATEGORIES})")
    op.drop_table("customer_barrings")
