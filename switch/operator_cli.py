"""What the ``softswitch`` command says to an operator: one clear line, never a traceback, for
the mistakes of a first hour (a port in use, a missing file, the wrong key file), logging as
text or JSON lines, and the token commands beyond ``create``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import sys
import time
from collections.abc import Coroutine
from typing import Any

from .settings import Settings

__all__ = ["OperatorError", "JsonLines", "configure_logging", "guarded", "token_list", "token_revoke"]


class OperatorError(Exception):
    """A mistake the operator can fix; printed as one line, exit status 1."""


class JsonLines(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO 8601), level, logger, message (+ exc when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    logging.getLogger("alembic").setLevel(logging.WARNING)


def guarded(coro: Coroutine[Any, Any, int], settings: Settings) -> int:
    """Run a command; the errors an operator can fix become an :class:`OperatorError`."""
    from switch.store.keycheck import KeyMismatch

    try:
        return asyncio.run(coro)
    except KeyMismatch as err:
        raise OperatorError(
            f"refusing to start: {err}. Key file: {settings.key_file} (give the one this database was "
            "created with: --key-file or SOFTSWITCH_KEY_FILE)"
        ) from None
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise OperatorError(f"cannot listen: {err.strerror or err}: is another switch running?") from None
        if err.errno in (errno.EACCES, errno.EPERM) and "bind" in str(err):
            raise OperatorError(f"cannot listen: {err} (ports below 1024 need privileges)") from None
        if isinstance(err, FileNotFoundError) and err.filename:
            raise OperatorError(f"no such file: {err.filename}") from None
        raise


async def token_list(settings: Settings, *, include_inactive: bool = False) -> int:
    from sqlalchemy import select

    from switch.database import open_database
    from switch.store.models import ApiToken, Customer

    db = await open_database(settings)
    sf = db.session_factory
    try:
        async with sf() as session:
            rows = (
                await session.execute(
                    select(ApiToken, Customer.external_id)
                    .outerjoin(Customer, Customer.id == ApiToken.customer_id)
                    .order_by(ApiToken.id)
                )
            ).all()
    finally:
        await db.close()
    print(f"{'id':>5}  {'role':<9} {'customer':<10} {'state':<8} {'created':<16} {'last used':<16} label")
    now = time.time()
    for token, customer in rows:
        expired = token.expires_at is not None and token.expires_at.timestamp() <= now
        state = "revoked" if token.revoked_at is not None else "expired" if expired else "active"
        if state != "active" and not include_inactive:
            continue
        role = getattr(token.role, "value", token.role)
        print(f"{token.id:>5}  {role:<9} {customer or '-':<10} {state:<8} {_when(token.created_at):<16} "
              f"{_when(token.last_used_at):<16} {token.label}")
    return 0


async def token_revoke(settings: Settings, token_id: int) -> int:
    from switch.database import open_database
    from switch.store import repo_tokens

    db = await open_database(settings)
    sf = db.session_factory
    try:
        if not await repo_tokens.revoke_token(sf, token_id):
            print(f"softswitch: no active token {token_id} (see `softswitch token list --all`)", file=sys.stderr)
            return 1
    finally:
        await db.close()
    print(f"revoked token {token_id}")
    return 0


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else "-"
