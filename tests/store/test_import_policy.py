"""Call policy in the import file: forwarding and barring per line, barring and fraud limits per customer.

Present keys set the whole setting, absent keys leave it alone, every error
names its path and refuses the whole file, and the policy service reads back
what was imported (the path `softswitch import` → running switch).
"""

from __future__ import annotations

from typing import Any

import pytest

from switch.services.lines import LineDirectory
from switch.services.policy.importing import ForwardTargetCheck
from switch.services.policy.service import PolicyService
from switch.store.crypto import SecretBox
from switch.store.import_validation import ImportValidationError, parse_import_document
from switch.store.importer import import_document
from switch.store.models import BarringCategory as BC
from switch.store.models import ForwardKind as FK
from switch.store.repo_audit import list_audit_events
from tests.conftest_db import MigratedDb

from .conftest import REALM


def doc(line: dict[str, Any] | None = None, customer: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"customers": [{
        "id": "C1001", "name": "Kari Nordmann", **(customer or {}),
        "adapters": [{"mac": "00:0E:08:AB:CD:01", "model": "spa112", "lines": [
            {"port": 1, "number": "22000001", "password": "Tel1-secret-01", **(line or {})},
            {"port": 2, "number": "22000002", "password": "Tel2-secret-02"},
        ]}],
    }]}


def issues(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ImportValidationError) as err:
        parse_import_document(data, checks=(ForwardTargetCheck(),))
    return [str(i) for i in err.value.issues]


async def load(db: MigratedDb) -> PolicyService:
    service = PolicyService(db.session_factory, LineDirectory(_no_lines), reload_interval=0)
    await service.load()
    return service


async def _no_lines() -> list[Any]:
    return []


async def test_import_sets_line_and_customer_policy_and_the_service_reads_it(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    data = doc(
        {"barring": ["mobile"], "forwarding": {"unconditional": "22000002", "no_answer": {"target": "91234567", "timeout_s": 25}}},
        {"barring": ["international", "premium"], "fraud_limits": {"calls_per_line": 3, "night_attempts_per_hour": 4}},
    )
    await import_document(migrated_db.session_factory, parse_import_document(data, checks=(ForwardTargetCheck(),)),
                          secret_box, REALM)
    ps = await load(migrated_db)
    (line,) = [lp for lp in ps.state.lines.values() if lp.number == "+4722000001"]
    assert {k: (r.target, r.timeout_s) for k, r in line.forwards.items()} == {
        FK.UNCONDITIONAL: ("+4722000002", None), FK.NO_ANSWER: ("+4791234567", 25)}
    assert line.barring == {BC.MOBILE}
    customer = ps.state.customers[line.customer_id]
    assert customer.barring == {BC.INTERNATIONAL, BC.PREMIUM}
    assert (customer.limits.calls_per_line, customer.limits.calls_per_customer, customer.limits.night_attempts_per_hour) == (3, 4, 4)
    actions = {e.action for e in await list_audit_events(migrated_db.session_factory, customer_id=line.customer_id)}
    assert {"forwarding.set", "barring.set", "fraud_limits.set"} <= actions

    # Absent keys leave things alone; present ones set the whole thing ([] / {} clear).
    await import_document(migrated_db.session_factory, parse_import_document(doc()), secret_box, REALM)
    assert (await load(migrated_db)).state.lines[line.line_id].barring == {BC.MOBILE}
    await import_document(migrated_db.session_factory, parse_import_document(doc({"barring": [], "forwarding": {}},
                                                                                 {"barring": []})), secret_box, REALM)
    ps = await load(migrated_db)
    assert ps.state.lines[line.line_id].barring == frozenset() and ps.state.lines[line.line_id].forwards == {}
    assert ps.state.customers[line.customer_id].barring == frozenset()
    assert ps.state.customers[line.customer_id].limits.calls_per_line == 3  # fraud_limits absent: kept


@pytest.mark.parametrize(
    ("line", "customer", "expected"),
    [
        ({"forwarding": {"unconditional": "112"}}, {},
         "customers[0].adapters[0].lines[0].forwarding.unconditional: emergency numbers (110, 112, 113) cannot be forward targets"),
        ({"forwarding": {"busy": "22000001"}}, {}, "customers[0].adapters[0].lines[0].forwarding.busy: a line cannot forward to itself"),
        ({"forwarding": {"busy": "82012345"}}, {}, "customers[0].adapters[0].lines[0].forwarding.busy: +4782012345 is a premium_rate number"),
        ({"forwarding": {"no_answer": {"target": "91234567", "timeout_s": 200}}}, {},
         "customers[0].adapters[0].lines[0].forwarding.no_answer.timeout_s: must be from 5 to 120 seconds, got 200"),
        ({"forwarding": {"sometimes": "91234567"}}, {}, "customers[0].adapters[0].lines[0].forwarding.sometimes: unknown forwarding kind"),
        ({"forwarding": ["91234567"]}, {}, "customers[0].adapters[0].lines[0].forwarding: must be a mapping"),
        ({"barring": ["jazz"]}, {}, "customers[0].adapters[0].lines[0].barring[0]: unknown barring category 'jazz'"),
        ({}, {"barring": "premium"}, "customers[0].barring: must be a list"),
        ({}, {"fraud_limits": {"calls_per_line": 0}}, "customers[0].fraud_limits.calls_per_line: must be a whole number from 1 to 1000"),
        ({}, {"fraud_limits": {"calls": 3}}, "customers[0].fraud_limits.calls: unknown limit"),
    ],
)
def test_policy_errors_name_their_path(line: dict[str, Any], customer: dict[str, Any], expected: str) -> None:
    got = issues(doc(line, customer))
    assert any(i.startswith(expected) for i in got), got


async def test_a_bad_target_refuses_the_whole_file(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    with pytest.raises(ImportValidationError):
        parse_import_document(doc({"forwarding": {"unconditional": "113"}}, {"barring": ["mobile"]}),
                              checks=(ForwardTargetCheck(),))
    ps = await load(migrated_db)
    assert ps.state.lines == {}  # nothing was written
