"""PostgreSQL stopped and restarted under load: no binding and no CDR is lost (and SQLite locked).

A private PostgreSQL server (initdb into a temporary directory, its own port and
socket directory, stopped by PID) so the shared one on 127.0.0.1:5432 is never
touched. Bindings go through the registrar's path (``LocationService`` →
``HotStore.replace_bindings``, the group committer), call records through
``CdrWriter`` → ``HotStore.insert_call_records``, both at a steady rate, while the
server is stopped (fast shutdown: open transactions aborted, connections cut) and
started again. The same load runs on SQLite while another connection holds the
file in an exclusive transaction.

The promises checked: every binding change reported stored (the registrar's 200)
is in the database afterwards (or a later one of the same line is); changes made
while the server was down were reported failed, not stored in memory only; every
call record submitted is in the database exactly once, none spilled.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from harness.ports import free_port
from switch.services.cdr import CdrDraft, CdrWriter
from switch.services.location import LocationService
from switch.store.crypto import SecretBox, generate_key
from switch.store.engine import make_engine, make_session_factory
from switch.store.hot_store import make_hot_store
from switch.store.migrate import upgrade
from switch.store.models import CallDirection
from switch.store.repo_bindings import load_bindings
from switch.store.rows import Binding

from .helpers import add_line
from .outage import SQLITE_BUSY_TIMEOUT

LINES = 40


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: [int(x) for x in p.parent.parent.name.split(".") if x.isdigit()])
    if found:
        return found[-1].parent
    which = shutil.which("postgres")
    assert which, "no PostgreSQL server binaries (scripts/bootstrap.sh --test installs the postgresql package)"
    return Path(which).parent


class PrivatePostgres:
    """One throw-away cluster; ``start``/``stop`` may be called repeatedly (same data, same port)."""

    def __init__(self, root: Path) -> None:
        self.bindir = _bindir()
        self.root, self.data, self.sock = root, root / "data", root / "sock"
        self.sock.mkdir()
        self.port = free_port("tcp")
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
            shutil.chown(self.sock, "postgres")
        subprocess.run([*self.as_owner, str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                        "-U", "postgres", "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/switch"

    def start(self) -> None:
        log = (self.root / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [*self.as_owner, str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-k", str(self.sock), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                ready = subprocess.run([str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                                       timeout=5).returncode == 0
            except (OSError, ValueError, IndexError):
                pid, ready = 0, False
            if ready:
                self.pid = pid
                return
            assert self.proc.poll() is None, (self.root / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "private PostgreSQL did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown of the postmaster by its PID: transactions aborted, clients cut off."""
        os.kill(self.pid, signal.SIGINT)
        assert self.proc is not None
        self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    root = Path(tempfile.mkdtemp(prefix="softswitch-pg-restart-"))
    server = PrivatePostgres(root)
    try:
        server.start()
        yield server
    finally:
        if server.proc is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _draft(n: int) -> CdrDraft:
    now = time.time()
    d = CdrDraft(call_id=f"restart-{n}@test", direction=CallDirection.OUTGOING, calling_number="+4722000001",
                 dialled="91234567", setup_at=now - 30)
    d.answer_at, d.answer_mono, d.end_at, d.end_mono = now - 25, 0.0, now, 25.0
    d.final_code, d.cause = 200, "normal"
    return d


async def test_no_binding_or_call_record_lost_across_a_server_restart(private_pg: PrivatePostgres, tmp_path: Path) -> None:
    admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{private_pg.port}/postgres")
    await admin.execute('CREATE DATABASE "switch"')
    await admin.close()
    await _under_load(private_pg.url, tmp_path, lambda: asyncio.to_thread(private_pg.stop),
                      lambda: asyncio.to_thread(private_pg.start))


async def test_no_binding_or_call_record_lost_while_sqlite_is_locked(tmp_path: Path) -> None:
    """SQLite's outage: another process holds the file in an exclusive transaction for a second."""
    path = tmp_path / "switch.db"
    locker: list[sqlite3.Connection] = []

    async def lock() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=10)
        conn.execute("BEGIN EXCLUSIVE")
        locker.append(conn)

    async def unlock() -> None:
        conn = locker.pop()
        conn.execute("ROLLBACK")
        conn.close()

    await _under_load(f"sqlite+aiosqlite:///{path}", tmp_path, lock, unlock, busy_timeout=SQLITE_BUSY_TIMEOUT)


async def _under_load(
    url: str,
    tmp_path: Path,
    go_down: Callable[[], Awaitable[None]],
    come_back: Callable[[], Awaitable[None]],
    *,
    busy_timeout: float = 10.0,
) -> None:
    await upgrade(url)
    engine = make_engine(url)
    sf = make_session_factory(engine)
    box = SecretBox(generate_key())
    lines = [await add_line(sf, box, "sip.test", mac=f"000e08ab{i:04x}", number=f"+47220{i:05d}",
                            auth_user=f"220{i:05d}") for i in range(LINES)]

    hot = make_hot_store(url, busy_timeout=busy_timeout)
    await hot.open()
    location = LocationService(hot.replace_bindings, commit_window=0.005)
    location.start([])
    spill = tmp_path / "cdr-spill.jsonl"
    cdr_failures = [0]  # CDR batches the database refused

    async def write_cdrs(rows: list[dict[str, Any]]) -> None:
        try:
            await hot.insert_call_records(rows)
        except Exception:
            cdr_failures[0] += 1
            raise

    cdrs = CdrWriter(write_cdrs, window=0.01, retry_interval=0.1, spill_path=spill)
    cdrs.start()

    acked: dict[int, int] = {}  # line -> highest CSeq reported stored
    outcome = {"ok": 0, "failed": 0, "failed_while_down": 0}
    down = asyncio.Event()
    submitted = 0

    def register(line: int, cseq: int) -> None:
        def done(exc: BaseException | None) -> None:
            if exc is None:
                outcome["ok"] += 1
                acked[line] = max(acked.get(line, 0), cseq)
            else:
                outcome["failed"] += 1
                outcome["failed_while_down"] += down.is_set()

        b = Binding(line_id=line, contact=f"sip:{line}@198.51.100.7:5060", expires_at=time.time() + 3600,
                    call_id=f"reg-{line}", cseq=cseq, received_host="198.51.100.7", received_port=5060,
                    transport="udp", registered_at=time.time())
        location.replace(line, [b], done)

    async def load(seconds: float) -> None:
        nonlocal submitted
        end = asyncio.get_running_loop().time() + seconds
        cseq = 1 + submitted
        while asyncio.get_running_loop().time() < end:
            for line in lines:  # 40 REGISTERs and 4 finished calls every 10 ms
                register(line, cseq)
            for _ in range(4):
                cdrs.submit(_draft(submitted))
                submitted += 1
            cseq += 1
            await asyncio.sleep(0.01)

    try:
        await load(1.0)
        before = outcome["ok"]
        assert before > 0 and outcome["failed"] == 0
        down.set()
        await go_down()
        await load(1.0)
        assert outcome["failed_while_down"] > 0, "the outage did not reach the binding writer"
        assert cdr_failures[0] > 0, "the outage did not reach the CDR writer"
        await come_back()
        down.clear()
        ok_at_restart = outcome["ok"]
        await load(1.5)
        assert outcome["ok"] > ok_at_restart, "the binding writer did not recover"
        await asyncio.sleep(0.3)  # let the last group commits land
        print(f"outage under load ({url.split(':')[0]}): {outcome}, {cdr_failures[0]} CDR writes refused, {submitted} submitted")
    finally:
        await location.close()
        await cdrs.close()
        await hot.close()

    stored = {b.line_id: b.cseq for b in await load_bindings(sf)}
    assert set(stored) == set(lines)
    lost = {line: (acked[line], stored.get(line)) for line in acked if stored.get(line, 0) < acked[line]}
    assert not lost, f"bindings reported stored but older or missing in the database: {lost}"
    async with engine.connect() as conn:
        ids = [r[0] for r in await conn.execute(text("SELECT call_id FROM call_records"))]
    await engine.dispose()
    assert sorted(ids) == sorted(f"restart-{n}@test" for n in range(submitted)), (
        f"{submitted} submitted, {len(ids)} stored, {len(set(ids))} distinct"
    )
    assert (cdrs.spilled, cdrs.pending) == (0, 0) and not spill.exists()
