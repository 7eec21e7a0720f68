"""Parse + serialise throughput of the SIP message layer (messages/s, one core).

Run: ``.venv/bin/python bench/bench_parse.py [--seconds 1.0] [--profile NAME]``

Measures, for a typical REGISTER (with an Authorization header) and a
typical INVITE (with an SDP body):

* parse + serialise: ``parse_message(data).to_bytes()`` (an unchanged message
  hands back its received bytes, so this is mostly the parse)
* parse + modify + serialise: one header removed first, so ``to_bytes`` encodes afresh
* parse + validate:  ``validate_request(parse_message(data))``
* parse + validate + the headers a registrar / B2BUA then reads

Rates are in CPU time of this process (a loaded machine does not drag them
down); the "machine reference" line lets figures from different machines be compared.

The acceptance target is at least 50,000 REGISTER parse + serialise per second.
``--profile NAME`` runs cProfile over one of the cases and prints the top entries.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switch.sip.message import Request  # noqa: E402
from switch.sip.parser import parse_message, validate_request  # noqa: E402

REGISTER = (
    b"REGISTER sip:voip.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.23:5060;branch=z9hG4bK3d1f7a20c9;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Line 1" <sip:4930123456@voip.example.net>;tag=1d2c3b4a5f\r\n'
    b"To: <sip:4930123456@voip.example.net>\r\n"
    b"Call-ID: 6a3f1b2c-4d5e-11ee-9f00-00a0c9b1e2f3@198.51.100.23\r\n"
    b"CSeq: 4312 REGISTER\r\n"
    b"Contact: <sip:4930123456@198.51.100.23:5060;transport=udp>;expires=3600;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000b82123456>\"\r\n"
    b'Authorization: Digest username="4930123456", realm="voip.example.net", '
    b'nonce="YXNkZmFzZGZhc2RmYXNkZg==", uri="sip:voip.example.net", '
    b'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", qop=auth, nc=00000001\r\n'
    b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO, SUBSCRIBE\r\n"
    b"Supported: path, outbound\r\n"
    b"User-Agent: Grandstream HT802 1.0.43.11\r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

_SDP = (
    b"v=0\r\n"
    b"o=- 1700000000 1700000000 IN IP4 198.51.100.23\r\n"
    b"s=-\r\n"
    b"c=IN IP4 198.51.100.23\r\n"
    b"t=0 0\r\n"
    b"m=audio 16384 RTP/AVP 8 0 18 101\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=fmtp:18 annexb=no\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:030123456@voip.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.23:5060;branch=z9hG4bK77ef3a1c02;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Line 1" <sip:4930123456@voip.example.net>;tag=9f8e7d6c5b\r\n'
    b"To: <sip:030123456@voip.example.net>\r\n"
    b"Call-ID: 0c1d2e3f-4a5b-11ee-8c99-00a0c9b1e2f3@198.51.100.23\r\n"
    b"CSeq: 20 INVITE\r\n"
    b"Contact: <sip:4930123456@198.51.100.23:5060;transport=udp>\r\n"
    b'Proxy-Authorization: Digest username="4930123456", realm="voip.example.net", '
    b'nonce="YXNkZmFzZGZhc2RmYXNkZg==", uri="sip:030123456@voip.example.net", '
    b'response="0b1a2c3d4e5f60718293a4b5c6d7e8f9", algorithm=MD5\r\n'
    b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO, SUBSCRIBE\r\n"
    b"Supported: replaces, timer\r\n"
    b"Session-Expires: 1800\r\n"
    b"User-Agent: Grandstream HT802 1.0.43.11\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(_SDP)).encode() + b"\r\n"
    b"\r\n" + _SDP
)


def _parse_serialise(data: bytes) -> None:
    parse_message(data).to_bytes()


def _parse_validate(data: bytes) -> None:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    validate_request(msg)


def _parse_modify_serialise(data: bytes) -> None:
    # what a B2BUA does before forwarding: the received bytes cannot be reused
    msg = parse_message(data)
    msg.headers.pop_first_element("Via")
    msg.to_bytes()


def _parse_validate_use(data: bytes) -> None:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    validate_request(msg)
    msg.top_via.branch  # noqa: B018 - what the transaction layer and TU touch
    msg.to.uri  # noqa: B018
    msg.contacts[0].expires  # noqa: B018
    msg.headers.get("Authorization") or msg.headers.get("Proxy-Authorization")


CASES: dict[str, tuple[Callable[[bytes], None], bytes]] = {
    "REGISTER parse+serialise": (_parse_serialise, REGISTER),
    "INVITE parse+serialise": (_parse_serialise, INVITE),
    "REGISTER parse+modify+serialise": (_parse_modify_serialise, REGISTER),
    "INVITE parse+modify+serialise": (_parse_modify_serialise, INVITE),
    "REGISTER parse+validate": (_parse_validate, REGISTER),
    "INVITE parse+validate": (_parse_validate, INVITE),
    "REGISTER parse+validate+read": (_parse_validate_use, REGISTER),
    "INVITE parse+validate+read": (_parse_validate_use, INVITE),
}


def _reference_loop() -> None:
    x = 0
    for i in range(1000):
        x += i


def rate(fn: Callable[[bytes], None], data: bytes, seconds: float) -> float:
    """Best of three runs of about ``seconds`` of CPU time each, in calls per second.

    CPU time, not wall time, so a busy machine does not drag the figure down.
    """
    n = 1000
    t0 = time.process_time()
    for _ in range(n):
        fn(data)
    per_call = (time.process_time() - t0) / n
    n = max(1000, int(seconds / max(per_call, 1e-9)))
    best = 0.0
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(n):
            fn(data)
        best = max(best, n / (time.process_time() - t0))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="approximate duration of each timed run")
    ap.add_argument("--profile", choices=sorted(CASES), help="profile one case with cProfile")
    args = ap.parse_args(argv)
    if args.profile:
        fn, data = CASES[args.profile]
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(20000):
            fn(data)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0
    print(f"REGISTER: {len(REGISTER)} bytes, INVITE: {len(INVITE)} bytes")
    ref = rate(lambda _: _reference_loop(), b"", args.seconds) * 1000 / 1e6
    print(f"machine reference: {ref:,.1f} M loop iterations/s")
    results = {}
    for name, (fn, data) in CASES.items():
        results[name] = rate(fn, data, args.seconds)
        print(f"{name:32} {results[name]:>10,.0f} msgs/s")
    target = 50_000
    ok = results["REGISTER parse+serialise"] >= target
    print(f"target: REGISTER parse+serialise >= {target:,} msgs/s: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
