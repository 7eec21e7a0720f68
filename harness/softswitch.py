"""The product from outside: ``softswitch`` CLI commands and ``softswitch run`` as a child process.

``SwitchProcess`` runs the switch in its own working directory on free ports and is
ready only when it answers an OPTIONS over UDP and its HTTP server answers anything;
it is stopped by PID (SIGTERM, then SIGKILL), never by name. The probes here are raw
sockets and ``http.client``, not the switch's own SIP code, so they cannot share its bugs.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from harness import LOOPBACK, ROOT
from harness.ports import free_port
from harness.procs import rss_kib, stop_process

__all__ = [
    "SwitchProcess",
    "SwitchStartError",
    "adapter_status",
    "create_token",
    "http_get_json",
    "import_file",
    "poll_until",
    "sip_options_udp",
    "softswitch_cmd",
]


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
            # Announcements off unless a test turns them on (extra_args "--announcements", "on"): the
            # refusal tests check SIP responses and would each wait seconds for a prompt to end.
            "run", "--sip", self.sip_target, "--http", f"{LOOPBACK}:{self.http_port}", "--announcements", "off",
            *self.extra_args,
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
        kib = rss_kib(self.proc.pid)
        if not kib:
            raise RuntimeError(f"no VmRSS for pid {self.proc.pid}")
        return kib

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
        """Ready = answers an OPTIONS over UDP with 200 and the HTTP server answers anything.

        Not just any answer: while start-up work still holds the event loop, the overload
        shedding answers 503 to requests that waited in the socket queue, and a test that
        began then would see its first unauthenticated REGISTER shed too.
        """
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
                answer = sip_options_udp(self.sip_port, timeout=0.3)
                sip_ok = answer is not None and answer.startswith(b"SIP/2.0 200 ")
                if answer is not None and not sip_ok:
                    time.sleep(0.05)  # answered but shedding: give the loop room instead of queueing probes
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
