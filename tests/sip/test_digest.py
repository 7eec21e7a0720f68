"""Tests for switch.sip.digest: RFC vectors, parsing, challenges, the server flow, client."""

from __future__ import annotations

import ast
import contextlib
import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.sip.digest import (
    Challenge,
    Credentials,
    DigestClient,
    DigestError,
    DigestParseError,
    canonical_algorithm,
    challenges_for,
    choose_challenge,
    dummy_ha1,
    ha1,
    parse_challenge,
    parse_challenges,
    parse_credentials,
    supported_algorithms,
    verify,
)
from switch.sip.nonces import NonceCounter, NonceManager, NonceStatus

SECRET = b"0123456789abcdef0123456789abcdef"
HAS_SHA512_256 = "SHA-512-256" in supported_algorithms()


def md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


# ---------------------------------------------------------------------------
# RFC example vectors
# ---------------------------------------------------------------------------

# RFC 2617 §3.5 (also RFC 3261 §22.4 style). Password "Circle Of Life", capital O.
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa",\r\n'
    '       realm="testrealm@host.com",\r\n'
    '       nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n'
    '       uri="/dir/index.html",\r\n'
    "       qop=auth,\r\n"
    "       nc=00000001,\r\n"
    '       cnonce="0a4f113b",\r\n'
    '       response="6629fae49393a05397450978507c4ef1",\r\n'
    '       opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)

# RFC 7616 §3.9.1. Password "Circle of Life", lower-case o (erratum 4495).
RFC7616_REALM = "http-auth@example.org"
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


def rfc7616_authorization(algorithm: str) -> str:
    return (
        'Digest username="Mufasa", realm="http-auth@example.org", '
        f'uri="/dir/index.html", algorithm={algorithm}, nonce="{RFC7616_NONCE}", '
        f'nc=00000001, cnonce="{RFC7616_CNONCE}", qop=auth, '
        f'response="{RFC7616_RESPONSES[algorithm]}", opaque="{RFC7616_OPAQUE}"'
    )


def test_rfc2617_example_parses_and_verifies() -> None:
    creds = parse_credentials(RFC2617_AUTHORIZATION)
    assert creds == Credentials(
        username="Mufasa",
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        uri="/dir/index.html",
        response="6629fae49393a05397450978507c4ef1",
        algorithm="MD5",
        cnonce="0a4f113b",
        opaque="5ccc069c403ebaf9f0171e9517f40e41",
        qop="auth",
        nc="00000001",
    )
    assert creds.nc_value == 1
    key = ha1("Mufasa", "testrealm@host.com", "Circle Of Life", "MD5")
    assert verify(creds, "GET", key) is True
    assert verify(creds, "POST", key) is False
    wrong = ha1("Mufasa", "testrealm@host.com", "Circle of Life", "MD5")
    assert verify(creds, "GET", wrong) is False


def test_rfc2617_example_from_client() -> None:
    client = DigestClient("Mufasa", "Circle Of Life")
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = client.authorize(challenge, "GET", "/dir/index.html", cnonce="0a4f113b")
    creds = parse_credentials(value)
    assert creds.response == "6629fae49393a05397450978507c4ef1"
    assert creds.qop == "auth"
    assert creds.nc == "00000001"
    assert creds.opaque == "5ccc069c403ebaf9f0171e9517f40e41"


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_examples_verify(algorithm: str) -> None:
    creds = parse_credentials(rfc7616_authorization(algorithm))
    assert creds.algorithm == algorithm
    key = ha1("Mufasa", RFC7616_REALM, "Circle of Life", algorithm)
    assert verify(creds, "GET", key) is True
    # RFC 2617's capital-O password must not verify against RFC 7616's example.
    assert verify(creds, "GET", ha1("Mufasa", RFC7616_REALM, "Circle Of Life", algorithm)) is False


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_examples_from_client(algorithm: str) -> None:
    challenge = Challenge(
        realm=RFC7616_REALM,
        nonce=RFC7616_NONCE,
        algorithm=algorithm,
        qop="auth, auth-int",
        opaque=RFC7616_OPAQUE,
    )
    value = DigestClient("Mufasa", "Circle of Life").authorize(
        challenge, "GET", "/dir/index.html", cnonce=RFC7616_CNONCE
    )
    assert f'response="{RFC7616_RESPONSES[algorithm]}"' in value
    assert f"algorithm={algorithm}" in value
    assert "qop=auth," in value and "nc=00000001" in value


def test_ha1_values() -> None:
    assert ha1("Mufasa", "testrealm@host.com", "Circle Of Life") == md5(
        "Mufasa:testrealm@host.com:Circle Of Life"
    )
    assert ha1("u", "r", "p", "sha-256") == hashlib.sha256(b"u:r:p").hexdigest()
    assert ha1("u", "r", "p", "MD5-sess") == md5("u:r:p")
    # UTF-8 encoding of non-ASCII (RFC 7616 §4).
    assert ha1("Jäsøn", "r", "pässword") == hashlib.md5("Jäsøn:r:pässword".encode()).hexdigest()
    with pytest.raises(DigestError):
        ha1("u", "r", "p", "SHA-1")


def test_rfc2069_no_qop() -> None:
    # RFC 2069 style: response = H(HA1:nonce:H(method:uri)).
    key = ha1("Mufasa", "testrealm@host.com", "CircleOfLife")
    nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093"
    expected = md5(f"{key}:{nonce}:{md5('GET:/dir/index.html')}")
    assert expected == "1949323746fe6a43ef61f9606e7febea"  # RFC 2069 §2.4 example
    creds = parse_credentials(
        f'Digest username="Mufasa", realm="testrealm@host.com", nonce="{nonce}", '
        f'uri="/dir/index.html", response="{expected}"'
    )
    assert creds.qop is None and creds.nc is None and creds.cnonce is None
    assert verify(creds, "GET", key) is True
    assert verify(creds, "GET", key, allow_rfc2069=False) is False


def test_client_rfc2069_when_no_qop_offered() -> None:
    challenge = Challenge(realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop=None)
    value = DigestClient("Mufasa", "CircleOfLife").authorize(challenge, "GET", "/dir/index.html")
    creds = parse_credentials(value)
    assert creds.response == "1949323746fe6a43ef61f9606e7febea"
    assert "qop=" not in value and "nc=" not in value and "cnonce=" not in value


# ---------------------------------------------------------------------------
# verify: algorithms, auth-int, sess, tampering
# ---------------------------------------------------------------------------


def _roundtrip(algorithm: str, qop: str = "auth", body: bytes = b"") -> tuple[Credentials, str]:
    challenge = Challenge(realm="sip.example.no", nonce="abc123", algorithm=algorithm, qop=qop)
    value = DigestClient("4722334455", "s3cret").authorize(
        challenge, "REGISTER", "sip:sip.example.no", body=body, cnonce="c0ffee"
    )
    return parse_credentials(value), ha1("4722334455", "sip.example.no", "s3cret", algorithm)


@pytest.mark.parametrize("algorithm", supported_algorithms())
def test_roundtrip_every_algorithm(algorithm: str) -> None:
    creds, key = _roundtrip(algorithm)
    assert creds.algorithm == algorithm
    assert verify(creds, "REGISTER", key) is True
    assert verify(creds, "INVITE", key) is False


def test_sha256_response_length_and_value() -> None:
    creds, key = _roundtrip("SHA-256")
    def sha(s: str) -> str:
        return hashlib.sha256(s.encode()).hexdigest()

    expected = sha(f"{key}:abc123:00000001:c0ffee:auth:{sha('REGISTER:sip:sip.example.no')}")
    assert creds.response == expected
    assert len(creds.response) == 64


def test_md5_sess_value() -> None:
    creds, key = _roundtrip("MD5-sess")
    a1 = md5(f"{key}:abc123:c0ffee")
    expected = md5(f"{a1}:abc123:00000001:c0ffee:auth:{md5('REGISTER:sip:sip.example.no')}")
    assert creds.response == expected
    assert verify(creds, "REGISTER", key) is True


@pytest.mark.skipif(not HAS_SHA512_256, reason="hashlib lacks sha512_256")
def test_sha512_256_value() -> None:
    creds, key = _roundtrip("SHA-512-256")
    def h(s: str) -> str:
        return hashlib.new("sha512_256", s.encode()).hexdigest()

    assert key == h("4722334455:sip.example.no:s3cret")
    assert creds.response == h(f"{key}:abc123:00000001:c0ffee:auth:{h('REGISTER:sip:sip.example.no')}")


def test_auth_int_covers_body() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    creds, key = _roundtrip("MD5", qop="auth-int", body=body)
    assert creds.qop == "auth-int"
    a2 = md5(f"REGISTER:sip:sip.example.no:{hashlib.md5(body).hexdigest()}")
    assert creds.response == md5(f"{key}:abc123:00000001:c0ffee:auth-int:{a2}")
    assert verify(creds, "REGISTER", key, body) is True
    assert verify(creds, "REGISTER", key, body + b"x") is False


def test_client_prefers_auth_over_auth_int() -> None:
    creds, _ = _roundtrip("MD5", qop="auth-int,auth")
    assert creds.qop == "auth"


def test_verify_rejects_tampered_fields() -> None:
    creds, key = _roundtrip("SHA-256")
    base = dict(
        username=creds.username,
        realm=creds.realm,
        nonce=creds.nonce,
        uri=creds.uri,
        response=creds.response,
        algorithm=creds.algorithm,
        cnonce=creds.cnonce,
        qop=creds.qop,
        nc=creds.nc,
    )
    assert verify(Credentials(**base), "REGISTER", key) is True  # type: ignore[arg-type]
    for name, value in [
        ("nonce", "abc124"),
        ("uri", "sip:other.example.no"),
        ("cnonce", "c0ffef"),
        ("nc", "00000002"),
        ("response", "0" * 64),
        ("algorithm", "MD5"),
        ("algorithm", "SHA-1"),
        ("qop", "auth-conf"),
    ]:
        changed = dict(base, **{name: value})
        assert verify(Credentials(**changed), "REGISTER", key) is False, name  # type: ignore[arg-type]


def test_verify_accepts_upper_case_response_hex() -> None:
    creds, key = _roundtrip("MD5")
    upper = parse_credentials(
        f'Digest username="{creds.username}", realm="{creds.realm}", nonce="{creds.nonce}", '
        f'uri="{creds.uri}", response="{creds.response.upper()}", qop=auth, '
        f'nc={creds.nc}, cnonce="{creds.cnonce}"'
    )
    assert verify(upper, "REGISTER", key) is True
    assert verify(upper, "REGISTER", key.upper()) is True


def test_verify_non_ascii_response_is_false_not_error() -> None:
    creds = parse_credentials(
        'Digest username="a", realm="r", nonce="n", uri="u", response="ææææ"'
    )
    assert verify(creds, "GET", ha1("a", "r", "p")) is False


def test_sess_without_cnonce_is_false() -> None:
    creds = parse_credentials(
        'Digest username="a", realm="r", nonce="n", uri="u", response="00", algorithm=MD5-sess'
    )
    assert verify(creds, "GET", ha1("a", "r", "p")) is False


# ---------------------------------------------------------------------------
# parse_credentials: grammar robustness
# ---------------------------------------------------------------------------


def test_parse_escapes_in_quoted_strings() -> None:
    creds = parse_credentials(
        r'Digest username="a\"b\\c", realm="r\ealm", nonce="n", uri="sip:x@y", response="00"'
    )
    assert creds.username == 'a"b\\c'
    assert creds.realm == "realm"


def test_parse_commas_and_semicolons_inside_quotes() -> None:
    creds = parse_credentials(
        'Digest username="x", realm="a, b=c", nonce="n", uri="sip:u@h;transport=tcp", response="00"'
    )
    assert creds.realm == "a, b=c"
    assert creds.uri == "sip:u@h;transport=tcp"


def test_parse_case_insensitive_names_and_scheme() -> None:
    creds = parse_credentials(
        'dIgEsT USERNAME="x", Realm="r", NONCE="n", Uri="u", Response="00", '
        "ALGORITHM=sha-256, QOP=AUTH, NC=0000000A, CNonce=\"c\""
    )
    assert (creds.username, creds.realm, creds.nonce, creds.uri) == ("x", "r", "n", "u")
    assert creds.algorithm == "SHA-256"
    assert creds.qop == "AUTH"  # kept as sent: it enters the hash
    assert creds.nc == "0000000A" and creds.nc_value == 10


def test_verify_hashes_qop_and_nc_as_sent() -> None:
    key = ha1("x", "r", "p")
    a2 = md5("GET:u")
    response = md5(f"{key}:n:0000000A:c:AUTH:{a2}")
    creds = parse_credentials(
        f'Digest username="x", realm="r", nonce="n", uri="u", response="{response}", '
        'qop=AUTH, nc=0000000A, cnonce="c"'
    )
    assert verify(creds, "GET", key) is True


def test_parse_whitespace_and_empty_list_elements() -> None:
    creds = parse_credentials(
        '  Digest\tusername = "x" ,, realm= "r",nonce ="n" ,\r\n uri="u",response="00" ,  '
    )
    assert (creds.username, creds.realm, creds.nonce, creds.uri, creds.response) == (
        "x",
        "r",
        "n",
        "u",
        "00",
    )


def test_parse_quoted_qop_nc_algorithm_tolerated() -> None:
    creds = parse_credentials(
        'Digest username="x", realm="r", nonce="n", uri="u", response="00", '
        'qop="auth", nc="00000001", cnonce="c", algorithm="MD5"'
    )
    assert (creds.qop, creds.nc, creds.algorithm) == ("auth", "00000001", "MD5")


def test_parse_keeps_unknown_params_and_empty_quoted_values() -> None:
    creds = parse_credentials(
        'Digest username="", realm="", nonce="n", uri="u", response="00", foo=bar, '
        'x-extension="1, 2"'
    )
    assert creds.username == "" and creds.realm == ""
    assert creds.params["foo"] == "bar"
    assert creds.params["x-extension"] == "1, 2"


def test_parse_unknown_algorithm_kept_raw() -> None:
    creds = parse_credentials(
        'Digest username="x", realm="r", nonce="n", uri="u", response="00", algorithm=AKAv1-MD5'
    )
    assert creds.algorithm == "AKAv1-MD5"
    assert verify(creds, "GET", ha1("x", "r", "p")) is False


def test_parse_username_star() -> None:
    creds = parse_credentials(
        "Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm=\"r\", nonce=\"n\", "
        'uri="u", response="00", userhash=false'
    )
    assert creds.username == "Jäsøn Doe"
    assert creds.userhash is False


def test_parse_userhash_flag() -> None:
    creds = parse_credentials(
        'Digest username="488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec", '
        'realm="r", nonce="n", uri="u", response="00", userhash=true'
    )
    assert creds.userhash is True


def test_parse_ignores_cnonce_nc_without_qop() -> None:
    creds = parse_credentials(
        'Digest username="x", realm="r", nonce="n", uri="u", response="00", nc=00000001, cnonce="c"'
    )
    assert creds.nc is None and creds.cnonce is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "Digest",
        'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==',
        'Basic realm="x"',
        'Digest realm="r", nonce="n", uri="u", response="00"',  # no username
        'Digest username="x", nonce="n", uri="u", response="00"',  # no realm
        'Digest username="x", realm="r", uri="u", response="00"',  # no nonce
        'Digest username="x", realm="r", nonce="n", response="00"',  # no uri
        'Digest username="x", realm="r", nonce="n", uri="u"',  # no response
        'Digest username="x", realm="r", nonce="n", uri="u", response="00", qop=auth',  # no nc/cnonce
        # nc must be exactly 8 hex digits
        'Digest username="x", realm="r", nonce="n", uri="u", response="0", qop=auth, nc=1, cnonce="c"',
        'Digest username="x", realm="r", nonce="n", uri="u", response="0", qop=auth, nc=0000000g, cnonce="c"',
        'Digest username="x", realm="r", nonce="n", uri="u", response="0", qop=auth, nc=000000001, cnonce=c',
        'Digest username="x, realm="r", nonce="n", uri="u", response="00"',  # unterminated
        'Digest username="x\\',  # dangling backslash
        'Digest username="x", username="y", realm="r", nonce="n", uri="u", response="00"',
        'Digest username="x", USERNAME="y", realm="r", nonce="n", uri="u", response="00"',
        'Digest username="x" realm="r", nonce="n", uri="u", response="00"',  # missing comma
        'Digest username=, realm="r", nonce="n", uri="u", response="00"',
        'Digest username="x", realm="r", nonce="n", uri=sip:u@h, response="00"',  # unquoted URI
        'Digest username="a\x01", realm="r", nonce="n", uri="u", response="00"',  # CTL
        'Digest username="x", realm="r", nonce="n", uri="u", response="00", Digest username="y"',
        'Digest username="x", realm="r", nonce="n", uri="u", response="00", =x',
        "Digest username*=ISO-8859-1''x, realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\"",
        "Digest username*=UTF-8''%FF, realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\"",
        "Digest username*=UTF-8''x, username=\"x\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\"",
        'Digest="x"',
    ],
)
def test_parse_credentials_malformed(value: str) -> None:
    with pytest.raises(DigestParseError):
        parse_credentials(value)


def test_parse_error_is_value_error() -> None:
    assert issubclass(DigestParseError, ValueError)
    assert issubclass(DigestParseError, DigestError)


@given(st.text(max_size=200))
def test_parse_credentials_never_crashes(text: str) -> None:
    with contextlib.suppress(DigestParseError):
        parse_credentials(text)


# Printable ASCII without the two characters that need escaping, plus them.
_qtext = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@given(username=_qtext, realm=_qtext, password=_qtext, uri=_qtext)
def test_client_server_roundtrip_property(username: str, realm: str, password: str, uri: str) -> None:
    challenge = Challenge(realm=realm, nonce="n0nce", algorithm="SHA-256")
    value = DigestClient(username, password).authorize(challenge, "INVITE", uri)
    creds = parse_credentials(value)
    assert (creds.username, creds.realm, creds.uri) == (username, realm, uri)
    assert verify(creds, "INVITE", ha1(username, realm, password, "SHA-256")) is True


# ---------------------------------------------------------------------------
# Challenges
# ---------------------------------------------------------------------------


def test_challenge_to_header_exact() -> None:
    ch = Challenge(realm="sip.example.no", nonce="abc", algorithm="SHA-256", opaque="op")
    assert ch.to_header() == (
        'Digest realm="sip.example.no", nonce="abc", algorithm=SHA-256, qop="auth", opaque="op"'
    )
    stale = Challenge(realm="r", nonce="n", stale=True)
    assert stale.to_header() == 'Digest realm="r", nonce="n", algorithm=MD5, qop="auth", stale=true'
    legacy = Challenge(realm='a"b', nonce="n", qop=None)
    assert legacy.to_header() == 'Digest realm="a\\"b", nonce="n", algorithm=MD5'


def test_challenge_header_roundtrip() -> None:
    ch = Challenge(realm='we\\ird "realm", x=y', nonce="n", algorithm="SHA-256", opaque="o", stale=True)
    assert parse_challenge(ch.to_header()) == ch


def test_challenge_rejects_control_characters() -> None:
    with pytest.raises(DigestError):
        Challenge(realm="a\r\nInjected: yes", nonce="n").to_header()


def test_parse_challenge_rfc7616_style() -> None:
    ch = parse_challenge(
        'Digest\r\n realm="http-auth@example.org",\r\n qop="auth, auth-int",\r\n'
        f' algorithm=sha-256,\r\n nonce="{RFC7616_NONCE}",\r\n opaque="{RFC7616_OPAQUE}"'
    )
    assert ch == Challenge(
        realm="http-auth@example.org",
        nonce=RFC7616_NONCE,
        algorithm="SHA-256",
        qop="auth, auth-int",
        opaque=RFC7616_OPAQUE,
        stale=False,
    )
    assert ch.qop_options == ("auth", "auth-int")


def test_parse_challenge_defaults_and_stale() -> None:
    ch = parse_challenge('Digest realm="r", nonce="n", stale=TRUE')
    assert (ch.algorithm, ch.qop, ch.opaque, ch.stale) == ("MD5", None, None, True)
    assert ch.qop_options == ()
    assert parse_challenge('Digest realm="r", nonce="n", stale="false"').stale is False


@pytest.mark.parametrize(
    "value",
    [
        'Digest nonce="n"',
        'Digest realm="r"',
        'Basic realm="r"',
        'Digest realm="r", nonce="n", Digest realm="s", nonce="m"',
        "",
    ],
)
def test_parse_challenge_malformed(value: str) -> None:
    with pytest.raises(DigestParseError):
        parse_challenge(value)


def test_parse_challenges_several_in_one_value() -> None:
    value = (
        'Negotiate abc+/def==, Basic realm="b", '
        'Digest realm="r", nonce="n1", algorithm=SHA-256, qop="auth", '
        'Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"'
    )
    chs = parse_challenges(value)
    assert [(c.algorithm, c.nonce) for c in chs] == [("SHA-256", "n1"), ("MD5", "n1")]


def test_challenges_for_orders_strongest_first() -> None:
    nm = NonceManager(SECRET)
    chs = challenges_for("sip.example.no", nm, 1000.0, algorithms=("MD5", "SHA-256"))
    assert [c.algorithm for c in chs] == ["SHA-256", "MD5"]
    assert chs[0].nonce == chs[1].nonce
    assert all(c.realm == "sip.example.no" and c.qop == "auth" and not c.stale for c in chs)
    assert nm.check(chs[0].nonce, 1000.0) is NonceStatus.VALID
    stale = challenges_for("r", nm, 1000.0, stale=True, algorithms=("md5",))
    assert [(c.algorithm, c.stale) for c in stale] == [("MD5", True)]


def test_challenges_for_binding() -> None:
    nm = NonceManager(SECRET)
    (ch,) = challenges_for("r", nm, 50.0, algorithms=["SHA-256"], binding="198.51.100.7")
    assert nm.check(ch.nonce, 50.0, "198.51.100.7") is NonceStatus.VALID
    assert nm.check(ch.nonce, 50.0, "198.51.100.8") is NonceStatus.INVALID


def test_challenges_for_rejects_unknown_or_empty() -> None:
    nm = NonceManager(SECRET)
    with pytest.raises(DigestError):
        challenges_for("r", nm, 0.0, algorithms=("SHA-1",))
    with pytest.raises(DigestError):
        challenges_for("r", nm, 0.0, algorithms=())


def test_canonical_algorithm() -> None:
    assert canonical_algorithm("md5") == "MD5"
    assert canonical_algorithm("Sha-256-Sess") == "SHA-256-sess"
    assert canonical_algorithm("SHA-1") is None
    expected: tuple[str, ...] = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")
    if HAS_SHA512_256:
        expected = ("SHA-512-256", "SHA-512-256-sess", *expected)
    assert supported_algorithms() == expected


def test_full_server_flow_with_replay() -> None:
    """Challenge → client answer → verify → nc tracking → replay rejected."""
    nm = NonceManager(SECRET, lifetime=300.0)
    counter = NonceCounter(ttl=nm.lifetime)
    now = 1_700_000_000.0
    chs = challenges_for("sip.example.no", nm, now)
    client = DigestClient("line1", "pw")
    challenge = choose_challenge(chs)
    assert challenge.algorithm == "SHA-256"
    stored = {alg: ha1("line1", "sip.example.no", "pw", alg) for alg in ("SHA-256", "MD5")}

    def server(value: str, t: float) -> str:
        creds = parse_credentials(value)
        status = nm.check(creds.nonce, t)
        if status is not NonceStatus.VALID:
            return status.name.lower()
        if not verify(creds, "REGISTER", stored[creds.algorithm]):
            return "bad"
        assert creds.nc is not None
        return "ok" if counter.accept(creds.nonce, creds.cnonce, creds.nc, t) else "replay"

    first = client.authorize(challenge, "REGISTER", "sip:sip.example.no")
    assert server(first, now + 1) == "ok"
    assert server(first, now + 2) == "replay"
    second = client.authorize(challenge, "REGISTER", "sip:sip.example.no")
    assert parse_credentials(second).nc == "00000002"
    assert server(second, now + 3) == "ok"
    third = client.authorize(challenge, "REGISTER", "sip:sip.example.no")
    assert server(third, now + 301) == "stale"
    # A tampered nonce in otherwise correct credentials.
    forged = Challenge(realm="sip.example.no", nonce="A" * 43, algorithm="SHA-256")
    assert server(client.authorize(forged, "REGISTER", "sip:sip.example.no"), now) == "invalid"


# ---------------------------------------------------------------------------
# Unknown users
# ---------------------------------------------------------------------------


def test_dummy_ha1_stable_and_shaped() -> None:
    a = dummy_ha1("sip.example.no", "ghost", "MD5", SECRET)
    assert a == dummy_ha1("sip.example.no", "ghost", "md5", SECRET)
    assert re.fullmatch(r"[0-9a-f]{32}", a)
    assert re.fullmatch(r"[0-9a-f]{64}", dummy_ha1("sip.example.no", "ghost", "SHA-256", SECRET))
    assert a != dummy_ha1("sip.example.no", "ghost2", "MD5", SECRET)
    assert a != dummy_ha1("sip.example.no", "ghost", "MD5", b"another-secret-of-16+")
    assert a != dummy_ha1("other.realm", "ghost", "MD5", SECRET)
    with pytest.raises(DigestError):
        dummy_ha1("r", "u", "SHA-1", SECRET)


def test_dummy_ha1_never_verifies_a_guess() -> None:
    realm = "sip.example.no"
    fake = dummy_ha1(realm, "ghost", "SHA-256", SECRET)
    for password in ["", "ghost", "password", "1234"]:
        challenge = Challenge(realm=realm, nonce="n", algorithm="SHA-256")
        creds = parse_credentials(DigestClient("ghost", password).authorize(challenge, "REGISTER", "sip:x"))
        assert verify(creds, "REGISTER", fake) is False


# ---------------------------------------------------------------------------
# Client details
# ---------------------------------------------------------------------------


def test_client_nc_per_nonce() -> None:
    client = DigestClient("u", "p")
    a = Challenge(realm="r", nonce="a")
    b = Challenge(realm="r", nonce="b")
    ncs = [
        parse_credentials(client.authorize(ch, "INVITE", "sip:x", cnonce="c")).nc
        for ch in (a, a, b, a, b)
    ]
    assert ncs == ["00000001", "00000002", "00000001", "00000003", "00000002"]


def test_client_nonce_memory_bounded() -> None:
    client = DigestClient("u", "p", max_nonces=2)
    for nonce in ("a", "b", "c"):
        client.authorize(Challenge(realm="r", nonce=nonce), "INVITE", "sip:x")
    # "a" was forgotten: starts again at 1 (the server would answer stale).
    again = client.authorize(Challenge(realm="r", nonce="a"), "INVITE", "sip:x")
    assert parse_credentials(again).nc == "00000001"


def test_client_random_cnonce() -> None:
    client = DigestClient("u", "p")
    ch = Challenge(realm="r", nonce="n")
    c1 = parse_credentials(client.authorize(ch, "INVITE", "sip:x")).cnonce
    c2 = parse_credentials(client.authorize(ch, "INVITE", "sip:x")).cnonce
    assert c1 and c2 and c1 != c2 and len(c1) == 32


def test_client_header_format() -> None:
    value = DigestClient('us"er', "p").authorize(
        Challenge(realm="r", nonce="n", algorithm="MD5", opaque="o"), "REGISTER", "sip:r", cnonce="c"
    )
    assert value.startswith('Digest username="us\\"er", realm="r", nonce="n", uri="sip:r", response="')
    assert value.endswith(', algorithm=MD5, cnonce="c", opaque="o", qop=auth, nc=00000001')


def test_client_errors() -> None:
    client = DigestClient("u", "p")
    with pytest.raises(DigestError):
        client.authorize(Challenge(realm="r", nonce="n", algorithm="SHA-1"), "INVITE", "sip:x")
    with pytest.raises(DigestError):
        client.authorize(Challenge(realm="r", nonce="n", qop="auth-conf"), "INVITE", "sip:x")
    with pytest.raises(DigestError):
        client.authorize(Challenge(realm="r", nonce="n", algorithm="MD5-sess", qop=None), "INVITE", "sip:x")


def test_choose_challenge() -> None:
    md5_ch = Challenge(realm="r", nonce="n", algorithm="MD5")
    sha_ch = Challenge(realm="r", nonce="n", algorithm="SHA-256")
    sha1_ch = Challenge(realm="r", nonce="n", algorithm="SHA-1")
    bad_qop = Challenge(realm="r", nonce="n", algorithm="SHA-256", qop="auth-conf")
    assert choose_challenge([md5_ch, sha_ch]) is sha_ch
    assert choose_challenge([sha1_ch, md5_ch]) is md5_ch
    assert choose_challenge([bad_qop, md5_ch]) is md5_ch
    sha_ch2 = Challenge(realm="r2", nonce="n", algorithm="sha-256")
    assert choose_challenge([sha_ch2, sha_ch]) is sha_ch2  # tie: first listed
    assert choose_challenge(parse_challenges(
        'Digest realm="r", nonce="n", algorithm=MD5, Digest realm="r", nonce="n", algorithm=SHA-256'
    )).algorithm == "SHA-256"
    with pytest.raises(DigestError):
        choose_challenge([])
    with pytest.raises(DigestError):
        choose_challenge([sha1_ch, bad_qop])
    with pytest.raises(DigestError):
        choose_challenge([Challenge(realm="r", nonce="n", algorithm="MD5-sess", qop=None)])


def test_module_is_sans_io() -> None:
    import switch.sip.digest as mod

    # the source, not __file__: with the compiled core __file__ is the extension module
    tree = ast.parse(Path(str(mod.__file__)).with_name("digest.py").read_text(encoding="utf-8"))
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    assert not imported & {"asyncio", "socket", "time", "datetime", "threading", "switch"}
    assert "hashlib" in imported  # the check itself sees imports
