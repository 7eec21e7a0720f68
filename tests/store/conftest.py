"""Fixtures for the store tests. The database fixtures themselves (``db_url``,
``migrated_db``, ``secret_box``) come from the ``tests.conftest_db`` plugin."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from switch.store.crypto import SecretBox
from tests.conftest_db import MigratedDb

from .helpers import add_line

REALM = "voip.example.no"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def realm() -> str:
    return REALM


@pytest.fixture
def kari_doc() -> dict[str, Any]:
    """The document shape the issue requires to be accepted."""
    return {
        "customers": [
            {
                "id": "C1001",
                "name": "Kari Nordmann",
                "language": "nb",
                "adapters": [
                    {
                        "mac": "00:0E:08:AB:CD:01",
                        "model": "spa112",
                        "lines": [
                            {"port": 1, "number": "22000001", "password": "Tel1-secret-01"},
                            {"port": 2, "number": "22000002", "password": "Tel2-secret-02"},
                        ],
                    }
                ],
            }
        ]
    }


@pytest.fixture
def examples_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        return p

    return write


@pytest.fixture
async def two_lines(migrated_db: MigratedDb, secret_box: SecretBox) -> tuple[int, int]:
    """Both ports of one adapter (22000001, 22000002); returns the two line ids."""
    sf = migrated_db.session_factory
    a = await add_line(sf, secret_box, REALM)
    b = await add_line(sf, secret_box, REALM, port=2, number="+4722000002", auth_user="22000002")
    return a, b
