"""The customer postal address in `softswitch import`: validated with paths, stored, idempotent, cleared by null."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from switch.store import models as m
from switch.store.crypto import SecretBox
from switch.store.import_validation import ImportValidationError, load_import_file, parse_import_document
from switch.store.importer import import_document
from tests.conftest_db import MigratedDb

from .conftest import REALM

Doc = dict[str, Any]
OSLO = {"street": "Storgata 1", "postcode": "0150", "city": "Oslo"}


async def _address(db: MigratedDb) -> tuple[str | None, str | None, str | None]:
    async with db.session_factory() as s:
        row = (await s.execute(select(m.Customer.address_street, m.Customer.address_postcode,
                                      m.Customer.address_city))).one()
        return row[0], row[1], row[2]


async def _run(db: MigratedDb, box: SecretBox, doc: Doc) -> bool:
    report = await import_document(db.session_factory, parse_import_document(doc), box, REALM)
    return report.changed


async def test_address_is_stored_kept_when_absent_and_removed_by_null(
    migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc
) -> None:
    doc = copy.deepcopy(kari_doc)
    doc["customers"][0]["address"] = {"street": " Storgata 1 ", "postcode": "0150", "city": "Oslo"}
    assert await _run(migrated_db, secret_box, doc)
    assert await _address(migrated_db) == ("Storgata 1", "0150", "Oslo")
    assert not await _run(migrated_db, secret_box, doc), "the same file twice changes nothing"
    assert not await _run(migrated_db, secret_box, kari_doc), "a file without address keeps the stored one"
    assert await _address(migrated_db) == ("Storgata 1", "0150", "Oslo")
    doc["customers"][0]["address"] = {"street": "Kongens gate 2", "postcode": "7011", "city": "Trondheim"}
    assert await _run(migrated_db, secret_box, doc)
    assert await _address(migrated_db) == ("Kongens gate 2", "7011", "Trondheim")
    doc["customers"][0]["address"] = None
    assert await _run(migrated_db, secret_box, doc)
    assert await _address(migrated_db) == (None, None, None)


@pytest.mark.parametrize(("address", "expected"), [
    ({**OSLO, "postcode": "150"}, ["customers[0].address.postcode: must be a Norwegian postcode of 4 digits, got '150'"]),
    ({**OSLO, "postcode": "01500"}, ["customers[0].address.postcode: must be a Norwegian postcode of 4 digits, "
                                     "got '01500'"]),
    ({**OSLO, "postcode": "O150"}, ["customers[0].address.postcode: must be a Norwegian postcode of 4 digits, "
                                    "got 'O150'"]),
    ({**OSLO, "postcode": 150}, ['customers[0].address.postcode: must be a string (quote it: "0150")']),
    ({"street": "Storgata 1", "postcode": "0150"}, ["customers[0].address.city: required"]),
    ({**OSLO, "street": "  "}, ["customers[0].address.street: must not be empty"]),
    ({**OSLO, "country": "NO"}, ["customers[0].address.country: unknown field (street, postcode, city)"]),
    ({**OSLO, "city": "x" * 101}, ["customers[0].address.city: at most 100 characters"]),
    ("Storgata 1, 0150 Oslo", ["customers[0].address: must be an object with street, postcode (4 digits) and city, "
                               "or null"]),
    ({"postcode": "12"}, ["customers[0].address.street: required", "customers[0].address.postcode: must be a "
                          "Norwegian postcode of 4 digits, got '12'", "customers[0].address.city: required"]),
])
def test_bad_addresses_are_refused_with_their_path(kari_doc: Doc, address: object, expected: list[str]) -> None:
    doc = copy.deepcopy(kari_doc)
    doc["customers"][0]["address"] = address
    with pytest.raises(ImportValidationError) as exc:
        parse_import_document(doc)
    assert sorted(str(i) for i in exc.value.issues) == sorted(expected)


async def test_a_refused_address_changes_nothing(migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc) -> None:
    doc = copy.deepcopy(kari_doc)
    doc["customers"][0]["address"] = OSLO
    await _run(migrated_db, secret_box, doc)
    doc["customers"][0]["address"] = {**OSLO, "postcode": "1"}
    doc["customers"][0]["name"] = "Someone Else"
    with pytest.raises(ImportValidationError):
        parse_import_document(doc)
    assert await _address(migrated_db) == ("Storgata 1", "0150", "Oslo")


def test_the_yaml_example_carries_an_address(examples_dir: Path) -> None:
    doc = load_import_file(examples_dir / "customers.yaml")
    kari = next(c for c in doc.customers if c.external_id == "C1001")
    assert kari.set_address and kari.address is not None and kari.address.one_line() == "Storgata 1, 0150 Oslo"
