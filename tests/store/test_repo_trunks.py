"""Trunks and routes: import (upsert, validation), load with decrypted passwords, route order."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from switch.services.trunks import RoutingTable, TrunkService
from switch.store.crypto import CTX_TRUNK_PASSWORD, SecretBox
from switch.store.engine import write_session
from switch.store.models import Trunk
from switch.store.repo_trunks import RoutingImportError, import_routing, load_routing
from tests.conftest_db import MigratedDb

DOC: dict[str, Any] = {
    "trunks": [
        {
            "name": "carrierA",
            "host": "192.0.2.10",
            "port": 5060,
            "transport": "udp",
            "username": "acct1",
            "password": "s3cret",
            "allowed_sources": ["192.0.2.0/28"],
            "emergency": False,
        },
        {"name": "carrierB", "host": "198.51.100.20", "port": 5080, "transport": "tcp"},
        {"name": "nodnett", "host": "203.0.113.5", "emergency": True},
    ],
    "routes": [
        {"prefix": "+47", "trunks": ["carrierA", "carrierB"]},
        {"prefix": "+", "trunks": ["carrierB"]},
    ],
}


async def _import(db: MigratedDb, box: SecretBox, doc: dict[str, Any]) -> str:
    async with write_session(db.session_factory) as session:
        return str(await import_routing(session, doc, box))


async def test_import_then_load(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    report = await _import(migrated_db, secret_box, DOC)
    assert report == "trunks: 3 created, 0 updated; routes: 2 created, 0 updated"
    trunks, routes = await load_routing(migrated_db.session_factory, secret_box)
    a, b, e = trunks
    assert (a.name, a.host, a.port, a.transport, a.username, a.password, a.allowed_sources, a.emergency) == (
        "carrierA", "192.0.2.10", 5060, "udp", "acct1", "s3cret", ("192.0.2.0/28",), False,
    )
    assert (b.port, b.transport, b.username, b.password, b.allowed_sources) == (5080, "tcp", None, None, ())
    assert e.emergency is True and e.enabled is True
    assert [(r.prefix, r.trunk_ids) for r in routes] == [("+47", (a.trunk_id, b.trunk_id)), ("+", (b.trunk_id,))]
    assert "s3cret" not in repr(a)
    async with migrated_db.session_factory() as s:
        stored = (await s.execute(select(Trunk).where(Trunk.name == "carrierA"))).scalar_one()
    assert stored.password_enc is not None and "s3cret" not in stored.password_enc
    assert secret_box.decrypt(stored.password_enc, context=CTX_TRUNK_PASSWORD) == "s3cret"


async def test_reimport_updates_in_place_and_keeps_what_is_not_mentioned(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    await _import(migrated_db, secret_box, DOC)
    report = await _import(
        migrated_db,
        secret_box,
        {
            "trunks": [{"name": "carrierA", "host": "192.0.2.11", "enabled": False}],
            "routes": [{"prefix": "+47", "trunks": ["carrierB", "carrierA"]}, {"prefix": "+4781", "trunks": ["carrierA"]}],
        },
    )
    assert report == "trunks: 0 created, 1 updated; routes: 1 created, 1 updated"
    trunks, routes = await load_routing(migrated_db.session_factory, secret_box)
    by_name = {t.name: t for t in trunks}
    a = by_name["carrierA"]
    assert (a.host, a.enabled, a.password, a.username) == ("192.0.2.11", False, "s3cret", "acct1")
    assert len(trunks) == 3
    ids = {t.name: t.trunk_id for t in trunks}
    assert {r.prefix: r.trunk_ids for r in routes} == {
        "+47": (ids["carrierB"], ids["carrierA"]),
        "+": (ids["carrierB"],),
        "+4781": (ids["carrierA"],),
    }


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"trunks": [{"host": "x"}]}, "trunks[1]: 'name' is required"),
        ({"trunks": [{"name": "n"}]}, "trunks[1] (n): 'host' is required"),
        ({"trunks": [{"name": "n", "host": "h", "port": 70000}]}, "port must be 1-65535"),
        ({"trunks": [{"name": "n", "host": "h", "transport": "sctp"}]}, "transport must be one of"),
        ({"trunks": [{"name": "n", "host": "h", "allowed_sources": ["10.0.0.300/8"]}]}, "bad CIDR"),
        ({"trunks": [{"name": "n", "host": "h", "emergency": "yes"}]}, "'emergency' must be true or false"),
        ({"trunks": [{"name": "n", "host": "h"}, {"name": "n", "host": "h"}]}, "listed twice"),
        ({"routes": [{"prefix": "47", "trunks": ["a"]}]}, "route prefix must be '+'"),
        ({"routes": [{"prefix": "+47", "trunks": ["nobody"]}]}, "unknown trunk 'nobody'"),
        ({"routes": [{"prefix": "+47", "trunks": []}]}, "non-empty list"),
        ({"routes": "all"}, "'routes' must be a list"),
    ],
)
async def test_bad_documents_are_refused_with_a_clear_message(
    migrated_db: MigratedDb, secret_box: SecretBox, doc: dict[str, Any], message: str
) -> None:
    with pytest.raises(RoutingImportError, match=re.escape(message)):
        await _import(migrated_db, secret_box, doc)
    trunks, routes = await load_routing(migrated_db.session_factory, secret_box)
    assert (trunks, routes) == ([], [])  # the transaction rolled back


async def test_trunk_service_builds_the_routing_table(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    await _import(migrated_db, secret_box, DOC)
    service = TrunkService(lambda: load_routing(migrated_db.session_factory, secret_box))
    table = await service.reload()
    assert isinstance(table, RoutingTable)
    assert table.routes.lookup("4722000001") is not None
    assert table.routes.lookup("4722000001").prefix == "+47"  # type: ignore[union-attr]
    assert table.routes.lookup("12125550100").prefix == "+"  # type: ignore[union-attr]
    assert table.trunk_for_source("192.0.2.3") is table.by_name["carrierA"]
    client = service.digest_client(table.by_name["carrierA"])
    assert client is not None and client.username == "acct1"
    assert service.digest_client(table.by_name["carrierB"]) is None
    service.mark(table.by_name["carrierB"].trunk_id, alive=False)
    assert service.dead == set()
    service.mark(table.by_name["carrierB"].trunk_id, alive=False)
    assert service.dead == {table.by_name["carrierB"].trunk_id}
    service.mark(table.by_name["carrierB"].trunk_id, alive=True)
    assert service.dead == set()
