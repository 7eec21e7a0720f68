"""What the SIPp benches share: process CPU over a process tree, idle waits, and the Kamailio peer.

Imported by bench_register.py and bench_calls.py (``from bench._common import ...``; both put
the repository root on ``sys.path`` first). Kamailio runs from bench/peers/kamailio.cfg;
bench/peers/setup_peers.sh installs it (and SIPp, sippy) when missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tests.harness import free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "bench" / "peers"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: SIPp's own defaults (1000 loops, 64 KB socket buffers) cap it at ~12-16k messages/s: with these
#: it is not the first bottleneck. Every SIPp client of the benches gets them, whatever it targets.
SIPP_TUNING = ["-max_recv_loops", "10000", "-max_sched_loops", "10000", "-buff_size", "4194304"]


# ------------------------------------------------------------------- measurements


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree(pid: int) -> list[int]:
    """``pid`` and its direct children (Kamailio's workers; the switch has none)."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = _stat_fields(int(entry))
            if f is not None and f[1] == str(pid):
                kids.append(int(entry))
    return [pid, *kids]


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of ``pids`` (all their threads); a process that is gone counts 0."""
    total = 0
    for p in pids:
        f = _stat_fields(p)
        if f is not None:
            total += int(f[11]) + int(f[12])  # utime, stime (fields 14, 15), all threads
    return total / CLK_TCK


def wait_idle(pids: Callable[[], list[int]], *, busy_below: float = 0.05, window: float = 0.5,
              max_wait: float = 30.0) -> float:
    """Wait until the server uses < ``busy_below`` of a core over ``window`` s: a step that
    overloaded it leaves a backlog (and SIPp retransmissions in the kernel buffers) that the
    next step must not inherit. Returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_wait:
        c0 = cpu_seconds(pids())
        time.sleep(window)
        if (cpu_seconds(pids()) - c0) / window < busy_below:
            break
    return time.monotonic() - t0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


# --------------------------------------------------------------------------- processes


def setup_peers(*names: str) -> dict[str, str]:
    """Run bench/peers/setup_peers.sh for ``names`` (kamailio, sippy; none = both): ``{name: path}``."""
    proc = subprocess.run(["bash", str(PEERS / "setup_peers.sh"), *names], capture_output=True, text=True,
                          timeout=900)
    found = dict(ln.split("=", 1) for ln in proc.stdout.splitlines() if "=" in ln)
    if proc.returncode != 0:
        raise RuntimeError(f"bench/peers/setup_peers.sh failed: {proc.stderr.strip()[-2000:]}")
    return found


def start_process(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session, stdout and stderr appended to ``log``."""
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)


def udp_port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nobody has ``host:port`` bound (a bind without SO_REUSEADDR succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _udp_inodes(port: int) -> set[str]:
    """Socket inodes of the UDP sockets bound to ``port`` (any IPv4 address)."""
    found = set()
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                found.add(cols[9])
    return found


def _socket_inodes(pids: Iterable[int]) -> set[str]:
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        found.add(link[8:-1])
    return found


def wait_udp_bound(port: int, p: subprocess.Popen[bytes], what: str, timeout: float = 20.0) -> None:
    """Wait until ``p`` (or one of its children) holds the UDP socket on ``port``.

    Checked by socket inode, not by a failing test bind: a server that sets SO_REUSEADDR (Kamailio)
    can share a UDP port with another one, so "the port is taken" does not mean "taken by ``p``".
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"{what} exited with {p.returncode} at start")
        bound = _udp_inodes(port)
        if bound and bound & _socket_inodes(tree(p.pid)):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not bind 127.0.0.1:{port}")


# --------------------------------------------------------------------------- Kamailio


def kamailio_db(dir_: Path, users: list[tuple[str, str]], realm: str = "127.0.0.1") -> None:
    """db_text ``version``, ``subscriber`` (plaintext passwords; ha1 columns filled: an empty one
    is NULL and makes db_text refuse the whole table) and ``htable`` (user -> password, for
    kamailio.cfg's WITH_HTABLE_AUTH) tables."""
    dir_.mkdir(parents=True, exist_ok=True)

    def md5(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()  # noqa: S324 - digest HA1, what Kamailio expects

    (dir_ / "version").write_text("id(int,auto) table_name(string) table_version(int) \n0:subscriber:7\n1:htable:2\n")
    rows = ["id(int,auto) username(string) domain(string) password(string) ha1(string) ha1b(string) "]
    for i, (u, p) in enumerate(users, 1):
        if ":" in u or ":" in p or "\n" in u + p:
            raise ValueError(f"db_text cannot hold {u!r} / {p!r} unescaped")
        rows.append(f"{i}:{u}:{realm}:{p}:{md5(f'{u}:{realm}:{p}')}:{md5(f'{u}@{realm}:{realm}:{p}')}")
    (dir_ / "subscriber").write_text("\n".join(rows) + "\n")
    ht = ["id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int) "]
    ht += [f"{i}:{u}:0:0:{p}:0" for i, (u, p) in enumerate(users, 1)]
    (dir_ / "htable").write_text("\n".join(ht) + "\n")


class Kamailio:
    """Kamailio from bench/peers/kamailio.cfg on a free loopback UDP port, files under ``home``.

    The realm is the From host (``$fd``): SIPp sends ``sip:user@127.0.0.1``, so the subscriber rows
    are for 127.0.0.1 (``use_domain`` is 0 anyway). Stopped by PID: SIGTERM to the main process,
    which ends its children; any child still there afterwards gets SIGKILL.
    """

    def __init__(self, binary: str, home: Path, users: list[tuple[str, str]], *, workers: int = 1,
                 shm_mb: int = 1024, defines: Sequence[str] = ()) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        kamailio_db(home / "db", users)
        self.version = subprocess.run([binary, "-v"], capture_output=True, text=True,
                                      timeout=10).stdout.split("\n", 1)[0].removeprefix("version: ").strip()
        for _ in range(20):
            self.port = free_port("udp")
            if udp_port_free(self.port):  # checked again right before the start: see wait_udp_bound
                break
        else:
            raise RuntimeError("no free UDP port for Kamailio")
        self.target = f"127.0.0.1:{self.port}"
        cmd = [binary, "-f", str(PEERS / "kamailio.cfg"), "-DD", "-E", "-n", str(workers), "-m", str(shm_mb),
               "-M", "16", "-A", f"LISTEN=udp:{self.target}", "-A", f'DBURL="text://{home / "db"}"',
               "-A", f'CTLSOCK="unix:{home / "kam_ctl"}"']
        for d in defines:
            cmd += ["-A", d]
        self.log = home / "kamailio.log"
        t0 = time.monotonic()
        self.proc = start_process(cmd, self.log)
        self.pid = self.proc.pid
        self._kids: list[int] = []
        try:
            wait_udp_bound(self.port, self.proc, "kamailio")
        except BaseException:
            self.stop()
            raise
        self._kids = tree(self.pid)[1:]
        self.start_seconds = time.monotonic() - t0

    def pids(self) -> list[int]:
        return tree(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        kids = self._kids or tree(self.pid)[1:]
        stop_process(self.proc)
        for k in kids:  # normally gone with the main process; never kill a recycled PID
            try:
                with open(f"/proc/{k}/comm") as c:
                    comm = c.read().strip()
            except OSError:
                continue
            if comm == "kamailio":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(k, signal.SIGKILL)
