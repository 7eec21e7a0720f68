"""Run the switch and real baresip user agents inside a private network namespace.

Why a namespace: baresip 1.0 refuses to start with only a loopback interface, and a
namespace of our own also means fixed ports (5060, 5062 ...) can never collide with
another test run or with anything else on the machine. The namespace is held open by
a tiny holder process (``unshare --net`` → ``cat``) whose stdin is a pipe from us: if
pytest dies, the pipe closes, the holder exits and the namespace goes with it.

Processes are started in the namespace with ``nsenter --net`` (which execs, so the
PID we hold is the real process). Test-side sockets (baresip's ctrl_tcp, the switch
readiness probe) are created from a short-lived thread that has ``setns()``-ed into
the namespace: a socket stays in the namespace it was created in, and the pytest
thread itself never changes namespace. Both need CAP_SYS_ADMIN (root, as in CI).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import ctypes
import json
import math
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.harness import SwitchProcess, stop_process

__all__ = [
    "AudioStat",
    "Baresip",
    "BaresipError",
    "NetNamespace",
    "NetnsSwitch",
    "can_make_namespaces",
    "envelope_correlation",
    "fetch_rows",
    "make_speech_wav",
    "make_tone_wav",
    "sox_stat",
    "tool_missing",
    "unix_socket_url",
]

T = TypeVar("T")

#: <sched.h>: CLONE_NEWNET, for setns(2).
CLONE_NEWNET = 0x40000000
#: Address on the namespace's veth (TESTING.md: baresip needs a non-loopback
#: interface carrying the default route; a 127/8 address keeps traffic local).
VETH_ADDRESS = "127.0.0.2"
BARESIP_MODULES = Path("/usr/lib/baresip/modules")
REQUIRED_TOOLS = ("baresip", "espeak-ng", "sox", "ip", "unshare", "nsenter")


def tool_missing() -> str | None:
    """Which required program is missing (bootstrap --test installs them all), or None."""
    missing = [t for t in REQUIRED_TOOLS if not _which(t)]
    if missing:
        return f"missing {', '.join(missing)}: run scripts/bootstrap.sh --test"
    if not (BARESIP_MODULES / "ctrl_tcp.so").exists():
        return f"baresip modules not found in {BARESIP_MODULES}: run scripts/bootstrap.sh --test"
    return None


def can_make_namespaces() -> bool:
    """unshare --net and setns(2) need CAP_SYS_ADMIN: in practice, root (as in CI)."""
    return os.geteuid() == 0


def _which(name: str) -> str | None:
    for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/sbin"]:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


# ============================================================================ namespace


class NetNamespace:
    """A private network namespace: lo up, a veth with 127.0.0.2/32 as default route."""

    _SETUP = (
        "set -e; ip link set lo up; ip link add v0 type veth peer name v1; "
        f"ip addr add {VETH_ADDRESS}/32 dev v0; ip link set v0 up; ip link set v1 up; "
        f"ip route add default dev v0 src {VETH_ADDRESS}; echo ready; exec cat >/dev/null"
    )

    def __init__(self) -> None:
        self._holder: subprocess.Popen[bytes] | None = None
        self._fd: int | None = None
        self._libc = ctypes.CDLL(None, use_errno=True)

    @property
    def path(self) -> str:
        assert self._holder is not None, "namespace not started"
        return f"/proc/{self._holder.pid}/ns/net"

    def start(self, timeout: float = 10.0) -> NetNamespace:
        ip_dir = str(Path(_which("ip") or "/usr/sbin/ip").parent)
        env = dict(os.environ, PATH=os.environ.get("PATH", "") + os.pathsep + ip_dir)
        self._holder = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", self._SETUP],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            start_new_session=True,
        )
        assert self._holder.stdout is not None
        line = _readline_with_timeout(self._holder.stdout, timeout)
        if line.strip() != b"ready":
            err = b""
            if self._holder.poll() is not None and self._holder.stderr is not None:
                err = self._holder.stderr.read()
            self.close()
            raise RuntimeError(f"could not set up the network namespace: {line!r} {err.decode('utf-8', 'replace')}")
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        return self

    def prefix(self) -> list[str]:
        """Command prefix that runs a program inside the namespace (nsenter execs it)."""
        return ["nsenter", f"--net={self.path}", "--"]

    def call(self, fn: Callable[[], T], timeout: float = 60.0) -> T:
        """Run ``fn`` on a thread that has joined the namespace; return its result."""
        assert self._fd is not None, "namespace not started"
        fd = self._fd
        box: dict[str, Any] = {}

        def body() -> None:
            try:
                if self._libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns: {os.strerror(err)}")
                box["value"] = fn()
            except BaseException as exc:  # handed back to the caller's thread
                box["error"] = exc

        t = threading.Thread(target=body, name="netns-call", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise TimeoutError(f"netns call did not finish within {timeout}s")
        if "error" in box:
            raise box["error"]
        return cast(T, box["value"])

    def close(self) -> None:
        """Let the holder go (EOF on its stdin), then make sure it is gone."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        h = self._holder
        if h is None:
            return
        if h.stdin:
            with contextlib.suppress(OSError):
                h.stdin.close()
        try:
            h.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(h.pid, signal.SIGKILL)
            h.wait(5)
        for s in (h.stdout, h.stderr):
            if s:
                s.close()

    def __enter__(self) -> NetNamespace:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _readline_with_timeout(stream: Any, timeout: float) -> bytes:
    out: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: out.put(stream.readline()), daemon=True).start()
    try:
        return out.get(timeout=timeout)
    except queue.Empty:
        return b""


@dataclass
class NetnsSwitch(SwitchProcess):
    """``softswitch run`` inside a :class:`NetNamespace`; probed from inside it too."""

    netns: NetNamespace | None = None

    def command(self) -> list[str]:
        assert self.netns is not None
        return [*self.netns.prefix(), *super().command()]

    def wait_ready(self, timeout: float | None = None) -> None:
        assert self.netns is not None
        budget = (self.start_timeout if timeout is None else timeout) + 5
        self.netns.call(lambda: SwitchProcess.wait_ready(self, timeout), timeout=budget)


# ============================================================================== baresip


class BaresipError(AssertionError):
    pass


def _netstring(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj).encode()
    return str(len(data)).encode() + b":" + data + b","


@dataclass
class Baresip:
    """One headless baresip 1.0 registered as a line, driven over ctrl_tcp.

    Audio comes from ``audio_source`` (aufile; baresip hangs up when it ends) and the
    sndfile module records what was sent (``*-enc.wav``) and received (``*-dec.wav``).
    """

    name: str
    home: Path
    netns: NetNamespace
    user: str
    password: str
    registrar: str  # host:port of the switch
    sip_port: int
    ctrl_port: int
    rtp_ports: tuple[int, int]
    audio_source: Path
    quit_after_s: int = 90  # baresip -t: a safety net should teardown never run
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    events: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    _sock: socket.socket | None = field(default=None, init=False, repr=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    _responses: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    _reader: threading.Thread | None = field(default=None, init=False, repr=False)
    _token: int = field(default=0, init=False, repr=False)

    # -- files ------------------------------------------------------------------------
    @property
    def snd_dir(self) -> Path:
        return self.home / "snd"

    @property
    def log_path(self) -> Path:
        return self.home / "baresip.log"

    def log_text(self, tail: int = 200_000) -> str:
        try:
            return self.log_path.read_bytes()[-tail:].decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def recording(self, kind: str) -> Path:
        """The sndfile recording of this agent's only call: kind "dec" = heard, "enc" = sent."""
        found = sorted(self.snd_dir.glob(f"*-{kind}.wav"))
        if len(found) != 1:
            raise BaresipError(f"{self.name}: expected one *-{kind}.wav in {self.snd_dir}, found {found}")
        return found[0]

    def write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.snd_dir.mkdir(exist_ok=True)
        modules = ("g711.so", "aufile.so", "aubridge.so", "sndfile.so")
        apps = ("account.so", "menu.so", "ctrl_tcp.so")
        lines = [
            "poll_method\tepoll",
            f"sip_listen\t127.0.0.1:{self.sip_port}",
            "audio_player\taubridge,nil",
            "audio_alert\taubridge,nil",
            f"audio_source\taufile,{self.audio_source}",
            f"module_path\t{BARESIP_MODULES}",
            *(f"module\t{m}" for m in modules),
            *(f"module_app\t{m}" for m in apps),
            f"ctrl_tcp_listen\t127.0.0.1:{self.ctrl_port}",
            f"snd_path\t{self.snd_dir}",
            f"rtp_ports\t{self.rtp_ports[0]}-{self.rtp_ports[1]}",
        ]
        (self.home / "config").write_text("\n".join(lines) + "\n")
        # regint: REGISTER refresh interval; audio_codecs: G.711 u-law only, so both
        # ends agree without transcoding (the switch passes SDP through untouched).
        (self.home / "accounts").write_text(
            f"<sip:{self.user}@{self.registrar};transport=udp>;auth_pass={self.password};"
            "regint=60;audio_codecs=PCMU\n"
        )

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> Baresip:
        self.write_config()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.netns.prefix(), "baresip", "-f", str(self.home), "-s", "-t", str(self.quit_after_s)],
                cwd=self.home, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def connect(self, timeout: float = 5.0) -> None:
        """Open ctrl_tcp (retrying while baresip starts) and start reading events."""
        deadline = time.monotonic() + timeout

        def dial() -> socket.socket:
            while True:
                try:
                    return socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1.0)
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)

        while True:
            self._check_alive()
            try:
                self._sock = self.netns.call(dial, timeout=timeout + 2)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise BaresipError(f"{self.name}: ctrl_tcp 127.0.0.1:{self.ctrl_port} unreachable: {exc}\n"
                                       f"{self.log_text(5000)}") from exc
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, args=(self._sock,), name=f"baresip-{self.name}",
                                        daemon=True)
        self._reader.start()

    def _check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise BaresipError(f"{self.name}: baresip is not running (exit {code})\n{self.log_text(8000)}")

    def _read_loop(self, sock: socket.socket) -> None:
        """Parse netstrings ``len:json,`` into events and command responses."""
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self.events.append({"type": "_CTRL_CLOSED"})
                    self._cond.notify_all()
                return
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0 or not buf[:colon].isdigit():
                    break
                n = int(buf[:colon])
                if len(buf) < colon + 1 + n + 1:
                    break
                msg = json.loads(buf[colon + 1 : colon + 1 + n])
                buf = buf[colon + 2 + n :]
                with self._cond:
                    if msg.get("response"):
                        self._responses[str(msg.get("token"))] = msg
                    else:
                        msg["_t"] = time.monotonic()
                        self.events.append(msg)
                    self._cond.notify_all()

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict[str, Any]:
        """Send one ctrl_tcp command and return its response (``ok``, ``data``)."""
        assert self._sock is not None, "connect() first"
        self._token += 1
        token = f"{self.name}-{self._token}"
        self._sock.sendall(_netstring({"command": command, "params": params, "token": token}))
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._responses, timeout):
                raise BaresipError(f"{self.name}: no response to {command!r} within {timeout}s")
            return self._responses.pop(token)

    def wait_event(self, type_: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first event of ``type_`` seen so far or arriving within ``timeout``."""
        def find() -> dict[str, Any] | None:
            return next((e for e in self.events if e.get("type") == type_), None)

        with self._cond:
            self._cond.wait_for(lambda: find() is not None, timeout)
            ev = find()
        if ev is None:
            seen = [e.get("type") for e in self.events]
            raise BaresipError(f"{self.name}: no {type_} within {timeout}s; events seen: {seen}\n"
                               f"--- baresip log (tail)\n{self.log_text(6000)}")
        return ev

    def event_types(self) -> list[str]:
        with self._cond:
            return [str(e.get("type")) for e in self.events]

    def registration(self) -> str:
        """``reginfo`` text without colour codes."""
        data = str(self.command("reginfo").get("data", ""))
        return re.sub(r"\x1b\[[0-9;]*m", "", data)

    def wait_registered(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            last = self.registration()
            if re.search(rf"{re.escape(self.user)}@\S+\s+OK\b", last):
                return
            time.sleep(0.05)
        raise BaresipError(f"{self.name}: not registered after {timeout}s: {last!r}\n{self.log_text(6000)}")

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM by PID, SIGKILL if it lingers; close the ctrl socket."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        return None if self.proc is None else stop_process(self.proc, timeout)


# ================================================================================ audio


def make_speech_wav(path: Path, text: str, *, voice: str = "en-gb") -> Path:
    """espeak-ng → 8 kHz mono 16-bit PCM WAV (what baresip's aufile source reads)."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "170", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-e", "signed-integer", "-b", "16", str(path)],
                   check=True, capture_output=True)
    raw.unlink()
    return path


def make_tone_wav(path: Path, *, seconds: float, freq: int, volume: float = 0.5) -> Path:
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "signed-integer", "-b", "16", str(path),
                    "synth", f"{seconds:g}", "sine", str(freq), "vol", f"{volume:g}"], check=True, capture_output=True)
    return path


@dataclass(frozen=True)
class AudioStat:
    length_s: float
    rms: float
    rough_freq: int


def sox_stat(path: Path) -> AudioStat:
    """``sox FILE -n stat`` (printed on stderr)."""
    out = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True, check=True).stderr

    def num(label: str) -> float:
        m = re.search(rf"^{label}:\s+(-?[\d.]+)", out, re.M)
        if not m:
            raise ValueError(f"sox stat of {path}: no {label!r} in {out!r}")
        return float(m.group(1))

    return AudioStat(num(r"Length \(seconds\)"), num(r"RMS\s+amplitude"), int(num(r"Rough\s+frequency")))


def _envelope(path: Path, frame_ms: int = 20) -> list[float]:
    """RMS per frame of a 16-bit mono WAV: a cheap fingerprint of speech."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: want 16-bit mono, got {w.getsampwidth() * 8}-bit x{w.getnchannels()}")
        samples = array.array("h", w.readframes(w.getnframes()))
        rate = w.getframerate()
    if sys.byteorder == "big":
        samples.byteswap()
    n = rate * frame_ms // 1000
    return [math.sqrt(sum(s * s for s in samples[i : i + n]) / n) for i in range(0, len(samples) - n + 1, n)]


def envelope_correlation(a: Path, b: Path, *, max_lag_frames: int = 50) -> float:
    """Best Pearson correlation of the two loudness envelopes over lags 0..max_lag.

    ``b`` is what arrived, ``a`` what was sent: ``b`` may start late (call set-up,
    jitter buffer), never early. Speech has a distinctive envelope, so a high value
    means ``b`` really carries ``a``'s words and not some other sound.
    """
    ea, eb = _envelope(a), _envelope(b)
    best = -1.0
    for lag in range(0, max_lag_frames + 1):
        xs, ys = ea, eb[lag:]
        k = min(len(xs), len(ys))
        if k < 10:
            break
        best = max(best, _pearson(xs[:k], ys[:k]))
    return best


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else 0.0


# ============================================================================= database


def unix_socket_url(db_url: str) -> str:
    """The same PostgreSQL database, reached over the server's unix socket.

    A server listening on 127.0.0.1 in the root namespace is unreachable from a
    private network namespace, but a unix socket is a file: it is reachable from
    every network namespace on the host. Abstract sockets (``@name``) are per
    namespace and relative directories are ambiguous, so only absolute paths count.
    """
    async def probe(url: str) -> tuple[str, str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                dirs = str((await conn.execute(text("SHOW unix_socket_directories"))).scalar_one())
                port = str((await conn.execute(text("SHOW port"))).scalar_one())
                return dirs, port
        finally:
            await engine.dispose()

    dirs, port = asyncio.run(probe(db_url))
    usable = [d.strip() for d in dirs.split(",") if d.strip().startswith("/")]
    if not usable:
        raise RuntimeError(
            f"PostgreSQL at {db_url} has no unix socket in a directory (unix_socket_directories={dirs!r})"
        )
    u = make_url(db_url)
    # URL.create, not u.set(host=None): set() treats None as "leave unchanged".
    rendered = URL.create(
        u.drivername, username=u.username, password=u.password, database=u.database,
        query={**u.query, "host": usable[0], "port": port},
    ).render_as_string(hide_password=False)
    try:
        asyncio.run(probe(rendered))  # same file from any namespace: checking here is enough
    except Exception as exc:  # noqa: BLE001  # any driver error: report it with the URL
        raise RuntimeError(f"cannot log in over the unix socket {rendered}: {exc!r}") from exc
    return rendered


def fetch_rows(db_url: str, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows of a SELECT as dicts, through the same async driver the switch uses."""
    async def go() -> list[dict[str, Any]]:
        engine = create_async_engine(db_url)
        try:
            async with engine.connect() as conn:
                return [dict(r._mapping) for r in await conn.execute(text(sql), params or {})]
        finally:
            await engine.dispose()

    return asyncio.run(go())
