"""Digest authentication of lines (REGISTER with 401, INVITE with 407).

Two promises shape this module:

* **No user enumeration.** An unknown user takes the same path as a known one
  with a wrong password: the HA1 of an unknown user is a stable fake
  (``dummy_ha1``), so the same challenge comes back and the same final 403,
  byte for byte apart from nonces and tags, in about the same time.
* **Brute force is throttled without collateral damage.** Failures are counted
  per (source address, user) — blocking that pair hard — and per source address
  at a much higher threshold, so one broken adapter behind a NAT does not lock
  out its neighbours; every block is logged with the source address.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from switch.sip import digest
from switch.sip.digest import Credentials
from switch.sip.errors import ParseError
from switch.sip.message import Request
from switch.sip.nonces import NonceCounter, NonceManager, NonceStatus
from switch.sip.uri import SipUri, parse_uri, uri_equal
from switch.transport.ratelimit import AuthThrottle, AuthThrottlePolicy

log = logging.getLogger(__name__)


class CredentialLike(Protocol):
    @property
    def line_id(self) -> int: ...
    @property
    def auth_user(self) -> str: ...
    @property
    def ha1_md5(self) -> str: ...
    @property
    def ha1_sha256(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AuthOk:
    credential: CredentialLike
    username: str


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    """Answer 401/407 with these challenge header values."""

    challenges: list[str]


@dataclass(frozen=True, slots=True)
class AuthRejected:
    """Answer ``status`` (403, or 400 for a digest ``uri`` that is not the Request-URI).

    ``reason`` is for logs and lamps only, never for the wire.
    """

    username: str
    reason: str
    credential: CredentialLike | None = None
    status: int = 403


AuthResult = AuthOk | AuthChallenge | AuthRejected


class Authenticator:
    def __init__(
        self,
        *,
        realm: str,
        secret: bytes,
        lookup: Callable[[str], CredentialLike | None],
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        nonce_lifetime: float = 300.0,
        fail_threshold: int = 5,
        fail_window: float = 60.0,
        block_seconds: float = 60.0,
        source_fail_threshold: int = 50,
        on_failure: Callable[[str, str, CredentialLike | None, str], None] | None = None,
        md5_only_agents: str = "",
    ) -> None:
        self.realm = realm
        #: URIs this server answers for (set by the app from its domains and addresses):
        #: a REGISTER's digest ``uri`` may name any of them, see ``_uri_ok``
        self.served: Callable[[SipUri], bool] | None = None
        self._secret = secret
        self._lookup = lookup
        self.algorithms = algorithms
        self.nonces = NonceManager(secret, nonce_lifetime)
        self.counter = NonceCounter(ttl=nonce_lifetime * 2)
        self.throttle = AuthThrottle(
            AuthThrottlePolicy(
                pair_threshold=fail_threshold,
                user_threshold=fail_threshold * 4,
                source_threshold=source_fail_threshold,
                window=fail_window,
                block=block_seconds,
            )
        )
        self.on_failure = on_failure
        order = sorted(algorithms, key=lambda a: 0 if a.upper().startswith("SHA-512") else 1 if a.upper().startswith("SHA-256") else 2)
        # Agents known to give up when SHA-256 comes first instead of skipping to the
        # MD5 challenge (RFC 8760 §2.4 says they should skip): answer them with MD5 only.
        self._md5_only = re.compile(md5_only_agents) if md5_only_agents and "MD5" in algorithms else None
        self._md5_template = (
            digest.Challenge(realm=realm, nonce="{nonce}", algorithm="MD5").to_header()
            .replace("{", "{{").replace("}", "}}").replace("{{nonce}}", "{nonce}")
        )
        self._templates = [
            digest.Challenge(realm=realm, nonce="{nonce}", algorithm=digest.canonical_algorithm(a) or a)
            .to_header()
            .replace("{", "{{").replace("}", "}}").replace("{{nonce}}", "{nonce}")
            for a in order
        ]
        self._dummy_cache: dict[tuple[str, str], str] = {}

    def challenge(self, now: float, stale: bool = False, user_agent: str | None = None) -> AuthChallenge:
        # Same text digest.Challenge.to_header() makes, from templates built once:
        # the nonce is base64url (nothing to escape), so only the realm needed quoting.
        nonce = self.nonces.make(now)
        tail = ", stale=true" if stale else ""
        templates = self._templates
        if self._md5_only is not None and user_agent and self._md5_only.search(user_agent):
            templates = [self._md5_template]
        return AuthChallenge([t.format(nonce=nonce) + tail for t in templates])

    def _ha1_for(self, cred: CredentialLike | None, username: str, algorithm: str) -> str:
        if cred is not None:
            return cred.ha1_sha256 if algorithm == "SHA-256" else cred.ha1_md5
        key = (username, algorithm)
        fake = self._dummy_cache.get(key)
        if fake is None:
            fake = digest.dummy_ha1(self.realm, username, algorithm, self._secret)
            if len(self._dummy_cache) > 10_000:
                self._dummy_cache.clear()
            self._dummy_cache[key] = fake
        return fake

    def check(self, request: Request, source: str, now: float, *, proxy: bool = False) -> AuthResult:
        """Authenticate ``request`` (``now`` is wall-clock seconds: nonces carry it)."""
        header = "Proxy-Authorization" if proxy else "Authorization"
        ua = request.headers.get("User-Agent")
        creds: Credentials | None = None
        for value in request.headers.get_lines(header):
            try:
                c = digest.parse_credentials(value)
            except digest.DigestError:
                continue
            if c.realm == self.realm:
                creds = c
                break
        if creds is None:
            return self.challenge(now, user_agent=ua)
        username = creds.username
        if self.throttle.is_blocked(source, username, now):
            return AuthRejected(username, "throttled")
        algorithm = digest.canonical_algorithm(creds.algorithm)
        if algorithm not in self.algorithms:
            return self.challenge(now, user_agent=ua)
        status = self.nonces.check(creds.nonce, now)
        if status is NonceStatus.INVALID:
            return self.challenge(now, user_agent=ua)
        if not proxy and not self._uri_ok(creds.uri, request):
            # RFC 7616 §3.4.6 / RFC 2617 §3.2.2.5: credentials computed for another
            # request (a replay aimed elsewhere) are a 400, before any password check,
            # so the answer says nothing about the user. REGISTER only: for calls,
            # clients disagree on the URI to sign when they dial through us as their
            # outbound proxy (SIPp signs the proxy's address, not the Request-URI);
            # the nonce and its count still bind those credentials to this server.
            self.throttle.record_failure(source, username, now)
            return AuthRejected(username, "digest uri does not match the Request-URI", status=400)
        cred = self._lookup(username)
        ok = digest.verify(creds, request.method, self._ha1_for(cred, username, algorithm))
        if ok and status is NonceStatus.STALE:
            return self.challenge(now, stale=True, user_agent=ua)
        if ok and cred is not None:
            if creds.qop is not None and not self.counter.accept(creds.nonce, creds.cnonce, creds.nc or "0", now):
                # Replayed nonce-count: someone resent a captured request. Ask again.
                return self.challenge(now, user_agent=ua)
            self.throttle.record_success(source, username, now)
            return AuthOk(cred, username)
        # Wrong password and unknown user end here alike.
        reason = "unknown user" if cred is None else "wrong password"
        self.throttle.record_failure(source, username, now)
        if self.throttle.is_blocked(source, username, now):
            log.warning("auth: blocking %s for user %r after repeated failures", source, username)
        if self.on_failure is not None:
            self.on_failure(source, username, cred, reason)
        return AuthRejected(username, reason, cred)


    def _uri_ok(self, digest_uri: str, request: Request) -> bool:
        """The credentials' ``uri`` is the Request-URI (same text, or equal by §19.1.4) or names this server.

        The second half is for adapters that sign their outbound proxy's
        address instead of the registrar domain they put in the Request-URI
        (SIPp does; an ATA whose proxy and domain settings differ may). Both
        name this switch, so the credentials were still made for it.
        """
        if digest_uri == request.uri:
            return True
        try:
            uri = parse_uri(digest_uri)
            if uri_equal(uri, request.ruri):
                return True
        except ParseError:
            return False
        return isinstance(uri, SipUri) and self.served is not None and self.served(uri)
