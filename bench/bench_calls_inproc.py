"""CPU cost of one call through the B2BUA inside the switch, no sockets.

Real services and database; a minimal caller and callee answer the switch's
datagrams in-process: INVITE → 407 → INVITE with credentials → (switch → callee
INVITE) 100/180/200 → 200 → ACK → ACK → BYE → BYE → 200 → 200. Only the socket
send is replaced by a capture. Prints µs of CPU per call, i.e. the ceiling of
one core, and with --profile the top of a cProfile.

    .venv/bin/python bench/bench_calls_inproc.py [--db URL] [-n 2000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import json
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switch import app as app_mod  # noqa: E402
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


SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="")
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--profile", action="store_true")
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
    engine, sf, box = await app_mod.open_database(s)
    await importer.import_document(sf, importer.load_import_file(tmp / "imp.json"), box, s.effective_realm())
    await engine.dispose()
    services = await app_mod.start(s)
    app_mod.tune_gc()  # as `softswitch run` does
    ep = services.endpoint
    realm = s.effective_realm()
    host, port = ep.addresses[0]
    sent: list[tuple[bytes, int]] = []
    for u in ep.udp:
        u.send = lambda data, h, p: sent.append((data, p))  # type: ignore[method-assign]

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
    ok = 0
    pdd: list[float] = []
    t_cpu = time.process_time()
    t_wall = time.perf_counter()
    if prof:
        prof.enable()
    for i in range(args.n):
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
        if i % 50 == 49:
            await asyncio.sleep(0)  # let CDR batches and timers run
    if prof:
        prof.disable()
    cpu = time.process_time() - t_cpu
    wall = time.perf_counter() - t_wall
    await asyncio.sleep(0.3)
    pdd.sort()
    print(f"database: {s.database_url.split('://')[0]}")
    print(f"calls: {ok}/{args.n} completed")
    print(f"CPU per call (INVITE/407/ACK/INVITE/100/180/200/ACK/BYE/200, both legs): {cpu / args.n * 1e6:.0f} µs"
          f"  -> one-core ceiling {args.n / cpu:.0f} calls/s")
    if pdd:
        print(f"in-process INVITE->180 p50 {pdd[len(pdd) // 2] * 1e3:.2f} ms  p99 {pdd[int(len(pdd) * 0.99)] * 1e3:.2f} ms")
    print(f"wall {args.n / wall:.0f} calls/s")
    await app_mod.stop(services)
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(35)


if __name__ == "__main__":
    asyncio.run(main())
