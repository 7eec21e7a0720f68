"""SIPp (Debian package sip-tester, 3.6.1): bounded clients and background servers.

``run_sipp`` runs one client to the end (``-m calls``) and returns its statistics;
``SippServer`` keeps a UAS (a callee, a carrier) in the background until it ends by
itself (``-set once 1``) or is stopped by PID. Scenarios live in ``sipp_scenarios/``.
Facts about SIPp 3.6.1 that shaped this (one-column authentication keyword, MD5
only, first WWW-Authenticate only) are written where they matter below.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness import LOOPBACK, ROOT
from harness.netns import NetNamespace
from harness.ports import free_port
from harness.procs import stop_process

__all__ = [
    "SCENARIOS",
    "SippResult",
    "SippServer",
    "SippTransport",
    "finals",
    "flow",
    "header",
    "method_of",
    "requests",
    "run_sipp",
    "scenario_path",
    "sipp_available",
    "status_of",
    "write_injection_csv",
]

#: SIPp -t: one UDP socket / one TCP connection (u1, t1) or one per call (un, tn).
SippTransport = Literal["u1", "t1", "un", "tn"]
SCENARIOS = ROOT / "sipp_scenarios"
_MISSING = "sipp (Debian package sip-tester) is not installed; run scripts/bootstrap.sh --test"


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
        raise FileNotFoundError(_MISSING)
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


@dataclass
class SippServer:
    """A SIPp UAS in the background, stopped by PID (SIGTERM; SIPp then writes its final statistics).

    ``-set once 1`` (``once=True``) makes the ``uas_*`` scenarios stop SIPp by themselves after the
    first INVITE's call, so ``wait()`` returns as soon as the callee's side of the call is over.
    A benchmark's callee runs with ``once=False`` and load tuning in ``extra``. With ``netns``
    it runs (and is probed) inside that network namespace, beside baresip and a switch there.
    """

    scenario: str
    ip: str
    port: int
    workdir: Path
    extra: Sequence[str] = ()
    once: bool = True
    timeout: float = 60.0
    trace_msg: bool = True
    netns: NetNamespace | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    command: list[str] = field(default_factory=list, init=False)

    @property
    def tag(self) -> str:
        return f"{Path(self.scenario).stem}_{self.ip}_{self.port}"

    @property
    def stat_file(self) -> Path:
        return self.workdir / f"{self.tag}_stat.csv"

    @property
    def message_log(self) -> Path:
        return self.workdir / f"{self.tag}_messages.log"

    @property
    def error_log(self) -> Path:
        return self.workdir / f"{self.tag}_errors.log"

    def start(self) -> SippServer:
        sipp = shutil.which("sipp")
        if sipp is None:
            raise FileNotFoundError(_MISSING)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.command = [
            *(self.netns.prefix() if self.netns else ()),
            sipp, "-sf", str(scenario_path(self.scenario)), "-i", self.ip, "-p", str(self.port), "-t", "u1",
            "-nostdin", "-timeout", f"{int(max(1, self.timeout))}s",
            "-trace_err", "-error_file", str(self.error_log), "-trace_stat", "-stf", str(self.stat_file), "-fd", "1",
        ]
        if self.trace_msg:
            self.command += ["-trace_msg", "-message_file", str(self.message_log)]
        if self.once:
            self.command += ["-set", "once", "1"]
        self.command += list(self.extra)
        self.proc = subprocess.Popen(
            self.command, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )
        self._wait_bound()
        return self

    def _bindable(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((self.ip, self.port))
            except OSError:
                return False
        return True

    def _wait_bound(self, timeout: float = 5.0) -> None:
        """SIPp is listening once its port can no longer be bound (checked where SIPp runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise RuntimeError(f"SIPp UAS exited at once ({self.proc.returncode}): {err.decode()[-2000:]}")
            if not (self.netns.call(self._bindable) if self.netns else self._bindable()):
                return
            time.sleep(0.02)
        raise RuntimeError(f"SIPp UAS did not bind {self.ip}:{self.port}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float = 20.0) -> SippResult:
        """Wait for SIPp to stop by itself (``once``); stop it if it has not after ``timeout`` s."""
        assert self.proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        return self.stop()

    def stop(self) -> SippResult:
        p = self.proc
        assert p is not None
        stop_process(p)
        out, err = p.communicate()
        return SippResult(
            returncode=p.returncode, stats=_read_stats(self.stat_file), stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"), workdir=self.workdir, command=self.command,
            error_log=self.error_log, message_log=self.message_log if self.trace_msg else None,
            stat_file=self.stat_file,
        )


# ============================================================================ messages


# ------------------------------------------------- reading what SIPp received (SippResult.received())


def status_of(msg: str) -> int | None:
    m = re.match(r"SIP/2\.0 (\d{3}) ", msg)
    return int(m.group(1)) if m else None


def method_of(msg: str) -> str | None:
    m = re.match(r"([A-Z]+) \S+ SIP/2\.0", msg)
    return m.group(1) if m else None


def header(msg: str, name: str) -> str | None:
    """The first ``name`` header's value (full names only: the switch sends no compact forms)."""
    m = re.search(rf"(?im)^{re.escape(name)}\s*:\s*(.*?)\s*$", msg)
    return m.group(1) if m else None


def flow(msgs: list[str]) -> list[str]:
    """What a SIPp instance received, as ``["407", "100", "180", "200", "BYE"]``."""
    return [str(status_of(m)) if status_of(m) else (method_of(m) or "?") for m in msgs]


def requests(msgs: list[str], method: str) -> list[str]:
    return [m for m in msgs if method_of(m) == method]


def finals(msgs: list[str]) -> list[str]:
    """Final responses to the last INVITE (the one after the 407, if any), retransmissions included."""
    out: list[tuple[int, str]] = []
    for m in msgs:
        cseq = re.search(r"(?im)^cseq:\s*(\d+)\s+INVITE\s*$", m)
        if cseq and (status_of(m) or 0) >= 200:
            out.append((int(cseq.group(1)), m))
    last = max((n for n, _ in out), default=0)
    return [m for n, m in out if n == last]
