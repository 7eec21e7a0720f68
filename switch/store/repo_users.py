"""Operator users, customers' Min side passwords, and browser sessions.

Passwords are argon2id hashes (``argon2-cffi`` defaults: 64 MiB, ~100 ms per
hash here). Hashing runs in a thread and at most ``HASH_CONCURRENCY`` at once,
so a burst of logins can neither block the event loop (SIP runs on it) nor
take gigabytes of memory. An unknown username is verified against a dummy hash
so the answer takes as long as for a known one: timing does not tell which
usernames exist.

Sessions are server-side: the browser gets a random secret in a cookie, the
table keeps its sha256 (a database leak hands out no logins) plus a CSRF token
bound to the session. Support can revoke every session of a user at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update

from switch.store.base import utcnow
from switch.store.engine import SessionFactory, write_session
from switch.store.models import Customer, OperatorRole, OperatorUser, WebSession
from switch.store.repo_audit import add_audit_event

__all__ = [
    "CustomerLogin",
    "SessionInfo",
    "UserInfo",
    "UserExists",
    "authenticate_customer",
    "authenticate_user",
    "create_session",
    "create_user",
    "generate_password",
    "get_session",
    "hash_password",
    "list_users",
    "revoke_session",
    "revoke_sessions_of",
    "set_customer_password",
    "set_user_password",
    "update_user",
    "verify_password",
]

HASH_CONCURRENCY: Final = 4
MIN_PASSWORD_LENGTH: Final = 10
_hasher = PasswordHasher()
_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
#: Verified when the username is unknown, so both answers cost one argon2 verify.
_DUMMY_HASH: Final = _hasher.hash(secrets.token_urlsafe(16))


class UserExists(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class UserInfo:
    user_id: int
    username: str
    display_name: str
    role: OperatorRole
    enabled: bool


@dataclass(frozen=True, slots=True)
class CustomerLogin:
    customer_id: int
    external_id: str
    name: str
    language: str


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: int
    kind: str
    csrf_token: str
    expires_at: datetime
    user: UserInfo | None
    customer: CustomerLogin | None


def generate_password() -> str:
    """16 random URL-safe characters (~96 bits): printed once by the CLI."""
    return secrets.token_urlsafe(12)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise ValueError("password too long: at most 1024 characters")


def _slot() -> asyncio.Semaphore:
    """One semaphore per event loop (asyncio primitives belong to the loop that first waits on them)."""
    loop = asyncio.get_running_loop()
    sem = _slots.get(loop)
    if sem is None:
        for old in [k for k in _slots if k.is_closed()]:
            del _slots[old]
        sem = _slots[loop] = asyncio.Semaphore(HASH_CONCURRENCY)
    return sem


async def hash_password(password: str) -> str:
    async with _slot():
        return await asyncio.get_running_loop().run_in_executor(None, _hasher.hash, password)


def _verify_sync(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored``; a missing hash costs the same as a wrong one."""
    async with _slot():
        ok = await asyncio.get_running_loop().run_in_executor(
            None, _verify_sync, stored or _DUMMY_HASH, password[:1024]
        )
    return ok and stored is not None


def _user_info(u: OperatorUser) -> UserInfo:
    return UserInfo(u.id, u.username, u.display_name, OperatorRole(u.role), u.enabled)


async def create_user(
    session_factory: SessionFactory,
    username: str,
    role: OperatorRole | str,
    *,
    password: str | None = None,
    display_name: str = "",
) -> tuple[str, UserInfo]:
    """Create an operator user; returns ``(password, info)`` (generated when not given)."""
    username = username.strip()
    if not username or len(username) > 64 or any(ch.isspace() for ch in username):
        raise ValueError("username: 1-64 characters without spaces")
    role = OperatorRole(role)
    password = password if password is not None else generate_password()
    check_password_strength(password)
    hashed = await hash_password(password)
    async with write_session(session_factory) as session:
        exists = (await session.execute(select(OperatorUser.id).where(OperatorUser.username == username))).first()
        if exists is not None:
            raise UserExists(f"user {username!r} exists")
        user = OperatorUser(username=username, display_name=display_name[:200], password_hash=hashed, role=role)
        session.add(user)
        await session.flush()
        info = _user_info(user)
    return password, info


async def set_user_password(session_factory: SessionFactory, username: str, password: str | None = None) -> str:
    password = password if password is not None else generate_password()
    check_password_strength(password)
    hashed = await hash_password(password)
    async with write_session(session_factory) as session:
        result = await session.execute(
            update(OperatorUser).where(OperatorUser.username == username).values(password_hash=hashed)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise LookupError(f"no user {username!r}")
    return password


async def list_users(session_factory: SessionFactory) -> list[UserInfo]:
    async with session_factory() as session:
        rows = (await session.execute(select(OperatorUser).order_by(OperatorUser.username))).scalars().all()
    return [_user_info(u) for u in rows]


async def authenticate_user(session_factory: SessionFactory, username: str, password: str) -> UserInfo | None:
    """The enabled user with this password, else None (same cost for unknown users)."""
    async with session_factory() as session:
        user = (
            await session.execute(select(OperatorUser).where(OperatorUser.username == username[:64]))
        ).scalar_one_or_none()
    ok = await verify_password(user.password_hash if user is not None else None, password)
    if not ok or user is None or not user.enabled:
        return None
    async with write_session(session_factory) as session:
        await session.execute(update(OperatorUser).where(OperatorUser.id == user.id).values(last_login_at=utcnow()))
    return _user_info(user)


async def set_customer_password(
    session_factory: SessionFactory, customer_ref: str, password: str | None = None
) -> str:
    """Set (or reset) a customer's Min side password; returns it (generated when not given)."""
    password = password if password is not None else generate_password()
    check_password_strength(password)
    hashed = await hash_password(password)
    async with write_session(session_factory) as session:
        result = await session.execute(
            update(Customer).where(Customer.external_id == customer_ref).values(portal_password_hash=hashed)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise LookupError(f"no customer {customer_ref!r}")
    return password


async def authenticate_customer(
    session_factory: SessionFactory, customer_ref: str, password: str
) -> CustomerLogin | None:
    async with session_factory() as session:
        c = (
            await session.execute(select(Customer).where(Customer.external_id == customer_ref.strip()[:64]))
        ).scalar_one_or_none()
    ok = await verify_password(c.portal_password_hash if c is not None else None, password)
    if not ok or c is None or str(c.state) == "terminated":
        return None
    return CustomerLogin(c.id, c.external_id, c.name, str(c.language))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


async def create_session(
    session_factory: SessionFactory,
    *,
    user: UserInfo | None = None,
    customer: CustomerLogin | None = None,
    ttl: timedelta = timedelta(hours=12),
    remote_addr: str = "",
    user_agent: str = "",
) -> tuple[str, SessionInfo]:
    """A new browser session for ``user`` or ``customer``; returns ``(cookie secret, info)``."""
    if (user is None) == (customer is None):
        raise ValueError("a session belongs to exactly one user or customer")
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    async with write_session(session_factory) as session:
        row = WebSession(
            token_hash=_hash(secret),
            kind="operator" if user is not None else "customer",
            operator_user_id=user.user_id if user is not None else None,
            customer_id=customer.customer_id if customer is not None else None,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + ttl,
            remote_addr=remote_addr[:64],
            user_agent=user_agent[:255],
        )
        session.add(row)
        await session.flush()
        info = SessionInfo(row.id, row.kind, csrf, row.expires_at, user, customer)
    return secret, info


async def get_session(
    session_factory: SessionFactory, secret: str, *, idle: timedelta = timedelta(hours=2)
) -> SessionInfo | None:
    """The live session for a cookie secret: not revoked, not expired, used within ``idle``."""
    if not secret or len(secret) > 128:
        return None
    now = utcnow()
    async with session_factory() as session:
        row = (
            await session.execute(select(WebSession).where(WebSession.token_hash == _hash(secret)))
        ).scalar_one_or_none()
        if row is None or row.revoked_at is not None or row.expires_at <= now or row.last_seen_at + idle <= now:
            return None
        user: UserInfo | None = None
        customer: CustomerLogin | None = None
        if row.operator_user_id is not None:
            u = await session.get(OperatorUser, row.operator_user_id)
            if u is None or not u.enabled:
                return None
            user = _user_info(u)
        if row.customer_id is not None:
            c = await session.get(Customer, row.customer_id)
            if c is None or str(c.state) == "terminated":
                return None
            customer = CustomerLogin(c.id, c.external_id, c.name, str(c.language))
        info = SessionInfo(row.id, row.kind, row.csrf_token, row.expires_at, user, customer)
        touch = row.last_seen_at + timedelta(minutes=1) <= now
    if touch:  # at most one write a minute per session
        async with write_session(session_factory) as session:
            await session.execute(update(WebSession).where(WebSession.id == info.session_id).values(last_seen_at=now))
    return info


async def revoke_session(session_factory: SessionFactory, session_id: int) -> None:
    async with write_session(session_factory) as session:
        await session.execute(
            update(WebSession).where(WebSession.id == session_id, WebSession.revoked_at.is_(None)).values(
                revoked_at=utcnow()
            )
        )


async def revoke_sessions_of(
    session_factory: SessionFactory, *, user_id: int | None = None, customer_id: int | None = None
) -> int:
    """Log a user (or customer) out everywhere, e.g. after a password reset."""
    stmt = update(WebSession).where(WebSession.revoked_at.is_(None))
    if user_id is not None:
        stmt = stmt.where(WebSession.operator_user_id == user_id)
    elif customer_id is not None:
        stmt = stmt.where(WebSession.customer_id == customer_id)
    else:
        raise ValueError("whose sessions?")
    async with write_session(session_factory) as session:
        result = await session.execute(stmt.values(revoked_at=utcnow()))
        return int(result.rowcount)  # type: ignore[attr-defined]


async def update_user(
    session_factory: SessionFactory,
    username: str,
    *,
    role: OperatorRole | str | None = None,
    enabled: bool | None = None,
    display_name: str | None = None,
    new_password: str | None = None,
    actor: str = "operator",
) -> UserInfo:
    """Change an operator user (one transaction, audited as ``user.update``); LookupError if unknown.

    ``new_password`` is stored hashed. Disabling a user or changing the password
    also ends the user's browser sessions (the caller drops its token cache).
    """
    hashed = await hash_password(new_password) if new_password is not None else None
    async with write_session(session_factory) as session:
        user = (await session.execute(select(OperatorUser).where(OperatorUser.username == username))).scalar_one_or_none()
        if user is None:
            raise LookupError(f"no user {username!r}")
        before = _user_info(user)
        if role is not None:
            user.role = OperatorRole(role)
        if enabled is not None:
            user.enabled = enabled
        if display_name is not None:
            user.display_name = display_name[:200]
        if hashed is not None:
            user.password_hash = hashed
        if (enabled is False and before.enabled) or hashed is not None:
            await session.execute(
                update(WebSession).where(WebSession.operator_user_id == user.id, WebSession.revoked_at.is_(None))
                .values(revoked_at=utcnow()))
        after = _user_info(user)
        changes: dict[str, list[object]] = {
            k: [str(getattr(before, k)), str(getattr(after, k))]
            for k in ("role", "enabled", "display_name") if getattr(before, k) != getattr(after, k)}
        if hashed is not None:
            changes["password"] = ["", "reset"]
        add_audit_event(session, actor=actor, action="user.update", subject_type="user", subject_id=username,
                        details=changes)
    return after
