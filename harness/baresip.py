"""baresip 1.0 (Debian baresip-core), a SIP phone not built from the switch's own code.

One headless agent per line, in a :class:`harness.netns.NetNamespace` (it will not
start on a loopback-only host), driven over its ctrl_tcp module (netstring JSON
commands, events back), with G.711 audio from a WAV file and the sndfile module
recording what it sent and heard.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.netns import NetNamespace, which
from harness.procs import stop_process

__all__ = ["BARESIP_MODULES", "REQUIRED_TOOLS", "Baresip", "BaresipError", "tool_missing"]

BARESIP_MODULES = Path("/usr/lib/baresip/modules")
REQUIRED_TOOLS = ("baresip", "espeak-ng", "sox", "ip", "unshare", "nsenter")


def tool_missing() -> str | None:
    """Which required program is missing (bootstrap --test installs them all), or None."""
    missing = [t for t in REQUIRED_TOOLS if not which(t)]
    if missing:
        return f"missing {', '.join(missing)}: run scripts/bootstrap.sh --test"
    if not (BARESIP_MODULES / "ctrl_tcp.so").exists():
        return f"baresip modules not found in {BARESIP_MODULES}: run scripts/bootstrap.sh --test"
    return None


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
