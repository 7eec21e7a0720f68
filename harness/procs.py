"""Child processes started, measured and stopped by PID, never by name.

Stopping by PID (SIGTERM, then SIGKILL) keeps parallel runs and other users'
processes safe; CPU and memory come from /proc, so a benchmark can measure a
server and its workers without any tool inside them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness import LOOPBACK

__all__ = ["cpu_seconds", "rss_kib", "start_process", "stop_process", "tree", "wait_udp_bound"]

CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def start_process(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session, stdout and stderr appended to ``log``."""
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)


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


def rss_kib(pid: int) -> int:
    """Resident set size (VmRSS, KiB) of ``pid``; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# ------------------------------------------------------------------- sockets


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
    raise RuntimeError(f"{what} did not bind {LOOPBACK}:{port}")
