"""Line credentials (HA1), lookups by number, provisioning data."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from switch.store import models as m
from switch.store.crypto import SecretBox
from switch.store.engine import write_session
from switch.store.repo_lines import (
    compute_ha1,
    default_auth_user,
    get_line_by_auth_user,
    get_line_by_number,
    load_adapter_lines,
    load_credentials,
    normalise_number,
    rehash_lines,
    set_line_secret,
)
from tests.conftest_db import MigratedDb

from .conftest import REALM
from .helpers import add_line


def test_ha1_rfc2617_example() -> None:
    # RFC 2617 §3.5: Mufasa / testrealm@host.com / "Circle Of Life".
    assert compute_ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life") == "939e7578ed9e3c518a452acee763bce9"
    assert compute_ha1("SHA-256", "Mufasa", "http-auth@example.org", "Circle of Life") == hashlib.sha256(
        b"Mufasa:http-auth@example.org:Circle of Life"
    ).hexdigest()
    with pytest.raises(ValueError):
        compute_ha1("SHA-512-256", "u", "r", "p")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("22000001", "+4722000001"),
        ("22 00 00 01", "+4722000001"),
        ("+4722000001", "+4722000001"),
        ("004722000001", "+4722000001"),
        ("+46 8 123 456 78", "+46812345678"),
        ("0046812345678", "+46812345678"),
        ("91234567", "+4791234567"),
    ],
)
def test_normalise_number(given: str, expected: str) -> None:
    assert normalise_number(given) == expected


@pytest.mark.parametrize("bad", ["4722000001", "1234567", "02000001", "123456789", "+47123", "+4702000001", "abc", ""])
def test_normalise_number_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_number(bad)


def test_default_auth_user() -> None:
    assert default_auth_user("+4722000001") == "22000001"
    assert default_auth_user("+46812345678") == "+46812345678"


async def test_load_credentials(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    sf = migrated_db.session_factory
    l1 = await add_line(sf, secret_box, REALM)
    l2 = await add_line(sf, secret_box, REALM, port=2, number="+4722000002", auth_user="kari2", language=m.Language.EN)
    await add_line(sf, secret_box, REALM, mac="000e08abcd02", number=None, auth_user="nonumber")
    creds = await load_credentials(sf, REALM)
    assert sorted(creds) == ["22000001", "kari2"]  # the line without a number gets no credentials
    c1 = creds["22000001"]
    assert (c1.line_id, c1.number, c1.port, c1.language, c1.enabled, c1.alarm) == (
        l1,
        "+4722000001",
        1,
        m.Language.NB,
        True,
        False,
    )
    assert c1.ha1_md5 == hashlib.md5(f"22000001:{REALM}:Tel1-secret-01".encode()).hexdigest()
    assert c1.ha1_sha256 == hashlib.sha256(f"22000001:{REALM}:Tel1-secret-01".encode()).hexdigest()
    assert creds["kari2"].line_id == l2 and creds["kari2"].language == m.Language.EN
    assert creds["kari2"].ha1_md5 == hashlib.md5(f"kari2:{REALM}:Tel1-secret-01".encode()).hexdigest()


async def test_realm_change(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    sf = migrated_db.session_factory
    await add_line(sf, secret_box, "old.realm")
    assert await load_credentials(sf, REALM) == {}  # stale HA1 is never offered
    fresh = await load_credentials(sf, REALM, secret_box=secret_box)
    assert fresh["22000001"].ha1_md5 == hashlib.md5(f"22000001:{REALM}:Tel1-secret-01".encode()).hexdigest()
    assert await rehash_lines(sf, secret_box, REALM) == 1
    assert await rehash_lines(sf, secret_box, REALM) == 0
    assert (await load_credentials(sf, REALM))["22000001"].ha1_md5 == fresh["22000001"].ha1_md5


async def test_get_line_by_number_and_auth_user(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    sf = migrated_db.session_factory
    lid = await add_line(sf, secret_box, REALM)
    for form in ("22000001", "+4722000001", "0047 22 00 00 01"):
        info = await get_line_by_number(sf, form)
        assert info is not None and info.line_id == lid and info.number == "+4722000001"
    assert await get_line_by_number(sf, "22000009") is None
    assert await get_line_by_number(sf, "garbage") is None
    info = await get_line_by_auth_user(sf, "22000001")
    assert info is not None and (info.line_id, info.port, info.unlisted) == (lid, 1, False)
    assert await get_line_by_auth_user(sf, "nobody") is None


async def test_adapter_lines_and_secret_reset(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    sf = migrated_db.session_factory
    l1 = await add_line(sf, secret_box, REALM)
    await add_line(sf, secret_box, REALM, port=2, number="+4722000002", auth_user="22000002", password="Tel2-secret-02")
    async with sf() as s:
        adapter_id = (await s.execute(select(m.Adapter.id))).scalar_one()
        stored = (await s.execute(select(m.Line.secret_enc).where(m.Line.id == l1))).scalar_one()
    assert "Tel1-secret-01" not in stored  # encrypted at rest
    lines = await load_adapter_lines(sf, adapter_id, secret_box)
    assert [(x.port, x.number, x.auth_user, x.secret) for x in lines] == [
        (1, "+4722000001", "22000001", "Tel1-secret-01"),
        (2, "+4722000002", "22000002", "Tel2-secret-02"),
    ]
    await set_line_secret(sf, l1, "New-secret-99", secret_box, REALM)
    lines = await load_adapter_lines(sf, adapter_id, secret_box)
    assert lines[0].secret == "New-secret-99"
    creds = await load_credentials(sf, REALM)
    assert creds["22000001"].ha1_md5 == hashlib.md5(f"22000001:{REALM}:New-secret-99".encode()).hexdigest()
    with pytest.raises(LookupError):
        await set_line_secret(sf, 999_999, "x" * 10, secret_box, REALM)


async def test_disabled_line_is_reported_disabled(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    sf = migrated_db.session_factory
    lid = await add_line(sf, secret_box, REALM)
    async with write_session(sf) as s:
        line = await s.get(m.Line, lid)
        assert line is not None
        line.enabled = False
    assert (await load_credentials(sf, REALM))["22000001"].enabled is False
