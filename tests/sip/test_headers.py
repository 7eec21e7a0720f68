"""Header names, list splitting, parameters, Via, name-addr, CSeq and the Headers multimap."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from switch.sip.errors import ParseError
from switch.sip.headers import (
    CSeq,
    Headers,
    NameAddr,
    Via,
    canonical,
    parse_params,
    quote_string,
    split_commas,
    unquote_string,
)
from switch.sip.uri import AbsoluteUri, SipUri, TelUri

# --- names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "key", "display"),
    [
        ("i", "call-id", "Call-ID"), ("m", "contact", "Contact"), ("f", "from", "From"), ("t", "to", "To"),
        ("v", "via", "Via"), ("l", "content-length", "Content-Length"), ("c", "content-type", "Content-Type"),
        ("k", "supported", "Supported"), ("s", "subject", "Subject"), ("e", "content-encoding", "Content-Encoding"),
        ("o", "event", "Event"), ("u", "allow-events", "Allow-Events"), ("r", "refer-to", "Refer-To"),
        ("b", "referred-by", "Referred-By"), ("x", "session-expires", "Session-Expires"),
        ("CALL-ID", "call-id", "Call-ID"), ("cseq", "cseq", "CSeq"), ("wWw-AuThEnTiCaTe", "www-authenticate", "WWW-Authenticate"),
        ("I", "call-id", "Call-ID"), ("MaX-fOrWaRdS", "max-forwards", "Max-Forwards"),
        ("X-Custom-Thing", "x-custom-thing", "X-Custom-Thing"), ("x-lower", "x-lower", "x-lower"),
    ],
)
def test_names_are_case_insensitive_and_compact_forms_expand(written: str, key: str, display: str) -> None:
    assert canonical(written) == (key, display)


@pytest.mark.parametrize("bad", ["", "Bad Name", "Via:", "X(y)", "a\x00b", "ü"])
def test_bad_header_names(bad: str) -> None:
    with pytest.raises(ParseError):
        canonical(bad)


# --- splitting ------------------------------------------------------------------------


def test_split_commas_respects_quotes_and_angles() -> None:
    value = '"Doe, John" <sip:j@example.com;x=a,b>;tag=1, <sip:k@example.com>, "a \\" , b" <sip:l@example.com>'
    assert split_commas(value) == [
        '"Doe, John" <sip:j@example.com;x=a,b>;tag=1',
        "<sip:k@example.com>",
        '"a \\" , b" <sip:l@example.com>',
    ]
    assert split_commas("a, b,,c ,") == ["a", "b", "c"]
    with pytest.raises(ParseError):
        split_commas("a,,b", strict=True)
    with pytest.raises(ParseError):
        split_commas('"unterminated, x')


def test_list_headers_split_and_others_do_not() -> None:
    h = Headers.of([
        ("Allow", "INVITE, ACK"), ("Allow", "BYE"),
        ("WWW-Authenticate", 'Digest realm="a, b", nonce="x", qop="auth,auth-int"'),
        ("Authorization", 'Digest username="u", realm="r", nonce="n", uri="sip:a", response="x"'),
        ("Proxy-Authenticate", 'Digest realm="p", nonce="1"'), ("Proxy-Authenticate", 'Digest realm="q", nonce="2"'),
        ("Subject", "Hello, world"), ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
        ("X-Unknown", "a, b"),
    ])
    assert h.values("Allow") == ["INVITE", "ACK", "BYE"]
    assert h.values("WWW-Authenticate") == ['Digest realm="a, b", nonce="x", qop="auth,auth-int"']
    assert len(h.values("Authorization")) == 1
    assert h.values("Proxy-Authenticate") == ['Digest realm="p", nonce="1"', 'Digest realm="q", nonce="2"']
    assert h.values("Subject") == ["Hello, world"]
    assert h.values("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert h.values("X-Unknown") == ["a, b"]


# --- parameters and quoting ----------------------------------------------------------------


def test_parse_params() -> None:
    assert parse_params(';tag=abc;lr;q=0.5') == {"tag": "abc", "lr": None, "q": "0.5"}
    assert parse_params(" ; Expires = 60 ; FOO ") == {"expires": "60", "foo": None}
    assert parse_params(';x="a;b=c";y=1') == {"x": '"a;b=c"', "y": "1"}
    assert parse_params(";received=2001:db8::1;maddr=[2001:db8::2]") == {"received": "2001:db8::1", "maddr": "[2001:db8::2]"}
    assert parse_params("") == {}
    for bad in (";;", ";a;;b", ";=x", ";a=", ';a="x', ";a=b c", ";a b=c", ";a=<x>"):
        with pytest.raises(ParseError):
            parse_params(bad)


def test_quote_and_unquote() -> None:
    for text in ['plain', 'with "quotes"', "back\\slash", "ctl \x00\x07\x7f", "ünïcode"]:
        assert unquote_string(quote_string(text)) == text
    assert quote_string('a"b\\c') == '"a\\"b\\\\c"'
    assert quote_string("line\r\nbreak") == '"line  break"'
    assert unquote_string('"J Rosenberg \\\\\\""') == 'J Rosenberg \\"'
    assert unquote_string("token") == "token"


# --- Via ------------------------------------------------------------------------------------


def test_via_basic() -> None:
    v = Via.parse("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport;received=192.0.2.99")
    assert (v.transport, v.host, v.port, v.branch) == ("UDP", "192.0.2.10", 5060, "z9hG4bK776asdhds")
    assert v.has_rfc3261_branch and v.rport is None and "rport" in v.params
    assert v.received == "192.0.2.99"
    assert v.sent_by == ("192.0.2.10", 5060)
    assert str(v) == "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport;received=192.0.2.99"


def test_via_lws_everywhere() -> None:
    v = Via.parse("SIP  /   2.0 /udp   host.example.com :  5080 ;  branch = z9hG4bKx ; rport = 5090")
    assert (v.transport, v.host, v.port, v.branch, v.rport) == ("UDP", "host.example.com", 5080, "z9hG4bKx", 5090)


def test_via_ipv6_sent_by_and_received() -> None:
    v = Via.parse("SIP/2.0/TCP [2001:db8::9:1]:5061;branch=z9hG4bKas3-111;received=2001:db8::9:255;rport=49152")
    assert (v.host, v.port, v.received, v.rport) == ("[2001:db8::9:1]", 5061, "2001:db8::9:255", 49152)
    bracketed = Via.parse("SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKa;received=[2001:db8::9:255]")
    assert bracketed.received == "[2001:db8::9:255]"
    assert str(v.with_params(received="2001:db8::1")).startswith("SIP/2.0/TCP [2001:db8::9:1]:5061;")
    assert Via("UDP", "2001:db8::1", 5060).__str__() == "SIP/2.0/UDP [2001:db8::1]:5060"


@pytest.mark.parametrize(
    "bad",
    [
        "SIP/2.0/UDP", "SIP/2.0/UDP ", "SIP/3.0/UDP host", "HTTP/2.0/UDP host", "SIP/2.0 host",
        "SIP/2.0/UDP host;", "SIP/2.0/UDP host;;branch=x", "SIP/2.0/UDP ho st;branch=x",
        "SIP/2.0/UDP host:abc", "SIP/2.0/UDP [::1;branch=x", "SIP/2.0/UDP host;branch=a b",
    ],
)
def test_bad_vias(bad: str) -> None:
    with pytest.raises(ParseError):
        Via.parse(bad)


def test_rfc3261_branch_detection() -> None:
    assert not Via.parse("SIP/2.0/UDP h;branch=z9hG4bK").has_rfc3261_branch
    assert not Via.parse("SIP/2.0/UDP h;branch=1234").has_rfc3261_branch
    assert not Via.parse("SIP/2.0/UDP h").has_rfc3261_branch


# --- name-addr / addr-spec ----------------------------------------------------------------------


def test_quoted_display_name_with_special_characters() -> None:
    na = NameAddr.parse('"Doe, John <boss>; \\"the\\" \\\\ man" <sip:john@example.com;transport=tcp>;tag=a1;expires=60')
    assert na.display == 'Doe, John <boss>; "the" \\ man'
    assert str(na.uri) == "sip:john@example.com;transport=tcp"
    assert dict(na.params) == {"tag": "a1", "expires": "60"}
    assert na.tag == "a1" and na.expires == 60
    again = NameAddr.parse(str(na))
    assert again == na


def test_token_display_names_and_no_space_before_angle() -> None:
    assert NameAddr.parse("Bob   Smith <sip:b@example.com>").display == "Bob Smith"
    assert NameAddr.parse("caller<sip:c@example.com>").display == "caller"
    assert NameAddr.parse("<sip:c@example.com>").display is None


def test_addr_spec_params_belong_to_the_header() -> None:
    na = NameAddr.parse("sip:+19725552222@gw1.example.net;unknownparam;tag=9")
    assert dict(na.params) == {"unknownparam": None, "tag": "9"}
    assert isinstance(na.uri, SipUri) and not na.uri.params
    inside = NameAddr.parse("<sip:+19725552222@gw1.example.net;unknownparam>;tag=9")
    assert isinstance(inside.uri, SipUri) and dict(inside.uri.params) == {"unknownparam": None}
    assert dict(inside.params) == {"tag": "9"}


def test_tel_and_absolute_uris_in_name_addr() -> None:
    na = NameAddr.parse("<tel:+1-201-555-0123>;tag=x")
    assert isinstance(na.uri, TelUri) and na.uri.digits == "+12015550123"
    assert isinstance(NameAddr.parse("isbn:2983792873").uri, AbsoluteUri)


@pytest.mark.parametrize(
    "bad",
    [
        '"Mr. J. User <sip:j.user@example.com>',  # unterminated quote
        '"Watson, Thomas" < sip:t.watson@example.org >',  # spaces inside <>
        "Watson, Thomas <sip:t.watson@example.org>",  # unquoted non-token display
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # headers need <>
        "J User sip:j@example.com",  # display name without <>
        "<sip:j@example.com",  # unterminated <
        '"x" sip:j@example.com',  # quoted display without <>
        "<sip:j@example.com> junk",  # text after >
        "<sip:j@example.com>;;",  # empty parameters
        "<>",
        "",
        "<sip:j@exa mple.com>",
    ],
)
def test_bad_name_addrs(bad: str) -> None:
    with pytest.raises(ParseError) as info:
        NameAddr.parse(bad)
    assert info.value.status == 400


def test_wildcard_contact() -> None:
    na = NameAddr.parse(" * ")
    assert na.wildcard and str(na) == "*"


def test_name_addr_is_immutable_and_derivable() -> None:
    na = NameAddr.parse("<sip:a@example.com>;tag=1")
    with pytest.raises(TypeError):
        na.params["tag"] = "2"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        na.display = "x"  # type: ignore[misc]
    changed = na.with_params(tag="2", q="0.5")
    assert str(changed) == "<sip:a@example.com>;tag=2;q=0.5" and na.tag == "1"
    assert str(NameAddr(SipUri(host="example.com", user="b"), "B \"x\"")) == '"B \\"x\\"" <sip:b@example.com>'


def test_expires_parameter_bounds() -> None:
    assert NameAddr.parse("<sip:a@b>;expires=0").expires == 0
    assert NameAddr.parse("<sip:a@b>;expires=280297596632815").expires == 2**32 - 1
    assert NameAddr.parse("<sip:a@b>;expires=" + "9" * 50).expires == 2**32 - 1
    with pytest.raises(ParseError):
        NameAddr.parse("<sip:a@b>;expires=-1").expires  # noqa: B018


# --- CSeq ------------------------------------------------------------------------------


def test_cseq() -> None:
    assert CSeq.parse("0009\r\n INVITE".replace("\r\n", "")) == CSeq(9, "INVITE")
    assert CSeq.parse("  101   REGISTER ") == CSeq(101, "REGISTER")
    assert str(CSeq(2**31 - 1, "BYE")) == "2147483647 BYE"
    for bad in ("2147483648 INVITE", "36893488147419103232 REGISTER", "1", "x INVITE", "1 IN VITE", "1 INV<ITE", "-1 BYE", "١ BYE"):
        with pytest.raises(ParseError):
            CSeq.parse(bad)


# --- Headers -------------------------------------------------------------------------------


def test_headers_multimap_operations() -> None:
    h = Headers.of([("Via", "SIP/2.0/UDP a"), ("v", "SIP/2.0/UDP b"), ("Route", "<sip:r1>, <sip:r2>"), ("To", "<sip:x@y>")])
    assert list(h) == [("Via", "SIP/2.0/UDP a"), ("Via", "SIP/2.0/UDP b"), ("Route", "<sip:r1>, <sip:r2>"), ("To", "<sip:x@y>")]
    assert "VIA" in h and "Contact" not in h and len(h) == 4
    assert h.get("via") == "SIP/2.0/UDP a" and h.get("Nope") is None and h.get("Nope", "d") == "d"
    assert h.get_lines("V") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert h.count("Via") == 2
    assert h.pop_first_element("Route") == "<sip:r1>"
    assert h.get("Route") == "<sip:r2>"
    assert h.pop_first_element("Route") == "<sip:r2>"
    assert "Route" not in h and h.pop_first_element("Route") is None
    h.add("Via", "SIP/2.0/UDP top", first=True)
    assert h.get("Via") == "SIP/2.0/UDP top"
    h.replace_first_element("Via", "SIP/2.0/TCP new")
    assert h.get_lines("Via")[0] == "SIP/2.0/TCP new"
    h.set("Via", "SIP/2.0/UDP only")
    assert h.get_lines("Via") == ["SIP/2.0/UDP only"] and h.keys()[0] == "via"
    h.remove("via")
    assert "Via" not in h


def test_every_mutation_clears_the_typed_cache_and_bumps_the_version() -> None:
    h = Headers.of([("Route", "<sip:a>, <sip:b>")])
    # add() drops only the parsed value of the header it adds (messages are built by
    # many adds between reads); the other mutations drop everything.
    before = h.version
    h.cache["subject"] = 1
    h.cache["route"] = 2
    h.add("Subject", "1")
    assert "subject" not in h.cache and h.cache.get("route") == 2 and h.version == before + 1
    h.get("Route")  # builds the index
    h.add("Route", "<sip:z>")
    h.add("Route", "<sip:y>", first=True)
    assert h.get_lines("Route") == ["<sip:y>", "<sip:a>, <sip:b>", "<sip:z>"]
    assert h.values("Route") == ["<sip:y>", "<sip:a>", "<sip:b>", "<sip:z>"]
    mutations: list[Callable[[], object]] = [
        lambda: h.set("X", "2"),
        lambda: h.remove("X"),
        lambda: h.replace_first_element("Route", "<sip:c>"),
        lambda: h.pop_first_element("Route"),
    ]
    for mutate in mutations:
        h.cache["probe"] = 1
        before = h.version
        mutate()
        assert "probe" not in h.cache and h.version == before + 1


def test_header_values_cannot_smuggle_lines() -> None:
    h = Headers()
    for bad in ("a\r\nVia: evil", "a\nb", "a\rb"):
        with pytest.raises(ValueError):
            h.add("Subject", bad)
        with pytest.raises(ValueError):
            h.set("Subject", bad)
    with pytest.raises(ParseError):
        h.add("Bad Name", "x")


def test_parse_caches_can_be_emptied() -> None:
    """The quiet-time full collection empties them (switch/gc_policy.py): cached values made
    during a burst would otherwise keep that burst's allocator arenas from going back."""
    from switch.sip import headers, uri

    a = NameAddr.parse("<sip:cache-test@example.net>;tag=cache-1")
    assert NameAddr.parse("<sip:cache-test@example.net>;tag=cache-1") is a  # cached: the same object
    uri.parse_uri("sip:cache-test-2@example.net")
    assert headers._ADDR_CACHE and uri._URI_CACHE
    headers.clear_parse_caches()
    assert not headers._ADDR_CACHE and not uri._URI_CACHE and not uri._HOST_CACHE
    b = NameAddr.parse("<sip:cache-test@example.net>;tag=cache-1")
    assert b == a and b is not a
