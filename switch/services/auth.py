"""Digest authentication of lines (REGISTER with 401, INVITE with 407).

Two promises shape this module:

* **No user enumeration.** An unknown user takes the same path as a known one
  with a wrong password: the HA1 of an unknown user is a stable fake
  (``dummy_ha1``), so the same challenge comes back and the same final 403,
  byte for byte apart from nonces and tags, in about the same time.
* **Brute force is throttled without collateral damage.** Failures are counted
  per (source address, user) — blocking that pair hard — and per source address
  at a much higher threshold, so one broken adapter behind a NAT does not lock
  out its neighbours; every block is logged with the source address. A request
  from the exact address and port a line is registered from is judged only by
  failures from that exact address: someone else on the adapter's IP (another
  port) cannot lock the adapter out. Each failure writes one fail2ban-parsable
  line: ``auth failure: source=IP port=PORT user="U" reason=R``.
* **Credentials work once, for what they were made.** A nonce is bound to the
  source address and the From user of the request it challenged (an HMAC
  binding, nothing stored), so it authenticates nobody else from nowhere else;
  with ``qop`` its nonce-count must grow, and a response without ``qop``
  (RFC 2069 style, no count) is accepted once per nonce. The digest ``uri``
  must name the Request-URI or this switch, for INVITE as for REGISTER.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from switch.sip import digest
from switch.sip.digest import Credentials
from switch.sip.errors import ParseError
from switch.sip.message import Request
from switch.sip.nonces import NonceCounter, NonceManager
from switch.sip.uri import SipUri, parse_uri, uri_equal
from switch.transport.ratelimit import AuthThrottle, AuthThrottlePolicy

from .digest_verify import DigestVerifier, Verdict

log = logging.getLogger(__name__)
#: the fail2ban feed: one line per failed digest check (see ``_log_failure``)
failures = logging.getLogger("switch.auth.failures")


def _safe(text: str) -> str:
    """A client-chosen string made safe for one log line: quoted, no control characters, bounded."""
    cleaned = "".join(c if c.isprintable() and c != '"' else "?" for c in text[:64])
    return f'"{cleaned}"'


def _template(realm: str, algorithm: str) -> str:
    return (
        digest.Challenge(realm=realm, nonce="{nonce}", algorithm=digest.canonical_algorithm(algorithm) or algorithm)
        .to_header()
        .replace("{", "{{").replace("}", "}}").replace("{{nonce}}", "{nonce}")
    )


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
        sha256_first_agents: str = "",
        served: Callable[[SipUri], bool] | None = None,
        registered_from: Callable[[CredentialLike], Iterable[tuple[str, int]]] | None = None,
    ) -> None:
        self.realm = realm
        #: URIs this server answers for (given by the app from its domains and addresses):
        #: a REGISTER's digest ``uri`` may name any of them, see ``_uri_ok``
        self.served = served
        #: (host, port) pairs a line is registered from (the location service's ``sources_of``)
        self.registered_from = registered_from
        self._secret = secret
        self._lookup = lookup
        self.algorithms = algorithms
        self.nonces = NonceManager(secret, nonce_lifetime)
        self.counter = NonceCounter(ttl=nonce_lifetime * 2)
        #: the server-side digest check, shared with HTTP provisioning (switch/services/digest_verify.py)
        self.verifier = DigestVerifier(self.nonces, self.counter, algorithms)
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
        strongest_first = sorted(
            algorithms, key=lambda a: 0 if a.upper().startswith("SHA-512") else 1 if a.upper().startswith("SHA-256") else 2
        )
        # RFC 8760 §2.4 says a client skips a challenge whose algorithm it lacks; many do
        # not and give up on the first one. So the strongest comes first only for agents
        # known to handle several challenges; everyone else, including an agent that
        # sends no User-Agent at all, gets MD5 first and the stronger ones after it, and
        # agents known to give up on anything but MD5 get MD5 alone.
        md5_first = sorted(algorithms, key=lambda a: 0 if a.upper() == "MD5" else 1)
        self._md5_only = re.compile(md5_only_agents) if md5_only_agents and "MD5" in algorithms else None
        self._sha_first = re.compile(sha256_first_agents) if sha256_first_agents else None
        self._md5_template = [_template(realm, "MD5")]
        self._templates = [_template(realm, a) for a in md5_first]
        self._strong_templates = [_template(realm, a) for a in strongest_first]
        self._dummy_cache: dict[tuple[str, str], str] = {}

    def challenge(self, now: float, stale: bool = False, user_agent: str | None = None, binding: str = "") -> AuthChallenge:
        """Challenges for a request; ``binding`` (see ``nonce_binding``) is signed into the nonce."""
        # Same text digest.Challenge.to_header() makes, from templates built once:
        # the nonce is base64url (nothing to escape), so only the realm needed quoting.
        nonce = self.nonces.make(now, binding)
        tail = ", stale=true" if stale else ""
        templates = self._templates
        if user_agent:
            if self._md5_only is not None and self._md5_only.search(user_agent):
                templates = self._md5_template
            elif self._sha_first is not None and self._sha_first.search(user_agent):
                templates = self._strong_templates
        return AuthChallenge([t.format(nonce=nonce) + tail for t in templates])

    @staticmethod
    def nonce_binding(request: Request, source: str) -> str:
        """What a nonce is issued for: the source address and the request's From user.

        Both stay the same between a request and its authenticated repeat, and
        neither lets the credentials be reused by another adapter or for another line.
        """
        try:
            uri = request.from_.uri
            user = uri.user if isinstance(uri, SipUri) else str(uri)
        except ParseError:
            user = ""
        return f"{source}\0{(user or '').lower()}"

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

    def check(self, request: Request, source: str, now: float, *, proxy: bool = False, port: int | None = None) -> AuthResult:
        """Authenticate ``request`` from ``source`` (and ``port``, when known: see the lock-out rule).

        ``now`` is wall-clock seconds: nonces carry it.
        """
        header = "Proxy-Authorization" if proxy else "Authorization"
        ua = request.headers.get("User-Agent")
        binding = self.nonce_binding(request, source)
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
            return self.challenge(now, user_agent=ua, binding=binding)
        username = creds.username
        cred = self._lookup(username)
        # From the exact address the line is registered from, only failures from that
        # exact address count (a neighbour on the adapter's IP cannot lock it out).
        home = (
            port is not None and cred is not None and self.registered_from is not None
            and (source, port) in set(self.registered_from(cred))
        )
        key = f"{source}:{port}" if home else source
        blocked = self.throttle.pairs.is_blocked((key, username), now) if home else self.throttle.is_blocked(source, username, now)
        if blocked:
            self._log_failure(source, port, username, "throttled")
            return AuthRejected(username, "throttled")
        status = self.verifier.screen(creds, now, binding)
        if status is None:
            # An algorithm we did not offer, or a nonce not ours (or issued to another
            # source or another user): a fresh challenge.
            return self.challenge(now, user_agent=ua, binding=binding)
        if not self._uri_ok(creds.uri, request):
            # RFC 7616 §3.4.6 / RFC 2617 §3.2.2.5: credentials computed for another
            # request (a replay aimed elsewhere) are a 400, before any password check,
            # so the answer says nothing about the user. "Names this switch" counts
            # too: adapters dialling through us as their outbound proxy sign our
            # address rather than the Request-URI (SIPp does).
            self._failed(key, home, username, now)
            self._log_failure(source, port, username, "digest_uri_mismatch")
            return AuthRejected(username, "digest uri does not match the Request-URI", status=400)
        algorithm = digest.canonical_algorithm(creds.algorithm) or ""
        verdict = self.verifier.conclude(creds, request.method, self._ha1_for(cred, username, algorithm), status, now)
        if verdict is Verdict.STALE:
            return self.challenge(now, stale=True, user_agent=ua, binding=binding)
        if verdict is Verdict.REPLAY and cred is not None:
            # A replayed request: someone resent captured credentials. Ask again.
            self._log_failure(source, port, username, "replay")
            return self.challenge(now, user_agent=ua, binding=binding)
        if verdict is Verdict.OK and cred is not None:
            self.throttle.record_success(key, username, now)
            return AuthOk(cred, username)
        # Wrong password and unknown user end here alike.
        reason = "unknown user" if cred is None else "wrong password"
        self._failed(key, home, username, now)
        self._log_failure(source, port, username, "unknown_user" if cred is None else "wrong_password")
        if self.throttle.is_blocked(source, username, now):
            log.warning("auth: blocking %s for user %s after repeated failures", source, _safe(username))
        if self.on_failure is not None:
            self.on_failure(source, username, cred, reason)
        return AuthRejected(username, reason, cred)

    def _failed(self, key: str, home: bool, username: str, now: float) -> None:
        if home:
            self.throttle.pairs.record_failure((key, username), now)
        else:
            self.throttle.record_failure(key, username, now)

    @staticmethod
    def _log_failure(source: str, port: int | None, username: str, reason: str) -> None:
        """One line per failure for fail2ban: ``failregex = auth failure: source=<HOST> ``."""
        failures.warning("auth failure: source=%s port=%s user=%s reason=%s", source, port if port is not None else "-", _safe(username), reason)


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
