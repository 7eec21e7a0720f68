"""API bearer tokens. The secret is returned once at creation; only its sha256 is
stored, so a database leak does not hand out API access. A plain (unsalted) hash
is enough here because the secret is 256 random bits, not a password."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from switch.store.base import utcnow
from switch.store.engine import SessionFactory, write_session
from switch.store.models import ApiToken, Customer, TokenRole

__all__ = ["TOKEN_PREFIX", "TokenInfo", "create_token", "hash_token", "revoke_token", "verify_token"]

#: Makes leaked tokens recognisable to secret scanners and people.
TOKEN_PREFIX = "sst_"


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenInfo:
    token_id: int
    role: TokenRole
    #: For customer tokens: the customer's row id and customer number.
    customer_id: int | None
    customer_ref: str | None
    operator_user_id: int | None
    label: str


async def create_token(
    session_factory: SessionFactory,
    role: TokenRole,
    *,
    customer_id: int | None = None,
    customer_ref: str | None = None,
    operator_user_id: int | None = None,
    label: str = "",
    expires_at: datetime | None = None,
) -> tuple[str, TokenInfo]:
    """Create a token; returns ``(secret, info)``. The secret cannot be shown again.

    The customer is given by row id (``customer_id``) or customer number
    (``customer_ref``, e.g. "C1001"). A customer token must name one; an unknown
    customer is a ValueError.
    """
    role = TokenRole(role)
    if role is TokenRole.CUSTOMER and customer_id is None and customer_ref is None:
        raise ValueError("a customer token needs a customer")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with write_session(session_factory) as session:
        if customer_id is not None or customer_ref is not None:
            stmt = select(Customer.id, Customer.external_id)
            if customer_id is not None:
                stmt = stmt.where(Customer.id == customer_id)
            if customer_ref is not None:
                stmt = stmt.where(Customer.external_id == customer_ref)
            found = (await session.execute(stmt)).first()
            if found is None:
                raise ValueError(f"no customer {customer_ref if customer_ref is not None else customer_id}")
            customer_id, customer_ref = found
        token = ApiToken(
            token_hash=hash_token(secret),
            role=role,
            customer_id=customer_id,
            operator_user_id=operator_user_id,
            label=label,
            expires_at=expires_at,
        )
        session.add(token)
        await session.flush()
        info = TokenInfo(
            token_id=token.id,
            role=role,
            customer_id=customer_id,
            customer_ref=customer_ref,
            operator_user_id=operator_user_id,
            label=label,
        )
    return secret, info


async def verify_token(
    session_factory: SessionFactory, secret: str, *, now: datetime | None = None
) -> TokenInfo | None:
    """The token's role and scope, or None if unknown, revoked or expired.

    Lookup is by hash, so timing reveals nothing about stored secrets."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    now = now or utcnow()
    async with session_factory() as session:
        row = (
            await session.execute(
                select(ApiToken, Customer.external_id)
                .outerjoin(Customer, Customer.id == ApiToken.customer_id)
                .where(ApiToken.token_hash == hash_token(secret))
            )
        ).first()
    if row is None:
        return None
    token, customer_ref = row
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    return TokenInfo(
        token_id=token.id,
        role=token.role,
        customer_id=token.customer_id,
        customer_ref=customer_ref,
        operator_user_id=token.operator_user_id,
        label=token.label,
    )


async def revoke_token(session_factory: SessionFactory, token_id: int, *, at: datetime | None = None) -> bool:
    """Revoke; False if there is no such (unrevoked) token."""
    async with write_session(session_factory) as session:
        result = await session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=at or utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
