"""Adapters (MAC, config fetches, unclaimed) and API tokens. (Lamps: test_hot_store.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from switch.store import models as m
from switch.store.crypto import SecretBox
from switch.store.engine import write_session
from switch.store.models import TokenRole
from switch.store.repo_adapters import (
    assign_unclaimed,
    create_adapter,
    format_mac,
    get_adapter,
    get_adapter_by_mac,
    get_provisioning_secret,
    list_config_fetches,
    list_unclaimed,
    normalise_mac,
    record_config_fetch,
    record_unclaimed,
)
from switch.store.repo_tokens import TOKEN_PREFIX, create_token, hash_token, revoke_token, verify_token
from tests.conftest_db import MigratedDb

from .conftest import T0
from .helpers import snapshot

# ------------------------------------------------------------------------------- MAC


@pytest.mark.parametrize(
    "text", ["00:0E:08:AB:CD:01", "00-0e-08-ab-cd-01", "000e.08ab.cd01", "000E08ABCD01", " 00:0e:08:ab:cd:01\n"]
)
def test_normalise_mac_accepts(text: str) -> None:
    assert normalise_mac(text) == "000e08abcd01"


@pytest.mark.parametrize(
    "text",
    [
        "00:0E:08:AB:CD",
        "00:0E:08:AB:CD:01:02",
        "00:0E-08:AB:CD:01",  # mixed separators
        "000e08abcd0g",
        "0:e:8:ab:cd:1",
        "000e08abcd011",
        "00.0e.08.ab.cd.01",
        "",
    ],
)
def test_normalise_mac_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        normalise_mac(text)


def test_format_mac() -> None:
    assert format_mac("000E08ABCD01") == "00:0e:08:ab:cd:01"


# --------------------------------------------------------------------------- adapters


async def test_create_and_get_by_mac(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    sf = migrated_db.session_factory
    info = await create_adapter(sf, "00-0E-08-AB-CD-01", "SPA112", secret_box, description="hall")
    assert (info.mac, info.model, info.vendor, info.customer_id, info.description) == (
        "000e08abcd01",
        "spa112",
        "Cisco",
        None,
        "hall",
    )
    assert await get_adapter_by_mac(sf, "000e.08ab.cd01") == info
    assert await get_adapter(sf, info.adapter_id) == info
    assert await get_adapter_by_mac(sf, "00:0e:08:ab:cd:02") is None
    assert await get_adapter_by_mac(sf, "../../etc/passwd") is None
    secret = await get_provisioning_secret(sf, info.adapter_id, secret_box)
    assert secret is not None and len(secret) >= 20
    assert await get_provisioning_secret(sf, 424242, secret_box) is None
    with pytest.raises(ValueError, match="already exists"):
        await create_adapter(sf, "000e08abcd01", "spa112", secret_box)
    with pytest.raises(ValueError, match="unknown adapter model"):
        await create_adapter(sf, "000e08abcd09", "spa999", secret_box)


async def test_config_fetches_are_recorded_and_pruned(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    sf = migrated_db.session_factory
    info = await create_adapter(sf, "000e08abcd01", "ht812", secret_box)
    for i in range(5):
        await record_config_fetch(
            sf,
            info.adapter_id,
            at=T0 + timedelta(minutes=i),
            remote_addr=f"198.51.100.{i}",
            user_agent="Grandstream Model HW HT812 SW 1.0.41.2",
            config_hash=f"{i:064x}",
            firmware="1.0.41.2" if i == 4 else None,
            keep=3,
        )
    fetches = await list_config_fetches(sf, info.adapter_id)
    assert [f.remote_addr for f in fetches] == ["198.51.100.4", "198.51.100.3", "198.51.100.2"]
    assert fetches[0].config_hash == f"{4:064x}" and fetches[0].fetched_at == T0 + timedelta(minutes=4)
    after = await get_adapter(sf, info.adapter_id)
    assert after is not None
    assert (after.firmware_seen, after.last_config_fetch_at) == ("1.0.41.2", T0 + timedelta(minutes=4))
    with pytest.raises(LookupError):
        await record_config_fetch(sf, 999_999, at=T0, remote_addr="x", user_agent=None, config_hash="0")


async def test_unclaimed_adapters(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    sf = migrated_db.session_factory
    await record_unclaimed(sf, "AA:BB:CC:00:00:01", at=T0, remote_addr="198.51.100.1", user_agent="Cisco/SPA112-1.4.1")
    await record_unclaimed(sf, "aabbcc000001", at=T0 + timedelta(minutes=5), remote_addr="198.51.100.2", model_hint="spa112")
    await record_unclaimed(sf, "aabbcc000002", at=T0 + timedelta(minutes=1), remote_addr="198.51.100.3")
    listed = await list_unclaimed(sf)
    assert [(u.mac, u.fetch_count) for u in listed] == [("aabbcc000001", 2), ("aabbcc000002", 1)]
    first = listed[0]
    assert (first.first_seen_at, first.last_seen_at, first.last_addr, first.user_agent, first.model_hint) == (
        T0,
        T0 + timedelta(minutes=5),
        "198.51.100.2",
        "Cisco/SPA112-1.4.1",  # kept: the second request had no User-Agent
        "spa112",
    )
    async with write_session(sf) as s:
        customer = m.Customer(external_id="C7", name="Ola")
        s.add(customer)
        await s.flush()
        cid = customer.id
    info = await assign_unclaimed(sf, "aa:bb:cc:00:00:01", customer_id=cid, secret_box=secret_box)
    assert (info.mac, info.model, info.customer_id) == ("aabbcc000001", "spa112", cid)
    assert [u.mac for u in await list_unclaimed(sf)] == ["aabbcc000002"]
    with pytest.raises(ValueError, match="model"):
        await assign_unclaimed(sf, "aabbcc000002", customer_id=cid, secret_box=secret_box)
    with pytest.raises(LookupError):
        await assign_unclaimed(sf, "aabbcc000001", customer_id=cid, secret_box=secret_box, model="spa112")


# ----------------------------------------------------------------------------- tokens


async def test_tokens(migrated_db: MigratedDb) -> None:
    sf = migrated_db.session_factory
    async with write_session(sf) as s:
        customer = m.Customer(external_id="C1001", name="Kari")
        s.add(customer)
        await s.flush()
        cid = customer.id
    op_secret, op_info = await create_token(sf, TokenRole.OPERATOR, label="ci")
    cu_secret, cu_info = await create_token(sf, "customer", customer_ref="C1001")  # type: ignore[arg-type]
    assert op_secret.startswith(TOKEN_PREFIX) and len(op_secret) > 40 and op_secret != cu_secret
    async with sf() as s:
        stored = (await s.execute(select(m.ApiToken.token_hash).order_by(m.ApiToken.id))).scalars().all()
    assert stored == [hash_token(op_secret), hash_token(cu_secret)]  # only hashes at rest

    got = await verify_token(sf, op_secret)
    assert got == op_info and (got.role, got.customer_id, got.label) == (TokenRole.OPERATOR, None, "ci")
    got = await verify_token(sf, cu_secret)
    assert got is not None and (got.role, got.customer_id, got.customer_ref) == (TokenRole.CUSTOMER, cid, "C1001")
    assert got == cu_info
    assert await verify_token(sf, op_secret + "x") is None
    assert await verify_token(sf, "Bearer " + op_secret) is None
    assert await verify_token(sf, "") is None

    assert await revoke_token(sf, op_info.token_id) is True
    assert await revoke_token(sf, op_info.token_id) is False
    assert await verify_token(sf, op_secret) is None


async def test_token_expiry_and_scope_rules(migrated_db: MigratedDb) -> None:
    sf = migrated_db.session_factory
    secret, _ = await create_token(sf, TokenRole.OPERATOR, expires_at=T0 + timedelta(hours=1))
    assert await verify_token(sf, secret, now=T0) is not None
    assert await verify_token(sf, secret, now=T0 + timedelta(hours=1)) is None
    before = await snapshot(sf)
    with pytest.raises(ValueError, match="needs a customer"):
        await create_token(sf, TokenRole.CUSTOMER)
    with pytest.raises(ValueError, match="no customer"):
        await create_token(sf, TokenRole.CUSTOMER, customer_ref="C404")
    assert await snapshot(sf) == before
