"""examples/customers.yaml carries what the README promises: trunks, routes and an emergency trunk."""

from __future__ import annotations

from pathlib import Path

from switch.store.crypto import SecretBox
from switch.store.importer import import_document, load_import_file
from switch.store.repo_trunks import load_routing

from tests.conftest_db import MigratedDb

REALM = "sip.example.net"


async def test_the_yaml_example_imports_trunks_routes_and_an_emergency_trunk(
    migrated_db: MigratedDb, secret_box: SecretBox
) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    await import_document(migrated_db.session_factory, load_import_file(examples / "customers.yaml"), secret_box, REALM)
    trunks, routes = await load_routing(migrated_db.session_factory, secret_box)
    by_name = {t.name: t for t in trunks}
    assert set(by_name) == {"carrier-a", "carrier-b", "emergency"}
    assert by_name["emergency"].emergency and not by_name["carrier-a"].emergency
    assert by_name["carrier-a"].password == "Trunk-secret-A1"  # decrypted again: stored encrypted
    ids = {t.trunk_id: t.name for t in trunks}
    assert {r.prefix: [ids[i] for i in r.trunk_ids] for r in routes} == {"+47": ["carrier-a", "carrier-b"], "+": ["carrier-b"]}
