"""RFC 4475 torture messages: every message gets the outcome the RFC asks for.

The messages live in ``data/torture/<name>.dat``, byte for byte as the RFC
figures define them (CRLF line ends, <hex> and <repeat> expanded; see the
README there). "What the message layer decides" is checked here: parse,
validate, the status of the error. Where the RFC's outcome belongs to the
transaction layer or the TU (registrar, B2BUA), the test checks that the
message layer exposes what that decision needs, and says who decides.

Outcomes:
    "ok"       parse_message + validate_request/validate_response accept it
    400/505/416/420
               the ParseError/BadExtension status a server answers with
    "drop"     a response that fails to parse or validate: dropped, never answered
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch.sip.errors import BadExtension, ParseError, UnsupportedScheme, VersionNotSupported
from switch.sip.headers import NameAddr
from switch.sip.message import Request, Response
from switch.sip.parser import (
    StreamParser,
    check_require,
    parse_message,
    validate_request,
    validate_response,
)
from switch.sip.uri import AbsoluteUri, SipUri, TelUri, parse_uri, uri_equal

DATA = Path(__file__).parent / "data" / "torture"


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def outcome(data: bytes, *, supported: frozenset[str] = frozenset()) -> str | int:
    """What a server built on the message layer does with this datagram."""
    try:
        msg = parse_message(data)
    except ParseError as err:
        if err.partial is None:
            return "drop"
        return err.status
    if isinstance(msg, Response):
        try:
            validate_response(msg)
        except ParseError:
            return "drop"
        return "ok"
    assert isinstance(msg, Request)
    try:
        validate_request(msg)
        check_require(msg, supported)
    except (ParseError, BadExtension) as err:
        return err.status
    return "ok"


# (name, RFC section, outcome)
EXPECTED: list[tuple[str, str, str | int]] = [
    # 3.1.1 valid messages: all must be accepted
    ("wsinv", "3.1.1.1", "ok"),
    ("intmeth", "3.1.1.2", "ok"),
    ("esc01", "3.1.1.3", "ok"),
    ("escnull", "3.1.1.4", "ok"),
    ("esc02", "3.1.1.5", "ok"),
    ("lwsdisp", "3.1.1.6", "ok"),
    ("longreq", "3.1.1.7", "ok"),
    ("dblreq", "3.1.1.8", "ok"),
    ("semiuri", "3.1.1.9", "ok"),
    ("transports", "3.1.1.10", "ok"),
    ("mpart01", "3.1.1.11", "ok"),
    ("unreason", "3.1.1.12", "ok"),
    ("noreason", "3.1.1.13", "ok"),
    # 3.1.2 invalid messages
    ("badinv01", "3.1.2.1", 400),
    ("clerr", "3.1.2.2", 400),
    ("ncl", "3.1.2.3", 400),
    ("scalar02", "3.1.2.4", 400),
    ("scalarlg", "3.1.2.5", "drop"),
    ("quotbal", "3.1.2.6", 400),
    ("ltgtruri", "3.1.2.7", 400),
    ("lwsruri", "3.1.2.8", 400),
    ("lwsstart", "3.1.2.9", 400),
    ("trws", "3.1.2.10", 400),
    ("escruri", "3.1.2.11", 400),
    ("baddate", "3.1.2.12", "ok"),  # rejected only where Date is used: see test below
    ("regbadct", "3.1.2.13", 400),
    ("badaspec", "3.1.2.14", 400),
    ("baddn", "3.1.2.15", 400),
    ("badvers", "3.1.2.16", 505),
    ("mismatch01", "3.1.2.17", 400),
    ("mismatch02", "3.1.2.18", 400),
    ("bigcode", "3.1.2.19", "drop"),
    # 3.2 transaction layer semantics (the message layer accepts; see notes)
    ("badbranch", "3.2.1", "ok"),
    # 3.3 application layer semantics
    ("insuf", "3.3.1", 400),
    ("unkscm", "3.3.2", 416),
    ("novelsc", "3.3.3", 416),
    ("unksm2", "3.3.4", "ok"),  # registrar answers 400: To is not a SIP/SIPS AOR
    ("bext01", "3.3.5", 420),
    ("invut", "3.3.6", "ok"),  # TU answers 415
    ("regaut01", "3.3.7", "ok"),  # registrar answers 401 with a Digest challenge
    ("multi01", "3.3.8", 400),
    ("mcl01", "3.3.9", 400),
    ("bcast", "3.3.10", "ok"),  # transaction layer: no match for our Via -> dropped
    ("zeromf", "3.3.11", "ok"),  # a proxy answers 483; as UAS we answer normally
    ("cparam01", "3.3.12", "ok"),
    ("cparam02", "3.3.13", "ok"),
    ("regescrt", "3.3.14", "ok"),
    ("sdp01", "3.3.15", "ok"),  # TU answers 406 (or 400)
    # 3.4 backward compatibility
    ("inv2543", "3.4.1", "ok"),
]

# SHA-256 of each file: the data must stay byte-exact (no CRLF conversion by tools).
FILE_HASHES = {
    "badaspec": "f8f6e2f4247287b0",
    "badbranch": "cb049c727f16b5ec",
    "baddate": "1208a6e3e0c8a8c3",
    "baddn": "9d9428e8017092f1",
    "badinv01": "9ee2b88f2e0b5a9e",
    "badvers": "037d702d19e934bf",
    "bcast": "073637c635971991",
    "bext01": "57181987c02c4f57",
    "bigcode": "f79450070975da54",
    "clerr": "d9da629086a38df4",
    "cparam01": "dfa6b5cdb289adc6",
    "cparam02": "e93574215bd1d804",
    "dblreq": "a6be48426565c2a7",
    "esc01": "be3a316d4ce5f69c",
    "esc02": "9a9c59449f00327b",
    "escnull": "263fe2ecd12a5ccb",
    "escruri": "c3cf30af13a9d107",
    "insuf": "1e3efd9f3b238c63",
    "intmeth": "b957a8292c1c0a98",
    "inv2543": "76fac8afe22dee49",
    "invut": "9b39e824947df46f",
    "longreq": "185739292bc67676",
    "ltgtruri": "bcacb2dc17610e8c",
    "lwsdisp": "d1b36b6316c12824",
    "lwsruri": "3e22ceeca585ad23",
    "lwsstart": "f884e5626c6c5b12",
    "mcl01": "887191619bf003b7",
    "mismatch01": "a2c285636e451e75",
    "mismatch02": "01b287f9a9c492f7",
    "mpart01": "92147c8e24997bac",
    "multi01": "d156ab12105b4bfd",
    "ncl": "7ea6538edc1f054f",
    "noreason": "07e11e470a69fffa",
    "novelsc": "9a50a7343fcf685e",
    "quotbal": "e61978a2ea359fc6",
    "regaut01": "885ba0488872cfc0",
    "regbadct": "575d27530275814c",
    "regescrt": "dab4087c133348b0",
    "scalar02": "41290b20f41e5aad",
    "scalarlg": "0957eca31737e359",
    "sdp01": "497c5f1ced6c7b57",
    "semiuri": "87bbaed6b4b354db",
    "transports": "33b4553a3b941812",
    "trws": "64ae20694026e28c",
    "unkscm": "81be1a6a566c7ab5",
    "unksm2": "f6914409ced613ef",
    "unreason": "4f939d6ebf4817ee",
    "wsinv": "d6f6cdee99cd0a1f",
    "zeromf": "50954ef47acca4f9",
}


def test_every_rfc4475_message_is_present_and_covered() -> None:
    names = {p.stem for p in DATA.glob("*.dat")}
    assert names == {name for name, _, _ in EXPECTED}
    assert len(names) == 49


@pytest.mark.parametrize("name", sorted(p.stem for p in DATA.glob("*.dat")))
def test_data_is_crlf_framed(name: str) -> None:
    data = load(name)
    # every LF in a head is part of a CRLF (the RFC's figures end each line in CRLF)
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.count(b"\n") == head.count(b"\r\n")
    assert hashlib.sha256(data).hexdigest()[:16] == FILE_HASHES[name]


@pytest.mark.parametrize(("name", "section", "expected"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_outcome(name: str, section: str, expected: str | int) -> None:
    assert outcome(load(name)) == expected, f"RFC 4475 §{section}"


# --- 3.1.1 valid messages: key fields --------------------------------------


def test_wsinv_short_tortuous_invite() -> None:
    """§3.1.1.1: folding, escapes in quotes, LWS everywhere, mixed compact forms."""
    req = parse_message(load("wsinv"))
    assert isinstance(req, Request)
    validate_request(req)
    assert req.method == "INVITE"
    ruri = req.ruri
    assert isinstance(ruri, SipUri)
    assert (ruri.user, ruri.host, dict(ruri.params)) == ("vivekg", "chair-dnrc.example.com", {"unknownparam": None})
    assert str(req.to.uri) == "sip:vivekg@chair-dnrc.example.com"
    assert req.to.tag == "1918181833n"
    assert req.from_.display == 'J Rosenberg \\"'
    assert req.from_.tag == "98asjd8"
    assert req.max_forwards == 68  # leading zeros
    assert req.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (req.cseq.seq, req.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.port, v.branch) for v in req.vias] == [
        ("UDP", "192.0.2.2", None, "390skdjuw"),
        ("TCP", "spindle.example.com", None, "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", None, "z9hG4bK30239"),
    ]
    assert req.headers.get("Subject") == ""
    assert req.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert req.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    route = req.routes[0].uri
    assert isinstance(route, SipUri)
    assert dict(route.params) == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    (contact,) = req.contacts
    assert contact.display == 'Quoted string ""'
    assert dict(contact.params) == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert str(contact.uri) == "sip:jdrosen@example.com"
    assert req.content_type == "application/sdp"
    assert len(req.body) == 150 and req.body.startswith(b"v=0\r\n")


def test_intmeth_wide_range_of_valid_characters() -> None:
    """§3.1.1.2: unusual token characters, quoted NUL/BEL/DEL, UTF-8 values."""
    req = parse_message(load("intmeth"))
    assert isinstance(req, Request)
    validate_request(req)
    assert req.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert req.method != "INVITE"  # % is not an escape in a method
    ruri = req.ruri
    assert isinstance(ruri, SipUri)
    assert ruri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert ruri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert ruri.host == "example.com" and not ruri.params
    assert req.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert req.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    to_uri = req.to.uri
    assert isinstance(to_uri, SipUri) and to_uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert req.from_.display == "token1~` token2'+_ token3*%!.-"
    assert req.from_.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert req.from_.tag == "_token~1'+`*%!-."
    assert req.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert (req.cseq.seq, req.cseq.method) == (139122385, req.method)
    assert req.max_forwards == 255
    assert req.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_percent_escapes() -> None:
    """§3.1.1.3: escapes are kept as received; comparison treats them as the character."""
    req = parse_message(load("esc01"))
    assert isinstance(req, Request)
    validate_request(req)
    ruri = req.ruri
    assert isinstance(ruri, SipUri)
    assert ruri.user == "sips%3Auser%40example.com"
    assert ruri.user_unescaped == "sips:user@example.com"
    assert ruri.host == "example.net"
    to_uri = req.to.uri
    assert isinstance(to_uri, SipUri)
    assert to_uri.user_unescaped == "user"
    assert uri_equal(to_uri, parse_uri("sip:user@example.com"))
    from_uri = req.from_.uri
    assert isinstance(from_uri, SipUri) and from_uri.user_unescaped == "I have spaces"
    assert req.call_id == "esc01.239409asdfakjkn23onasd0-3234"  # compact i:
    assert req.content_type == "application/sdp"  # compact c:
    contact = req.contacts[0].uri
    assert isinstance(contact, SipUri)
    assert contact.user_unescaped == "caller"
    assert dict(contact.params) == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}
    # "value%41" is not "valueA": unescaping is never recursive (RFC 3986)
    assert uri_equal(contact, parse_uri("sip:caller@host5.example.net;lr;name=value%2541"))
    assert not uri_equal(contact, parse_uri("sip:caller@host5.example.net;lr;name=valueA"))


def test_escnull_escaped_nulls_do_not_shorten_the_user() -> None:
    """§3.1.1.4: two distinct contacts; the AOR keeps everything after the NUL."""
    req = parse_message(load("escnull"))
    assert isinstance(req, Request)
    validate_request(req)
    to_uri = req.to.uri
    assert isinstance(to_uri, SipUri)
    assert to_uri.user_unescaped == "null-\x00-null"
    users = [c.uri.user for c in req.contacts]
    assert users == ["%00", "%00%00"]
    assert not uri_equal(req.contacts[0].uri, req.contacts[1].uri)


def test_esc02_percent_that_is_not_an_escape() -> None:
    """§3.1.1.5: unknown method, display names with %, two contacts not three."""
    req = parse_message(load("esc02"))
    assert isinstance(req, Request)
    validate_request(req)
    assert req.method == "RE%47IST%45R"
    assert req.to.display == "%Z%45" and req.from_.display == "%Z%45"
    assert [str(c.uri) for c in req.contacts] == ["sip:alias1@host1.example.com", "sip:alias3@host3.example.com"]
    assert req.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert req.top_via.branch == "z9hG4bK209%fzsnel234"


def test_lwsdisp_no_space_before_angle() -> None:
    req = parse_message(load("lwsdisp"))
    assert isinstance(req, Request)
    validate_request(req)
    assert req.from_.display == "caller"
    assert str(req.from_.uri) == "sip:caller@example.com"


def test_longreq_long_values() -> None:
    """§3.1.1.7: long names and values, 34 Vias in many spellings."""
    req = parse_message(load("longreq"))
    assert isinstance(req, Request)
    validate_request(req)
    assert req.to.display == "I have a user name of " + "extreme" * 10 + " proportion"
    to_uri = req.to.uri
    assert isinstance(to_uri, SipUri) and to_uri.port == 6000
    assert to_uri.params["unknownparam1"] == "very" + "long" * 20 + "value"
    assert to_uri.params["longparam" + "name" * 25] == "shortvalue"
    assert to_uri.params["very" + "long" * 25 + "parameternamewithnovalue"] is None
    assert req.from_.tag == "12" + "982" * 50 + "424"
    assert req.call_id == "longreq.one" + "really" * 20 + "longcallid"
    vias = req.vias
    assert len(vias) == 34
    assert [v.host for v in vias[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert vias[33].received == "192.0.2.5"
    assert vias[33].branch == "very" + "long" * 50 + "branchvalue"
    name = "Unknown-" + "Long" * 20 + "-Name"
    assert req.headers.get(name) == (
        "unknown-" + "long" * 20 + "-value; unknown-" + "long" * 20 + "-parameter-name = unknown-"
        + "long" * 20 + "-parameter-value"
    )
    assert len(req.body) == 150


def test_dblreq_extra_octets_in_a_datagram_are_ignored() -> None:
    """§3.1.1.8: the INVITE after the REGISTER is noise and must not be forwarded."""
    data = load("dblreq")
    req = parse_message(data)
    assert isinstance(req, Request)
    validate_request(req)
    assert req.method == "REGISTER" and req.body == b""
    out = req.to_bytes()
    assert b"INVITE" not in out
    assert out == data[: data.index(b"\r\n\r\n") + 4]


def test_semiuri_parameters_in_user_part() -> None:
    req = parse_message(load("semiuri"))
    assert isinstance(req, Request)
    validate_request(req)
    ruri = req.ruri
    assert isinstance(ruri, SipUri)
    assert ruri.user_unescaped == "user;par=u@example.net"
    assert ruri.host == "example.com" and not ruri.params
    assert req.headers.values("Accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed",
        "multipart/signed", "message/sip", "message/sipfrag",
    ]


def test_transports_varied_and_unknown() -> None:
    req = parse_message(load("transports"))
    assert isinstance(req, Request)
    validate_request(req)
    assert [v.transport for v in req.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert req.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_binary_multipart_body() -> None:
    """§3.1.1.11: the body contains NUL octets; framing is by Content-Length only."""
    req = parse_message(load("mpart01"))
    assert isinstance(req, Request)
    validate_request(req)
    assert len(req.body) == 553
    assert b"\x00" in req.body
    assert req.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert req.content_type == "multipart/mixed"
    assert req.top_via.rport is None and "rport" in req.top_via.params
    assert (req.headers.get("Identity") or "").startswith("r5mwreLuyDRYBi/0TiPwEsY3rEVsk")


def test_unreason_utf8_reason_phrase() -> None:
    resp = parse_message(load("unreason"))
    assert isinstance(resp, Response)
    validate_response(resp)
    assert resp.status == 200
    assert resp.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"


def test_noreason_empty_reason_phrase() -> None:
    resp = parse_message(load("noreason"))
    assert isinstance(resp, Response)
    validate_response(resp)
    assert (resp.status, resp.reason) == (100, "")


# --- 3.1.2 invalid messages: the specific error -----------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("badinv01", "Empty list element"),
        ("clerr", "Content-Length 9999 exceeds"),
        ("ncl", "Bad Content-Length"),
        ("scalar02", "Bad CSeq number"),
        ("quotbal", "Unterminated quoted string"),
        ("ltgtruri", "Bad URI scheme"),
        ("lwsruri", "Bad request line"),
        ("lwsstart", "Bad request line"),
        ("trws", "Bad request line"),
        ("escruri", "Request-URI must not contain headers"),
        ("regbadct", "must be enclosed in <>"),
        ("badaspec", "Bad URI in <>"),
        ("baddn", "Display name must be quoted"),
        ("mismatch01", "CSeq method does not match"),
        ("mismatch02", "CSeq method does not match"),
        ("multi01", "Multiple"),
        ("mcl01", "Multiple Content-Length"),
        ("insuf", "Missing Call-ID"),
    ],
)
def test_invalid_request_reason_says_what_is_wrong(name: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        req = parse_message(load(name))
        assert isinstance(req, Request)
        validate_request(req)
    err = info.value
    assert err.status == 400
    assert reason in err.reason
    # the request rides on the error so a stateless 400 can be built from it
    assert isinstance(err.partial, Request)
    assert err.partial.headers.get("Call-ID") is not None or name == "insuf"
    assert "\r" not in err.reason and "\n" not in err.reason


def test_clerr_over_tcp_waits_for_more_data() -> None:
    """§3.1.2.2: on a stream the receiver can only wait (and time out)."""
    parser = StreamParser()
    assert parser.feed(load("clerr")) == []


def test_ncl_over_tcp_is_a_framing_error() -> None:
    with pytest.raises(ParseError) as info:
        StreamParser().feed(load("ncl"))
    assert info.value.status == 400 and isinstance(info.value.partial, Request)


def test_scalar02_other_fields_are_tolerated_alone() -> None:
    """§3.1.2.4: only the CSeq is fatal; Max-Forwards 300 is, the expiries are clamped."""
    req = parse_message(load("scalar02"))
    assert isinstance(req, Request)
    with pytest.raises(ParseError):
        req.max_forwards  # noqa: B018
    assert req.expires == 2**32 - 1
    assert req.contacts[0].expires == 2**32 - 1


def test_scalarlg_response_is_dropped() -> None:
    resp = parse_message(load("scalarlg"))
    assert isinstance(resp, Response)
    with pytest.raises(ParseError):
        validate_response(resp)


def test_baddate_is_rejected_only_where_date_matters() -> None:
    """§3.1.2.12: 'shouldn't [reject] unless the Date header field were important'."""
    req = parse_message(load("baddate"))
    assert isinstance(req, Request)
    validate_request(req)
    with pytest.raises(ParseError, match="GMT"):
        req.date  # noqa: B018
    good = parse_message(load("mpart01"))
    assert good.date == "Sat, 15 Oct 2005 04:44:56 GMT"


def test_badvers_is_505_with_partial() -> None:
    with pytest.raises(VersionNotSupported) as info:
        parse_message(load("badvers"))
    assert info.value.status == 505
    assert isinstance(info.value.partial, Request) and info.value.partial.method == "OPTIONS"


def test_bigcode_is_dropped() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(load("bigcode"))
    assert info.value.partial is None


# --- 3.2 transaction layer ---------------------------------------------------


def test_badbranch_parses_and_flags_the_missing_identifier() -> None:
    """§3.2.1: branch is just the magic cookie.

    Transaction layer decides: either answer 400 statelessly or fall back to
    RFC 2543 matching (§17.2.3). The message layer exposes the fact.
    """
    req = parse_message(load("badbranch"))
    assert isinstance(req, Request)
    validate_request(req)
    assert req.top_via.branch == "z9hG4bK"
    assert req.top_via.has_rfc3261_branch is False


# --- 3.3 application layer ---------------------------------------------------


def test_insuf_missing_required_headers() -> None:
    req = parse_message(load("insuf"))
    assert isinstance(req, Request)
    for accessor in ("call_id", "from_", "to"):
        with pytest.raises(ParseError, match="Missing"):
            getattr(req, accessor)
    assert req.max_forwards is None


def test_unkscm_and_novelsc_answer_416() -> None:
    for name in ("unkscm", "novelsc"):
        req = parse_message(load(name))
        assert isinstance(req, Request)
        with pytest.raises(UnsupportedScheme) as info:
            validate_request(req)
        assert info.value.status == 416 and info.value.partial is req


def test_unksm2_unknown_schemes_in_headers_are_accepted() -> None:
    """§3.3.4: parsers must accept; a registrar answers 400 (AOR must be SIP/SIPS)."""
    req = parse_message(load("unksm2"))
    assert isinstance(req, Request)
    validate_request(req)
    assert req.to.uri == AbsoluteUri("isbn", "2983792873")
    assert str(req.from_.uri) == "http://www.example.com" and req.from_.tag == "3234233"
    contact = req.contacts[0].uri
    assert isinstance(contact, AbsoluteUri) and str(contact) == "name:John_Smith"
    assert not isinstance(req.to.uri, (SipUri, TelUri))  # what the registrar checks


def test_bext01_require_and_proxy_require() -> None:
    """§3.3.5: a UAS answers 420 listing Require's options; a proxy also Proxy-Require's."""
    req = parse_message(load("bext01"))
    assert isinstance(req, Request)
    validate_request(req)
    with pytest.raises(BadExtension) as info:
        check_require(req, {"100rel", "timer"})
    assert info.value.status == 420
    assert info.value.options == ["nothingSupportsThis", "nothingSupportsThisEither"]
    with pytest.raises(BadExtension) as info:
        check_require(req, {"nothingsupportsthis", "nothingsupportsthiseither"}, proxy=True)
    assert info.value.options == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    check_require(req, {"nothingSupportsThis", "nothingSupportsThisEither"})


def test_invut_unknown_content_type_is_exposed() -> None:
    """§3.3.6: the TU answers 415 with Accept; the message layer just reads the type."""
    req = parse_message(load("invut"))
    assert isinstance(req, Request)
    validate_request(req)
    assert req.content_type == "application/unknownformat"
    assert req.body == b'<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n'


def test_regaut01_unknown_auth_scheme_is_not_split() -> None:
    """§3.3.7: the registrar challenges (401); Authorization is kept whole."""
    req = parse_message(load("regaut01"))
    assert isinstance(req, Request)
    validate_request(req)
    assert req.headers.values("Authorization") == ["NoOneKnowsThisScheme opaque-data=here"]


def test_multi01_multiple_single_value_headers() -> None:
    req = parse_message(load("multi01"))
    assert isinstance(req, Request)
    with pytest.raises(ParseError, match="Multiple"):
        validate_request(req)


def test_bcast_response_parses() -> None:
    """§3.3.10: well formed; the transaction layer drops it (top Via is not ours)."""
    resp = parse_message(load("bcast"))
    assert isinstance(resp, Response)
    validate_response(resp)
    assert [v.host for v in resp.vias] == ["192.0.2.198", "255.255.255.255"]


def test_zeromf_max_forwards_zero_is_exposed() -> None:
    """§3.3.11: a proxy answers 483; an endpoint processes it. The caller decides."""
    req = parse_message(load("zeromf"))
    assert isinstance(req, Request)
    validate_request(req)
    assert req.max_forwards == 0


def test_cparam01_addr_spec_parameters_belong_to_the_header() -> None:
    """§3.3.12: 'unknownparam' is a Contact parameter; the registered URI has none."""
    req = parse_message(load("cparam01"))
    assert isinstance(req, Request)
    validate_request(req)
    (contact,) = req.contacts
    assert dict(contact.params) == {"unknownparam": None}
    assert str(contact.uri) == "sip:+19725552222@gw1.example.net"


def test_cparam02_bracketed_parameters_belong_to_the_uri() -> None:
    """§3.3.13: inside <> the parameter is part of the URI to register."""
    req = parse_message(load("cparam02"))
    assert isinstance(req, Request)
    validate_request(req)
    (contact,) = req.contacts
    assert dict(contact.params) == {}
    assert str(contact.uri) == "sip:+19725552222@gw1.example.net;unknownparam"


def test_regescrt_escaped_header_in_contact_uri() -> None:
    """§3.3.14: the registrar stores the URI with its escaped Route header."""
    req = parse_message(load("regescrt"))
    assert isinstance(req, Request)
    validate_request(req)
    uri = req.contacts[0].uri
    assert isinstance(uri, SipUri)
    assert dict(uri.headers) == {"Route": "%3Csip:sip.example.com%3E"}
    assert str(uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def test_sdp01_accept_is_exposed() -> None:
    """§3.3.15: the TU answers 406 (Accept lacks application/sdp) or 400."""
    req = parse_message(load("sdp01"))
    assert isinstance(req, Request)
    validate_request(req)
    assert req.headers.values("Accept") == ["text/nobodyKnowsThis"]


# --- 3.4 backward compatibility ----------------------------------------------


def test_inv2543_rfc2543_syntax_is_accepted() -> None:
    """§3.4.1: no branch, no From tag, no Max-Forwards, no Content-Length (UDP).

    Transaction layer: no RFC 3261 branch, so RFC 2543 matching (§17.2.3).
    """
    req = parse_message(load("inv2543"))
    assert isinstance(req, Request)
    validate_request(req)
    assert req.top_via.branch is None and not req.top_via.has_rfc3261_branch
    assert req.from_.tag is None
    assert req.max_forwards is None
    assert req.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    from_uri = req.from_.uri
    assert isinstance(from_uri, SipUri) and from_uri.params["user"] == "phone"
    # no Content-Length: fine on UDP, a framing error on a stream
    with pytest.raises(ParseError, match="Missing Content-Length"):
        parse_message(load("inv2543"), stream=True)


# --- every message, every way ------------------------------------------------


@pytest.mark.parametrize("name", [n for n, _, o in EXPECTED if o == "ok"])
def test_accepted_messages_round_trip(name: str) -> None:
    """Serialising (unchanged and changed) gives bytes that parse to the same thing."""
    msg = parse_message(load(name))
    again = parse_message(msg.to_bytes())
    assert list(again.headers) == list(msg.headers) or name == "inv2543"
    assert again.body == msg.body
    msg.headers.add("X-Touched", "1")  # forces a fresh encoding
    fresh = msg.to_bytes()
    reparsed = parse_message(fresh, stream=True)
    assert reparsed.headers.get("X-Touched") == "1"
    assert [v for k, v in reparsed.headers if k != "X-Touched" and k != "Content-Length"] == [
        v for k, v in msg.headers if k != "X-Touched" and k != "Content-Length"
    ]
    assert reparsed.body == msg.body


@pytest.mark.parametrize("name", [n for n, _, _ in EXPECTED])
def test_stream_framing_agrees_with_datagrams(name: str) -> None:
    """Fed byte by byte over TCP, a message frames the same way (or fails cleanly)."""
    data = load(name)
    parser = StreamParser()
    got: list[object] = []
    try:
        for i in range(len(data)):
            got += parser.feed(data[i : i + 1])
    except ParseError:
        return
    if not got:
        return  # waiting for more (no Content-Length reached yet, or clerr)
    msg = got[0]
    assert isinstance(msg, (Request, Response))
    assert msg.to_bytes() == parse_message(msg.to_bytes()).to_bytes()


# --- fuzzing -------------------------------------------------------------------

_SEEDS = [load(n) for n, _, o in EXPECTED if o == "ok"]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "dup"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(
                st.sampled_from([b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b";", b",", b'"', b"<", b">",
                                 b"\\", b"%", b"\x00", b"\xff\xfe", b"=", b"@", b"[", b"]", b"\r\n "])
            )
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            end = min(len(data), pos + draw(st.integers(1, 64)))
            data[pos:pos] = data[pos:end]
    return bytes(data)


def _exercise(msg: Request | Response) -> None:
    """Touch everything a server might read; only ParseError may come out."""
    for accessor in ("call_id", "cseq", "vias", "from_", "to", "contacts", "routes", "record_routes",
                     "max_forwards", "expires", "date", "content_type"):
        try:
            getattr(msg, accessor)
        except ParseError:
            pass
    if isinstance(msg, Request):
        try:
            validate_request(msg)
        except ParseError:
            pass
        try:
            check_require(msg, {"100rel"})
        except BadExtension:
            pass
    else:
        try:
            validate_response(msg)
        except ParseError:
            pass
    for name, value in msg.headers:
        try:
            NameAddr.parse(value)
        except ParseError:
            pass
    parse_message(msg.to_bytes())


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_fuzz_mutated_messages_only_raise_parse_errors(data: bytes) -> None:
    t0 = time.process_time()
    try:
        msg = parse_message(data)
    except ParseError as err:
        assert 400 <= err.status <= 599
        assert isinstance(err.reason, str) and "\n" not in err.reason
        return
    assert isinstance(msg, (Request, Response))
    _exercise(msg)
    assert time.process_time() - t0 < 0.5


@settings(max_examples=150, deadline=None, database=None)
@given(_mutated(), st.lists(st.integers(1, 200), min_size=1, max_size=20))
def test_fuzz_stream_parser_only_raises_parse_errors(data: bytes, cuts: list[int]) -> None:
    parser = StreamParser()
    pos = 0
    i = 0
    try:
        while pos < len(data):
            step = cuts[i % len(cuts)]
            i += 1
            for item in parser.feed(data[pos : pos + step]):
                if item is not StreamParser.PING:
                    assert isinstance(item, (Request, Response))
            pos += step
    except ParseError:
        pass
