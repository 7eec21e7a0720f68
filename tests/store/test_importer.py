"""`softswitch import`: happy path, idempotency, updates, every error with its path,
and that a refused file changes nothing."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from switch.store import models as m
from switch.store.base import utcnow
from switch.store.crypto import CTX_LINE_SECRET, SecretBox
from switch.store.engine import write_session
from switch.store.import_validation import ImportDoc, ImportValidationError, load_import_file, parse_import_document
from switch.store.importer import ImportReport, import_document
from switch.store.repo_audit import list_audit_events
from switch.store.repo_lines import load_adapter_lines, load_credentials
from tests.conftest_db import MigratedDb

from .conftest import REALM
from .helpers import add_line, snapshot

Doc = dict[str, Any]
ALLOWED_LINE = "port, number, password, auth_user, display_name, alarm, language, unlisted, enabled, forwarding, barring"


def counts(report: ImportReport) -> tuple[dict[str, int], dict[str, int]]:
    return dict(report.created), dict(report.updated)


def issues_of(data: Any) -> list[str]:
    with pytest.raises(ImportValidationError) as exc:
        parse_import_document(data)
    return [str(i) for i in exc.value.issues]


async def run(db: MigratedDb, box: SecretBox, data: Doc) -> ImportReport:
    return await import_document(db.session_factory, parse_import_document(data, source="test.json"), box, REALM)


async def db_issues(db: MigratedDb, box: SecretBox, data: Doc) -> list[str]:
    """Import that must be refused at the database stage, changing nothing."""
    before = await snapshot(db.session_factory)
    doc = parse_import_document(data)  # valid on its own
    with pytest.raises(ImportValidationError) as exc:
        await import_document(db.session_factory, doc, box, REALM)
    assert await snapshot(db.session_factory) == before
    assert "nothing was changed" in str(exc.value)
    return [str(i) for i in exc.value.issues]


def line0(doc: Doc, i: int = 0) -> dict[str, Any]:
    return doc["customers"][0]["adapters"][0]["lines"][i]  # type: ignore[no-any-return]


ZERO = {"customers": 0, "adapters": 0, "lines": 0, "numbers": 0}

# ------------------------------------------------------------------------ happy path


async def test_required_shape_is_imported(migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc) -> None:
    report = await run(migrated_db, secret_box, kari_doc)
    assert counts(report) == ({"customers": 1, "adapters": 1, "lines": 2, "numbers": 2}, ZERO)
    sf = migrated_db.session_factory
    async with sf() as s:
        c = (await s.execute(select(m.Customer))).scalar_one()
        assert (c.external_id, c.name, c.language, c.kind, c.state) == (
            "C1001",
            "Kari Nordmann",
            m.Language.NB,
            m.CustomerKind.PRIVATE,
            m.CustomerState.ACTIVE,
        )
        a = (await s.execute(select(m.Adapter))).scalar_one()
        assert (a.mac, a.model, a.vendor, a.customer_id) == ("000e08abcd01", "spa112", "Cisco", c.id)
        numbers = (await s.execute(select(m.Number.e164, m.Number.customer_id, m.Number.unlisted))).all()
        assert sorted(numbers) == [("+4722000001", c.id, False), ("+4722000002", c.id, False)]
    creds = await load_credentials(sf, REALM)
    assert sorted(creds) == ["22000001", "22000002"]
    cred = creds["22000001"]
    assert (cred.number, cred.port, cred.language, cred.enabled, cred.alarm) == ("+4722000001", 1, m.Language.NB, True, False)
    assert cred.ha1_md5 == hashlib.md5(f"22000001:{REALM}:Tel1-secret-01".encode()).hexdigest()
    assert cred.ha1_sha256 == hashlib.sha256(f"22000001:{REALM}:Tel1-secret-01".encode()).hexdigest()
    secrets = [(x.port, x.secret) for x in await load_adapter_lines(sf, cred.adapter_id, secret_box)]
    assert secrets == [(1, "Tel1-secret-01"), (2, "Tel2-secret-02")]
    [audit] = await list_audit_events(sf)
    assert (audit.actor, audit.action, audit.subject_id) == ("import", "import", "test.json")
    assert audit.details["created"] == {"customers": 1, "adapters": 1, "lines": 2, "numbers": 2}


async def test_second_import_changes_nothing(migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc) -> None:
    await run(migrated_db, secret_box, kari_doc)
    before = await snapshot(migrated_db.session_factory)
    report = await run(migrated_db, secret_box, kari_doc)
    assert counts(report) == (ZERO, ZERO)
    assert dict(report.unchanged) == {"customers": 1, "adapters": 1, "lines": 2, "numbers": 2}
    assert report.total_created == 0 and not report.changed
    assert await snapshot(migrated_db.session_factory) == before  # not even an audit row


async def test_example_files(
    migrated_db: MigratedDb, secret_box: SecretBox, examples_dir: Path
) -> None:
    sf = migrated_db.session_factory
    yaml_doc = load_import_file(examples_dir / "customers.yaml")
    report = await import_document(sf, yaml_doc, secret_box, REALM)
    assert counts(report) == ({"customers": 2, "adapters": 2, "lines": 4, "numbers": 4}, ZERO)
    # The JSON example repeats C1001 without the optional fields: those stay as they are.
    report = await import_document(sf, load_import_file(examples_dir / "customers.json"), secret_box, REALM)
    assert counts(report) == ({"customers": 1, "adapters": 1, "lines": 1, "numbers": 1}, ZERO)
    assert (await import_document(sf, yaml_doc, secret_box, REALM)).changed is False
    creds = await load_credentials(sf, REALM)
    assert sorted(creds) == ["22000001", "22000002", "23000010", "23000011", "per31"]
    assert creds["23000011"].alarm is True and creds["23000011"].language == m.Language.NB
    assert creds["23000010"].language == m.Language.EN  # from its business customer
    async with sf() as s:
        kari2 = (await s.execute(select(m.Line).where(m.Line.auth_user == "22000002"))).scalar_one()
        assert kari2.display_name == "Kari kontor"
        unlisted = (await s.execute(select(m.Number.unlisted).where(m.Number.e164 == "+4722000002"))).scalar_one()
        assert unlisted is True
        contacts = (
            await s.execute(
                select(m.Customer.external_id, m.CustomerContact.email, m.CustomerContact.phone, m.CustomerContact.name)
                .join(m.CustomerContact)
                .order_by(m.Customer.external_id)
            )
        ).all()
        assert contacts == [
            ("C1001", "kari@example.no", None, None),
            ("C1002", None, "+4791234567", "Ola Nordmann"),
            ("C1003", "per@example.no", None, None),
        ]
        kind = (await s.execute(select(m.Customer.kind).where(m.Customer.external_id == "C1002"))).scalar_one()
        assert kind == m.CustomerKind.BUSINESS


async def test_updates_are_counted_and_applied(migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc) -> None:
    sf = migrated_db.session_factory
    await run(migrated_db, secret_box, kari_doc)
    doc = copy.deepcopy(kari_doc)
    doc["customers"][0]["name"] = "Kari Nordmann-Hansen"
    line0(doc)["password"] = "Changed-secret-1"
    line0(doc, 1)["display_name"] = "Kontor"
    report = await run(migrated_db, secret_box, doc)
    assert counts(report) == (ZERO, {"customers": 1, "adapters": 0, "lines": 2, "numbers": 0})
    creds = await load_credentials(sf, REALM)
    assert creds["22000001"].ha1_md5 == hashlib.md5(f"22000001:{REALM}:Changed-secret-1".encode()).hexdigest()
    # Fields absent from a later file keep their values; a file without passwords keeps the secrets.
    for ln in doc["customers"][0]["adapters"][0]["lines"]:
        del ln["password"]
    del line0(doc, 1)["display_name"]
    assert (await run(migrated_db, secret_box, doc)).changed is False
    lines = await load_adapter_lines(sf, creds["22000001"].adapter_id, secret_box)
    assert [(x.secret, x.display_name) for x in lines] == [("Changed-secret-1", None), ("Tel2-secret-02", "Kontor")]


async def test_realm_change_rehashes_on_import(migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc) -> None:
    await run(migrated_db, secret_box, kari_doc)
    doc = parse_import_document(kari_doc)
    report = await import_document(migrated_db.session_factory, doc, secret_box, "new.realm")
    assert report.updated["lines"] == 2
    creds = await load_credentials(migrated_db.session_factory, "new.realm")
    assert creds["22000001"].ha1_md5 == hashlib.md5(b"22000001:new.realm:Tel1-secret-01").hexdigest()


async def test_numbers_swap_between_ports(migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc) -> None:
    sf = migrated_db.session_factory
    await run(migrated_db, secret_box, kari_doc)
    doc = copy.deepcopy(kari_doc)
    line0(doc)["number"], line0(doc, 1)["number"] = "22000002", "22000001"
    report = await run(migrated_db, secret_box, doc)
    assert counts(report) == (ZERO, {"customers": 0, "adapters": 0, "lines": 2, "numbers": 0})
    creds = await load_credentials(sf, REALM)
    # Default auth users follow their numbers; the HA1 is recomputed for the new user.
    assert (creds["22000002"].port, creds["22000001"].port) == (1, 2)
    assert creds["22000002"].ha1_md5 == hashlib.md5(f"22000002:{REALM}:Tel1-secret-01".encode()).hexdigest()
    assert (await run(migrated_db, secret_box, doc)).changed is False


async def test_number_moves_to_a_new_line_and_explicit_auth_user_stays(
    migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc
) -> None:
    sf = migrated_db.session_factory
    doc = copy.deepcopy(kari_doc)
    doc["customers"][0]["adapters"][0]["lines"] = [{"port": 1, "number": "22000001", "auth_user": "kari1"}]
    report = await run(migrated_db, secret_box, doc)
    assert report.created["lines"] == 1
    generated = (await load_adapter_lines(sf, (await load_credentials(sf, REALM))["kari1"].adapter_id, secret_box))[0]
    assert len(generated.secret) >= 16  # no password given: a random one
    doc["customers"][0]["adapters"][0]["lines"] = [
        {"port": 1, "number": "22000009"},
        {"port": 2, "number": "22000001", "password": "Port2-secret-1"},
    ]
    report = await run(migrated_db, secret_box, doc)
    assert counts(report) == (
        {"customers": 0, "adapters": 0, "lines": 1, "numbers": 1},
        {"customers": 0, "adapters": 0, "lines": 1, "numbers": 0},
    )
    creds = await load_credentials(sf, REALM)
    assert {u: (c.port, c.number) for u, c in creds.items()} == {
        "kari1": (1, "+4722000009"),  # explicit auth user kept
        "22000001": (2, "+4722000001"),
    }
    lines = await load_adapter_lines(sf, creds["kari1"].adapter_id, secret_box)
    assert lines[0].secret == generated.secret  # existing line keeps its secret


async def test_pool_number_and_stock_adapter_are_claimed(
    migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc
) -> None:
    sf = migrated_db.session_factory
    async with write_session(sf) as s:
        s.add(m.Number(e164="+4722000001", customer_id=None))
        s.add(m.Adapter(mac="000e08abcd01", vendor="Cisco", model="spa122", provisioning_secret_enc="x"))
        s.add(m.UnclaimedAdapter(mac="000e08abcd01", first_seen_at=utcnow(), last_seen_at=utcnow(), last_addr="x"))
    report = await run(migrated_db, secret_box, kari_doc)
    assert counts(report) == (
        {"customers": 1, "adapters": 0, "lines": 2, "numbers": 1},
        {"customers": 0, "adapters": 1, "lines": 0, "numbers": 1},
    )
    async with sf() as s:
        assert (await s.execute(select(m.Adapter.model))).scalar_one() == "spa112"
        assert (await s.execute(select(m.UnclaimedAdapter))).first() is None


async def test_unclaimed_adapters_are_claimed_in_chunks(
    migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim deletes the unclaimed rows in IN lists of bounded length: one list of every MAC
    broke a 100,000-line import on PostgreSQL (asyncpg takes at most 32,767 arguments)."""
    from switch.store import importer

    monkeypatch.setattr(importer, "_IN_CHUNK", 2)
    doc = copy.deepcopy(kari_doc)
    template = doc["customers"][0]["adapters"][0]
    doc["customers"][0]["adapters"] = [
        {**copy.deepcopy(template), "mac": f"000e08abcd{i:02x}",
         "lines": [{**ln, "number": f"2200{i:02d}{p:02d}", "auth_user": f"2200{i:02d}{p:02d}"}
                   for p, ln in enumerate(template["lines"])]}
        for i in range(5)
    ]
    sf = migrated_db.session_factory
    async with write_session(sf) as s:
        for i in range(6):  # the sixth stays unclaimed
            s.add(m.UnclaimedAdapter(mac=f"000e08abcd{i:02x}", first_seen_at=utcnow(), last_seen_at=utcnow(), last_addr="x"))
    from sqlalchemy import event

    sizes: list[int] = []

    def seen(_conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM UNCLAIMED_ADAPTERS"):
            sizes.append(len(params))

    event.listen(migrated_db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        await run(migrated_db, secret_box, doc)
    finally:
        event.remove(migrated_db.engine.sync_engine, "before_cursor_execute", seen)
    assert sizes and max(sizes) <= 2 and sum(sizes) == 5
    async with sf() as s:
        assert list((await s.execute(select(m.UnclaimedAdapter.mac))).scalars()) == ["000e08abcd05"]


def test_yaml_and_json_files(write_file: Callable[[str, str], Path], kari_doc: Doc) -> None:
    as_json = load_import_file(write_file("c.json", json.dumps(kari_doc)))
    yaml_text = """
customers:
  - id: C1001
    name: Kari Nordmann
    language: nb
    adapters:
      - mac: "00:0E:08:AB:CD:01"
        model: spa112
        lines:
          - {port: 1, number: 22000001, password: Tel1-secret-01}
          - {port: 2, number: "22000002", password: Tel2-secret-02}
"""
    as_yaml = load_import_file(write_file("c.yml", yaml_text))
    sniffed = load_import_file(write_file("c.txt", json.dumps(kari_doc)))
    assert isinstance(as_json, ImportDoc)
    assert as_json.customers == as_yaml.customers == sniffed.customers
    assert as_yaml.source == "c.yml"
    assert load_import_file(write_file("bom.json", "\ufeff" + json.dumps(kari_doc))).customers == as_json.customers


# -------------------------------------------------------------------- document errors


def test_the_issue_example_error(kari_doc: Doc) -> None:
    doc = copy.deepcopy(kari_doc)
    doc["customers"][0]["adapters"].append(copy.deepcopy(doc["customers"][0]["adapters"][0]))
    doc["customers"][0]["adapters"][1]["mac"] = "00:0E:08:AB:CD:02"
    doc["customers"][0]["adapters"][1]["lines"][0]["port"] = 3
    assert issues_of(doc) == ["customers[0].adapters[1].lines[0].port: must be 1 or 2"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: line0(d).update(port="1"), "customers[0].adapters[0].lines[0].port: must be 1 or 2"),
        (lambda d: line0(d).update(port=True), "customers[0].adapters[0].lines[0].port: must be 1 or 2"),
        (
            lambda d: line0(d, 1).update(port=1),
            ("customers[0].adapters[0].lines[1].port: duplicate port 1 on this adapter "
            "(also at customers[0].adapters[0].lines[0])"),
        ),
        (
            lambda d: d["customers"][0]["adapters"][0].update(model="spa999"),
            ("customers[0].adapters[0].model: unknown model 'spa999'; "
            "supported: spa112, spa122, pap2t, spa2102, ht802, ht812, obi202"),
        ),
        (
            lambda d: d["customers"][0]["adapters"][0].update(mac="00:0E:08:AB:CD"),
            "customers[0].adapters[0].mac: '00:0E:08:AB:CD' is not a MAC address",
        ),
        (
            lambda d: d["customers"][0]["adapters"][0].update(mac=36_000_000),
            "customers[0].adapters[0].mac: was read as a number: put the MAC address in quotes",
        ),
        (
            lambda d: line0(d).update(number="1234"),
            ("customers[0].adapters[0].lines[0].number: '1234' is not a Norwegian national number (8 digits) "
            "or an E.164 number (+…)"),
        ),
        (
            lambda d: line0(d, 1).update(number="+47 22 00 00 01"),
            ("customers[0].adapters[0].lines[1].number: duplicate number +4722000001 "
            "(also at customers[0].adapters[0].lines[0].number)"),
        ),
        (
            lambda d: line0(d).update(password="short"),
            ("customers[0].adapters[0].lines[0].password: must be a string of 8 to 64 printable ASCII characters "
            "without spaces"),
        ),
        (
            lambda d: line0(d).update(password=12345678),
            ("customers[0].adapters[0].lines[0].password: must be a string of 8 to 64 printable ASCII characters "
            "without spaces (quote it in YAML)"),
        ),
        (
            lambda d: line0(d).update(password="has space 123"),
            ("customers[0].adapters[0].lines[0].password: must be a string of 8 to 64 printable ASCII characters "
            "without spaces"),
        ),
        (
            lambda d: line0(d).update(pasword="x"),
            f"customers[0].adapters[0].lines[0].pasword: unknown field (allowed: {ALLOWED_LINE})",
        ),
        (lambda d: line0(d).update(alarm="yes"), "customers[0].adapters[0].lines[0].alarm: must be true or false"),
        (lambda d: line0(d).update(language="sv"), "customers[0].adapters[0].lines[0].language: must be nb or en"),
        (
            lambda d: line0(d).update(auth_user="kari@home"),
            "customers[0].adapters[0].lines[0].auth_user: must be 1 to 64 characters of A-Z a-z 0-9 . _ ~ + -",
        ),
        (
            lambda d: line0(d).update(display_name='Kari "K"'),
            'customers[0].adapters[0].lines[0].display_name: must not contain " or \\',
        ),
        (lambda d: line0(d).pop("number"), "customers[0].adapters[0].lines[0].number: required"),
        (lambda d: d["customers"][0].pop("name"), "customers[0].name: required"),
        (lambda d: d["customers"][0].update(language="no"), "customers[0].language: must be nb or en"),
        (lambda d: d["customers"][0].update(type="household"), "customers[0].type: must be private or business"),
        (lambda d: d["customers"][0].update(email="kari"), "customers[0].email: 'kari' is not an e-mail address"),
        (
            lambda d: d["customers"][0].update(id="C 1001"),
            "customers[0].id: must be 1 to 64 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit)",
        ),
        (lambda d: d["customers"][0].update(adapters={}), "customers[0].adapters: must be a list"),
        (
            lambda d: d["customers"][0]["adapters"][0].update(lines=["x"]),
            f"customers[0].adapters[0].lines[0]: must be an object with fields {ALLOWED_LINE}",
        ),
        (lambda d: d.update(customers="C1001"), "customers: must be a list"),
        (lambda d: d.update(extra=1), "extra: unknown field (allowed: customers, trunks, routes)"),
        (lambda d: d.pop("customers"), "customers: required"),
    ],
)
def test_document_errors(kari_doc: Doc, mutate: Callable[[Doc], object], expected: str) -> None:
    doc = copy.deepcopy(kari_doc)
    mutate(doc)
    assert issues_of(doc) == [expected]


def test_duplicates_across_customers(kari_doc: Doc) -> None:
    doc = copy.deepcopy(kari_doc)
    other = copy.deepcopy(doc["customers"][0])
    other["adapters"][0]["mac"] = "00-0e-08-ab-cd-01"  # same MAC, other notation
    other["adapters"][0]["lines"] = [{"port": 1, "number": "22000003", "auth_user": "same"}]
    line0(doc)["auth_user"] = "same"
    doc["customers"].append(other)
    assert issues_of(doc) == [
        ("customers[1].adapters[0].lines[0].auth_user: duplicate auth user 'same' "
        "(also at customers[0].adapters[0].lines[0].auth_user)"),
        "customers[1].adapters[0].mac: duplicate MAC 00:0e:08:ab:cd:01 (also at customers[0].adapters[0].mac)",
        "customers[1].id: duplicate customer id 'C1001' (also at customers[0].id)",
    ]


def test_all_errors_are_reported_in_document_order(kari_doc: Doc) -> None:
    doc = copy.deepcopy(kari_doc)
    for i in range(11):
        doc["customers"].append({"id": f"C{i}", "name": f"N{i}", "language": "xx" if i in (2, 10) else "nb"})
    line0(doc)["port"] = 0
    line0(doc, 1)["number"] = "abc"
    doc["customers"][0]["adapters"][0]["model"] = "SPA112"  # case-insensitive: fine
    assert issues_of(doc) == [
        "customers[0].adapters[0].lines[0].port: must be 1 or 2",
        ("customers[0].adapters[0].lines[1].number: 'abc' is not a Norwegian national number (8 digits) "
        "or an E.164 number (+…)"),
        "customers[3].language: must be nb or en",
        "customers[11].language: must be nb or en",
    ]


def test_not_an_object() -> None:
    assert issues_of([1, 2]) == ['the document must be an object with a "customers" list']


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.json", '{"customers": [\n  {"id": "C1",}\n]}', "bad.json: invalid JSON at line 2 column 15: Expecting property name"),
        ("dup.json", '{"customers": [], "customers": []}', "dup.json: invalid JSON: duplicate key 'customers'"),
        ("dup.yaml", "customers: []\ncustomers: []\n", "dup.yaml: invalid YAML: while reading a mapping"),
        ("bad.yaml", "customers: [\n", "bad.yaml: invalid YAML: "),
    ],
)
def test_syntax_errors(write_file: Callable[[str, str], Path], name: str, text: str, expected: str) -> None:
    with pytest.raises(ImportValidationError) as exc:
        load_import_file(write_file(name, text))
    [issue] = exc.value.issues
    assert str(issue).startswith(expected)
    assert "nothing was changed" in str(exc.value)


def test_yaml_unquoted_mac_read_as_base60(write_file: Callable[[str, str], Path]) -> None:
    text = "customers:\n- id: C1\n  name: X\n  adapters:\n  - mac: 10:22:33:44:55:06\n    model: spa112\n"
    with pytest.raises(ImportValidationError) as exc:
        load_import_file(write_file("m.yaml", text))
    assert [str(i) for i in exc.value.issues] == [
        "customers[0].adapters[0].mac: was read as a number: put the MAC address in quotes"
    ]


# -------------------------------------------------------------------- database errors


async def test_number_of_another_customer(migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc) -> None:
    await add_line(migrated_db.session_factory, secret_box, REALM, customer="C2002", mac="aabbccddeeff", auth_user="x1")
    assert await db_issues(migrated_db, secret_box, kari_doc) == [
        "customers[0].adapters[0].lines[0].number: +4722000001 belongs to customer C2002"
    ]


async def test_mac_of_another_customer(migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc) -> None:
    await add_line(
        migrated_db.session_factory, secret_box, REALM, customer="C2002", mac="000e08abcd01", number="+4722009999",
        auth_user="x1",
    )
    assert await db_issues(migrated_db, secret_box, kari_doc) == [
        "customers[0].adapters[0].mac: adapter 00:0e:08:ab:cd:01 belongs to customer C2002"
    ]


async def test_number_and_auth_user_used_by_a_line_not_in_the_file(
    migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc
) -> None:
    await run(migrated_db, secret_box, kari_doc)
    doc = copy.deepcopy(kari_doc)
    doc["customers"][0]["adapters"] = [
        {
            "mac": "00:0e:08:ab:cd:09",
            "model": "ht802",
            "lines": [
                {"port": 1, "number": "22000001", "auth_user": "fresh"},
                {"port": 2, "number": "22000008", "auth_user": "22000002"},
            ],
        }
    ]
    assert await db_issues(migrated_db, secret_box, doc) == [
        ("customers[0].adapters[0].lines[0].number: +4722000001 is already used by line 00:0e:08:ab:cd:01 port 1 "
        "of customer C1001"),
        ("customers[0].adapters[0].lines[1].auth_user: auth user '22000002' is already used by line "
        "00:0e:08:ab:cd:01 port 2 of customer C1001"),
    ]


async def test_default_auth_user_taken(migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc) -> None:
    await add_line(
        migrated_db.session_factory, secret_box, REALM, customer="C2002", mac="aabbccddeeff", number="+4722009999",
        auth_user="22000002",
    )
    assert await db_issues(migrated_db, secret_box, kari_doc) == [
        ("customers[0].adapters[0].lines[1].auth_user: auth user '22000002' (the default, from the number) is "
        "already used by line aa:bb:cc:dd:ee:ff port 1 of customer C2002")
    ]


async def test_bad_file_changes_nothing_even_with_valid_entries(
    migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc, write_file: Callable[[str, str], Path]
) -> None:
    await run(migrated_db, secret_box, kari_doc)
    await add_line(migrated_db.session_factory, secret_box, REALM, customer="C2002", mac="aabbccddeeff",
                   number="+4722000077", auth_user="x1")
    before = await snapshot(migrated_db.session_factory)
    doc = copy.deepcopy(kari_doc)
    doc["customers"][0]["name"] = "Changed"  # valid change ...
    doc["customers"].append(
        {"id": "C3003", "name": "New", "adapters": [{"mac": "001122334455", "model": "spa122",
                                                     "lines": [{"port": 1, "number": "22000077"}]}]}
    )  # ... next to a conflicting one
    with pytest.raises(ImportValidationError) as exc:
        await import_document(
            migrated_db.session_factory, load_import_file(write_file("x.json", json.dumps(doc))), secret_box, REALM
        )
    assert [str(i) for i in exc.value.issues] == [
        "customers[1].adapters[0].lines[0].number: +4722000077 belongs to customer C2002"
    ]
    assert await snapshot(migrated_db.session_factory) == before


async def test_secrets_are_encrypted_at_rest(migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc) -> None:
    await run(migrated_db, secret_box, kari_doc)
    async with migrated_db.session_factory() as s:
        rows = (await s.execute(select(m.Line.secret_enc, m.Adapter.provisioning_secret_enc).join(m.Adapter))).all()
    for line_secret, adapter_secret in rows:
        assert "secret" not in line_secret and line_secret.startswith("g1:")
        assert adapter_secret.startswith("g1:")
        assert secret_box.decrypt(line_secret, context=CTX_LINE_SECRET) in ("Tel1-secret-01", "Tel2-secret-02")


async def test_explicit_auth_user_colliding_with_a_default(
    migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc
) -> None:
    doc = copy.deepcopy(kari_doc)
    line0(doc)["auth_user"] = "22000002"  # what port 2 gets by default
    assert await db_issues(migrated_db, secret_box, doc) == [
        ("customers[0].adapters[0].lines[1].auth_user: duplicate auth user '22000002' "
        "(also at customers[0].adapters[0].lines[0].auth_user)")
    ]


ROUTING = {
    "trunks": [{"name": "carrierA", "host": "192.0.2.10", "username": "acct", "password": "trunk-pw-1"}],
    "routes": [{"prefix": "+47", "trunks": ["carrierA"]}],
}


async def test_trunks_and_routes_in_the_same_file(
    migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc
) -> None:
    sf = migrated_db.session_factory
    report = await run(migrated_db, secret_box, {**kari_doc, **ROUTING})
    assert report.created["lines"] == 2
    assert "trunks: 1 created" in report.summary() and "routes: 1 created" in report.summary()
    async with sf() as s:
        trunk = (await s.execute(select(m.Trunk))).scalar_one()
        assert (trunk.name, trunk.host, trunk.port) == ("carrierA", "192.0.2.10", 5060)
        assert (await s.execute(select(m.Route.prefix))).scalar_one() == "+47"
    await run(migrated_db, secret_box, {**kari_doc, **ROUTING})
    # Unchanged routing is not audited again (the routing module re-seals passwords).
    assert len(await list_audit_events(sf)) == 1


async def test_a_routing_error_refuses_the_whole_file(
    migrated_db: MigratedDb, secret_box: SecretBox, kari_doc: Doc
) -> None:
    before = await snapshot(migrated_db.session_factory)
    doc = {**kari_doc, "routes": [{"prefix": "+47", "trunks": ["nope"]}]}
    with pytest.raises(ImportValidationError) as exc:
        await run(migrated_db, secret_box, doc)
    assert [str(i) for i in exc.value.issues] == ["routes[1] (+47): unknown trunk 'nope'"]
    assert await snapshot(migrated_db.session_factory) == before


def test_routing_only_document_is_accepted() -> None:
    doc = parse_import_document(ROUTING)
    assert doc.customers == () and doc.routing == ROUTING


def test_problems_in_a_digit_key_and_in_customers_are_listed_not_a_crash() -> None:
    """Issue paths sort in document order even when a top-level key is all digits (fuzzed: a TypeError, a 500)."""
    with pytest.raises(ImportValidationError) as caught:
        parse_import_document({"9": {}, "customers": [{"id": "C1"}, *[{"name": "x"}] * 10], "trunks": 1})
    paths = [i.path for i in caught.value.issues]
    assert "9" in paths and "customers[10].id" in paths
    assert paths.index("customers[2].id") < paths.index("customers[10].id")
