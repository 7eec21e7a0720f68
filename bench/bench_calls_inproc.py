"""CPU cost of one call through the B2BUA inside the switch, no sockets.

Real services and database; a minimal caller and callee answer the switch's
datagrams in-process: INVITE → 407 → INVITE with credentials → (switch → callee
INVITE) 100/180/200 → 200 → ACK → ACK → BYE → BYE → 200 → 200. Only the socket
send is replaced by a capture. Prints µs of CPU per call, i.e. the ceiling of
one core, and with --profile the top of a cProfile.

It also reports the cyclic garbage collector during the run (``gc.callbacks``):
collections per generation, their longest and total pause, and how many
objects they found unreachable. Everything the collector frees is a reference
cycle that reference counting could not free, so "unreachable per call" is
the direct measure of the cycles a call leaves behind; the pauses are what
the post-dial-delay p99 of a loaded switch is made of. ``--rate`` paces the
calls (INVITE->180 then counts from each call's due time) so that the switch
reaches the steady state of a real one: after 32 s as many calls leave their
linger timers as start. ``--find-cycles`` runs with the collector off and
then lists the types of everything that only it could free (``--settle 40``
first lets every timer expire); ``--gc-threshold`` compares with thresholds
alone instead of ``tune_gc()``.

    .venv/bin/python bench/bench_calls_inproc.py [--db URL] [-n 2000] [--profile]
    .venv/bin/python bench/bench_calls_inproc.py -n 24000 --rate 400 [--gc-threshold 10000,50,1000|off]
    .venv/bin/python bench/bench_calls_inproc.py -n 2000 --find-cycles --settle 40 [--live]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import json
import pstats
import re
import sys
import tempfile
import time
import tracemalloc
import types
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switch import _core_loader, gcstats, memstats  # noqa: E402
from switch import app as app_mod  # noqa: E402
from switch.database import open_database  # noqa: E402
from switch.settings import Settings  # noqa: E402
from switch.sip.parser import parse_message  # noqa: E402
from switch.store import importer  # noqa: E402

CALLER = ("22000001", "password00001", 5061)
CALLEE = ("22000002", "password00002", 5062)


def md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def response_to(req_bytes: bytes, status: int, reason: str, to_tag: str, extra: str = "", body: str = "") -> bytes:
    """A UAS response built the RFC 3261 §8.2.6 way from the raw request."""
    req = parse_message(req_bytes)
    vias = "".join(f"Via: {v}\r\n" for v in req.headers.values("Via"))
    to = req.headers.get("To") or ""
    if ";tag=" not in to and status > 100:
        to += f";tag={to_tag}"
    ct = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"SIP/2.0 {status} {reason}\r\n{vias}From: {req.headers.get('From')}\r\nTo: {to}\r\n"
        f"Call-ID: {req.call_id}\r\nCSeq: {req.headers.get('CSeq')}\r\n{extra}{ct}Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


class GcMonitor:
    """Collections per generation, their pauses and what they freed, from ``gc.callbacks``.

    Each pause is taken twice: wall time (what a call waiting behind it sees)
    and the thread's CPU time (the collector's own work; on a shared box the
    wall time also counts the moments the process was not scheduled at all).
    """

    def __init__(self) -> None:
        # arrays, not lists of floats: a float per call made during the run would sit in every
        # pymalloc arena and keep it from going back to the system (what --mallocstats measures)
        self.pauses = [array("d"), array("d"), array("d")]
        self.cpu = [array("d"), array("d"), array("d")]
        self.collected = [0, 0, 0]
        self.when_t = array("d")
        self.when_gen = array("b")
        """(time, generation) of every collection: its rate once the first calls' timers expire."""
        self._started = 0.0
        self._started_cpu = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started_cpu = time.thread_time()
            self._started = time.perf_counter()
            return
        wall = time.perf_counter() - self._started
        cpu = time.thread_time() - self._started_cpu
        gen = info["generation"]
        self.pauses[gen].append(wall)
        self.cpu[gen].append(cpu)
        self.when_t.append(self._started)
        self.when_gen.append(gen)
        self.collected[gen] += info["collected"]

    def start(self) -> GcMonitor:
        gc.callbacks.append(self)
        return self

    def stop(self) -> None:
        gc.callbacks.remove(self)

    def report(self, calls: int, label: str = "run") -> None:
        per = max(calls, 1)
        for gen, pauses in enumerate(self.pauses):
            p = sorted(pauses) or [0.0]
            c = sorted(self.cpu[gen]) or [0.0]
            print(f"gc {label} gen{gen}: {len(pauses):5d} collections  median {p[len(p) // 2] * 1e3:6.2f} ms  "
                  f"max {p[-1] * 1e3:7.2f} ms (cpu {c[-1] * 1e3:7.2f})  total {sum(p) * 1e3:8.1f} ms  "
                  f"unreachable {self.collected[gen]}")
        every = [x for pauses in self.pauses for x in pauses] or [0.0]
        every_cpu = [x for cpu in self.cpu for x in cpu] or [0.0]
        collected = sum(self.collected)
        print(f"gc {label} all: {sum(map(len, self.pauses))} collections, max pause {max(every) * 1e3:.2f} ms "
              f"(cpu {max(every_cpu) * 1e3:.2f}), {sum(x > 0.010 for x in every)} over 10 ms "
              f"(cpu {sum(x > 0.010 for x in every_cpu)}), total {sum(every) * 1e3:.1f} ms "
              f"({sum(every) / per * 1e6:.1f} µs per call), unreachable objects {collected} ({collected / per:.2f} per call)")

    def steady_rate(self, begin: float, end: float) -> None:
        """Collections per second per generation between ``begin`` and ``end`` (perf_counter)."""
        if end <= begin:
            return
        counts = [sum(1 for t, g in zip(self.when_t, self.when_gen) if begin <= t < end and g == gen) for gen in range(3)]
        print(f"gc steady state ({end - begin:.0f} s after the first {STEADY_AFTER:.0f} s): "
              + ", ".join(f"gen{gen} {n / (end - begin):.2f}/s" for gen, n in enumerate(counts)))


#: A call's transactions linger 32 s (Timer D/J/L/M): after that as many calls' objects die as are made.
STEADY_AFTER = 35.0


def _type_name(obj: object) -> str:
    """Type of an object, with where its code lives for functions, methods, frames and cells."""
    t = type(obj)
    name = f"{t.__module__}.{t.__qualname__}"
    if isinstance(obj, types.FunctionType):
        return f"{name} {obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, types.MethodType):
        return f"{name} {type(obj.__self__).__qualname__}.{obj.__func__.__qualname__}"
    if isinstance(obj, types.FrameType):
        return f"{name} {obj.f_code.co_qualname}"
    if isinstance(obj, types.CellType):
        try:
            return f"{name} -> {type(obj.cell_contents).__qualname__}"
        except ValueError:  # an empty cell
            return name
    return name


def live_census(calls: int, top: int = 25) -> None:
    """Objects the collector tracks now (not frozen at start-up): what every collection has to walk."""
    census = Counter(_type_name(o) for o in gc.get_objects())
    total = sum(census.values())
    print(f"live tracked objects: {total} ({total / max(calls, 1):.1f} per call)")
    for name, n in census.most_common(top):
        print(f"  {n:8d}  {n / max(calls, 1):7.2f}/call  {name}")


def _all_objects() -> dict[int, object]:
    """Every object the collector tracks and everything they refer to directly (strings, ints, bytes)."""
    objs = gc.get_objects()
    seen = {id(o): o for o in objs}
    for o in objs:
        for r in gc.get_referents(o):
            seen.setdefault(id(r), r)
    return seen


def arena_census(before_ids: set[int], top: int = 15, samples: int = 200) -> None:
    """Small objects made during the calls that still live in 1 MiB address ranges holding nothing before.

    They are what keeps pymalloc from returning those arenas: one live block pins its 1 MiB.
    """
    buckets_before = {i >> 20 for i in before_ids}
    now = _all_objects()
    new = [o for i, o in now.items() if i not in before_ids and (i >> 20) not in buckets_before
           and sys.getsizeof(o) <= 512]
    del now
    by_bucket = Counter(id(o) >> 20 for o in new)
    print(f"arena census: {len(new)} small objects made since the calls in {len(by_bucket)} new 1 MiB ranges")
    census = Counter(_type_name(o) for o in new)
    for name, n in census.most_common(top):
        held = Counter()
        picked = [o for o in new if _type_name(o) == name][:samples // top]
        for o in picked:
            for ref in gc.get_referrers(o):
                if ref is new or ref is picked:
                    continue
                owner = _type_name(ref)
                if isinstance(ref, dict):
                    owners = [_type_name(x) for x in gc.get_referrers(ref) if x is not new and x is not picked
                              and not isinstance(x, list)][:1]
                    owner = f"dict of {owners[0] if owners else '?'}"
                held[owner] += 1
        print(f"  {n:8d}  {name:30s} held by {', '.join(f'{k} ({v})' for k, v in held.most_common(4))}")
        for o in picked[:2]:
            print(f"            e.g. {repr(o)[:110]}")


def rss_mib() -> float:
    """This process's resident memory (``switch.memstats``, as /health reports it)."""
    return memstats.rss_mib() or 0.0


def heap_report(before: tracemalloc.Snapshot, calls: int, top: int = 20, frames: int = 3) -> None:
    """What the calls left allocated: tracemalloc's diff since ``before`` by traceback, and the RSS."""
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    diff = snap.compare_to(before, "traceback")
    grown = sum(d.size_diff for d in diff)
    traced, peak = tracemalloc.get_traced_memory()
    print(f"tracemalloc: {grown / 2**20:+.1f} MiB still allocated since before the calls ({grown / max(calls, 1):.0f} B "
          f"per call), traced now {traced / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB; RSS {rss_mib():.1f} MiB")
    for d in diff[:top]:
        print(f"  {d.size_diff / 1024:+9.1f} KiB {d.count_diff:+8d} blocks")
        for line in d.traceback.format()[-2 * frames:]:
            print(f"      {line}")


def pymalloc_report() -> None:
    """pymalloc's own figures: how much of the RSS is arenas, and how full they are (fragmentation)."""
    import os

    r, w = os.pipe()
    saved = os.dup(2)
    os.dup2(w, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    keep = ("# arenas allocated current", "# arenas reclaimed", "# arenas highwater", "# bytes in allocated blocks",
            "# bytes in available blocks")
    lines = text.splitlines()
    for line in lines:
        if line.startswith(keep) or line.endswith("bytes/arena") or "unused pools" in line:
            print(f"pymalloc: {line}")
    # the size classes holding most of the arenas' pools
    rows = [ln.split() for ln in lines if re.match(r"\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+$", ln)]
    for cls, size, pools, used, avail in sorted(rows, key=lambda r: -int(r[2]))[:int(os.environ.get("BENCH_CLASSES", 8))]:
        print(f"pymalloc:   {size:>4} B blocks: {pools:>6} pools, {used:>8} in use, {avail:>8} free")
    glibc_report()
    print(f"RSS {rss_mib():.1f} MiB")


def glibc_report() -> None:
    """glibc's mallinfo2 and SQLite's own count (switch.memstats, as /health shows them)."""
    m = memstats.snapshot()
    if m.get("heap_mib") is not None:
        print(f"glibc: heap {m['heap_mib']:.1f} MiB (in use {m['heap_in_use_mib']:.1f}, free {m['heap_free_mib']:.1f}), "
              f"mmapped {m['mmapped_mib']:.1f} MiB")
    if m["sqlite_mib"] is not None:
        print(f"sqlite: {m['sqlite_mib']:.1f} MiB in use of that heap")


def cycle_census(calls: int, top: int = 40) -> None:
    """Collect with DEBUG_SAVEALL and print the types of everything that was only reachable through cycles."""
    garbage = gcstats.unreachable_objects()
    census = Counter(_type_name(o) for o in garbage)
    del garbage
    print(f"cycle census: {sum(census.values())} unreachable objects ({sum(census.values()) / max(calls, 1):.2f} per call)")
    for name, n in census.most_common(top):
        print(f"  {n:8d}  {n / max(calls, 1):7.2f}/call  {name}")


SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="")
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--find-cycles", action="store_true",
                    help="run with the cyclic GC off, then list the types of what only it could free")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="idle seconds after the run, so transaction and dialog timers (32 s) expire and free the calls")
    ap.add_argument("--live", action="store_true",
                    help="list the tracked objects alive right after the run (and again after --settle)")
    ap.add_argument("--mallocstats", action="store_true",
                    help="after the run (and --settle) print pymalloc's arena figures (sys._debugmallocstats summary)")
    ap.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                    help="trace allocations with this many frames from before the calls; after the run (and "
                         "--settle) print the top 20 tracebacks still holding memory and the RSS")
    ap.add_argument("--tracemalloc-peak", action="store_true",
                    help="with --tracemalloc, also print the top 30 right after the calls, while their "
                         "transactions still linger (Timers J/L/M): what a call burst's peak is made of")
    ap.add_argument("--arena-census", action="store_true",
                    help="after --settle, list the small objects made during the calls that sit in new arenas")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="pace the calls at this many per second (INVITE->180 then counts from each call's due time, "
                         "so a collector pause also delays the calls queued behind it); default: back to back")
    ap.add_argument("--gc-threshold", default="",
                    help="instead of tune_gc(): freeze and these thresholds only, e.g. 10000,50,1000 (tune_gc() "
                         "before its young collections on a clock); 'off' disables the collector")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    s = Settings()
    s.database_url = args.db or f"sqlite+aiosqlite:///{tmp}/bench.db"
    s.key_file = str(tmp / "key")
    s.sip_listen = [("127.0.0.1", 0)]
    s.qualify_interval = 0
    s.rate_limit = 0
    s.digest_algorithms = ("MD5",)
    doc = {"customers": [{"id": "C1", "name": "x", "adapters": [{"mac": "00:0e:08:00:00:01", "model": "spa112", "lines": [
        {"port": 1, "number": CALLER[0], "password": CALLER[1]}, {"port": 2, "number": CALLEE[0], "password": CALLEE[1]}]}]}]}
    (tmp / "imp.json").write_text(json.dumps(doc))
    db = await open_database(s)
    await importer.import_document(db.session_factory, importer.load_import_file(tmp / "imp.json"), db.secret_box,
                                   s.effective_realm())
    await db.close()
    services = await app_mod.start(s)
    if args.gc_threshold or args.find_cycles:
        # Thresholds only, no collections on a clock: how tune_gc() worked before (for comparison),
        # or nothing at all, so that every cycle is still there for the census.
        gc.collect()
        gc.freeze()
        if args.gc_threshold == "off" or args.find_cycles:
            gc.disable()
        else:
            gc.set_threshold(*(int(x) for x in args.gc_threshold.split(",")))
        print(f"gc: thresholds only {gc.get_threshold()}{' (disabled)' if not gc.isenabled() else ''}")
    else:
        app_mod.tune_switch_gc(services)  # as `softswitch run` does
        print(f"gc: tune_switch_gc(), thresholds {gc.get_threshold()} and young collections on a clock")
    print(f"SIP core: {_core_loader.STATE}")
    ep = services.endpoint
    realm = s.effective_realm()
    host, port = ep.addresses[0]
    sent: list[tuple[bytes, int]] = []
    for u in ep.udp:
        u.send = lambda data, h, p: sent.append((data, p))  # type: ignore[method-assign,assignment]

    def take(port_: int) -> list[bytes]:
        got = [d for d, p in sent if p == port_]
        sent[:] = [(d, p) for d, p in sent if p != port_]
        return got

    def rx(data: str | bytes, from_port: int) -> None:
        ep.udp_received(data.encode() if isinstance(data, str) else data, "127.0.0.1", from_port)

    # register the callee so the switch can reach it
    def register(user: str, pw: str, p: int) -> None:
        base = (f"REGISTER sip:{realm} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bKr{p}{{n}};rport\r\n"
                f"From: <sip:{user}@{realm}>;tag=r{p}\r\nTo: <sip:{user}@{realm}>\r\nCall-ID: reg{p}\r\n"
                f"CSeq: {{n}} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{p}>\r\nMax-Forwards: 70\r\nExpires: 3600\r\n{{auth}}Content-Length: 0\r\n\r\n")
        rx(base.format(n=1, auth=""), p)
        nonce = re.search(rb'nonce="([^"]+)"', take(p)[-1]).group(1).decode()  # type: ignore[union-attr]
        resp = md5(f"{md5(f'{user}:{realm}:{pw}')}:{nonce}:00000001:c:auth:{md5(f'REGISTER:sip:{realm}')}")
        auth = (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="sip:{realm}", '
                f'response="{resp}", algorithm=MD5, cnonce="c", qop=auth, nc=00000001\r\n')
        rx(base.format(n=2, auth=auth), p)

    register(*CALLEE)
    for _ in range(50):
        await asyncio.sleep(0.01)
        if any(b" 200 OK" in d for d, p in sent if p == CALLEE[2]):
            break
    take(CALLEE[2])

    cuser, cpw, cport = CALLER
    uri = f"sip:{CALLEE[0]}@{realm}"

    def invite(i: int, cseq: int, auth: str = "") -> str:
        return (f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bKi{i}-{cseq};rport\r\n"
                f"From: <sip:{cuser}@{realm}>;tag=a{i}\r\nTo: <{uri}>\r\nCall-ID: call{i}@bench\r\nCSeq: {cseq} INVITE\r\n"
                f"Contact: <sip:{cuser}@127.0.0.1:{cport}>\r\nMax-Forwards: 70\r\n{auth}Content-Type: application/sdp\r\n"
                f"Content-Length: {len(SDP)}\r\n\r\n{SDP}")

    prof = cProfile.Profile() if args.profile else None
    if args.find_cycles:
        gc.collect()  # the set-up's own garbage: the census counts what the calls leave
    if args.tracemalloc:
        gc.collect()
        tracemalloc.start(args.tracemalloc)
    if args.mallocstats:
        gc.collect()
        print("before the calls:")
        pymalloc_report()
    snap0 = tracemalloc.take_snapshot() if args.tracemalloc else None
    before_ids = set(_all_objects()) if args.arena_census else set()
    print(f"RSS before the calls: {rss_mib():.1f} MiB")
    monitor = GcMonitor().start()
    ok = 0
    pdd = array("d")  # not a list of floats: see GcMonitor
    t_cpu = time.process_time()
    t_wall = time.perf_counter()
    if prof:
        prof.enable()
    for i in range(args.n):
        if args.rate > 0:
            t0 = t_wall + i / args.rate
            delay = t0 - time.perf_counter()
            await asyncio.sleep(delay if delay > 0 else 0)  # timers, CDR batches and the rest run here
        else:
            t0 = time.perf_counter()
        rx(invite(i, 1), cport)
        c407 = [d for d in take(cport) if b" 407 " in d][0]
        rx(f"ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bKi{i}-1;rport\r\n"
           f"From: <sip:{cuser}@{realm}>;tag=a{i}\r\nTo: {parse_message(c407).headers.get('To')}\r\nCall-ID: call{i}@bench\r\n"
           f"CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", cport)
        nonce = re.search(rb'nonce="([^"]+)"', c407).group(1).decode()  # type: ignore[union-attr]
        resp = md5(f"{md5(f'{cuser}:{realm}:{cpw}')}:{nonce}:00000001:c{i}:auth:{md5(f'INVITE:{uri}')}")
        pauth = (f'Proxy-Authorization: Digest username="{cuser}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                 f'response="{resp}", algorithm=MD5, cnonce="c{i}", qop=auth, nc=00000001\r\n')
        rx(invite(i, 2, pauth), cport)
        b_invite = [d for d in take(CALLEE[2]) if d.startswith(b"INVITE ")][0]
        rx(response_to(b_invite, 100, "Trying", ""), CALLEE[2])
        rx(response_to(b_invite, 180, "Ringing", f"b{i}"), CALLEE[2])
        if any(b" 180 " in d for d in take(cport)):
            pdd.append(time.perf_counter() - t0)
        rx(response_to(b_invite, 200, "OK", f"b{i}", f"Contact: <sip:{CALLEE[0]}@127.0.0.1:{CALLEE[2]}>\r\n", SDP), CALLEE[2])
        a200 = [d for d in take(cport) if b" 200 OK" in d][-1]
        a_to = parse_message(a200).headers.get("To")
        rx(f"ACK sip:{CALLEE[0]}@{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bKack{i};rport\r\n"
           f"From: <sip:{cuser}@{realm}>;tag=a{i}\r\nTo: {a_to}\r\nCall-ID: call{i}@bench\r\nCSeq: 2 ACK\r\n"
           f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", cport)
        take(CALLEE[2])  # ACK to the callee
        rx(f"BYE sip:{CALLEE[0]}@{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bKbye{i};rport\r\n"
           f"From: <sip:{cuser}@{realm}>;tag=a{i}\r\nTo: {a_to}\r\nCall-ID: call{i}@bench\r\nCSeq: 3 BYE\r\n"
           f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", cport)
        b_bye = [d for d in take(CALLEE[2]) if d.startswith(b"BYE ")]
        if b_bye:
            rx(response_to(b_bye[0], 200, "OK", f"b{i}"), CALLEE[2])
        if any(b" 200 OK" in d and b"BYE" in d for d in take(cport)):
            ok += 1
        if i % 50 == 49 and args.rate <= 0:
            await asyncio.sleep(0)  # let CDR batches and timers run
    if prof:
        prof.disable()
    cpu = time.process_time() - t_cpu
    wall = time.perf_counter() - t_wall
    monitor.stop()
    if args.live:
        live_census(args.n)
    await asyncio.sleep(0.3)
    pdd = array("d", sorted(pdd))
    print(f"database: {s.database_url.split('://')[0]}")
    print(f"calls: {ok}/{args.n} completed")
    print(f"CPU per call (INVITE/407/ACK/INVITE/100/180/200/ACK/BYE/200, both legs): {cpu / args.n * 1e6:.0f} µs"
          f"  -> one-core ceiling {args.n / cpu:.0f} calls/s")
    if pdd:
        print(f"in-process INVITE->180 p50 {pdd[len(pdd) // 2] * 1e3:.2f} ms  p99 {pdd[int(len(pdd) * 0.99)] * 1e3:.2f} ms"
              f"  p99.9 {pdd[int(len(pdd) * 0.999)] * 1e3:.2f} ms  max {pdd[-1] * 1e3:.2f} ms"
              + (f"  (paced at {args.rate:g}/s, from each call's due time)" if args.rate > 0 else ""))
    print(f"wall {args.n / wall:.0f} calls/s; RSS {rss_mib():.1f} MiB")
    monitor.report(args.n)
    monitor.steady_rate(t_wall + STEADY_AFTER, t_wall + wall)
    if not args.find_cycles:
        # What a full collection costs with this many calls' transactions still alive (32 s of them
        # at a steady rate): the pause tune_gc() has to make rare.
        tracked = len(gc.get_objects())
        t_full = time.perf_counter()
        gc.collect()
        print(f"one full collection now: {(time.perf_counter() - t_full) * 1e3:.1f} ms for {tracked} tracked objects")
    if snap0 is not None and args.tracemalloc_peak:
        # What the calls' lingering transactions hold (Timers J/L/M), before they expire.
        print("right after the calls:")
        gc.collect()
        heap_report(snap0, args.n, top=30, frames=args.tracemalloc)
    if args.settle > 0:
        idle = GcMonitor().start()
        await asyncio.sleep(args.settle)
        idle.stop()
        idle.report(args.n, f"settle {args.settle:g}s")
        print(f"left after settling: {services.endpoint.layer.live_transactions} transactions; RSS {rss_mib():.1f} MiB")
        await services.hot_store.release_memory()
        gc.collect()
        memstats.trim_heap()
        print(f"after the writer's caches, a full collection and malloc_trim (as tune_gc's full ones): RSS {rss_mib():.1f} MiB")
        if args.mallocstats:
            glibc_report()
        if args.live:
            live_census(args.n)
        if args.arena_census:
            arena_census(before_ids)
    if args.mallocstats:
        gc.collect()
        pymalloc_report()
    if snap0 is not None:
        gc.collect()
        heap_report(snap0, args.n, frames=args.tracemalloc)
    if args.find_cycles:
        cycle_census(args.n)
        gc.enable()
    await app_mod.stop(services)
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(35)


if __name__ == "__main__":
    asyncio.run(main())
