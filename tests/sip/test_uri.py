"""URIs: sip/sips/tel parsing, escapes, IPv6 and RFC 3261 §19.1.4 comparison."""

from __future__ import annotations

import dataclasses

import pytest

from switch.sip.errors import ParseError, UnsupportedScheme
from switch.sip.uri import (
    AbsoluteUri,
    SipUri,
    TelUri,
    format_host,
    parse_uri,
    split_hostport,
    unescape,
    uri_equal,
)


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def test_full_sip_uri() -> None:
    u = sip("sips:alice:secret@Atlanta.example.com:5061;transport=TCP;lr;maddr=239.255.255.1?subject=hi&priority=urgent")
    assert (u.scheme, u.user, u.password, u.host, u.port) == ("sips", "alice", "secret", "Atlanta.example.com", 5061)
    assert dict(u.params) == {"transport": "TCP", "lr": None, "maddr": "239.255.255.1"}
    assert u.transport == "tcp" and u.lr
    assert dict(u.headers) == {"subject": "hi", "priority": "urgent"}
    assert str(u) == "sips:alice:secret@Atlanta.example.com:5061;transport=TCP;lr;maddr=239.255.255.1?subject=hi&priority=urgent"


def test_scheme_is_case_insensitive_and_host_only_uri() -> None:
    u = sip("SIP:example.com")
    assert (u.scheme, u.user, u.host, u.port) == ("sip", None, "example.com", None)
    assert str(u) == "sip:example.com"


def test_parsed_uri_parameters_are_read_only() -> None:
    u = sip("sip:bob@example.com;lr")
    with pytest.raises(TypeError):
        u.params["x"] = "y"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        u.host = "evil.example.com"  # type: ignore[misc]
    v = u.with_params(transport="tcp")
    assert str(v) == "sip:bob@example.com;lr;transport=tcp" and str(u) == "sip:bob@example.com;lr"
    assert str(v.without_params("lr")) == "sip:bob@example.com;transport=tcp"


def test_same_text_gives_equal_value_from_cache() -> None:
    assert parse_uri("sip:carol@chicago.example.com") is parse_uri("sip:carol@chicago.example.com")


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:alice@[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:alice@[2001:db8::10]:5070;transport=udp", "[2001:db8::10]", 5070),
        ("sip:[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]", None),
        ("sip:192.0.2.1:5060", "192.0.2.1", 5060),
    ],
)
def test_ip_hosts(text: str, host: str, port: int | None) -> None:
    u = sip(text)
    assert (u.host, u.port) == (host, port)
    assert str(u) == text


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@[2001:db8::10",  # unterminated reference
        "sip:alice@[2001:db8:::10]",  # not an address
        "sip:alice@[192.0.2.1]",  # IPv4 in brackets
        "sip:alice@2001:db8::10",  # IPv6 without brackets
        "sip:alice@256.0.0.1",
        "sip:alice@1.2.3.4.5",
        "sip:alice@example.com:65536",
        "sip:alice@example.com:",
        "sip:alice@example.com:50a",
        "sip:alice@-example.com",
        "sip:alice@exa_mple.com",
        "sip:alice@",
        "sip:",
        "sip:al ice@example.com",
        "sip:al<ice@example.com",
        "sip:%zz@example.com",
        "sip:alice:p@ss@example.com",
        "sip:alice@example.com;",
        "sip:alice@example.com;a=b=c;",
        "sip:alice@example.com;na me=1",
        "sip:alice@example.com?hdr",
        "sip:alice@example.com?h=<x>",
        "alice@example.com",
        ":foo",
    ],
)
def test_bad_sip_uris_are_400(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_uri(text)
    assert info.value.status == 400


@pytest.mark.parametrize("text", ["http://www.example.com", "nobodyKnowsThisScheme:totallyopaquecontent", "soap.beep://192.0.2.103:3002", "mailto:a@b.example"])
def test_unknown_schemes(text: str) -> None:
    with pytest.raises(UnsupportedScheme) as info:
        parse_uri(text)
    assert info.value.status == 416
    absolute = parse_uri(text, absolute_ok=True)
    assert isinstance(absolute, AbsoluteUri)
    assert str(absolute) == text.split(":", 1)[0].lower() + ":" + text.split(":", 1)[1]
    assert (absolute.host, absolute.user, absolute.port, dict(absolute.params)) == ("", None, None, {})


def test_garbage_scheme_is_400_not_416() -> None:
    with pytest.raises(ParseError) as info:
        parse_uri("<sip:user@example.com>")
    assert info.value.status == 400
    with pytest.raises(ParseError) as info:
        parse_uri("1sip:user@example.com")
    assert info.value.status == 400


def test_escapes_are_kept_and_decoded_on_request() -> None:
    u = sip("sip:sips%3Auser%40example.com@example.net")
    assert u.user == "sips%3Auser%40example.com"
    assert u.user_unescaped == "sips:user@example.com"
    assert sip("sip:null-%00-null@example.com").user_unescaped == "null-\x00-null"
    assert unescape("100%") == "100%"
    assert unescape("a%zzb") == "a%zzb"


def test_user_part_may_hold_reserved_characters() -> None:
    u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com")
    assert u.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert u.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert not u.params and not u.headers


def test_telephone_subscriber_in_sip_uri() -> None:
    u = sip("sip:+1-212-555-1212:1234@gateway.example.com;user=phone")
    assert (u.user, u.password, u.params["user"]) == ("+1-212-555-1212", "1234", "phone")


# --- tel URIs (RFC 3966) --------------------------------------------------------


def test_global_tel_uri_with_visual_separators() -> None:
    t = parse_uri("tel:+1-201-555-0123")
    assert isinstance(t, TelUri)
    assert t.is_global and t.digits == "+12015550123" and t.user == "+12015550123"
    assert str(t) == "tel:+1-201-555-0123"


def test_local_tel_uri_with_phone_context() -> None:
    t = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(t, TelUri)
    assert not t.is_global and t.phone_context == "example.com"
    t2 = parse_uri("tel:863-1234;phone-context=+1-914-555")
    assert isinstance(t2, TelUri) and t2.digits == "8631234" and t2.phone_context == "+1-914-555"


def test_tel_with_extension_and_hash() -> None:
    t = parse_uri("tel:+358-555-1234567;ext=(123)")
    assert isinstance(t, TelUri) and t.params["ext"] == "(123)"
    t2 = parse_uri("tel:*31#;phone-context=example.com")
    assert isinstance(t2, TelUri) and t2.digits == "*31#"
    t3 = parse_uri("tel:%2331;phone-context=example.com")
    assert isinstance(t3, TelUri) and t3.digits == "#31"


@pytest.mark.parametrize(
    "text", ["tel:", "tel:+", "tel:+-()", "tel:12 34", "tel:+123;phone-context=", "tel:123;phone-context=bad_dom!", "tel:+1;=x"]
)
def test_bad_tel_uris(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_tel_comparison() -> None:
    """RFC 3966 §4: separators ignored, parameters compared by name, case-insensitive."""
    assert uri_equal(parse_uri("tel:+1-201-555-0123"), parse_uri("tel:+1(201)5550123"))
    assert uri_equal(
        parse_uri("tel:7042;phone-context=EXAMPLE.com"), parse_uri("tel:7042;phone-context=example.com")
    )
    assert uri_equal(parse_uri("tel:863-1234;phone-context=+1-914-555"), parse_uri("tel:8631234;phone-context=+1914555"))
    assert not uri_equal(parse_uri("tel:+12015550123"), parse_uri("tel:12015550123;phone-context=example.com"))
    assert not uri_equal(parse_uri("tel:+12015550123"), parse_uri("tel:+12015550123;ext=1"))
    assert not uri_equal(parse_uri("tel:+12015550123"), parse_uri("sip:+12015550123@example.com"))


# --- RFC 3261 §19.1.4 comparison ---------------------------------------------------

# The RFC's own examples.
EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
]
NOT_EQUAL = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),  # usernames differ
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),  # can resolve to different ports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),  # different transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),  # port and transport
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),  # header component
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),  # even if that is what it resolves to
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_rfc3261_equal_examples(a: str, b: str) -> None:
    assert uri_equal(parse_uri(a), parse_uri(b))
    assert uri_equal(parse_uri(b), parse_uri(a))


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL)
def test_rfc3261_not_equal_examples(a: str, b: str) -> None:
    assert not uri_equal(parse_uri(a), parse_uri(b))
    assert not uri_equal(parse_uri(b), parse_uri(a))


def test_equality_is_not_transitive() -> None:
    """§19.1.4: ;security=on and ;security=off each match the bare URI but not each other."""
    bare = parse_uri("sip:carol@chicago.com")
    on = parse_uri("sip:carol@chicago.com;security=on")
    off = parse_uri("sip:carol@chicago.com;security=off")
    assert uri_equal(bare, on) and uri_equal(bare, off) and not uri_equal(on, off)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("sip:alice@atlanta.com", "sips:alice@atlanta.com", False),  # SIPS never equals SIP
        ("sip:alice@atlanta.com", "sip:atlanta.com", False),  # user on one side only
        ("sip:alice:pw@atlanta.com", "sip:alice@atlanta.com", False),  # password on one side only
        ("sip:alice@atlanta.com;maddr=239.255.255.1", "sip:alice@atlanta.com", False),
        ("sip:alice@atlanta.com;ttl=15", "sip:alice@atlanta.com", False),
        ("sip:alice@atlanta.com;user=phone", "sip:alice@atlanta.com", False),
        ("sip:alice@atlanta.com;method=INVITE", "sip:alice@atlanta.com;method=invite", True),
        ("sip:alice@atlanta.com;lr", "sip:alice@atlanta.com;lr=on", False),
        ("sip:a%3Bb@atlanta.com", "sip:a;b@atlanta.com", False),  # reserved: escape is significant
        ("sip:a%3bb@atlanta.com", "sip:a%3Bb@atlanta.com", True),  # hex digits are not
        ("sip:%41lice@atlanta.com", "sip:alice@atlanta.com", False),  # userinfo is case-sensitive
        ("sip:alice@[2001:db8::1]", "sip:alice@[2001:DB8:0:0:0:0:0:1]", True),
        ("sip:alice@atlanta.com?Subject=a", "sip:alice@atlanta.com?subject=a", True),
        ("sip:alice@atlanta.com;Foo=BAR", "sip:alice@atlanta.com;foo=bar", True),
    ],
)
def test_comparison_rules(a: str, b: str, equal: bool) -> None:
    assert uri_equal(parse_uri(a), parse_uri(b)) is equal


def test_absolute_uris_compare_by_text() -> None:
    a = parse_uri("http://www.example.com", absolute_ok=True)
    assert uri_equal(a, parse_uri("HTTP://www.example.com", absolute_ok=True))
    assert not uri_equal(a, parse_uri("sip:www.example.com"))


def test_split_hostport_and_format_host() -> None:
    assert split_hostport("example.com") == ("example.com", None)
    assert split_hostport("example.com:5060") == ("example.com", 5060)
    assert split_hostport("[2001:db8::1]:5061") == ("[2001:db8::1]", 5061)
    assert split_hostport("[2001:db8::1]") == ("[2001:db8::1]", None)
    for bad in ("[2001:db8::1]x", "[2001:db8::1]:", "host:99999", "host:-1"):
        with pytest.raises(ParseError):
            split_hostport(bad)
    assert format_host("2001:db8::1") == "[2001:db8::1]"
    assert format_host("[2001:db8::1]") == "[2001:db8::1]"
    assert format_host("192.0.2.1") == "192.0.2.1"
    assert str(SipUri(host="2001:db8::1", port=5060)) == "sip:[2001:db8::1]:5060"


@pytest.mark.parametrize(
    ("text", "user"),
    [
        ("sip:*21*22000002#@127.0.0.1:5060", "*21*22000002#"),  # as a Cisco SPA sends a typed code
        ("sip:*21*22000002%23@127.0.0.1", "*21*22000002%23"),  # escaped, as RFC 3261 §25.1 wants
        ("sip:##002#@voip.example.no;user=phone", "##002#"),
        ("sip:*#21#@voip.example.no", "*#21#"),
    ],
)
def test_star_codes_in_the_user_part_are_accepted_bare_or_escaped(text: str, user: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri) and uri.user == user
    assert str(uri) == text


@pytest.mark.parametrize("text", ["sip:22 000@h", "sip:a<b@h", "sip:a\"b@h"])
def test_other_unescaped_user_characters_are_still_refused(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)
