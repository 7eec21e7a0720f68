"""The import file sets, keeps and removes a customer's credit limit; a bad one is refused with its place."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from switch.store import models as m
from switch.store.crypto import SecretBox
from switch.store.import_validation import ImportValidationError, parse_import_document
from switch.store.importer import import_document
from tests.conftest_db import MigratedDb


def doc(**customer: Any) -> dict[str, Any]:
    return {"customers": [{"id": "C1001", "name": "Kari Nordmann", **customer}]}


async def _limit(db: MigratedDb) -> int | None:
    async with db.session_factory() as s:
        return (await s.execute(select(m.Customer.credit_limit_ore))).scalar_one()


async def test_set_kept_when_absent_and_removed_with_null(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    sf = migrated_db.session_factory
    await import_document(sf, parse_import_document(doc(credit_limit_ore=50000)), secret_box, "realm")
    assert await _limit(migrated_db) == 50000
    await import_document(sf, parse_import_document(doc()), secret_box, "realm")
    assert await _limit(migrated_db) == 50000
    await import_document(sf, parse_import_document(doc(credit_limit_ore=None)), secret_box, "realm")
    assert await _limit(migrated_db) is None


@pytest.mark.parametrize("bad", [-1, "500", 2.5, True, 10**10])
def test_a_bad_limit_is_named_with_its_place(bad: object) -> None:
    with pytest.raises(ImportValidationError) as err:
        parse_import_document(doc(credit_limit_ore=bad))
    assert "customers[0].credit_limit_ore" in str(err.value)
