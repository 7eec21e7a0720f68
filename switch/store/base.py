"""Declarative base shared by every model, and the column types all tables use.

Why a naming convention: Alembic can only drop or alter a constraint it can name, and
SQLite batch migrations recreate tables from the reflected names. With one convention
every constraint has the same, predictable name on SQLite and PostgreSQL, so a
migration written against one works on the other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, MetaData
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["NAMING_CONVENTION", "Base", "JsonDoc", "UtcDateTime", "utcnow"]

#: Names stay below PostgreSQL's 63-character identifier limit for every table here
#: (checked by tests/store/test_schema.py).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The one wall clock of the store: timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite has no timestamp type and SQLAlchemy
    stores naive ISO strings there. Converting to UTC before storing keeps SQLite's
    string order equal to time order (``expires_at < :now`` works on both), and
    tagging values read back as UTC means callers never see a naive datetime.
    Naive datetimes are refused: guessing their zone is how expiry bugs start.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError(f"naive datetime {value!r}: the store only accepts timezone-aware values")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: JSON documents: ``jsonb`` on PostgreSQL (indexable, compact), JSON text on SQLite.
JsonDoc: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Root of all models; carries the shared metadata and naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}
