"""Customer postal address (street, postcode, city): the directory listing export prints it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("address_street", sa.String(200), nullable=True))
        batch.add_column(sa.Column("address_postcode", sa.String(4), nullable=True))
        batch.add_column(sa.Column("address_city", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("address_city")
        batch.drop_column("address_postcode")
        batch.drop_column("address_street")
