"""OPTIONS end to end, and robustness: the switch must shrug off garbage.

RFC 3261 §11: a UAS answers OPTIONS with 200 and its capabilities; ATAs and
monitoring use it as a keep-alive. RFC 4475 lists the malformed messages a SIP
element meets in the wild; after swallowing such messages (and random bytes) over
UDP and TCP, the switch must still answer OPTIONS on both transports. Whatever it
sends back must itself be a well-formed SIP response (some of the odd messages are
legal, RFC 4475 §3.1.1, so a 200 to those is fine).
"""

from __future__ import annotations

import random
import re
import secrets
import socket
import time

import pytest

from harness.sipp import run_sipp
from harness.softswitch import SwitchProcess, sip_options_udp

pytestmark = pytest.mark.e2e

def test_options_gets_200_over_udp_and_tcp(switch: SwitchProcess) -> None:
    for transport in ("u1", "t1"):
        r = run_sipp("uac_options", switch.sip_target, transport=transport, calls=3, rate=10)
        assert r.ok, r.describe()
        assert (r.successful, r.failed) == (3, 0)
        received = r.received()
        assert len(received) == 3, received
        ok = received[0]
        assert ok.startswith("SIP/2.0 200 "), ok
        via = re.search(r"(?im)^via\s*:\s*SIP/2\.0/(\w+)", ok)
        assert via is not None and via.group(1).upper() == {"u1": "UDP", "t1": "TCP"}[transport], ok
        # §11.2: Allow lists what we do; REGISTER and INVITE at least
        allow = re.search(r"(?im)^allow\s*:(.*)$", ok)
        assert allow is not None, ok
        methods = {m.strip().upper() for m in allow.group(1).split(",")}
        assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"} <= methods, methods


# ------------------------------------------------------------------------ torture


def _torture(port: int, local_port: int, transport: str) -> list[bytes]:
    """Malformed requests after RFC 4475 §3.1.2 (own variants), all aimed at the switch.

    Via points back at our socket so answers (if any) can be checked.
    """
    tgt = f"127.0.0.1:{port}"

    def msg(start: str, *headers: str, body: bytes = b"", via: str | None = None, clen: str | None = None) -> bytes:
        branch = "z9hG4bK" + secrets.token_hex(6)
        std = [
            via if via is not None else f"Via: SIP/2.0/{transport} 127.0.0.1:{local_port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:caller@127.0.0.1>;tag={secrets.token_hex(4)}",
            f"To: <sip:{tgt}>",
            f"Call-ID: {secrets.token_hex(8)}@127.0.0.1",
        ]
        lines = [start, *[h for h in std if h], *headers]
        if clen is None:
            clen = str(len(body))
        if clen != "":
            lines.append(f"Content-Length: {clen}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body

    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
    auth_user = "22000001"
    return [
        # 3.1.2.1 extraneous header separators / bad Content-Length values
        msg(f"INVITE sip:22000002@{tgt} SIP/2.0", "CSeq: 1 INVITE", "Content-Type: application/sdp", body=sdp,
            clen="9999"),
        msg(f"OPTIONS sip:{tgt} SIP/2.0", "CSeq: 1 OPTIONS", clen="-999"),
        msg(f"OPTIONS sip:{tgt} SIP/2.0", "CSeq: 1 OPTIONS", clen="99999999999999999999999"),
        msg(f"OPTIONS sip:{tgt} SIP/2.0", "CSeq: 1 OPTIONS", "Content-Length: 5", clen="0"),
        # 3.1.2.2 negative / overflowing scalars
        msg(f"REGISTER sip:{tgt} SIP/2.0", "CSeq: -5 REGISTER", "Max-Forwards: -1",
            f"Contact: <sip:{auth_user}@127.0.0.1:{local_port}>", "Expires: -1"),
        msg(f"REGISTER sip:{tgt} SIP/2.0", "CSeq: 36893488147419103232 REGISTER", "Max-Forwards: 300",
            f"Contact: <sip:{auth_user}@127.0.0.1:{local_port}>;expires=4294967296", "Expires: 10000000000"),
        # unterminated quoted string, unmatched angle brackets
        msg(f"OPTIONS sip:{tgt} SIP/2.0", "CSeq: 1 OPTIONS", 'Contact: "Mr J. User <sip:j.user@example.com>'),
        msg(f"INVITE sip:22000002@{tgt} SIP/2.0", "CSeq: 1 INVITE", "Contact: <sip:caller@127.0.0.1",
            "Content-Type: application/sdp", body=sdp),
        # Request-URI: spaces, unknown scheme (416), unclosed IPv6 reference, escaped NUL
        msg(f"INVITE sip:user@{tgt};lr=yes sip:other@example.com SIP/2.0", "CSeq: 1 INVITE"),
        msg("OPTIONS nobodyknowsthisscheme:totallyopaquecontent SIP/2.0", "CSeq: 1 OPTIONS"),
        msg("OPTIONS sip:[::1 SIP/2.0", "CSeq: 1 OPTIONS"),
        msg(f"REGISTER sip:{tgt} SIP/2.0", "CSeq: 1 REGISTER", "Contact: <sip:%00null@127.0.0.1>",
            "To: <sip:%00null@127.0.0.1>"),
        # wrong version, lower-case / broken methods, CSeq method mismatch
        msg(f"OPTIONS sip:{tgt} SIP/7.0", "CSeq: 1 OPTIONS"),
        msg(f"options sip:{tgt} SIP/2.0", "CSeq: 1 options"),
        msg(f"OPT\x01IONS sip:{tgt} SIP/2.0", "CSeq: 1 OPTIONS"),
        msg(f"INVITE sip:22000002@{tgt} SIP/2.0", "CSeq: 1 BYE"),
        # missing mandatory headers
        msg(f"OPTIONS sip:{tgt} SIP/2.0"),
        msg(f"OPTIONS sip:{tgt} SIP/2.0", "CSeq: 1 OPTIONS", via=""),
        msg(f"OPTIONS sip:{tgt} SIP/2.0", "CSeq: 1 OPTIONS",
            via=f"Via: SIP/2.0/{transport} 127.0.0.1:99999;branch=z9hG4bKbad"),
        msg(f"OPTIONS sip:{tgt} SIP/2.0", "CSeq: 1 OPTIONS", via="Via: garbage"),
        # header without colon, NUL and non-UTF-8 bytes, huge header value, very many Vias
        msg(f"OPTIONS sip:{tgt} SIP/2.0", "CSeq: 1 OPTIONS", "ThisHeaderHasNoColon"),
        msg(f"OPTIONS sip:{tgt} SIP/2.0", "CSeq: 1 OPTIONS", "Subject: \x00\x00nul", "X-Bin: \udcff\udcfe\udc80"),
        msg(f"OPTIONS sip:{tgt} SIP/2.0", "CSeq: 1 OPTIONS", "X-Huge: " + "a" * 30000),
        msg(f"OPTIONS sip:{tgt} SIP/2.0", "CSeq: 1 OPTIONS",
            *[f"Via: SIP/2.0/UDP 10.0.0.{i % 250}:5060;branch=z9hG4bK{i}" for i in range(400)]),
        # malformed digest credentials for a real user (exercise the Authorization parser)
        msg(f"REGISTER sip:{tgt} SIP/2.0", "CSeq: 2 REGISTER", f"Contact: <sip:{auth_user}@127.0.0.1:{local_port}>",
            f'Authorization: Digest username="{auth_user}", realm="127.0.0.1", nonce="unterminated'),
        msg(f"REGISTER sip:{tgt} SIP/2.0", "CSeq: 2 REGISTER", f"Contact: <sip:{auth_user}@127.0.0.1:{local_port}>",
            f'Authorization: Digest username="{auth_user}", username="x", realm="127.0.0.1", nonce="AAAA", '
            f'uri="sip:{tgt}", response="zz", nc=ffffffffffffffffffff, qop=auth, cnonce="", algorithm=ROT13'),
        msg(f"REGISTER sip:{tgt} SIP/2.0", "CSeq: 2 REGISTER", "Authorization: Digest",
            "Authorization: Basic Zm9vOmJhcg=="),
        # responses nobody asked for, with silly status codes
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKnope\r\nCSeq: 1 INVITE\r\n"
        b"Call-ID: x\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nContent-Length: 0\r\n\r\n",
        b"SIP/2.0 99 Too Low\r\nContent-Length: 0\r\n\r\n",
        b"SIP/2.0 abc Nope\r\n\r\n",
        # transactions that do not exist
        msg(f"ACK sip:22000002@{tgt} SIP/2.0", "CSeq: 1 ACK"),
        msg(f"CANCEL sip:22000002@{tgt} SIP/2.0", "CSeq: 1 CANCEL"),
        msg(f"BYE sip:22000002@{tgt} SIP/2.0", "CSeq: 7 BYE"),
        # keep-alives (RFC 5626 §3.5.1) and near-empty datagrams
        b"\r\n\r\n",
        b"\r\n",
        b"\x00",
    ]


def _garbage(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 1400))) for _ in range(25)]
    out.append(b"INVITE " + bytes(rng.getrandbits(8) for _ in range(500)))
    out.append(b"SIP/2.0 " + bytes(rng.getrandbits(8) for _ in range(300)))
    return out


def _drain_udp(sock: socket.socket, until: float) -> list[bytes]:
    got = []
    while time.monotonic() < until:
        sock.settimeout(max(0.01, until - time.monotonic()))
        try:
            data, _ = sock.recvfrom(65535)
        except (TimeoutError, ConnectionRefusedError):
            break
        got.append(data)
    return got


def _assert_sip_responses(answers: list[bytes]) -> None:
    for a in answers:
        assert re.match(rb"SIP/2\.0 [1-6]\d\d [^\r\n]*\r\n", a), a[:200]


def test_survives_garbage_and_malformed_messages(switch: SwitchProcess) -> None:
    port = switch.sip_port
    # ---- UDP
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        lp = s.getsockname()[1]
        for dgram in _torture(port, lp, "UDP") + _garbage(4475):
            s.sendto(dgram[:65000], ("127.0.0.1", port))
            time.sleep(0.002)
        answers = _drain_udp(s, time.monotonic() + 1.0)
    _assert_sip_responses(answers)
    assert switch.alive()
    assert sip_options_udp(port, timeout=2.0) is not None

    # ---- TCP: each message on its own connection (all open at once), then garbage streams
    stalled: list[socket.socket] = []
    try:
        burst: list[socket.socket] = []
        try:
            for data in _torture(port, 0, "TCP") + _garbage(3261):
                c = socket.create_connection(("127.0.0.1", port), timeout=2.0)
                burst.append(c)
                try:
                    c.sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the switch hung up on garbage: fine
            time.sleep(0.5)
        finally:
            for c in burst:
                c.close()
        # a header that never ends (must be cut off, not buffered forever)
        with socket.create_connection(("127.0.0.1", port), timeout=5.0) as c:
            try:
                c.sendall(b"OPTIONS sip:x SIP/2.0\r\nX-Endless: ")
                for _ in range(64):
                    c.sendall(b"z" * 16384)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the switch hung up on us: fine
        # slow clients that stop mid-message stay connected while others are served
        for part in (b"OPT", b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKx\r\n"):
            c = socket.create_connection(("127.0.0.1", port), timeout=2.0)
            c.sendall(part)
            stalled.append(c)

        assert switch.alive()
        for transport in ("u1", "t1"):
            r = run_sipp("uac_options", switch.sip_target, transport=transport)
            assert r.ok, r.describe()
    finally:
        for c in stalled:
            c.close()
    assert switch.alive()
    # Malformed input is an expected condition, answered or logged in one line; an
    # unhandled exception means some code path trusted the sender.
    log = switch.log_text()
    assert "Traceback" not in log, log[-8000:]
