"""Authenticator: challenges per agent, and no user enumeration."""

from __future__ import annotations

import logging
import re
from dataclasses import replace

import pytest

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
                         md5_only_agents=Settings().md5_only_agents, sha256_first_agents=Settings().sha256_first_agents)


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


def test_md5_first_for_unknown_agents_and_for_no_user_agent() -> None:
    """Only agents known to skip a challenge they cannot use get SHA-256 first (SIPp 3.6 sends
    no User-Agent and gave up on a SHA-256-first challenge)."""
    assert _algorithms(_auth().check(_register("Yealink SIP-T46S 66.86"), "192.0.2.1", 1e9)) == ["MD5", "SHA-256"]
    assert _algorithms(_auth().check(_register(None), "192.0.2.1", 1e9)) == ["MD5", "SHA-256"]


def test_sha256_first_for_agents_known_to_handle_several_challenges() -> None:
    for ua in ("Linphone/5.2.0 (belle-sip/5.2.0)", "MicroSIP/3.21.3", "FreeSWITCH-mod_sofia/1.10.9"):
        assert _algorithms(_auth().check(_register(ua), "192.0.2.1", 1e9)) == ["SHA-256", "MD5"], ua


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
    unknown = a.check(_register("Cisco/SPA112", _answer(ch.challenges[0], "guess", user="22999999")), "192.0.2.1", 1e9)
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
    ok = a.check(_register("x", _answer(ch.challenges[0], "pw-two-2222", user="22000002")), "198.51.100.7", now)
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
    ok = a.check(_register("Cisco/SPA112", _answer_for(ch.challenges[0], f"sip:{REALM.upper()}")), "192.0.2.1", 1e9)
    assert isinstance(ok, AuthOk)


def test_proxy_credentials_may_sign_the_proxy_address() -> None:
    """INVITE via us as outbound proxy: SIPp (and others) sign our address, not the Request-URI."""
    a = _auth()
    a.served = lambda uri: uri.host.lower() in {"127.0.0.1", REALM}
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


# ---------------------------------------------------------------------------- replay and binding


def _invite(ruri: str, from_user: str = "22000001", call_id: str = "c3", auth: str | None = None) -> Request:
    h = Headers.of([("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKi"), ("From", f"<sip:{from_user}@{REALM}>;tag=a"),
                    ("To", f"<{ruri}>"), ("Call-ID", call_id), ("CSeq", "1 INVITE")])
    if auth:
        h.add("Proxy-Authorization", auth)
    return Request("INVITE", ruri, h)


def _invite_auth(challenge: str, ruri: str, *, qop: bool = True, user: str = "22000001", password: str = "s3cret-pass") -> str:
    ch = digest.parse_challenge(challenge)
    if not qop:
        ch = replace(ch, qop=None)
    return digest.DigestClient(user, password).authorize(ch, "INVITE", ruri)


def test_a_response_without_qop_is_good_for_one_request_only() -> None:
    """RFC 2069 style (no qop, no nonce-count): the same Proxy-Authorization on new INVITEs
    (new Call-ID) placed calls billed to the line. Now the nonce is spent by the first."""
    a = _auth()
    ruri = f"sip:004412345678@{REALM}"
    ch = a.check(_invite(ruri), "192.0.2.1", 1e9, proxy=True)
    assert isinstance(ch, AuthChallenge)
    cred = _invite_auth(ch.challenges[0], ruri, qop=False)
    assert isinstance(a.check(_invite(ruri, auth=cred), "192.0.2.1", 1e9, proxy=True), AuthOk)
    for n in range(3):
        again = a.check(_invite(ruri, call_id=f"replay-{n}", auth=cred), "192.0.2.1", 1e9 + n, proxy=True)
        assert isinstance(again, AuthChallenge)


def test_a_qop_response_cannot_be_replayed_either() -> None:
    a = _auth()
    ruri = f"sip:004412345678@{REALM}"
    ch = a.check(_invite(ruri), "192.0.2.1", 1e9, proxy=True)
    assert isinstance(ch, AuthChallenge)
    cred = _invite_auth(ch.challenges[0], ruri)
    assert isinstance(a.check(_invite(ruri, auth=cred), "192.0.2.1", 1e9, proxy=True), AuthOk)
    assert isinstance(a.check(_invite(ruri, call_id="again", auth=cred), "192.0.2.1", 1e9, proxy=True), AuthChallenge)


def test_a_nonce_authenticates_only_the_source_and_user_it_was_issued_to() -> None:
    other = LineInfo(2, "22000002", "+4722000002", digest.ha1("22000002", REALM, "pw-two-2222", "MD5"),
                     digest.ha1("22000002", REALM, "pw-two-2222", "SHA-256"), 11, 1)
    a = _auth()
    a._lookup = {"22000001": LINE, "22000002": other}.get  # type: ignore[attr-defined]
    ruri = f"sip:22000003@{REALM}"
    ch = a.check(_invite(ruri), "192.0.2.1", 1e9, proxy=True)
    assert isinstance(ch, AuthChallenge)
    # another source with a correct answer to that nonce: a fresh challenge, not a call
    moved = a.check(_invite(ruri, auth=_invite_auth(ch.challenges[0], ruri)), "203.0.113.5", 1e9, proxy=True)
    assert isinstance(moved, AuthChallenge)
    # another user (same source) answering the nonce issued for 22000001's request
    stolen = _invite_auth(ch.challenges[0], ruri, user="22000002", password="pw-two-2222")
    assert isinstance(a.check(_invite(ruri, from_user="22000002", auth=stolen), "192.0.2.1", 1e9, proxy=True), AuthChallenge)
    # the intended use still works
    assert isinstance(a.check(_invite(ruri, auth=_invite_auth(ch.challenges[0], ruri)), "192.0.2.1", 1e9, proxy=True), AuthOk)


def test_invite_digest_uri_must_name_the_request_uri() -> None:
    a = _auth()
    a.served = lambda uri: uri.host.lower() in {"127.0.0.1"}
    signed_for = f"sip:22000003@{REALM}"
    ch = a.check(_invite(signed_for), "192.0.2.1", 1e9, proxy=True)
    assert isinstance(ch, AuthChallenge)
    cred = _invite_auth(ch.challenges[0], signed_for)
    got = a.check(_invite(f"sip:004412345678@{REALM}", auth=cred), "192.0.2.1", 1e9, proxy=True)
    assert isinstance(got, AuthRejected) and got.status == 400


def test_failures_from_other_ports_do_not_lock_out_the_registered_address(caplog: pytest.LogCaptureFixture) -> None:
    """7 wrong REGISTERs from the adapter's IP (another port) used to block the adapter itself."""
    caplog.set_level(logging.WARNING, "switch.auth.failures")
    a = _auth()
    a.registered_from = lambda cred: [("192.0.2.1", 5060)]
    now = 1e9
    for _ in range(8):
        ch = a.check(_register("x"), "192.0.2.1", now, port=5070)
        assert isinstance(ch, AuthChallenge)
        a.check(_register("x", _answer(ch.challenges[0], "guess")), "192.0.2.1", now, port=5070)
    # the attacker's own port is blocked ...
    ch = a.check(_register("x"), "192.0.2.1", now, port=5070)
    assert isinstance(ch, AuthChallenge)
    blocked = a.check(_register("x", _answer(ch.challenges[0], "s3cret-pass")), "192.0.2.1", now, port=5070)
    assert isinstance(blocked, AuthRejected) and blocked.reason == "throttled"
    # ... the adapter at its registered address is not
    ch = a.check(_register("x"), "192.0.2.1", now, port=5060)
    assert isinstance(ch, AuthChallenge)
    assert isinstance(a.check(_register("x", _answer(ch.challenges[0], "s3cret-pass")), "192.0.2.1", now, port=5060), AuthOk)
    # one fail2ban-parsable line per failure: source, user, reason
    lines = [r.getMessage() for r in caplog.records if r.name == "switch.auth.failures"]
    assert lines[0] == 'auth failure: source=192.0.2.1 port=5070 user="22000001" reason=wrong_password'
    assert len(lines) == 9 and lines[-1].endswith("reason=throttled")  # 5 wrong, then 3 + 1 throttled
    assert sum("reason=wrong_password" in x for x in lines) == 5


def test_a_hostile_username_cannot_forge_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "switch.auth.failures")
    a = _auth()
    ch = a.check(_register("x"), "192.0.2.1", 1e9, port=5060)
    assert isinstance(ch, AuthChallenge)
    evil = 'x" reason=ok source=10.9.9.9'
    a.check(_register("x", _answer(ch.challenges[0], "guess", user=evil)), "192.0.2.1", 1e9, port=5060)
    [line] = [r.getMessage() for r in caplog.records if r.name == "switch.auth.failures"]
    assert line.count('"') == 2 and line.startswith("auth failure: source=192.0.2.1 ") and line.endswith("reason=unknown_user")
