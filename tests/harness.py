"""Process helpers for end-to-end tests and the benchmark: the real switch, real SIPp.

Everything here starts real processes on loopback and stops them by PID (SIGTERM,
then SIGKILL), never by name, so parallel runs and other users' processes are safe.
Ports are picked at random below the kernel's ephemeral range and checked free for
both UDP and TCP (a SIP listener needs both, RFC 3261 §18), so concurrent test runs
(pytest-xdist, two checkouts) do not collide and outgoing connections cannot steal
them between allocation and bind.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

__all__ = [
    "ROOT",
    "SCENARIOS",
    "PortAllocator",
    "free_port",
    "softswitch_cmd",
    "SwitchProcess",
    "SwitchStartError",
    "import_file",
    "create_token",
    "SippResult",
    "SippTransport",
    "run_sipp",
    "sipp_available",
    "scenario_path",
    "write_injection_csv",
    "sip_options_udp",
    "http_get_json",
    "poll_until",
    "adapter_status",
    "count_rows",
]

ROOT = Path(__file__).resolve().parents[1]
#: SIPp -t: one UDP socket / one TCP connection (u1, t1) or one per call (un, tn).
SippTransport = Literal["u1", "t1", "un", "tn"]
SCENARIOS = ROOT / "sipp_scenarios"
LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- ports


class PortAllocator:
    """Hands out loopback ports that are currently free, never the same one twice.

    Random ports in [20000, 32000) stay below Linux's default ephemeral range
    (32768-60999, /proc/sys/net/ipv4/ip_local_port_range), so a client socket
    opened by anyone between our check and the server's bind cannot take them.
    """

    def __init__(self, low: int = 20000, high: int = 32000) -> None:
        self._low, self._high = low, high
        self._given: set[int] = set()
        self._rng = random.Random(os.getpid() ^ time.monotonic_ns())

    @staticmethod
    def _bindable(port: int, sock_type: int) -> bool:
        with socket.socket(socket.AF_INET, sock_type) as s:
            if sock_type == socket.SOCK_STREAM:
                # the server will set SO_REUSEADDR too; TIME_WAIT leftovers are harmless
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                return False
        return True

    def get(self, kind: Literal["udp", "tcp", "both"] = "both") -> int:
        types = {
            "udp": (socket.SOCK_DGRAM,),
            "tcp": (socket.SOCK_STREAM,),
            "both": (socket.SOCK_DGRAM, socket.SOCK_STREAM),
        }[kind]
        for _ in range(1000):
            port = self._rng.randrange(self._low, self._high)
            if port in self._given:
                continue
            if all(self._bindable(port, t) for t in types):
                self._given.add(port)
                return port
        raise RuntimeError("no free loopback port found")


_PORTS = PortAllocator()


def stop_process(p: subprocess.Popen[Any], timeout: float = 10.0) -> int | None:
    """Stop a child by PID: SIGTERM, then SIGKILL if it is still there after ``timeout`` s."""
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
    return p.returncode


def free_port(kind: Literal["udp", "tcp", "both"] = "both") -> int:
    """A loopback port free for ``kind`` ("both" = UDP and TCP) right now."""
    return _PORTS.get(kind)


# ------------------------------------------------------------------- the product CLI


def softswitch_cmd() -> list[str]:
    """How to invoke the product: the venv's console script, else this interpreter."""
    exe = ROOT / ".venv" / "bin" / "softswitch"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("softswitch")
    if found:
        return [found]
    return [sys.executable, "-m", "switch"]


def _cli(db_url: str, key_file: Path | str | None, *args: str, cwd: Path | None = None, timeout: float = 120.0,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a `softswitch` subcommand; without ``key_file`` the CLI's default (./softswitch.key) applies."""
    keys = ["--key-file", str(key_file)] if key_file is not None else []
    cmd = [*softswitch_cmd(), "--database", db_url, *keys, *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, input=stdin)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def import_file(db_url: str, data: dict[str, Any] | str, *, key_file: Path | str | None = None,
                cwd: Path | None = None,
                extra: Sequence[str] = (), timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """``softswitch import`` of ``data`` (a dict written as JSON, or a path to a JSON/YAML file).

    Line secrets are encrypted with the key file: pass the one the switch will use.
    """
    if isinstance(data, str):
        path = Path(data)
        return _cli(db_url, key_file, "import", *extra, str(path), cwd=cwd, timeout=timeout)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=cwd, delete=False) as f:
        json.dump(data, f)
        path = Path(f.name)
    try:
        return _cli(db_url, key_file, "import", *extra, str(path), cwd=cwd, timeout=timeout)
    finally:
        path.unlink(missing_ok=True)


def create_token(db_url: str, *, key_file: Path | str | None = None, role: str = "operator",
                 cwd: Path | None = None) -> str:
    """``softswitch token create``: the bearer token is alone on the last line of stdout."""
    out = _cli(db_url, key_file, "token", "create", "--role", role, cwd=cwd).stdout
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError("softswitch token create printed nothing")
    return lines[-1]


# ------------------------------------------------------------------------ SIP probes


def _options_request(port: int, local_port: int, branch: str, transport: str = "UDP") -> bytes:
    call_id = secrets.token_hex(8)
    return (
        f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {LOOPBACK}:{local_port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{LOOPBACK}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{LOOPBACK}:{port}>\r\n"
        f"Call-ID: {call_id}@{LOOPBACK}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Accept: application/sdp\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def sip_options_udp(port: int, *, host: str = LOOPBACK, timeout: float = 1.0) -> bytes | None:
    """Send one OPTIONS over UDP; return the first response carrying our branch, or None."""
    branch = "z9hG4bK" + secrets.token_hex(8)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        s.settimeout(timeout)
        s.sendto(_options_request(port, s.getsockname()[1], branch), (host, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = s.recvfrom(65535)
            except (TimeoutError, ConnectionRefusedError):
                return None
            if data.startswith(b"SIP/2.0 ") and branch.encode() in data:
                return data
    return None


def http_get_json(url: str, *, token: str | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    """GET ``url`` → (status, parsed JSON or raw text)."""
    m = re.match(r"http://([^/:]+):(\d+)(/.*)?$", url)
    if not m:
        raise ValueError(url)
    conn = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=timeout)
    try:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request("GET", m.group(3) or "/", headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, body
    finally:
        conn.close()


def poll_until(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.1) -> Any:
    """Call ``check()`` until it returns a truthy value; return it, or the last value on timeout."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    return value


# --------------------------------------------------------------------- the switch


class SwitchStartError(RuntimeError):
    pass


@dataclass
class SwitchProcess:
    """``softswitch run`` as a child process, in its own working directory.

    Usable as a context manager; ``stop()`` in ``__exit__`` runs even when the
    body fails. ``restart()`` keeps ports, database and key file, which is what
    an operator's supervisor does after a crash.
    """

    db_url: str
    workdir: Path
    extra_args: Sequence[str] = ()
    sip_port: int = 0
    http_port: int = 0
    key_file: Path | None = None
    start_timeout: float = 40.0
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    starts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.sip_port:
            self.sip_port = free_port("both")
        if not self.http_port:
            self.http_port = free_port("tcp")
        if self.key_file is None:
            self.key_file = self.workdir / "softswitch.key"

    # -- info -------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / "softswitch.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def sip_target(self) -> str:
        return f"{LOOPBACK}:{self.sip_port}"

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def command(self) -> list[str]:
        return [
            *softswitch_cmd(), "--database", self.db_url, "--key-file", str(self.key_file),
            "run", "--sip", self.sip_target, "--http", f"{LOOPBACK}:{self.http_port}", *self.extra_args,
        ]

    def log_text(self, tail: int = 200_000) -> str:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return data[-tail:].decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        """Resident set size of the switch process (VmRSS, KiB)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> SwitchProcess:
        """Launch and wait until it serves SIP and HTTP; stopped again if it does not."""
        self.launch()
        try:
            self.wait_ready(self.start_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> SwitchProcess:
        """Start the process without waiting for it (overlap start-up with other work)."""
        if self.alive():
            raise RuntimeError("already running")
        self.starts += 1
        env = dict(os.environ)
        env.pop("SOFTSWITCH_DATABASE_URL", None)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.env:
            env.update(self.env)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Ready = answers an OPTIONS over UDP and the HTTP server answers anything."""
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        sip_ok = http_ok = False
        while time.monotonic() < deadline:
            if not self.alive():
                assert self.proc is not None
                raise SwitchStartError(
                    f"softswitch exited with {self.proc.returncode} during start-up\n{self.log_text(20_000)}"
                )
            if not sip_ok:
                sip_ok = sip_options_udp(self.sip_port, timeout=0.3) is not None
            if sip_ok and not http_ok:
                try:
                    http_get_json(self.http_url + "/", timeout=1.0)
                    http_ok = True
                except (OSError, http.client.HTTPException):
                    time.sleep(0.1)
            if sip_ok and http_ok:
                return
        raise SwitchStartError(
            f"softswitch not ready after {timeout:.0f}s (sip={sip_ok} http={http_ok})\n{self.log_text(20_000)}"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds. Returns the exit code."""
        return None if self.proc is None else stop_process(self.proc, timeout)

    def kill9(self) -> None:
        """Crash it: SIGKILL, no chance to flush anything."""
        p = self.proc
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)

    def restart(self) -> SwitchProcess:
        self.stop()
        return self.start()

    def __enter__(self) -> SwitchProcess:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- HTTP API -----------------------------------------------------------------
    def api_get(self, path: str, token: str | None) -> tuple[int, Any]:
        return http_get_json(self.http_url + path, token=token)


def adapter_status(switch: SwitchProcess, token: str, mac: str) -> dict[str, Any]:
    """The lamps of one adapter; fails loudly on anything but 200 + JSON object."""
    status, body = switch.api_get(f"/api/v1/adapters/{mac}/status", token)
    if status != 200 or not isinstance(body, dict):
        raise AssertionError(f"status API answered {status}: {body!r}")
    return body


# ------------------------------------------------------------------------ database


def count_rows(db_url: str, sql: str, params: dict[str, Any] | None = None) -> int:
    """Run a ``SELECT count(*)`` through the same async driver the switch uses."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def go() -> int:
        engine = create_async_engine(db_url)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text(sql), params or {})).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(go())


# ---------------------------------------------------------------------------- SIPp


def write_injection_csv(path: Path, rows: Iterable[tuple[str, str]], *, order: str = "SEQUENTIAL",
                        auth_user: dict[str, str] | None = None) -> Path:
    """Injection file: field0 = user, field1 = the whole ``[authentication ...]`` keyword.

    SIPp 3.6.1 mis-parses ``[authentication username=[field0] password=[field1]]``
    (a keyword nested in a keyword; no Authorization header is sent at all), so
    the complete keyword goes into one column and scenarios write ``[field1]``.
    """
    with open(path, "w") as f:
        f.write(order + "\n")
        for user, password in rows:
            au = (auth_user or {}).get(user, user)
            if ";" in user or ";" in password or "]" in password or " " in password:
                raise ValueError("SIPp injection fields cannot carry ';', ']' or spaces")
            f.write(f"{user};[authentication username={au} password={password}]\n")
    return path


@dataclass
class SippResult:
    returncode: int
    stats: dict[str, str]
    stdout: str
    stderr: str
    workdir: Path
    command: list[str]
    error_log: Path
    message_log: Path | None
    stat_file: Path
    rtt_file: Path | None = None

    @property
    def ok(self) -> bool:
        """SIPp exit code 0: every call reached the end of the scenario."""
        return self.returncode == 0

    def stat(self, name: str) -> int:
        return int(self.stats.get(name, "0") or 0)

    @property
    def successful(self) -> int:
        return self.stat("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self.stat("FailedCall(C)")

    @property
    def retransmissions(self) -> int:
        return self.stat("Retransmissions(C)")

    def messages(self) -> str:
        if self.message_log and self.message_log.exists():
            return self.message_log.read_text("utf-8", "replace")
        return ""

    def errors(self) -> str:
        return self.error_log.read_text("utf-8", "replace") if self.error_log.exists() else ""

    def received(self) -> list[str]:
        """Every message SIPp received, from the -trace_msg log (oldest first)."""
        # Each entry: "-----... <timestamp>", "UDP message received [N] bytes :", "", message.
        out = []
        for chunk in re.split(r"^-{10,} .*$", self.messages(), flags=re.M)[1:]:
            head, _, body = chunk.lstrip("\n").partition("\n")
            if "message received" in head:
                out.append(body.strip("\r\n"))
        return out

    def _rtt_column(self, rtd: int, column: int) -> list[float]:
        if not self.rtt_file or not self.rtt_file.exists():
            return []
        out: list[float] = []
        for line in self.rtt_file.read_text().splitlines():
            p = line.strip().split(";")
            if len(p) == 3 and p[2] == str(rtd):
                with contextlib.suppress(ValueError):
                    out.append(float(p[column]))
        return out

    def rtts_ms(self, rtd: int = 1) -> list[float]:
        """Response times of timer ``rtd`` (milliseconds, whole-ms resolution) from -trace_rtt."""
        return self._rtt_column(rtd, 1)

    def completion_times(self, rtd: int = 1) -> list[float]:
        """When each timed exchange completed (ms since SIPp start) from -trace_rtt."""
        return self._rtt_column(rtd, 0)

    def describe(self) -> str:
        return (
            f"sipp exit {self.returncode}: {' '.join(self.command)}\n"
            f"stats: ok={self.successful} failed={self.failed} retrans={self.retransmissions}\n"
            f"--- errors ({self.error_log})\n{self.errors()[-6000:]}\n"
            f"--- stderr\n{self.stderr[-3000:]}\n"
            f"--- messages (tail)\n{self.messages()[-6000:]}"
        )


def _read_stats(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    rows = [ln.rstrip("\n").split(";") for ln in path.read_text("utf-8", "replace").splitlines() if ln.strip()]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))  # a last row may be cut short


def sipp_available() -> bool:
    """Is the SIPp binary installed (Debian package sip-tester)?"""
    return shutil.which("sipp") is not None


def scenario_path(scenario: str | Path) -> Path:
    p = Path(scenario)
    if p.exists():
        return p.resolve()
    q = SCENARIOS / (p.name if p.suffix == ".xml" else p.name + ".xml")
    if not q.exists():
        raise FileNotFoundError(scenario)
    return q


def _sipp_scratch_dir(max_age: float = 3600.0) -> Path:
    """A fresh directory for one SIPp run's files; runs older than ``max_age`` are pruned.

    Results are read after ``run_sipp`` returns, so the files must outlive the call; the
    pruning keeps repeated test runs from filling /tmp.
    """
    base = Path(tempfile.gettempdir()) / f"softswitch-sipp-{os.getuid()}"
    base.mkdir(exist_ok=True)
    cutoff = time.time() - max_age
    for old in base.iterdir():
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=base))


def run_sipp(
    scenario: str | Path,
    target: str,
    *,
    inf_csv: Path | None = None,
    calls: int = 1,
    rate: float | None = None,
    transport: SippTransport = "u1",
    extra: Sequence[str] = (),
    timeout: float = 30.0,
    local_port: int | None = None,
    workdir: Path | None = None,
    trace_msg: bool = True,
    trace_rtt: bool = False,
    limit: int | None = None,
) -> SippResult:
    """Run one bounded SIPp client (``-m calls``) and collect its statistics.

    ``-default_behaviors all,-bye``: a failed REGISTER must not be followed by a
    stray BYE (SIPp's default for aborted calls), which would only confuse the
    server's logs. Exit code 0 means every call succeeded.
    """
    sipp = shutil.which("sipp")
    if sipp is None:
        raise FileNotFoundError("sipp (Debian package sip-tester) is not installed; run scripts/bootstrap.sh --test")
    sf = scenario_path(scenario)
    wd = Path(workdir) if workdir else _sipp_scratch_dir()
    wd.mkdir(parents=True, exist_ok=True)
    port = local_port or free_port("both")
    tag = f"{sf.stem}_{port}"
    err = wd / f"{tag}_errors.log"
    stf = wd / f"{tag}_stat.csv"
    msg = wd / f"{tag}_messages.log" if trace_msg else None
    cmd = [
        sipp, target, "-sf", str(sf), "-i", LOOPBACK, "-p", str(port), "-t", transport,
        "-m", str(calls), "-nostdin", "-timeout", f"{int(max(1, timeout))}s", "-timeout_error",
        "-default_behaviors", "all,-bye",
        "-trace_err", "-error_file", str(err), "-trace_stat", "-stf", str(stf), "-fd", "1",
    ]
    if rate is not None:
        cmd += ["-r", f"{rate:g}"]
    if limit is not None:
        cmd += ["-l", str(limit)]
    if inf_csv is not None:
        cmd += ["-inf", str(inf_csv)]
    if msg is not None:
        cmd += ["-trace_msg", "-message_file", str(msg)]
    if trace_rtt:
        cmd += ["-trace_rtt", "-rtt_freq", "1"]
    cmd += list(extra)
    try:
        proc = subprocess.run(cmd, cwd=wd, capture_output=True, timeout=timeout + 30, stdin=subprocess.DEVNULL)
        rc, out, errout = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, errout = -9, exc.stdout or b"", (exc.stderr or b"") + b"\n[harness: sipp killed after timeout]"
    rtt: Path | None = None
    if trace_rtt:
        found = sorted(wd.glob(f"{sf.stem}_*_rtt.csv"), key=lambda p: p.stat().st_mtime)
        rtt = found[-1] if found else None
    return SippResult(
        returncode=rc, stats=_read_stats(stf), stdout=out.decode("utf-8", "replace"),
        stderr=errout.decode("utf-8", "replace"), workdir=wd, command=cmd, error_log=err, message_log=msg,
        stat_file=stf, rtt_file=rtt,
    )
