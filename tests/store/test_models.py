"""Every model round-trips through both databases; constraints and UTC handling hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from switch.store import models as m
from switch.store.engine import write_session
from tests.conftest_db import MigratedDb

from .conftest import T0


async def _seed(db: MigratedDb) -> dict[str, int]:
    """One of everything, linked the way the service links them."""
    async with write_session(db.session_factory) as s:
        customer = m.Customer(
            external_id="C1001",
            name="Kari Nordmann",
            kind=m.CustomerKind.BUSINESS,
            language=m.Language.EN,
            credit_limit_ore=50_000,
        )
        customer.contacts = [m.CustomerContact(name="Kari", email="kari@example.no", phone="+4791234567", is_primary=True)]
        s.add(customer)
        await s.flush()
        number = m.Number(e164="+4722000001", customer_id=customer.id, unlisted=True)
        adapter = m.Adapter(
            mac="000e08abcd01", customer_id=customer.id, vendor="Cisco", model="spa112", provisioning_secret_enc="x"
        )
        s.add_all([number, adapter])
        await s.flush()
        line = m.Line(
            customer_id=customer.id,
            adapter_id=adapter.id,
            port=1,
            number_id=number.id,
            auth_user="22000001",
            secret_enc="enc",
            ha1_md5="0" * 32,
            ha1_sha256="1" * 64,
            ha1_realm="r",
            alarm=True,
        )
        s.add(line)
        await s.flush()
        binding = m.Binding(
            line_id=line.id,
            contact_uri="sip:22000001@192.0.2.10:5060",
            received_host="198.51.100.7",
            received_port=40123,
            transport=m.Transport.UDP,
            expires_at=T0 + timedelta(seconds=3600),
            call_id="abc@192.0.2.10",
            cseq=7,
            instance="<urn:uuid:00000000-0000-1000-8000-000e08abcd01>",
            reg_id=1,
            q=0.5,
            path=["<sip:edge.example.no;lr>"],
        )
        trunk = m.Trunk(
            name="carrier-a",
            host="sip.carrier.example",
            transport=m.Transport.TLS,
            port=5061,
            username="u",
            password_enc="p",
            allowed_sources=["203.0.113.0/24"],
            emergency=True,
        )
        route = m.Route(prefix="+47", description="Norway")
        s.add_all([binding, trunk, route])
        await s.flush()
        s.add(m.RouteTrunk(route_id=route.id, position=0, trunk_id=trunk.id))
        s.add_all(
            [
                m.QualifyStats(binding_id=binding.id, sent=3, lost=1, history=[12.5, None, 10.0]),
                m.AdapterLamp(adapter_id=adapter.id, lamp=m.LampName.TEL1, state=m.LampState.OK, reason="registered", since=T0),
                m.LampEvent(
                    adapter_id=adapter.id,
                    lamp=m.LampName.TEL1,
                    old_state=None,
                    new_state=m.LampState.OK,
                    reason="registered",
                    at=T0,
                ),
                m.ConfigFetch(adapter_id=adapter.id, fetched_at=T0, remote_addr="198.51.100.7", config_hash="f" * 64),
                m.UnclaimedAdapter(mac="aabbccddeeff", first_seen_at=T0, last_seen_at=T0, last_addr="198.51.100.8"),
                m.ForwardingRule(line_id=line.id, kind=m.ForwardKind.NO_ANSWER, target="+4791234567", timeout_s=20),
                m.LineBarring(line_id=line.id, category=m.BarringCategory.PREMIUM),
                m.Suspension(customer_id=customer.id, reason=m.SuspensionReason.UNPAID, created_by="operator:ola"),
                m.FeatureCodePolicy(code="*21*", action=m.FeatureCodeAction.REFUSE, announcement="cf_via_web"),
                m.CallRecord(
                    call_id="c1",
                    direction=m.CallDirection.OUTGOING,
                    calling_line_id=line.id,
                    calling_number="+4722000001",
                    dialled="004687654321",
                    normalised="+4687654321",
                    number_class="international",
                    route_id=route.id,
                    route_prefix="+",
                    trunk_id=trunk.id,
                    trunk_name="carrier-a",
                    setup_at=T0,
                    answer_at=T0 + timedelta(seconds=5),
                    end_at=T0 + timedelta(seconds=65),
                    duration_s=60,
                    final_code=200,
                    cause="normal",
                    charge_ore=238,
                    quality={"mos": 4.2},
                ),
                m.OperatorUser(username="ola", password_hash="h", role=m.OperatorRole.ADMIN),
                m.ApiToken(token_hash="a" * 64, role=m.TokenRole.CUSTOMER, customer_id=customer.id),
                m.AuditEvent(
                    actor="operator:ola",
                    action="suspend",
                    subject_type="customer",
                    subject_id="C1001",
                    customer_id=customer.id,
                    details={"reason": "unpaid"},
                ),
            ]
        )
        return {"customer": customer.id, "line": line.id, "adapter": adapter.id, "binding": binding.id}


async def test_everything_round_trips(migrated_db: MigratedDb) -> None:
    ids = await _seed(migrated_db)
    async with migrated_db.session_factory() as s:
        customer = (await s.execute(select(m.Customer))).scalar_one()
        assert (customer.external_id, customer.kind, customer.language, customer.state, customer.credit_limit_ore) == (
            "C1001",
            m.CustomerKind.BUSINESS,
            m.Language.EN,
            m.CustomerState.ACTIVE,
            50_000,
        )
        contact = (await s.execute(select(m.CustomerContact))).scalar_one()
        assert (contact.email, contact.phone, contact.is_primary) == ("kari@example.no", "+4791234567", True)
        line = await s.get(m.Line, ids["line"])
        assert line is not None
        assert (line.port, line.auth_user, line.alarm, line.enabled, line.language) == (
            1,
            "22000001",
            True,
            True,
            m.Language.NB,
        )
        b = (await s.execute(select(m.Binding))).scalar_one()
        assert b.expires_at == T0 + timedelta(seconds=3600)
        assert b.expires_at.tzinfo is UTC
        assert (b.transport, b.q, b.reg_id, b.path) == (m.Transport.UDP, 0.5, 1, ["<sip:edge.example.no;lr>"])
        q = (await s.execute(select(m.QualifyStats))).scalar_one()
        assert q.history == [12.5, None, 10.0]
        trunk = (await s.execute(select(m.Trunk))).scalar_one()
        assert (trunk.allowed_sources, trunk.emergency, trunk.enabled, trunk.port) == (["203.0.113.0/24"], True, True, 5061)
        rt = (await s.execute(select(m.RouteTrunk))).scalar_one()
        assert (rt.position, rt.trunk_id) == (0, trunk.id)
        cdr = (await s.execute(select(m.CallRecord))).scalar_one()
        assert (cdr.duration_s, cdr.final_code, cdr.charge_ore, cdr.quality, cdr.answer_at) == (
            60,
            200,
            238,
            {"mos": 4.2},
            T0 + timedelta(seconds=5),
        )
        susp = (await s.execute(select(m.Suspension))).scalar_one()
        assert (susp.reason, susp.lifted_at, susp.note) == (m.SuspensionReason.UNPAID, None, "")
        rule = (await s.execute(select(m.ForwardingRule))).scalar_one()
        assert (rule.kind, rule.timeout_s, rule.enabled) == (m.ForwardKind.NO_ANSWER, 20, True)
        audit = (await s.execute(select(m.AuditEvent))).scalar_one()
        assert audit.details == {"reason": "unpaid"} and audit.at.tzinfo is UTC
        assert (await s.execute(select(m.LineBarring.category))).scalar_one() == m.BarringCategory.PREMIUM


async def test_non_utc_input_is_stored_as_the_same_instant(migrated_db: MigratedDb) -> None:
    ids = await _seed(migrated_db)
    oslo = timezone(timedelta(hours=1))
    async with write_session(migrated_db.session_factory) as s:
        b = await s.get(m.Binding, ids["binding"])
        assert b is not None
        b.expires_at = datetime(2026, 1, 5, 12, 0, tzinfo=oslo)
    async with migrated_db.session_factory() as s:
        stored = (await s.execute(select(m.Binding.expires_at))).scalar_one()
        assert stored == datetime(2026, 1, 5, 11, 0, tzinfo=UTC) and stored.tzinfo is UTC
        # SQL comparison uses the same instant on both databases.
        n = (
            await s.execute(
                select(m.Binding.id).where(m.Binding.expires_at < datetime(2026, 1, 5, 11, 0, 1, tzinfo=UTC))
            )
        ).all()
        assert len(n) == 1


async def test_naive_datetime_is_refused(migrated_db: MigratedDb) -> None:
    await _seed(migrated_db)
    with pytest.raises(StatementError, match="naive datetime"):
        async with write_session(migrated_db.session_factory) as s:
            await s.execute(select(m.Binding).where(m.Binding.expires_at < datetime(2026, 1, 1)))


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("lines", "port", 3),
        ("customers", "kind", "'household'"),
        ("customers", "language", "'sv'"),
        ("customers", "credit_limit_ore", -1),
        ("numbers", "e164", "'22000001'"),
        ("bindings", "transport", "'sctp'"),
    ],
)
async def test_check_constraints(migrated_db: MigratedDb, table: str, column: str, value: object) -> None:
    await _seed(migrated_db)
    with pytest.raises(IntegrityError):
        async with write_session(migrated_db.session_factory) as s:
            await s.execute(text(f"UPDATE {table} SET {column} = {value}"))


async def test_foreign_keys_are_enforced(migrated_db: MigratedDb) -> None:
    ids = await _seed(migrated_db)
    with pytest.raises(IntegrityError):
        async with write_session(migrated_db.session_factory) as s:
            await s.execute(text("UPDATE lines SET adapter_id = 999999"))
    # RESTRICT: an adapter with lines cannot be deleted.
    with pytest.raises(IntegrityError):
        async with write_session(migrated_db.session_factory) as s:
            await s.execute(text("DELETE FROM adapters WHERE id = :id"), {"id": ids["adapter"]})


async def test_deleting_a_customer_cascades_to_lines_and_bindings_keeps_cdrs(migrated_db: MigratedDb) -> None:
    ids = await _seed(migrated_db)
    async with write_session(migrated_db.session_factory) as s:
        await s.execute(text("DELETE FROM api_tokens"))
        await s.execute(text("DELETE FROM customers WHERE id = :id"), {"id": ids["customer"]})
    async with migrated_db.session_factory() as s:
        assert (await s.execute(text("SELECT count(*) FROM lines"))).scalar() == 0
        assert (await s.execute(text("SELECT count(*) FROM bindings"))).scalar() == 0
        assert (await s.execute(text("SELECT count(*) FROM qualify_stats"))).scalar() == 0
        assert (await s.execute(text("SELECT customer_id FROM adapters"))).scalar() is None
        assert (await s.execute(text("SELECT customer_id FROM numbers"))).scalar() is None
        cdr = (await s.execute(select(m.CallRecord))).scalar_one()
        assert (cdr.calling_line_id, cdr.calling_number) == (None, "+4722000001")


async def test_unique_keys(migrated_db: MigratedDb) -> None:
    ids = await _seed(migrated_db)
    with pytest.raises(IntegrityError):  # a second line on the same port
        async with write_session(migrated_db.session_factory) as s:
            s.add(
                m.Line(
                    customer_id=ids["customer"],
                    adapter_id=ids["adapter"],
                    port=1,
                    auth_user="other",
                    secret_enc="e",
                    ha1_md5="",
                    ha1_sha256="",
                    ha1_realm="r",
                )
            )
    with pytest.raises(IntegrityError):  # same contact twice for a line
        async with write_session(migrated_db.session_factory) as s:
            await s.execute(
                text(
                    "INSERT INTO bindings (line_id, contact_uri, received_host, received_port, transport, expires_at,"
                    " call_id, cseq, registered_at) SELECT line_id, contact_uri, received_host, received_port,"
                    " transport, expires_at, call_id, cseq, registered_at FROM bindings"
                )
            )
