"""Verifying digest as a server: the one path SIP REGISTER/INVITE and HTTP provisioning both take.

RFC 7616 §3.4 / RFC 3261 §22: a client's credentials are good when the
algorithm is one we offered, the nonce is ours and still fresh, the response
matches the HA1 we hold, and (with qop) the nonce count grows, so a captured
request cannot be sent again. The two callers differ only in what they do
between the steps (the registrar checks the digest ``uri`` against the
Request-URI and throttles per source and user; the config server checks it
against the request target and the MAC, and looks up the secret in the
database), so the check comes in two halves:

* ``screen`` — before anything is looked up: ``None`` means "answer with a
  fresh challenge" (an algorithm we did not offer, or a nonce that is not ours
  or was issued to someone else);
* ``conclude`` — with the HA1: ``OK``, ``WRONG`` (wrong password, or a user
  that does not exist), ``STALE`` (right password, an expired nonce: challenge
  again with ``stale=true``) or ``REPLAY`` (right password, a nonce count seen
  before).

Without qop (RFC 2069) there is no count; ``single_use_without_qop`` makes
such a nonce good for one request (the registrar), else it may be reused until
it expires (the config server, as before).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from switch.sip import digest
from switch.sip.digest import Credentials
from switch.sip.nonces import NonceCounter, NonceManager, NonceStatus

__all__ = ["DigestVerifier", "Verdict"]


class Verdict(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    STALE = "stale"
    REPLAY = "replay"


@dataclass(frozen=True, slots=True)
class DigestVerifier:
    nonces: NonceManager
    counter: NonceCounter
    #: the algorithms we offer (a response in another one is answered with a fresh challenge)
    algorithms: tuple[str, ...]
    single_use_without_qop: bool = True

    def screen(self, creds: Credentials, now: float, binding: str = "") -> NonceStatus | None:
        """The nonce's status (VALID or STALE), or None: challenge afresh without looking further."""
        algorithm = digest.canonical_algorithm(creds.algorithm)
        if algorithm is None or algorithm not in self.algorithms:
            return None
        status = self.nonces.check(creds.nonce, now, binding)
        return None if status is NonceStatus.INVALID else status

    def conclude(self, creds: Credentials, method: str, ha1: str, status: NonceStatus, now: float) -> Verdict:
        """Compare the response with ``ha1``; for a right one, the nonce's age and count decide."""
        if not digest.verify(creds, method, ha1):
            return Verdict.WRONG
        if status is NonceStatus.STALE:
            return Verdict.STALE
        if creds.qop is not None:
            fresh = self.counter.accept(creds.nonce, creds.cnonce, creds.nc or "0", now)
        elif self.single_use_without_qop:
            fresh = self.counter.accept(creds.nonce, "\0rfc2069", 1, now)
        else:
            fresh = True
        return Verdict.OK if fresh else Verdict.REPLAY
