"""What the SIPp benches share beyond the harness: idle waits, percentiles and the Kamailio peer.

Imported by bench_register.py and bench_calls.py (``from bench._common import ...``; both put
the repository root on ``sys.path`` first). Processes, ports, CPU and the SIPp runners come
from the shared ``harness`` package (the tests use the same one; nothing here imports
``tests``). Kamailio runs from bench/peers/kamailio.cfg; bench/peers/setup_peers.sh installs
it (and SIPp, sippy) when missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import ROOT
from harness.ports import free_port, udp_port_free
from harness.procs import cpu_seconds, start_process, stop_process, tree, wait_udp_bound

__all__ = ["PEERS", "SIPP_TUNING", "Kamailio", "kamailio_db", "percentile", "setup_peers", "wait_idle"]

PEERS = ROOT / "bench" / "peers"
#: SIPp's own defaults (1000 loops, 64 KB socket buffers) cap it at ~12-16k messages/s: with these
#: it is not the first bottleneck. Every SIPp client of the benches gets them, whatever it targets.
SIPP_TUNING = ["-max_recv_loops", "10000", "-max_sched_loops", "10000", "-buff_size", "4194304"]


# ------------------------------------------------------------------- measurements


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
