"""Framing, limits, start lines, serialisation and validation of whole messages."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.errors import BadExtension, MessageTooLarge, ParseError, VersionNotSupported
from switch.sip.headers import Headers
from switch.sip.message import MAGIC_COOKIE, Request, Response, new_branch, new_call_id, new_tag, response_for
from switch.sip.parser import (
    KEEPALIVE_PING,
    Limits,
    StreamParser,
    check_require,
    parse_message,
    validate_request,
    validate_response,
)
from switch.sip.uri import SipUri


def register(*extra: str, body: bytes = b"", cl: str | None = "auto", start: str = "REGISTER sip:example.com SIP/2.0") -> bytes:
    lines = [
        start,
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport",
        "Max-Forwards: 70",
        "From: <sip:alice@example.com>;tag=1928301774",
        "To: <sip:alice@example.com>",
        "Call-ID: a84b4c76e66710@192.0.2.10",
        "CSeq: 314159 REGISTER",
        "Contact: <sip:alice@192.0.2.10:5060>;expires=3600",
        *extra,
    ]
    if cl == "auto":
        lines.append(f"Content-Length: {len(body)}")
    elif cl is not None:
        lines.append(f"Content-Length: {cl}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def req(data: bytes, **kw: object) -> Request:
    msg = parse_message(data, **kw)  # type: ignore[arg-type]
    assert isinstance(msg, Request)
    return msg


# --- start lines ---------------------------------------------------------------------------


def test_request_line() -> None:
    r = req(register())
    assert (r.method, r.uri) == ("REGISTER", "sip:example.com")
    validate_request(r)
    assert isinstance(r.ruri, SipUri) and r.ruri.host == "example.com"


@pytest.mark.parametrize(
    "start",
    [
        "REGISTER  sip:example.com SIP/2.0",
        "REGISTER sip:example.com  SIP/2.0",
        "REGISTER sip:example.com SIP/2.0 ",
        "REGISTER sip:example.com",
        "REGISTER\tsip:example.com\tSIP/2.0",
        " REGISTER sip:example.com SIP/2.0",
        "REG<ISTER sip:example.com SIP/2.0",
        "REGISTER sip:example.com HTTP/1.1",
    ],
)
def test_malformed_request_lines_are_400_with_partial(start: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(register(start=start))
    assert info.value.status == 400
    assert isinstance(info.value.partial, Request)
    resp = response_for(info.value.partial, 400, info.value.reason)
    assert resp.headers.get("Via") == "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport"


@pytest.mark.parametrize("version", ["SIP/3.0", "SIP/2.1", "SIP/1.0", "sip/7.0"])
def test_other_sip_versions_are_505(version: str) -> None:
    with pytest.raises(VersionNotSupported) as info:
        parse_message(register(start=f"OPTIONS sip:example.com {version}"))
    assert info.value.status == 505 and isinstance(info.value.partial, Request)


def test_version_is_case_insensitive() -> None:
    assert req(register(start="REGISTER sip:example.com sip/2.0")).method == "REGISTER"


def test_status_lines() -> None:
    r = parse_message(b"SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(r, Response) and (r.status, r.reason) == (180, "Ringing")
    r = parse_message(b"SIP/2.0 699 \r\n\r\n")
    assert isinstance(r, Response) and (r.status, r.reason) == (699, "")
    r = parse_message(b"SIP/2.0 200\r\n\r\n")  # missing SP tolerated
    assert isinstance(r, Response) and r.status == 200
    for bad in (b"SIP/2.0 99 Low\r\n\r\n", b"SIP/2.0 700 High\r\n\r\n", b"SIP/2.0 2OO OK\r\n\r\n",
                b"SIP/2.0 4294967301 Big\r\n\r\n", b"SIP/2.0  200 OK\r\n\r\n", b"SIP/3.0 200 OK\r\n\r\n"):
        with pytest.raises(ParseError) as info:
            parse_message(bad)
        assert info.value.partial is None  # responses are dropped, never answered


# --- headers in the head ---------------------------------------------------------------------


def test_folding_compact_forms_and_case() -> None:
    data = (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP h1.example.com;branch=z9hG4bKa,\r\n"
        b"  SIP/2.0/TCP h2.example.com\r\n"
        b"\t;branch=z9hG4bKb\r\n"
        b"VIA: SIP/2.0/UDP h3.example.com;branch=z9hG4bKc\r\n"
        b"f: <sip:a@example.com>;tag=1\r\nt: sip:bob@example.com\r\ni: x@y\r\n"
        b"CSEQ  :  1 OPTIONS\r\nSubject:\r\n  folded\r\n    twice\r\nl: 0\r\n\r\n"
    )
    r = req(data)
    validate_request(r)
    assert [v.host for v in r.vias] == ["h1.example.com", "h2.example.com", "h3.example.com"]
    assert r.headers.get("Subject") == "folded twice"
    assert r.headers.get_lines("Via")[0] == "SIP/2.0/UDP h1.example.com;branch=z9hG4bKa, SIP/2.0/TCP h2.example.com ;branch=z9hG4bKb"
    assert ("Content-Length", "0") in list(r.headers)


def test_combined_and_separate_list_headers_are_equivalent() -> None:
    combined = req(register("Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>"))
    separate = req(register("Route: <sip:p1.example.com;lr>", "Route: <sip:p2.example.com;lr>"))
    assert [str(x) for x in combined.routes] == [str(x) for x in separate.routes]
    assert combined.headers.values("Route") == separate.headers.values("Route")
    assert len(combined.headers.get_lines("Route")) == 1 and len(separate.headers.get_lines("Route")) == 2


def test_contact_list_with_quoted_commas() -> None:
    r = req(register('Contact: "Desk, 2nd floor" <sip:a@192.0.2.11>;q=0.5, <sip:a@192.0.2.12>'))
    validate_request(r)
    assert [c.display for c in r.contacts] == [None, "Desk, 2nd floor", None]


@pytest.mark.parametrize(
    "line",
    [b"NoColonHere", b": value", b"Bad Name: x", b"Na\x01me: y"],
)
def test_bad_header_lines(line: bytes) -> None:
    data = register().replace(b"Max-Forwards: 70", line)
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.status == 400


def test_continuation_before_first_header() -> None:
    with pytest.raises(ParseError, match="Continuation"):
        parse_message(b"OPTIONS sip:a@b SIP/2.0\r\n folded: x\r\n\r\n")


def test_bare_lf_is_tolerated_and_bare_cr_is_not() -> None:
    lf = register().replace(b"\r\n", b"\n")
    r = req(lf)
    validate_request(r)
    assert r.call_id == "a84b4c76e66710@192.0.2.10"
    assert b"\r\n" in r.to_bytes() and b"\n\n" not in r.to_bytes()
    mixed = register().replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n")
    assert req(mixed).max_forwards == 70
    with pytest.raises(ParseError, match="Bare CR"):
        parse_message(register().replace(b"Max-Forwards: 70", b"Max-Forwards: 7\r0"))


def test_leading_crlfs_are_ignored() -> None:
    r = req(b"\r\n\r\n\r\n" + register())
    validate_request(r)


@pytest.mark.parametrize("data", [b"", b"\r\n", b"\r\n\r\n", b"   ", b"\x00\x00", b"INVITE"])
def test_empty_or_garbage(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_message(data)


def test_non_utf8_bytes_round_trip_without_crashing() -> None:
    data = register('Subject: caf\xe9'.encode("latin-1").decode("latin-1"))
    raw = data.replace(b"caf\xc3\xa9", b"caf\xe9")  # Latin-1 byte, not UTF-8
    r = req(raw)
    validate_request(r)
    subject = r.headers.get("Subject")
    assert subject is not None and subject.encode("utf-8", "surrogateescape") == b"caf\xe9"
    r.headers.add("X-New", "1")
    assert b"Subject: caf\xe9\r\n" in r.to_bytes()
    with pytest.raises(ParseError):
        parse_message(register().replace(b"To: <sip:alice@example.com>", b"To: \xff\xfe<sip:alice@example.com>")).to  # noqa: B018


# --- Content-Length and framing ---------------------------------------------------------------


def test_udp_extra_bytes_are_ignored() -> None:
    r = req(register(body=b"abc") + b"garbage after the body")
    assert r.body == b"abc"
    assert r.to_bytes() == register(body=b"abc")


def test_udp_short_body_is_rejected() -> None:
    with pytest.raises(ParseError, match="exceeds") as info:
        parse_message(register(body=b"abc", cl="10"))
    assert info.value.status == 400 and isinstance(info.value.partial, Request)


def test_udp_without_content_length_takes_the_rest() -> None:
    r = req(register(cl=None) + b"v=0\r\n")
    assert r.body == b"v=0\r\n"
    assert r.to_bytes().endswith(b"Content-Length: 5\r\n\r\nv=0\r\n")


def test_tcp_without_content_length_is_an_error() -> None:
    with pytest.raises(ParseError, match="Missing Content-Length") as info:
        parse_message(register(cl=None), stream=True)
    assert isinstance(info.value.partial, Request)


@pytest.mark.parametrize("cl", ["-1", "five", "1 2", "+3", "0x10", "٣", "99999999999"])
def test_bad_content_length(cl: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(register(cl=cl))
    assert info.value.status == 400


def test_content_length_with_whitespace_and_compact_form() -> None:
    data = register(cl=None).replace(b"\r\n\r\n", b"\r\nl :   3  \r\n\r\nabc")
    assert req(data).body == b"abc"


def test_duplicate_content_length_is_rejected_even_if_equal() -> None:
    with pytest.raises(ParseError, match="Multiple Content-Length"):
        parse_message(register("Content-Length: 0"))


# --- limits (513) -------------------------------------------------------------------------------


def test_oversize_message_is_513_with_partial() -> None:
    limits = Limits(max_message=1000)
    data = register(body=b"x" * 2000)
    with pytest.raises(MessageTooLarge) as info:
        parse_message(data, limits=limits)
    assert info.value.status == 513 and isinstance(info.value.partial, Request)
    assert response_for(info.value.partial, 513).status == 513


def test_too_many_headers_and_long_lines_are_513() -> None:
    many = register(*[f"X-H{i}: {i}" for i in range(40)])
    with pytest.raises(MessageTooLarge):
        parse_message(many, limits=Limits(max_headers=20))
    long = register("X-Long: " + "a" * 300)
    with pytest.raises(MessageTooLarge):
        parse_message(long, limits=Limits(max_line=200))
    folded = register("X-Long: a\r\n " + "b" * 300)
    with pytest.raises(MessageTooLarge):
        parse_message(folded, limits=Limits(max_line=200))
    assert req(long).headers.get("X-Long") == "a" * 300


# --- stream framing ----------------------------------------------------------------------------


def test_stream_parser_frames_pipelined_messages_and_pings() -> None:
    one = register(body=b"hello")
    data = KEEPALIVE_PING + one + b"\r\n" + one + KEEPALIVE_PING
    p = StreamParser()
    out: list[object] = []
    for i in range(0, len(data), 7):
        out += p.feed(data[i : i + 7])
    kinds = ["ping" if x is StreamParser.PING else type(x).__name__ for x in out]
    assert kinds == ["ping", "Request", "Request", "ping"]
    assert all(isinstance(x, Request) and x.body == b"hello" for x in out[1:3])


def test_stream_parser_waits_for_the_body() -> None:
    p = StreamParser()
    data = register(body=b"0123456789")
    assert p.feed(data[:-5]) == []
    (msg,) = p.feed(data[-5:])
    assert isinstance(msg, Request) and msg.body == b"0123456789"


def test_stream_parser_errors() -> None:
    with pytest.raises(ParseError, match="Missing Content-Length") as info:
        StreamParser().feed(register(cl=None))
    assert isinstance(info.value.partial, Request)
    with pytest.raises(MessageTooLarge):
        StreamParser(Limits(max_message=500)).feed(b"X" * 600)
    with pytest.raises(MessageTooLarge) as info2:
        StreamParser(Limits(max_message=1000)).feed(register(cl="5000"))
    assert isinstance(info2.value.partial, Request)


def test_stream_parser_returns_good_messages_before_an_error() -> None:
    p = StreamParser()
    out = p.feed(register() + b"BROKEN\r\n\r\n")
    assert len(out) == 1 and isinstance(out[0], Request)
    with pytest.raises(ParseError):
        p.feed(b"")
    with pytest.raises(ParseError):
        p.feed(register())  # the connection is beyond repair


# --- serialisation --------------------------------------------------------------------------------


def test_unmodified_message_reuses_its_bytes_and_any_change_invalidates() -> None:
    data = register(body=b"body")
    changes: list[Callable[[Request], object]] = [
        lambda r: r.headers.add("X-New", "1"),
        lambda r: r.headers.set("Max-Forwards", "69"),
        lambda r: r.headers.remove("Contact"),
        lambda r: r.headers.replace_first_element("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp"),
        lambda r: r.headers.pop_first_element("Via"),
        lambda r: setattr(r, "body", b"other"),
        lambda r: setattr(r, "method", "OPTIONS"),
        lambda r: r.set_uri("sip:other.example.com"),
        lambda r: setattr(r, "headers", Headers.of(list(r.headers))),
        lambda r: r.headers.raw_items().append(("x-raw", "X-Raw", "1")),
    ]
    assert req(data).to_bytes() is data
    for change in changes:
        r = req(data)
        change(r)
        out = r.to_bytes()
        assert out is not data  # encoded afresh
        assert parse_message(out, stream=True).to_bytes() == out


def test_fresh_serialisation_is_canonical() -> None:
    r = req(b"OPTIONS sip:a@b SIP/2.0\r\ni: x\r\nl: 0\r\nv:  SIP/2.0/UDP h;branch=z9hG4bKq\r\n\r\n")
    r.headers.add("X-A", "1")
    assert r.to_bytes() == (
        b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKq\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n"
    )


def test_response_serialisation_and_reason_safety() -> None:
    resp = Response(404, headers=Headers.of([("Via", "SIP/2.0/UDP h;branch=z9hG4bKx")]))
    assert resp.to_bytes() == b"SIP/2.0 404 Not Found\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nContent-Length: 0\r\n\r\n"
    resp.reason = "Bad\r\nInjected: yes"
    assert b"\r\nInjected" not in resp.to_bytes()
    assert bytes(Response(299)).startswith(b"SIP/2.0 299 OK")


def test_response_for_copies_the_right_headers() -> None:
    r = req(register("Timestamp: 54", "Record-Route: <sip:p.example.com;lr>", "Via: SIP/2.0/UDP second;branch=z9hG4bK2"))
    resp = response_for(r, 200, to_tag="abc")
    assert [k for k, _ in resp.headers] == ["Via", "From", "To", "Call-ID", "CSeq", "Via"]
    assert resp.headers.get("To") == "<sip:alice@example.com>;tag=abc"
    trying = response_for(r, 100, to_tag="abc")
    assert trying.headers.get("Timestamp") == "54" and trying.headers.get("To") == "<sip:alice@example.com>"
    rr = response_for(r, 200, copy_record_route=True)
    assert rr.headers.get("Record-Route") == "<sip:p.example.com;lr>"
    tagged = req(register().replace(b"To: <sip:alice@example.com>", b"To: <sip:alice@example.com>;tag=zz"))
    assert response_for(tagged, 200, to_tag="abc").headers.get("To") == "<sip:alice@example.com>;tag=zz"


def test_response_for_survives_a_malformed_to() -> None:
    bad = req(register().replace(b"To: <sip:alice@example.com>", b'To: "unterminated <sip:a@b>'))
    resp = response_for(bad, 400, "Bad To", to_tag="t")
    assert resp.headers.get("To") == '"unterminated <sip:a@b>'


def test_identifiers() -> None:
    assert new_branch().startswith(MAGIC_COOKIE) and new_branch() != new_branch()
    assert len(new_tag()) >= 8 and new_tag() != new_tag()
    assert new_call_id("h.example.com").endswith("@h.example.com")


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ((b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n", b""), "Missing Via"),
        ((b"CSeq: 314159 REGISTER", b"CSeq: 314159 INVITE"), "CSeq method"),
        ((b"Call-ID: a84b4c76e66710@192.0.2.10", b"Call-ID: has space"), "Bad Call-ID"),
        ((b"Max-Forwards: 70", b"Max-Forwards: 256"), "Max-Forwards"),
        ((b"Max-Forwards: 70", b"Max-Forwards: seventy"), "Max-Forwards"),
        ((b"To: <sip:alice@example.com>", b"To: <sip:alice@example.com>\r\nTo: <sip:b@example.com>"), "Multiple To"),
        ((b"Contact: <sip:alice@192.0.2.10:5060>;expires=3600", b"Contact: <sip:alice@192.0.2.10:5060;;>"), "URI parameter"),
        ((b"REGISTER sip:example.com SIP/2.0", b"REGISTER sip:example.com?Route=x SIP/2.0"), "Request-URI must not"),
    ],
)
def test_validate_request_failures(change: tuple[bytes, bytes], reason: str) -> None:
    r = req(register().replace(*change))
    with pytest.raises(ParseError) as info:
        validate_request(r)
    assert reason in info.value.reason and info.value.partial is r and info.value.status == 400


def test_validate_response() -> None:
    ok = parse_message(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(ok, Response)
    validate_response(ok)
    no_via = parse_message(b"SIP/2.0 200 OK\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 X\r\n\r\n")
    assert isinstance(no_via, Response)
    with pytest.raises(ParseError, match="Missing Via"):
        validate_response(no_via)


def test_check_require() -> None:
    r = req(register("Require: path, Outbound", "Proxy-Require: sec-agree"))
    check_require(r, {"path", "outbound"})
    with pytest.raises(BadExtension) as info:
        check_require(r, {"path"})
    assert info.value.options == ["Outbound"] and info.value.status == 420
    with pytest.raises(BadExtension) as info:
        check_require(r, {"path", "outbound"}, proxy=True)
    assert info.value.options == ["sec-agree"]
    ack = req(register("Require: foo", start="ACK sip:example.com SIP/2.0").replace(b"REGISTER\r\n", b"ACK\r\n"))
    check_require(ack, set())


def test_max_forwards_and_expires_accessors() -> None:
    r = req(register("Expires: 0003600"))
    assert r.max_forwards == 70 and r.expires == 3600
    assert req(register("Expires: 99999999999999")).expires == 2**32 - 1
    with pytest.raises(ParseError):
        req(register("Expires: -5")).expires  # noqa: B018


# --- robustness ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except ParseError:
        return
    if isinstance(msg, Request):
        try:
            validate_request(msg)
        except ParseError:
            pass
    msg.to_bytes()


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.sampled_from(["Via", "v", "To", "From", "Contact", "m", "Route", "CSeq", "Call-ID",
                                 "Max-Forwards", "l", "Expires", "X"]), max_size=12),
       st.lists(st.text(alphabet='sip:@<>;,"\\ =abc123.[]?%\t', max_size=30), max_size=12))
def test_random_header_soup_never_crashes(names: list[str], values: list[str]) -> None:
    head = "OPTIONS sip:a@b SIP/2.0\r\n" + "".join(f"{n}: {v}\r\n" for n, v in zip(names, values))
    try:
        msg = parse_message(head.encode() + b"\r\n")
    except ParseError:
        return
    assert isinstance(msg, Request)
    try:
        validate_request(msg)
    except ParseError:
        pass


def test_tags_branches_and_call_ids_are_random_and_never_repeat() -> None:
    """They come from a pool of os.urandom bytes: across many pool refills, no value repeats and
    each has its full length (RFC 3261 §19.3: globally unique, cryptographically random)."""
    tags = [new_tag() for _ in range(5000)]  # 30,000 bytes: several 4 KiB refills
    branches = [new_branch() for _ in range(2000)]
    call_ids = [new_call_id() for _ in range(2000)]
    assert len(set(tags)) == len(tags) and all(len(t) == 12 for t in tags)
    assert len(set(branches)) == len(branches) and all(len(b) == len(MAGIC_COOKIE) + 20 for b in branches)
    assert len(set(call_ids)) == len(call_ids) and all(len(c) == 24 for c in call_ids)
    # not a counter: the hex digits are spread evenly (a run of 10,000 values would show any bias)
    digits = "".join(tags)
    counts = [digits.count(d) for d in "0123456789abcdef"]
    assert max(counts) < 1.1 * len(digits) / 16 < 1.2 * min(counts)


def test_a_forked_child_does_not_hand_out_the_parents_tags() -> None:
    import os

    new_tag()  # the pool is filled
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(w, new_tag().encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 64).decode()
    os.waitpid(pid, 0)
    os.close(r)
    assert child != new_tag()
