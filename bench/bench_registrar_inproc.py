"""CPU cost of one digest-authenticated registration inside the switch, no sockets.

Builds the real services (registrar, location, group commit to a real SQLite
or PostgreSQL database) and feeds REGISTER datagrams straight into the
endpoint, answering each 401 challenge like a client would. Only the socket
send is replaced by a capture. Prints µs of CPU per registration (two
transactions), i.e. the ceiling one core could reach. Optional: --profile.

    .venv/bin/python bench/bench_registrar_inproc.py [--db URL] [-n 3000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import pstats
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switch import app as app_mod  # noqa: E402
from switch.database import open_database  # noqa: E402
from switch.settings import Settings  # noqa: E402
from switch.store import importer  # noqa: E402


def md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def _tracked_types() -> Counter[str]:
    gc.collect()
    return Counter(type(o).__qualname__ for o in gc.get_objects())


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="")
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--sort", default="cumulative", help="pstats sort key for --profile (cumulative, tottime)")
    ap.add_argument("--survivors", action="store_true",
                    help="list the garbage-collector-tracked objects a registration leaves alive (what young collections walk)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    url = args.db or f"sqlite+aiosqlite:///{tmp}/bench.db"
    s = Settings()
    s.database_url = url
    s.key_file = str(tmp / "key")
    s.sip_listen = [("127.0.0.1", 0)]
    s.qualify_interval = 0
    s.rate_limit = 0
    s.digest_algorithms = ("MD5",)
    doc = {"customers": [{"id": f"C{i}", "name": "x", "adapters": [{"mac": f"00:0e:08:00:{i // 256:02x}:{i % 256:02x}", "model": "spa112",
           "lines": [{"port": p, "number": f"2{i * 2 + p:07d}", "password": f"password{i * 2 + p:05d}"} for p in (1, 2)]}]} for i in range(args.lines // 2)]}
    (tmp / "imp.json").write_text(__import__("json").dumps(doc))
    db = await open_database(s)
    await importer.import_document(db.session_factory, importer.load_import_file(tmp / "imp.json"), db.secret_box,
                                   s.effective_realm())
    await db.close()
    services = await app_mod.start(s)
    app_mod.tune_switch_gc(services)  # as `softswitch run` does
    ep = services.endpoint
    sent: list[bytes] = []
    waiter = asyncio.Event()

    def capture(data: bytes, host: str, port: int) -> None:
        sent.append(data)
        waiter.set()

    for u in ep.udp:
        u.send = capture  # type: ignore[method-assign]
    realm = s.effective_realm()
    users = [(f"2{i + 1:07d}", f"password{i + 1:05d}") for i in range(args.lines)]

    def register(i: int, cseq: int, auth: str = "") -> bytes:
        user = users[i % len(users)][0]
        return (
            f"REGISTER sip:{realm} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{i}-{cseq};rport\r\n"
            f"From: <sip:{user}@{realm}>;tag={i}t\r\nTo: <sip:{user}@{realm}>\r\nCall-ID: {i}-bench@127.0.0.1\r\n"
            f"CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:5061>\r\nMax-Forwards: 70\r\nExpires: 3600\r\n"
            f"User-Agent: bench\r\n{auth}Content-Length: 0\r\n\r\n"
        ).encode()

    nonce_re = re.compile(rb'nonce="([^"]+)"')
    before = _tracked_types() if args.survivors else None
    prof = cProfile.Profile() if args.profile else None
    done = 0
    t_cpu = time.process_time()
    t_loop = time.thread_time()
    t_wall = time.perf_counter()
    if prof:
        prof.enable()
    batch = 50
    for start in range(0, args.n, batch):
        firsts = range(start, min(start + batch, args.n))
        sent.clear()
        for i in firsts:
            ep.udp_received(register(i, 1), "127.0.0.1", 5061)
        challenges = list(sent)
        sent.clear()
        for i, ch in zip(firsts, challenges):
            nonce = nonce_re.search(ch).group(1).decode()  # type: ignore[union-attr]
            user, pw = users[i % len(users)]
            ha1 = md5(f"{user}:{realm}:{pw}")
            ha2 = md5(f"REGISTER:sip:{realm}")
            resp = md5(f"{ha1}:{nonce}:00000001:c{i}:auth:{ha2}")
            auth = (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="sip:{realm}", '
                    f'response="{resp}", algorithm=MD5, cnonce="c{i}", qop=auth, nc=00000001\r\n')
            ep.udp_received(register(i, 2, auth), "127.0.0.1", 5061)
        while len(sent) < len(firsts):
            # sleep, not spin: a busy loop here would be counted as the switch's CPU
            waiter.clear()
            await waiter.wait()
        done += sum(1 for m in sent if m.startswith(b"SIP/2.0 200"))
    if prof:
        prof.disable()
    cpu = time.process_time() - t_cpu
    wall = time.perf_counter() - t_wall
    print(f"database: {url.split('://')[0]}")
    print(f"registrations: {done}/{args.n} ok")
    print(f"CPU per registration (2 transactions): {cpu / args.n * 1e6:.0f} µs  -> one-core ceiling {args.n / cpu:.0f}/s")
    print(f"wall: {args.n / wall:.0f} registrations/s; commits: {services.location.commit_stats()}")
    loop_cpu = time.thread_time() - t_loop
    print(f"  event-loop thread: {loop_cpu / args.n * 1e6:.0f} µs, other threads (DB writer): {(cpu - loop_cpu) / args.n * 1e6:.0f} µs per registration")
    if before is not None:
        grown = _tracked_types() - before
        print(f"GC-tracked objects alive after the run, per registration: {grown.total() / args.n:.1f}")
        for name, count in grown.most_common(15):
            print(f"  {count / args.n:6.2f}  {name}")
    await app_mod.stop(services)
    if prof:
        pstats.Stats(prof).sort_stats(args.sort).print_stats(45)


if __name__ == "__main__":
    asyncio.run(main())
