"""`softswitch user create|list` and `softswitch customer-password`, run as the real command on both databases.

The first admin of a fresh install exists only through these; the printed (or
file-given) password must be the one the web UI's login then accepts.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from harness.softswitch import _cli, import_file, softswitch_cmd
from switch.store import repo_users
from switch.store.engine import make_engine, make_session_factory
from tests.conftest import ADAPTER


def _fails(db_url: str, key: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*softswitch_cmd(), "--database", db_url, "--key-file", str(key), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0, proc.stdout
    return proc


async def _user_login(db_url: str, username: str, password: str) -> str | None:
    engine = make_engine(db_url)
    try:
        user = await repo_users.authenticate_user(make_session_factory(engine), username, password)
        return None if user is None else user.role.value
    finally:
        await engine.dispose()


async def _customer_login(db_url: str, customer: str, password: str) -> bool:
    engine = make_engine(db_url)
    try:
        return await repo_users.authenticate_customer(make_session_factory(engine), customer, password) is not None
    finally:
        await engine.dispose()


@pytest.mark.e2e
def test_first_admin_user_list_and_customer_password(db_url: str, tmp_path: Path) -> None:
    key = tmp_path / "softswitch.key"
    import_file(db_url, ADAPTER.document(), key_file=key, cwd=tmp_path)

    out = _cli(db_url, key, "user", "create", "--username", "ola", "--role", "admin", cwd=tmp_path).stdout
    password = out.strip().splitlines()[-1]
    assert "admin user ola" in out and len(password) >= 12
    assert asyncio.run(_user_login(db_url, "ola", password)) == "admin"
    assert asyncio.run(_user_login(db_url, "ola", password + "x")) is None

    pw = tmp_path / "pw.txt"
    pw.write_text("support-desk-password\n")
    out = _cli(db_url, key, "user", "create", "--username", "kari", "--role", "support", "--password-file", str(pw),
               cwd=tmp_path).stdout
    assert "support-desk-password" not in out
    assert asyncio.run(_user_login(db_url, "kari", "support-desk-password")) == "support"
    # Refusals: a taken name, a short password; nothing changes.
    assert "exists" in _fails(db_url, key, "user", "create", "--username", "kari", "--role", "admin",
                              cwd=tmp_path).stderr
    pw.write_text("short\n")
    assert "too short" in _fails(db_url, key, "user", "create", "--username", "per", "--role", "admin",
                                 "--password-file", str(pw), cwd=tmp_path).stderr
    listing = _cli(db_url, key, "user", "list", cwd=tmp_path).stdout.splitlines()
    assert [ln.split()[:3] for ln in listing[1:]] == [["kari", "support", "enabled"], ["ola", "admin", "enabled"]]

    out = _cli(db_url, key, "customer-password", "C1001", cwd=tmp_path).stdout
    secret = out.strip().splitlines()[-1]
    assert asyncio.run(_customer_login(db_url, "C1001", secret))
    pw.write_text("min-side-password-1\n")
    _cli(db_url, key, "customer-password", "C1001", "--password-file", str(pw), cwd=tmp_path)
    assert asyncio.run(_customer_login(db_url, "C1001", "min-side-password-1"))
    assert not asyncio.run(_customer_login(db_url, "C1001", secret)), "the old password stopped working"
    assert "no customer" in _fails(db_url, key, "customer-password", "C404", cwd=tmp_path).stderr
