"""Which database errors a row causes by its own content: the store's knowledge, not its callers'.

A writer that meets one of these knows retrying the same row will not help
(it spills the row instead); any other error is an outage to wait out. The
drivers' exception types (SQLAlchemy's, sqlite3's, asyncpg's) stay here, so
the services need not know which database runs.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DataError, IntegrityError, StatementError

__all__ = ["is_row_error"]

#: Errors caused by a row's own content: retrying will not help.
_ROW_ERRORS: tuple[type[BaseException], ...] = (
    IntegrityError, DataError, ValueError, TypeError, sqlite3.IntegrityError, sqlite3.DataError,
    sqlite3.InterfaceError,
)
try:  # asyncpg's row-level errors, for the raw-driver writer (switch.store.hot_store)
    import asyncpg

    _ROW_ERRORS += (asyncpg.exceptions.IntegrityConstraintViolationError, asyncpg.exceptions.DataError)
except ImportError:  # pragma: no cover - asyncpg is a dependency
    pass


def is_row_error(exc: BaseException) -> bool:
    """The row itself is at fault (a constraint, a bad value), directly or wrapped by SQLAlchemy."""
    if isinstance(exc, _ROW_ERRORS):
        return True
    return isinstance(exc, StatementError) and isinstance(getattr(exc, "orig", None), _ROW_ERRORS)
