"""Authenticator: challenges per agent, and no user enumeration."""

from __future__ import annotations

import re

from switch.services.auth import AuthChallenge, Authenticator, AuthOk, AuthRejected
from switch.services.lines import LineInfo
from switch.settings import Settings
from switch.sip import digest
from switch.sip.headers import Headers
from switch.sip.message import Request

REALM = "sip.example.net"
LINE = LineInfo(1, "22000001", "+4722000001", digest.ha1("22000001", REALM, "s3cret-pass", "MD5"),
                digest.ha1("22000001", REALM, "s3cret-pass", "SHA-256"), 10, 1)


def _auth() -> Authenticator:
    return Authenticator(realm=REALM, secret=b"k" * 32, lookup={"22000001": LINE}.get,
                         md5_only_agents=Settings().md5_only_agents)


def _register(ua: str | None, authorization: str | None = None) -> Request:
    h = Headers.of([("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx"), ("From", f"<sip:22000001@{REALM}>;tag=a"),
                    ("To", f"<sip:22000001@{REALM}>"), ("Call-ID", "c1"), ("CSeq", "1 REGISTER")])
    if ua:
        h.add("User-Agent", ua)
    if authorization:
        h.add("Authorization", authorization)
    return Request("REGISTER", f"sip:{REALM}", h)


def _algorithms(result: object) -> list[str]:
    assert isinstance(result, AuthChallenge)
    return [digest.parse_challenge(v).algorithm for v in result.challenges]


def test_sha256_first_for_unknown_agents() -> None:
    assert _algorithms(_auth().check(_register("Yealink SIP-T46S 66.86"), "192.0.2.1", 1e9)) == ["SHA-256", "MD5"]
    assert _algorithms(_auth().check(_register(None), "192.0.2.1", 1e9)) == ["SHA-256", "MD5"]


def test_md5_only_for_agents_that_give_up_on_sha256() -> None:
    for ua in ("Cisco/SPA112-1.4.1(SR5)", "Linksys/PAP2T-5.1.6(LS)", "Grandstream HT802 1.0.17.5",
               "OBIHAI/OBi202-3.2.2.5921", "baresip v1.0.0 (x86_64/linux)", "sipp-bench"):
        assert _algorithms(_auth().check(_register(ua), "192.0.2.1", 1e9)) == ["MD5"], ua


def _answer(challenge: str, password: str, user: str = "22000001") -> str:
    ch = digest.parse_challenge(challenge)
    return digest.DigestClient(user, password).authorize(ch, "REGISTER", f"sip:{REALM}")


def test_sha256_and_md5_both_authenticate() -> None:
    a = _auth()
    for index in (0, 1):  # the SHA-256 and the MD5 challenge
        ch = a.check(_register("Yealink"), "192.0.2.1", 1e9)
        assert isinstance(ch, AuthChallenge)
        ok = a.check(_register("Yealink", _answer(ch.challenges[index], "s3cret-pass")), "192.0.2.1", 1e9)
        assert isinstance(ok, AuthOk) and ok.credential is LINE


def test_unknown_user_and_wrong_password_look_the_same() -> None:
    a = _auth()
    ch = a.check(_register("Cisco/SPA112"), "192.0.2.1", 1e9)
    assert isinstance(ch, AuthChallenge)
    wrong = a.check(_register("Cisco/SPA112", _answer(ch.challenges[0], "guess")), "192.0.2.1", 1e9)
    unknown = a.check(_register("Cisco/SPA112", _answer(ch.challenges[0], "guess", user="22999999")), "192.0.2.2", 1e9)
    assert isinstance(wrong, AuthRejected) and isinstance(unknown, AuthRejected)
    # the wire answer is built from the result's type alone: both are a plain 403


def test_brute_force_blocks_the_pair_not_the_neighbours() -> None:
    a = _auth()
    now = 1e9
    for _ in range(6):
        ch = a.check(_register("x"), "198.51.100.7", now)
        assert isinstance(ch, AuthChallenge)
        a.check(_register("x", _answer(ch.challenges[1], "guess")), "198.51.100.7", now)
    # the right password from the same address is refused while the pair is blocked
    ch = a.check(_register("x"), "198.51.100.7", now)
    assert isinstance(ch, AuthChallenge)
    blocked = a.check(_register("x", _answer(ch.challenges[1], "s3cret-pass")), "198.51.100.7", now)
    assert isinstance(blocked, AuthRejected) and blocked.reason == "throttled"
    # another adapter behind the same NAT address with its own user is not affected
    other = LineInfo(2, "22000002", "+4722000002", digest.ha1("22000002", REALM, "pw-two-2222", "MD5"), "", 11, 1)
    a._lookup = {"22000001": LINE, "22000002": other}.get  # type: ignore[attr-defined]
    ch = a.check(_register("x"), "198.51.100.7", now)
    ok = a.check(_register("x", _answer(ch.challenges[1], "pw-two-2222", user="22000002")), "198.51.100.7", now)
    assert isinstance(ok, AuthOk)
    # and the block lifts with time
    later = now + 3600
    ch = a.check(_register("x"), "198.51.100.7", later)
    assert isinstance(a.check(_register("x", _answer(ch.challenges[1], "s3cret-pass")), "198.51.100.7", later), AuthOk)
    assert re.match(r"^\^", Settings().md5_only_agents)


def _answer_for(challenge: str, uri: str, password: str = "s3cret-pass", user: str = "22000001") -> str:
    return digest.DigestClient(user, password).authorize(digest.parse_challenge(challenge), "REGISTER", uri)


def test_digest_uri_must_name_the_request_uri() -> None:
    """RFC 7616 §3.4.6: credentials computed for another URI are refused with 400, whoever the user is."""
    a = _auth()
    ch = a.check(_register("Cisco/SPA112"), "192.0.2.1", 1e9)
    assert isinstance(ch, AuthChallenge)
    for uri in ("sip:elsewhere.example.org", f"sip:{REALM}:5070", "not a uri"):
        for user in ("22000001", "22999999"):  # known and unknown users get the same answer
            got = a.check(_register("Cisco/SPA112", _answer_for(ch.challenges[0], uri, user=user)), "192.0.2.1", 1e9)
            assert isinstance(got, AuthRejected) and got.status == 400, (uri, user, got)
    # equal by RFC 3261 §19.1.4 though spelt differently: accepted
    ok = a.check(_register("Cisco/SPA112", _answer_for(ch.challenges[0], f"sip:{REALM.upper()}")), "192.0.2.9", 1e9)
    assert isinstance(ok, AuthOk)


def test_proxy_credentials_may_sign_the_proxy_address() -> None:
    """INVITE via us as outbound proxy: SIPp (and others) sign our address, not the Request-URI."""
    a = _auth()
    h = Headers.of([("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKi"), ("From", f"<sip:22000001@{REALM}>;tag=a"),
                    ("To", "<sip:22000002@127.0.0.1>"), ("Call-ID", "c2"), ("CSeq", "1 INVITE")])
    invite = Request("INVITE", "sip:22000002@127.0.0.1:5060", h)
    ch = a.check(invite, "192.0.2.1", 1e9, proxy=True)
    assert isinstance(ch, AuthChallenge)
    cred = digest.DigestClient("22000001", "s3cret-pass").authorize(digest.parse_challenge(ch.challenges[0]), "INVITE",
                                                                   "sip:127.0.0.1:5060")
    invite.headers.add("Proxy-Authorization", cred)
    assert isinstance(a.check(invite, "192.0.2.1", 1e9, proxy=True), AuthOk)


def test_digest_uri_may_name_this_server_instead_of_the_request_uri() -> None:
    """An adapter signing its outbound proxy (this switch) rather than the domain: still for us."""
    a = _auth()
    a.served = lambda uri: uri.host.lower() in {"127.0.0.1", REALM}
    ch = a.check(_register("Cisco/SPA112"), "192.0.2.1", 1e9)
    assert isinstance(ch, AuthChallenge)
    ok = a.check(_register("Cisco/SPA112", _answer_for(ch.challenges[0], "sip:127.0.0.1:5060")), "192.0.2.1", 1e9)
    assert isinstance(ok, AuthOk)
    other = a.check(_register("Cisco/SPA112", _answer_for(ch.challenges[0], "sip:other.example.org")), "192.0.2.1", 1e9)
    assert isinstance(other, AuthRejected) and other.status == 400
