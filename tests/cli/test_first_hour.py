"""A new operator's first hour with the ``softswitch`` command, run as a real process.

Each test is one thing that went wrong for an outsider: a global flag after the
subcommand, a bogus log level, a traceback instead of one line (port in use,
missing import file, the wrong key file, after which the switch even said
"ready"), the database and key file landing in whatever directory one stood in,
no way to list or revoke tokens, no JSON logs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from harness.ports import free_port
from harness.softswitch import SwitchProcess, softswitch_cmd

pytestmark = pytest.mark.e2e

DOC = {"customers": [{"id": "C1", "name": "Kari", "adapters": [{"mac": "00:0E:08:00:00:01", "model": "spa112",
        "lines": [{"port": 1, "number": "22000001", "password": "Tel1-secret-01"}]}]}]}


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    for k in ("SOFTSWITCH_DATABASE_URL", "SOFTSWITCH_KEY_FILE", "SOFTSWITCH_STATE_DIR", "SOFTSWITCH_LOG_FORMAT"):
        full.pop(k, None)
    full.update(env or {})
    return subprocess.run([*softswitch_cmd(), *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)


def test_global_flags_work_after_the_subcommand(tmp_path: Path) -> None:
    db = tmp_path / "after.db"
    doc = tmp_path / "c.json"
    doc.write_text(json.dumps(DOC))
    r = cli("import", str(doc), "--database", f"sqlite+aiosqlite:///{db}", "--key-file", str(tmp_path / "k"),
            "--log-level", "warning", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert db.exists() and (tmp_path / "k").exists()
    r = cli("token", "create", "--database", f"sqlite+aiosqlite:///{db}", "--key-file", str(tmp_path / "k"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_a_bogus_log_level_is_refused(tmp_path: Path) -> None:
    r = cli("migrate", "--log-level", "bogus", "--state-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "--log-level" in r.stderr and "bogus" in r.stderr


def test_one_state_directory_for_database_and_key(tmp_path: Path) -> None:
    state = tmp_path / "state"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = cli("migrate", cwd=elsewhere, env={"SOFTSWITCH_STATE_DIR": str(state)})
    assert r.returncode == 0, r.stderr
    assert (state / "softswitch.db").exists() and (state / "softswitch.key").exists()
    assert list(elsewhere.iterdir()) == []  # nothing dropped where one happened to stand
    assert (state / "softswitch.key").stat().st_mode & 0o077 == 0
    # the option says the same as the variable
    r = cli("migrate", "--state-dir", str(tmp_path / "other"), cwd=elsewhere)
    assert r.returncode == 0 and (tmp_path / "other" / "softswitch.db").exists()


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port("both")
    udp, tcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket()
    udp.bind(("127.0.0.1", port))
    tcp.bind(("127.0.0.1", port))
    tcp.listen()
    try:
        r = cli("run", "--state-dir", str(tmp_path), "--sip", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{free_port('tcp')}",
                cwd=tmp_path)
    finally:
        udp.close()
        tcp.close()
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "cannot listen" in r.stderr and str(port) in r.stderr
    assert "ready" not in r.stdout


def test_a_missing_import_file_is_one_clear_line(tmp_path: Path) -> None:
    r = cli("import", str(tmp_path / "nope.yaml"), "--state-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"softswitch: import: no such file: {tmp_path / 'nope.yaml'}"


def test_a_key_file_that_does_not_open_the_stored_secrets_refuses_the_start(tmp_path: Path) -> None:
    doc = tmp_path / "c.json"
    doc.write_text(json.dumps(DOC))
    assert cli("import", str(doc), "--state-dir", str(tmp_path), cwd=tmp_path).returncode == 0
    r = cli("run", "--state-dir", str(tmp_path), "--key-file", str(tmp_path / "another.key"),
            "--sip", f"127.0.0.1:{free_port('both')}", "--http", f"127.0.0.1:{free_port('tcp')}", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "refusing to start" in r.stderr and "key file" in r.stderr
    assert "ready" not in r.stdout


def test_tokens_can_be_listed_and_revoked(tmp_path: Path) -> None:
    base = ("--state-dir", str(tmp_path))
    first = cli("token", "create", "--name", "support desk", *base, cwd=tmp_path)
    second = cli("token", "create", "--name", "billing", *base, cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    listed = cli("token", "list", *base, cwd=tmp_path)
    assert listed.returncode == 0
    rows = [ln for ln in listed.stdout.splitlines()[1:] if ln.strip()]
    assert len(rows) == 2 and "support desk" in listed.stdout and "billing" in listed.stdout
    assert first.stdout.strip().splitlines()[-1] not in listed.stdout  # never the secret
    token_id = rows[0].split()[0]
    assert cli("token", "revoke", token_id, *base, cwd=tmp_path).returncode == 0
    after = cli("token", "list", *base, cwd=tmp_path).stdout
    assert "support desk" not in after and "billing" in after
    assert "revoked" in cli("token", "list", "--all", *base, cwd=tmp_path).stdout
    again = cli("token", "revoke", token_id, *base, cwd=tmp_path)
    assert again.returncode == 1 and "no active token" in again.stderr


def test_json_lines_logging(tmp_path: Path) -> None:
    sw = SwitchProcess(db_url=f"sqlite+aiosqlite:///{tmp_path / 'j.db'}", workdir=tmp_path,
                       extra_args=["--log-format", "json", "--qualify-interval", "0"])
    with sw:
        pass
    records = []
    for line in sw.log_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    assert records and {"ts", "level", "logger", "message"} <= set(records[0])
    assert any("SIP listening" in r["message"] for r in records)
