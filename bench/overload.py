#!/usr/bin/env python3
"""An open-loop REGISTER load generator that understands 503 + Retry-After (for overload runs).

SIPp's scenarios treat a 503 as a failed call and cannot wait a Retry-After
before trying again, so overload shedding is measured with this small asyncio
client instead. Each registration is REGISTER → 401 → REGISTER with MD5 digest
(qop=auth) → 200, retransmitted on T1 doubling (0.5, 1, 2, 4 s ...) like an
adapter, given up after 32 s (Timer F).

Two modes, one JSON line of results on stdout:

``rate``  start ``--rate`` registrations per second for ``--duration`` s (open
          loop: arrivals do not wait for answers). A 503 ends that attempt as
          "shed". Reports offered, accepted (200), shed, failed (timeout or an
          error), goodput and p50/p99/max of the accepted registrations.
``storm`` every line starts once within ``--window`` s; a 503 waits its
          Retry-After and starts again, as an adapter does. Reports when the last
          line was registered, how many never were by ``--deadline`` s, and the
          number of 503s.

Lines come from a CSV ``number;password`` (one per line). Sources: ``--sockets``
UDP sockets on 127.0.0.1, lines spread over them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import socket
import sys
import time
from dataclasses import dataclass, field

STATUS = re.compile(rb"^SIP/2\.0 (\d{3})")
CALL_ID = re.compile(rb"\r\n(?:Call-ID|i):\s*([^\r\n]+)", re.I)
CSEQ = re.compile(rb"\r\nCSeq:\s*(\d+)", re.I)
NONCE = re.compile(rb'nonce="([^"]+)"')
REALM = re.compile(rb'realm="([^"]+)"')
ALGO = re.compile(rb"algorithm=([A-Za-z0-9-]+)")
RETRY = re.compile(rb"\r\nRetry-After:\s*(\d+)", re.I)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 1)


@dataclass
class Reg:
    number: str
    password: str
    sock: int
    call_id: str
    started: float
    cseq: int = 1
    data: bytes = b""
    timer: asyncio.TimerHandle | None = None
    interval: float = 0.5
    deadline: float = 0.0
    done: asyncio.Future[tuple[str, int]] | None = None


@dataclass
class Stats:
    accepted: list[float] = field(default_factory=list)
    shed: int = 0
    failed: int = 0
    retransmissions: int = 0
    other: dict[str, int] = field(default_factory=dict)
    #: per second since the start: attempts started, registered (200), shed (503), retransmissions, timeouts
    timeline: dict[int, list[int]] = field(default_factory=dict)

    def tick(self, second: int, column: int) -> None:
        self.timeline.setdefault(second, [0, 0, 0, 0, 0])[column] += 1


class Client(asyncio.DatagramProtocol):
    def __init__(self, gen: Generator, index: int) -> None:
        self.gen, self.index = gen, index
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]
        # A client slower than the switch must not lose answers in its own socket queue: a
        # lost 503 or 200 is a retransmission and a "timeout" the switch did not cause.
        sock = transport.get_extra_info("socket")
        for opt in (33, socket.SO_RCVBUF):  # SO_RCVBUFFORCE (root), else capped by rmem_max
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, 2 * 1024 * 1024)
                break
            except OSError:
                continue

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.gen.received(data)


class Generator:
    def __init__(self, target: tuple[str, int], lines: list[tuple[str, str]], sockets: int) -> None:
        self.target = target
        self.lines = lines
        self.n_sockets = sockets
        self.clients: list[Client] = []
        self.live: dict[str, Reg] = {}
        self.stats = Stats()
        self.loop = asyncio.get_running_loop()
        self._seq = 0
        self.host = target[0]
        self.t0 = self.loop.time()

    def _tick(self, column: int) -> None:
        self.stats.tick(int(self.loop.time() - self.t0), column)

    async def open(self) -> None:
        for i in range(self.n_sockets):
            _, proto = await self.loop.create_datagram_endpoint(lambda i=i: Client(self, i), local_addr=("127.0.0.1", 0))
            self.clients.append(proto)

    def _request(self, reg: Reg, auth: str = "") -> bytes:
        c = self.clients[reg.sock]
        uri = f"sip:{self.host}"
        branch = f"z9hG4bK{reg.call_id}-{reg.cseq}"
        extra = f"Authorization: {auth}\r\n" if auth else ""
        return (
            f"REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c.port};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{reg.number}@{self.host}>;tag={reg.call_id[:8]}\r\n"
            f"To: <sip:{reg.number}@{self.host}>\r\nCall-ID: {reg.call_id}\r\nCSeq: {reg.cseq} REGISTER\r\n"
            f"Contact: <sip:{reg.number}@127.0.0.1:{c.port}>\r\nExpires: 3600\r\n{extra}Content-Length: 0\r\n\r\n"
        ).encode()

    def _send(self, reg: Reg) -> None:
        t = self.clients[reg.sock].transport
        assert t is not None
        t.sendto(reg.data, self.target)
        reg.timer = self.loop.call_later(reg.interval, self._retransmit, reg)

    def _retransmit(self, reg: Reg) -> None:
        if self.loop.time() >= reg.deadline:
            self._finish(reg, "timeout", 0)
            return
        self.stats.retransmissions += 1
        self._tick(3)
        reg.interval = min(reg.interval * 2, 4.0)
        self._send(reg)

    def start(self, number: str, password: str) -> asyncio.Future[tuple[str, int]]:
        self._seq += 1
        call_id = f"{os.getpid():x}{self._seq:x}{random.getrandbits(32):08x}"
        now = self.loop.time()
        reg = Reg(number, password, self._seq % self.n_sockets, call_id, now, deadline=now + 32.0)
        reg.done = self.loop.create_future()
        reg.data = self._request(reg)
        self.live[call_id] = reg
        self._tick(0)
        self._send(reg)
        return reg.done

    def _finish(self, reg: Reg, outcome: str, retry_after: int) -> None:
        if reg.timer is not None:
            reg.timer.cancel()
        self.live.pop(reg.call_id, None)
        if outcome == "ok":
            self.stats.accepted.append((self.loop.time() - reg.started) * 1000.0)
            self._tick(1)
        elif outcome == "shed":
            self.stats.shed += 1
            self._tick(2)
        else:
            if outcome == "timeout":
                self._tick(4)
            self.stats.failed += 1
            self.stats.other[outcome] = self.stats.other.get(outcome, 0) + 1
        assert reg.done is not None
        if not reg.done.done():
            reg.done.set_result((outcome, retry_after))

    def received(self, data: bytes) -> None:
        m, cid = STATUS.match(data), CALL_ID.search(data)
        if m is None or cid is None:
            return
        reg = self.live.get(cid.group(1).decode())
        if reg is None:
            return
        cseq = CSEQ.search(data)
        if cseq is None or int(cseq.group(1)) != reg.cseq:
            return  # an answer to the previous attempt
        status = int(m.group(1))
        if status < 200:
            return
        if status == 401 and reg.cseq == 1:
            nonce, realm = NONCE.search(data), REALM.search(data)
            if nonce is None or realm is None:
                self._finish(reg, "bad-401", 0)
                return
            if reg.timer is not None:
                reg.timer.cancel()
            reg.cseq = 2
            reg.interval = 0.5
            reg.data = self._request(reg, self._digest(reg, realm.group(1).decode(), nonce.group(1).decode()))
            self._send(reg)
        elif status == 200 and reg.cseq == 2:
            self._finish(reg, "ok", 0)
        elif status == 503:
            ra = RETRY.search(data)
            self._finish(reg, "shed", int(ra.group(1)) if ra else 5)
        else:
            self._finish(reg, f"status-{status}", 0)

    def _digest(self, reg: Reg, realm: str, nonce: str) -> str:
        uri = f"sip:{self.host}"
        md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
        ha1 = md5(f"{reg.number}:{realm}:{reg.password}")
        ha2 = md5(f"REGISTER:{uri}")
        cnonce, nc = reg.call_id[-8:], "00000001"
        resp = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        return (f'Digest username="{reg.number}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{resp}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"')


async def rate_mode(gen: Generator, rate: float, duration: float) -> dict[str, object]:
    futures = []
    t0 = gen.loop.time()
    n = int(rate * duration)
    for i in range(n):
        due = t0 + i / rate
        delay = due - gen.loop.time()
        if delay > 0.001:
            await asyncio.sleep(delay)
        number, password = gen.lines[i % len(gen.lines)]
        futures.append(gen.start(number, password))
    sent_for = gen.loop.time() - t0
    await asyncio.gather(*futures)
    s = gen.stats
    return {"mode": "rate", "offered_per_s": round(n / max(sent_for, 1e-9), 1), "target_per_s": rate,
            "offered": n, "accepted": len(s.accepted), "shed": s.shed, "failed": s.failed, "errors": s.other,
            "goodput_per_s": round(len(s.accepted) / duration, 1), "retransmissions": s.retransmissions,
            "p50_ms": pct(s.accepted, 0.50), "p99_ms": pct(s.accepted, 0.99), "max_ms": pct(s.accepted, 1.0)}


async def storm_mode(gen: Generator, window: float, deadline: float) -> dict[str, object]:
    t0 = gen.t0 = gen.loop.time()
    registered_at: list[float] = []
    sheds = 0

    async def line(number: str, password: str) -> None:
        nonlocal sheds
        await asyncio.sleep(random.uniform(0, window))
        while gen.loop.time() - t0 < deadline:
            outcome, retry_after = await gen.start(number, password)
            if outcome == "ok":
                registered_at.append(gen.loop.time() - t0)
                return
            if outcome == "shed":
                sheds += 1
                await asyncio.sleep(retry_after)
            else:
                await asyncio.sleep(1.0)

    await asyncio.gather(*(line(n, p) for n, p in gen.lines))
    s = gen.stats
    return {"mode": "storm", "lines": len(gen.lines), "window_s": window, "registered": len(registered_at),
            "lost": len(gen.lines) - len(registered_at),
            "all_registered_after_s": round(max(registered_at), 1) if len(registered_at) == len(gen.lines) else None,
            "p50_registered_after_s": pct(registered_at, 0.5), "p99_registered_after_s": pct(registered_at, 0.99),
            "sheds": sheds, "timeouts": s.failed, "retransmissions": s.retransmissions,
            "p99_accepted_ms": pct(s.accepted, 0.99),
            "timeline": {"columns": ["started", "registered", "shed", "retransmissions", "timeouts"],
                         "per_second": [s.timeline.get(i, [0, 0, 0, 0, 0]) for i in range(max(s.timeline, default=-1) + 1)]}}


async def amain(args: argparse.Namespace) -> dict[str, object]:
    host, _, port = args.target.rpartition(":")
    lines = []
    with open(args.lines_csv) as f:
        for row in f:
            row = row.strip()
            if row and not row.startswith(("SEQUENTIAL", "RANDOM", "USER")):
                number, password = row.split(";")[:2]
                lines.append((number, password))
    if args.limit:
        lines = lines[: args.limit]
    gen = Generator((host, int(port)), lines, args.sockets)
    await gen.open()
    if args.mode == "rate":
        return await rate_mode(gen, args.rate, args.duration)
    return await storm_mode(gen, args.window, args.deadline)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["rate", "storm"])
    p.add_argument("--target", required=True, help="HOST:PORT of the switch")
    p.add_argument("--lines-csv", required=True, help="number;password per line")
    p.add_argument("--limit", type=int, default=0, help="use only the first N lines")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--deadline", type=float, default=60.0)
    p.add_argument("--sockets", type=int, default=64)
    args = p.parse_args(argv)
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        uvloop.install()
    except ImportError:
        pass
    t0 = time.monotonic()
    result = asyncio.run(amain(args))
    result["wall_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
