"""The one server-side digest check (switch/services/digest_verify.py) that SIP and HTTP provisioning share."""

from __future__ import annotations

from switch.services.auth import Authenticator
from switch.services.digest_verify import DigestVerifier, Verdict
from switch.sip import digest
from switch.sip.digest import Challenge, DigestClient
from switch.sip.nonces import NonceCounter, NonceManager, NonceStatus

REALM = "test.example"
NOW = 1_800_000_000.0


def _verifier(single_use: bool = True) -> DigestVerifier:
    return DigestVerifier(NonceManager(b"k" * 32, 300.0), NonceCounter(ttl=600.0), ("SHA-256", "MD5"),
                          single_use_without_qop=single_use)


def _creds(v: DigestVerifier, *, password: str = "secret", qop: str | None = "auth", algorithm: str = "MD5",
           client: DigestClient | None = None, issued: float = NOW) -> digest.Credentials:
    nonce = v.nonces.make(issued)
    challenge = Challenge(realm=REALM, nonce=nonce, algorithm=algorithm, qop=qop)
    value = (client or DigestClient("alice", password)).authorize(challenge, "REGISTER", "sip:test.example")
    return digest.parse_credentials(value)


def _ha1(algorithm: str = "MD5") -> str:
    return digest.ha1("alice", REALM, "secret", algorithm)


def test_a_right_answer_is_ok_once_and_its_replay_is_caught() -> None:
    v = _verifier()
    creds = _creds(v)
    status = v.screen(creds, NOW)
    assert status is NonceStatus.VALID
    assert v.conclude(creds, "REGISTER", _ha1(), status, NOW) is Verdict.OK
    assert v.conclude(creds, "REGISTER", _ha1(), status, NOW) is Verdict.REPLAY  # the same nc again


def test_a_wrong_password_is_wrong_and_an_old_nonce_stale() -> None:
    v = _verifier()
    assert v.conclude(_creds(v, password="guess"), "REGISTER", _ha1(), NonceStatus.VALID, NOW) is Verdict.WRONG
    old = _creds(v, issued=NOW - 400.0)
    status = v.screen(old, NOW)
    assert status is NonceStatus.STALE
    assert v.conclude(old, "REGISTER", _ha1(), status, NOW) is Verdict.STALE


def test_screen_refuses_algorithms_not_offered_and_nonces_not_ours() -> None:
    v = DigestVerifier(NonceManager(b"k" * 32, 300.0), NonceCounter(ttl=600.0), ("SHA-256",))
    assert v.screen(_creds(v, algorithm="MD5"), NOW) is None
    other = DigestVerifier(NonceManager(b"x" * 32, 300.0), NonceCounter(ttl=600.0), ("SHA-256",))
    assert v.screen(_creds(other, algorithm="SHA-256"), NOW) is None
    assert v.screen(_creds(v, algorithm="SHA-256"), NOW) is NonceStatus.VALID


def test_without_qop_a_nonce_is_single_use_only_where_asked() -> None:
    strict, lenient = _verifier(single_use=True), _verifier(single_use=False)
    for v, second in ((strict, Verdict.REPLAY), (lenient, Verdict.OK)):
        creds = _creds(v, qop=None)
        assert v.conclude(creds, "REGISTER", _ha1(), NonceStatus.VALID, NOW) is Verdict.OK
        assert v.conclude(creds, "REGISTER", _ha1(), NonceStatus.VALID, NOW) is second


def test_the_sip_authenticator_checks_through_it() -> None:
    auth = Authenticator(realm=REALM, secret=b"k" * 32, lookup=lambda _user: None)
    assert isinstance(auth.verifier, DigestVerifier)
    assert auth.verifier.nonces is auth.nonces and auth.verifier.single_use_without_qop
