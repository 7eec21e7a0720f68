"""Lines: SIP credentials for the registrar's in-memory cache, lookups by number,
and the clear-text line data adapter configs are rendered from.

HA1 is computed here with hashlib on purpose: the store must not depend on the SIP
digest module (``switch.sip`` depends on nothing, and nothing in ``store`` depends on
``sip``). The formula is the one of RFC 7616 §3.4.2 / RFC 2617 §3.2.2.2:
``HA1 = H(username ":" realm ":" password)``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from switch.store.crypto import CTX_LINE_SECRET, SecretBox
from switch.store.engine import SessionFactory, write_session
from switch.store.models import Language, Line, Number

__all__ = [
    "LineCredential",
    "LineInfo",
    "LineProvisioning",
    "apply_secret",
    "compute_ha1",
    "default_auth_user",
    "get_line_by_auth_user",
    "get_line_by_number",
    "lines_fingerprint",
    "load_adapter_lines",
    "load_credentials",
    "normalise_number",
    "rehash_lines",
    "set_line_secret",
]

log = logging.getLogger(__name__)


async def lines_fingerprint(session_factory: SessionFactory) -> tuple[object, ...]:
    """Changes whenever a line is added, removed or updated (password, number, flags)."""
    async with session_factory() as session:
        row = (await session.execute(select(func.count(Line.id), func.max(Line.updated_at), func.max(Line.id)))).one()
    return tuple(row)


def compute_ha1(algorithm: str, user: str, realm: str, password: str) -> str:
    """HA1 for ``MD5`` or ``SHA-256`` (RFC 7616 §3.4.2), lower-case hex."""
    data = f"{user}:{realm}:{password}".encode()
    if algorithm.upper() == "MD5":
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    if algorithm.upper() == "SHA-256":
        return hashlib.sha256(data).hexdigest()
    raise ValueError(f"unsupported digest algorithm {algorithm!r}")


_SPACING = re.compile(r"[\s\-.()]")


def normalise_number(text: str) -> str:
    """A subscriber number as written by people → E.164 (``+4722000001``).

    Accepts 8-digit Norwegian national numbers (first digit 2–9), ``+CC…``, ``00CC…``,
    with spaces, dashes, dots or parentheses as separators. ``47XXXXXXXX`` without a
    prefix is refused: ten digits starting 47 are not unambiguous. Raises ValueError.
    """
    digits = _SPACING.sub("", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if re.fullmatch(r"[2-9]\d{7}", digits):
        return "+47" + digits
    if re.fullmatch(r"\+[1-9]\d{6,14}", digits):  # E.164: at most 15 digits (ITU-T E.164 §6)
        if digits.startswith("+47") and not re.fullmatch(r"\+47[2-9]\d{7}", digits):
            raise ValueError(f"{text!r}: a Norwegian number has 8 digits after +47")
        return digits
    raise ValueError(f"{text!r} is not a Norwegian national number (8 digits) or an E.164 number (+…)")


def default_auth_user(e164: str) -> str:
    """The SIP auth user a line gets when none is given: the national number for
    Norwegian numbers (what adapters and customers know), else the E.164 form."""
    if e164.startswith("+47") and len(e164) == 11:
        return e164[3:]
    return e164


@dataclass(frozen=True, slots=True, kw_only=True)
class LineCredential:
    """What the registrar/authenticator needs per auth user, without any ORM object."""

    line_id: int
    auth_user: str
    number: str  # E.164
    ha1_md5: str
    ha1_sha256: str
    adapter_id: int
    port: int
    language: Language
    enabled: bool
    customer_id: int
    alarm: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class LineInfo:
    line_id: int
    customer_id: int
    number: str | None  # E.164
    auth_user: str
    adapter_id: int
    port: int
    display_name: str | None
    language: Language
    alarm: bool
    enabled: bool
    unlisted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class LineProvisioning:
    """One port's settings for an adapter config, secret in clear."""

    line_id: int
    port: int
    number: str | None
    auth_user: str
    secret: str
    display_name: str | None
    language: Language
    alarm: bool
    enabled: bool


def _info(line: Line) -> LineInfo:
    return LineInfo(
        line_id=line.id,
        customer_id=line.customer_id,
        number=line.number.e164 if line.number else None,
        auth_user=line.auth_user,
        adapter_id=line.adapter_id,
        port=line.port,
        display_name=line.display_name,
        language=line.language,
        alarm=line.alarm,
        enabled=line.enabled,
        unlisted=line.number.unlisted if line.number else False,
    )


async def load_credentials(
    session_factory: SessionFactory, realm: str, *, secret_box: SecretBox | None = None
) -> dict[str, LineCredential]:
    """Every line with a number, keyed by auth user, with HA1 values for ``realm``.

    Lines hashed for another realm (the realm setting changed) are rehashed in
    memory when ``secret_box`` is given, and left out with a warning otherwise: a
    stale HA1 could never match, and the registrar must not pretend it could.
    ``rehash_lines`` makes the change permanent.
    """
    async with session_factory() as session:
        rows = (
            await session.execute(
                select(Line, Number.e164).join(Number, Line.number_id == Number.id).order_by(Line.id)
            )
        ).all()
    out: dict[str, LineCredential] = {}
    stale = 0
    for line, e164 in rows:
        ha1_md5, ha1_sha256 = line.ha1_md5, line.ha1_sha256
        if line.ha1_realm != realm:
            if secret_box is None:
                stale += 1
                continue
            secret = secret_box.decrypt(line.secret_enc, context=CTX_LINE_SECRET)
            ha1_md5 = compute_ha1("MD5", line.auth_user, realm, secret)
            ha1_sha256 = compute_ha1("SHA-256", line.auth_user, realm, secret)
        out[line.auth_user] = LineCredential(
            line_id=line.id,
            auth_user=line.auth_user,
            number=e164,
            ha1_md5=ha1_md5,
            ha1_sha256=ha1_sha256,
            adapter_id=line.adapter_id,
            port=line.port,
            language=line.language,
            enabled=line.enabled,
            customer_id=line.customer_id,
            alarm=line.alarm,
        )
    if stale:
        log.warning("%d line(s) hashed for another realm than %r were left out; run rehash_lines", stale, realm)
    return out


async def get_line_by_number(session_factory: SessionFactory, number: str) -> LineInfo | None:
    """The line using ``number`` (any form ``normalise_number`` accepts), or None."""
    try:
        e164 = normalise_number(number)
    except ValueError:
        return None
    async with session_factory() as session:
        line = (
            await session.execute(
                select(Line).join(Number, Line.number_id == Number.id).where(Number.e164 == e164)
                .options(joinedload(Line.number))
            )
        ).scalar_one_or_none()
        return _info(line) if line else None


async def get_line_by_auth_user(session_factory: SessionFactory, auth_user: str) -> LineInfo | None:
    async with session_factory() as session:
        line = (
            await session.execute(
                select(Line).where(Line.auth_user == auth_user).options(joinedload(Line.number))
            )
        ).scalar_one_or_none()
        return _info(line) if line else None


async def load_adapter_lines(
    session_factory: SessionFactory, adapter_id: int, secret_box: SecretBox
) -> list[LineProvisioning]:
    """The lines of one adapter with secrets decrypted, by port: what its config needs."""
    async with session_factory() as session:
        lines = (
            await session.execute(
                select(Line).where(Line.adapter_id == adapter_id).options(joinedload(Line.number)).order_by(Line.port)
            )
        ).scalars().all()
        return [
            LineProvisioning(
                line_id=line.id,
                port=line.port,
                number=line.number.e164 if line.number else None,
                auth_user=line.auth_user,
                secret=secret_box.decrypt(line.secret_enc, context=CTX_LINE_SECRET),
                display_name=line.display_name,
                language=line.language,
                alarm=line.alarm,
                enabled=line.enabled,
            )
            for line in lines
        ]


def apply_secret(line: Line, secret: str, secret_box: SecretBox, realm: str) -> None:
    """Set a line's encrypted secret and both HA1 values (used by the importer too)."""
    line.secret_enc = secret_box.encrypt(secret, context=CTX_LINE_SECRET)
    line.ha1_md5 = compute_ha1("MD5", line.auth_user, realm, secret)
    line.ha1_sha256 = compute_ha1("SHA-256", line.auth_user, realm, secret)
    line.ha1_realm = realm


async def set_line_secret(
    session_factory: SessionFactory, line_id: int, secret: str, secret_box: SecretBox, realm: str
) -> None:
    """Change a line's SIP password (operator reset). Raises LookupError for an unknown line."""
    async with write_session(session_factory) as session:
        line = await session.get(Line, line_id)
        if line is None:
            raise LookupError(f"no line {line_id}")
        apply_secret(line, secret, secret_box, realm)


async def rehash_lines(session_factory: SessionFactory, secret_box: SecretBox, realm: str) -> int:
    """Recompute stored HA1 values of lines hashed for another realm; returns how many."""
    async with write_session(session_factory) as session:
        lines = (await session.execute(select(Line).where(Line.ha1_realm != realm))).scalars().all()
        for line in lines:
            apply_secret(line, secret_box.decrypt(line.secret_enc, context=CTX_LINE_SECRET), secret_box, realm)
        return len(lines)
