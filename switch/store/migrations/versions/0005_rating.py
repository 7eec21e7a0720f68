"""Rating: imported tariffs, per-customer billing totals, zone and tariff version on each CDR.

``call_records.charge_ore`` (already there, never written until now) holds
the price; ``zone`` and ``tariff_version`` say where it came from, so a
disputed invoice line can be explained and a tariff fix re-rated.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tariffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document", JSON_DOC, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariffs")),
        sa.UniqueConstraint("version", name=op.f("uq_tariffs_version")),
    )
    op.create_index(op.f("ix_tariffs_valid_from"), "tariffs", ["valid_from"], unique=False)
    op.create_table(
        "billing_totals",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total_ore", sa.Integer(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_billing_totals_customer_id_customers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("customer_id", "period_start", name=op.f("pk_billing_totals")),
    )
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(sa.Column("zone", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("tariff_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_records") as batch:
        batch.drop_column("tariff_version")
        batch.drop_column("zone")
    op.drop_table("billing_totals")
    op.drop_index(op.f("ix_tariffs_valid_from"), table_name="tariffs")
    op.drop_table("tariffs")
