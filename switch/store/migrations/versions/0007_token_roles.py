"""API token roles: ``admin``, ``support`` and ``readonly`` join ``operator`` (kept: it acts as admin) and ``customer``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_ROLES = "'operator', 'customer'"
_NEW_ROLES = _OLD_ROLES + ", 'admin', 'support', 'readonly'"


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("ck_api_tokens_role"), type_="check")
        batch.create_check_constraint(op.f("ck_api_tokens_role"), f"role IN ({_NEW_ROLES})")


def downgrade() -> None:
    # An admin token was an operator token before; support and readonly tokens had no equivalent
    # that is not wider than them, so they go (never widen a token's rights on the way down).
    op.execute("UPDATE api_tokens SET role = 'operator' WHERE role = 'admin'")
    op.execute("DELETE FROM api_tokens WHERE role IN ('support', 'readonly')")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("ck_api_tokens_role"), type_="check")
        batch.create_check_constraint(op.f("ck_api_tokens_role"), f"role IN ({_OLD_ROLES})")
