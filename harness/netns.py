"""A private network namespace for processes that will not run on a loopback-only host.

Why: baresip 1.0 refuses to start with only a loopback interface, and a namespace of
our own also means fixed ports (5060, 5062 ...) can never collide with another run or
with anything else on the machine. The namespace is held open by a tiny holder process
(``unshare --net`` → ``cat``) whose stdin is a pipe from us: if the test process dies,
the pipe closes, the holder exits and the namespace goes with it.

Processes are started in the namespace with ``nsenter --net`` (which execs, so the PID
we hold is the real process). Our own sockets (baresip's ctrl_tcp, the switch readiness
probe) are created from a short-lived thread that has ``setns()``-ed into the namespace:
a socket stays in the namespace it was created in, and the calling thread itself never
changes namespace. Both need CAP_SYS_ADMIN (root, as in CI).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from harness.softswitch import SwitchProcess

__all__ = ["VETH_ADDRESS", "NetNamespace", "NetnsSwitch", "can_make_namespaces", "which"]

T = TypeVar("T")

#: <sched.h>: CLONE_NEWNET, for setns(2).
CLONE_NEWNET = 0x40000000
#: Address on the namespace's veth (baresip needs a non-loopback interface carrying
#: the default route; a 127/8 address keeps all traffic local).
VETH_ADDRESS = "127.0.0.2"


def can_make_namespaces() -> bool:
    """unshare --net and setns(2) need CAP_SYS_ADMIN: in practice, root (as in CI)."""
    return os.geteuid() == 0


def which(name: str) -> str | None:
    """Like shutil.which, but also looks in /usr/sbin and /sbin (``ip`` lives there)."""
    for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/sbin"]:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None



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
        ip_dir = str(Path(which("ip") or "/usr/sbin/ip").parent)
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


