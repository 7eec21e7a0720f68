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
from switch.store.models import ApiToken, Customer, OperatorRole, OperatorUser, TokenRole

__all__ = [
    "TOKEN_PREFIX", "TokenInfo", "TokenListing", "create_token", "hash_token", "list_tokens", "revoke_token",
    "verify_token",
]

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
    #: For a token linked to an operator user: the user's name and role (the role that applies).
    username: str | None = None
    user_role: OperatorRole | None = None

    @property
    def effective_role(self) -> str:
        """The role the API applies: the linked user's, else the token's own (``operator`` = admin)."""
        if self.user_role is not None:
            return self.user_role.value
        role = TokenRole(self.role)
        return TokenRole.ADMIN.value if role is TokenRole.OPERATOR else role.value


async def create_token(
    session_factory: SessionFactory,
    role: TokenRole,
    *,
    customer_id: int | None = None,
    customer_ref: str | None = None,
    operator_user_id: int | None = None,
    username: str | None = None,
    label: str = "",
    expires_at: datetime | None = None,
) -> tuple[str, TokenInfo]:
    """Create a token; returns ``(secret, info)``. The secret cannot be shown again.

    The customer is given by row id (``customer_id``) or customer number
    (``customer_ref``, e.g. "C1001"). A customer token must name one; an unknown
    customer is a ValueError. A token linked to an operator user (``operator_user_id``,
    or ``username``) acts with the user's role and stops working when the user is disabled.
    """
    role = TokenRole(role)
    if role is TokenRole.CUSTOMER and customer_id is None and customer_ref is None:
        raise ValueError("a customer token needs a customer")
    if role is not TokenRole.CUSTOMER and (customer_id is not None or customer_ref is not None):
        raise ValueError("only a customer token names a customer")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user_name: str | None = None
    user_role: OperatorRole | None = None
    async with write_session(session_factory) as session:
        if username is not None or operator_user_id is not None:
            if role is TokenRole.CUSTOMER:
                raise ValueError("a customer token cannot belong to an operator user")
            ustmt = select(OperatorUser.id, OperatorUser.username, OperatorUser.role)
            ustmt = (ustmt.where(OperatorUser.username == username) if username is not None
                     else ustmt.where(OperatorUser.id == operator_user_id))
            user = (await session.execute(ustmt)).first()
            if user is None:
                raise ValueError(f"no operator user {username if username is not None else operator_user_id}")
            operator_user_id, user_name, user_role = user[0], user[1], OperatorRole(user[2])
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
            username=user_name,
            user_role=user_role,
        )
    return secret, info


async def verify_token(
    session_factory: SessionFactory, secret: str, *, now: datetime | None = None
) -> TokenInfo | None:
    """The token's role and scope, or None if unknown, revoked, expired or its operator user is disabled.

    Lookup is by hash, so timing reveals nothing about stored secrets."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    now = now or utcnow()
    async with session_factory() as session:
        row = (
            await session.execute(
                select(ApiToken, Customer.external_id, OperatorUser.username, OperatorUser.role,
                       OperatorUser.enabled)
                .outerjoin(Customer, Customer.id == ApiToken.customer_id)
                .outerjoin(OperatorUser, OperatorUser.id == ApiToken.operator_user_id)
                .where(ApiToken.token_hash == hash_token(secret))
            )
        ).first()
    if row is None:
        return None
    token, customer_ref, username, user_role, user_enabled = row
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if token.operator_user_id is not None and not user_enabled:
        return None  # a disabled (or deleted) user's tokens stop working with the user
    return TokenInfo(
        token_id=token.id,
        role=token.role,
        customer_id=token.customer_id,
        customer_ref=customer_ref,
        operator_user_id=token.operator_user_id,
        label=token.label,
        username=username,
        user_role=OperatorRole(user_role) if user_role is not None else None,
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


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenListing:
    """A token as listed (never its secret: only the hash is stored)."""

    token_id: int
    role: str
    customer_ref: str | None
    label: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def as_json(self) -> dict[str, object]:
        def t(v: datetime | None) -> str | None:
            return None if v is None else v.isoformat(timespec="seconds")

        return {"id": self.token_id, "role": self.role, "customer": self.customer_ref, "label": self.label,
                "created_at": t(self.created_at), "expires_at": t(self.expires_at),
                "last_used_at": t(self.last_used_at), "revoked_at": t(self.revoked_at),
                "live": self.revoked_at is None}


async def list_tokens(session_factory: SessionFactory, *, include_revoked: bool = True) -> list[TokenListing]:
    """Every token, oldest first (for `softswitch token list` and GET /api/v1/tokens)."""
    stmt = select(ApiToken, Customer.external_id).outerjoin(Customer, Customer.id == ApiToken.customer_id)
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    async with session_factory() as session:
        rows = (await session.execute(stmt.order_by(ApiToken.id))).all()
    return [
        TokenListing(token_id=t.id, role=str(getattr(t.role, "value", t.role)), customer_ref=ref, label=t.label,
                     created_at=t.created_at, expires_at=t.expires_at, last_used_at=t.last_used_at,
                     revoked_at=t.revoked_at)
        for t, ref in rows
    ]
