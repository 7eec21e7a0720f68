"""HTTP Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760), both sides.

Sans-IO: this module works on strings and numbers only. Time enters as ``now``
(wall-clock seconds, see below); randomness (salts, cnonces) can be injected for
tests.

Theory of operation (server side)
---------------------------------
1. A request arrives without credentials (or with a stale/invalid nonce): answer
   401/407 with ``challenges_for(realm, nonces, now)``, one header field per
   algorithm, strongest first (RFC 8760 §2.4, RFC 7616 §3.7).
2. A request arrives with credentials: ``parse_credentials(value)``, then check,
   in this order and all of them:

   * ``creds.realm`` is our realm;
   * ``nonces.check(creds.nonce, now, binding)``: INVALID → new challenge;
     STALE → new challenge with ``stale=True`` so the UA retries silently
     (RFC 7616 §3.3);
   * ``creds.uri`` designates the Request-URI (RFC 2617 §3.2.2.5);
   * ``verify(creds, method, ha1_hex, body)``;
   * only after a successful verify: ``counter.accept(nonce, cnonce, nc, now)``
     (never feed unauthenticated traffic into the replay tracker, or anyone
     could fill it or burn counters).

The nonces and the replay counter live in ``switch.sip.nonces``.

User enumeration
----------------
To avoid telling an attacker which usernames exist, the server MUST send the
same challenge and the same final response whether the user exists or not, and
should spend the same work. For an unknown user, call
``dummy_ha1(realm, username, algorithm, secret)`` and run ``verify`` with that
value: it is stable per user (a retry sees the same behaviour), no password
verifies against it, and verification follows the same code path.

HA1 storage
-----------
``ha1()`` depends on the algorithm: a credential store must keep the plaintext
password or one HA1 per algorithm it offers (MD5 and SHA-256 HA1 differ).

Client side
-----------
``DigestClient`` answers challenges from carrier trunks: ``choose_challenge``
picks the strongest supported algorithm (a local policy RFC 8760 §2.5 allows),
and ``authorize`` builds the Authorization/Proxy-Authorization value,
incrementing ``nc`` when a nonce is reused (RFC 7616 §3.4).

Errors: ``DigestError(ValueError)`` ← ``DigestParseError`` (malformed header
values, answer 400 or re-challenge).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final
from urllib.parse import unquote

from .nonces import NonceManager

__all__ = [
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestError",
    "DigestParseError",
    "canonical_algorithm",
    "challenges_for",
    "choose_challenge",
    "dummy_ha1",
    "ha1",
    "parse_challenge",
    "parse_challenges",
    "parse_credentials",
    "supported_algorithms",
    "verify",
]


class DigestError(ValueError):
    """Digest cannot proceed: unsupported algorithm or qop, bad arguments."""


class DigestParseError(DigestError):
    """A WWW-Authenticate/Authorization value does not follow the grammar."""


# ---------------------------------------------------------------------------
# Algorithms (RFC 7616 §3.2, §6.1; RFC 8760 §2.2)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Algorithm:
    name: str  # canonical spelling, as sent on the wire
    hashlib_name: str
    sess: bool
    strength: int  # higher is stronger; used to order challenges


def _hash_available(name: str) -> bool:
    try:
        hashlib.new(name)
    except ValueError:
        return False
    return True


def _build_algorithms() -> dict[str, _Algorithm]:
    bases = [("MD5", "md5", 1), ("SHA-256", "sha256", 2)]
    # SHA-512/256 needs OpenSSL support in hashlib; optional per RFC 8760.
    if _hash_available("sha512_256"):
        bases.append(("SHA-512-256", "sha512_256", 3))
    table: dict[str, _Algorithm] = {}
    for name, hname, strength in bases:
        table[name.upper()] = _Algorithm(name, hname, False, strength)
        table[f"{name}-SESS"] = _Algorithm(f"{name}-sess", hname, True, strength)
    return table


# Keyed by upper-case name: algorithm tokens compare case-insensitively.
_ALGORITHMS: Final[Mapping[str, _Algorithm]] = MappingProxyType(_build_algorithms())


def _algorithm(name: str) -> _Algorithm | None:
    return _ALGORITHMS.get(name.strip().upper())


def canonical_algorithm(name: str) -> str | None:
    """The wire spelling of a supported algorithm ("sha-256" → "SHA-256"), else None."""
    alg = _algorithm(name)
    return alg.name if alg is not None else None


def supported_algorithms() -> tuple[str, ...]:
    """Canonical names of every algorithm this build supports, strongest first."""
    algs = sorted(_ALGORITHMS.values(), key=lambda a: (-a.strength, a.sess))
    return tuple(a.name for a in algs)


def _require_algorithm(name: str) -> _Algorithm:
    alg = _algorithm(name)
    if alg is None:
        raise DigestError(f"unsupported digest algorithm {name!r}")
    return alg


def _h(alg: _Algorithm, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.new(alg.hashlib_name, raw).hexdigest()


# ---------------------------------------------------------------------------
# Grammar (RFC 7235 §2.1, §4; RFC 7230 §3.2.6; RFC 3261 §25.1)
# ---------------------------------------------------------------------------

# tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_"
#         / "`" / "|" / "~" / DIGIT / ALPHA                (RFC 7230 §3.2.6)
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
# (RFC 7235 §2.1); only recognised when it is the whole challenge body.
_TOKEN68_RE: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*(?=[ \t\r\n]*(?:,|$))")
# RFC 3261 §25.1 LWS allows line folding; a header parser should have unfolded,
# but CR/LF are treated as whitespace to be robust.
_WS: Final = " \t\r\n"
# qdtext excludes CTLs other than HTAB (RFC 7230 §3.2.6).
_CTL_RE: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# quoted-string with quoted-pairs; no CTLs other than HTAB (RFC 7230 §3.2.6).
_QUOTED_RE: Final = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*)"')
_UNESCAPE_RE: Final = re.compile(r"\\(.)", re.S)
# nc-value = 8LHEX (RFC 7616 §3.4); upper-case hex tolerated.
_NC_RE: Final = re.compile(r"[0-9A-Fa-f]{8}")


class _Scanner:
    """Cursor over one header value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def skip_ws_and_commas(self) -> None:
        # RFC 7230 §7: recipients accept empty list elements ("a, , b").
        while self.pos < len(self.text) and self.text[self.pos] in _WS + ",":
            self.pos += 1

    def token(self) -> str:
        m = _TOKEN_RE.match(self.text, self.pos)
        if m is None:
            return ""
        self.pos = m.end()
        return m.group()

    def token68(self) -> str:
        m = _TOKEN68_RE.match(self.text, self.pos)
        if m is None:
            return ""
        self.pos = m.end()
        return m.group()

    def quoted_string(self) -> str:
        # quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
        # quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )
        # One regex match instead of a character loop: this runs for every
        # parameter of every Authorization header the registrar sees.
        assert self.peek() == '"'
        m = _QUOTED_RE.match(self.text, self.pos)
        if m is None:
            rest = self.text[self.pos + 1 :]
            if _CTL_RE.search(rest.split('"', 1)[0]):
                raise DigestParseError("control character in quoted string")
            if rest.endswith("\\") or '"' not in rest:
                raise DigestParseError("unterminated quoted string")
            raise DigestParseError("dangling backslash in quoted string")
        self.pos = m.end()
        body = m.group(1)
        return _UNESCAPE_RE.sub(r"\1", body) if "\\" in body else body


def _parse_params(sc: _Scanner) -> tuple[dict[str, str], bool]:
    """Parse ``#auth-param`` up to the next challenge or the end.

    Returns the parameters (names lower-cased, RFC 7235 §2.1: case-insensitive)
    and whether another challenge follows. Parameter values may be a token or
    a quoted-string; both are accepted everywhere because real UAs quote
    ``qop``/``algorithm``/``nc`` although RFC 7616 says they should not.
    """
    params: dict[str, str] = {}
    while True:
        sc.skip_ws_and_commas()
        if sc.at_end():
            return params, False
        start = sc.pos
        name = sc.token()
        if not name:
            raise DigestParseError(f"expected a parameter name at offset {sc.pos}")
        sc.skip_ws()
        if sc.peek() != "=":
            # "token SP ..." without "=": the next challenge's scheme.
            sc.pos = start
            return params, True
        sc.pos += 1
        sc.skip_ws()
        if sc.peek() == '"':
            value = sc.quoted_string()
        else:
            value = sc.token()
            if not value:
                raise DigestParseError(f"missing value for parameter {name!r}")
        key = name.lower()
        if key in params:
            # RFC 7235 §2.1: each parameter name MUST only occur once.
            raise DigestParseError(f"duplicate parameter {name!r}")
        params[key] = value
        sc.skip_ws()
        if not sc.at_end() and sc.peek() != ",":
            raise DigestParseError(f"expected ',' after parameter {name!r}")


def _parse_auth_list(value: str) -> list[tuple[str, dict[str, str]]]:
    """Split a challenge/credentials field value into (scheme, params) pairs."""
    sc = _Scanner(value)
    result: list[tuple[str, dict[str, str]]] = []
    sc.skip_ws_and_commas()
    if sc.at_end():
        raise DigestParseError("empty authentication header value")
    while not sc.at_end():
        scheme = sc.token()
        if not scheme:
            raise DigestParseError(f"expected an auth-scheme at offset {sc.pos}")
        if not sc.at_end() and sc.peek() not in _WS + ",":
            raise DigestParseError(f"expected whitespace after scheme {scheme!r}")
        sc.skip_ws()
        if sc.token68():
            # e.g. "Negotiate abc==": a non-Digest scheme; keep no params.
            result.append((scheme, {}))
            sc.skip_ws_and_commas()
            continue
        params, more = _parse_params(sc)
        result.append((scheme, params))
        if not more:
            break
    return result


def _quote(value: str) -> str:
    # Escape the two characters that cannot appear raw in a quoted-string.
    if _CTL_RE.search(value):
        raise DigestError("control characters cannot be sent in a quoted string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------
# Challenges (WWW-Authenticate / Proxy-Authenticate)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    """One Digest challenge (RFC 7616 §3.3); ``qop=None`` means RFC 2069 style."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: str | None = "auth"
    opaque: str | None = None
    stale: bool = False

    @property
    def qop_options(self) -> tuple[str, ...]:
        """The offered qop values, lower-cased ("auth, auth-int" → two items)."""
        if self.qop is None:
            return ()
        return tuple(q.strip().lower() for q in self.qop.split(",") if q.strip())

    def to_header(self) -> str:
        """The field value for WWW-Authenticate / Proxy-Authenticate."""
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        # algorithm is a token, qop-options a quoted list (RFC 7616 §3.3).
        if not _TOKEN_RE.fullmatch(self.algorithm):
            raise DigestError(f"algorithm {self.algorithm!r} is not a token")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop is not None:
            parts.append(f"qop={_quote(self.qop)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)


def _challenge_from_params(params: Mapping[str, str]) -> Challenge:
    try:
        realm = params["realm"]
        nonce = params["nonce"]
    except KeyError as exc:
        raise DigestParseError(f"challenge lacks required parameter {exc.args[0]!r}") from None
    algorithm = params.get("algorithm", "MD5")
    return Challenge(
        realm=realm,
        nonce=nonce,
        algorithm=canonical_algorithm(algorithm) or algorithm,
        qop=params.get("qop"),
        opaque=params.get("opaque"),
        # stale = "stale" EQUAL ( "true" / "false" ), case-insensitive.
        stale=params.get("stale", "false").lower() == "true",
    )


def parse_challenges(value: str) -> list[Challenge]:
    """Every Digest challenge in one field value; other schemes are skipped."""
    return [
        _challenge_from_params(params)
        for scheme, params in _parse_auth_list(value)
        if scheme.lower() == "digest"
    ]


def parse_challenge(value: str) -> Challenge:
    """Parse a field value that must hold exactly one Digest challenge."""
    items = _parse_auth_list(value)
    if len(items) != 1 or items[0][0].lower() != "digest":
        raise DigestParseError("expected exactly one Digest challenge")
    return _challenge_from_params(items[0][1])


# ---------------------------------------------------------------------------
# Credentials (Authorization / Proxy-Authorization)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    """A parsed Digest response (RFC 7616 §3.4).

    ``algorithm`` is the canonical name when supported, otherwise what the
    client sent (``verify`` then fails). ``qop`` and ``nc`` are kept exactly
    as sent, because they enter the hash that way (compare ``qop`` with
    ``.lower()``). ``params`` holds every
    parameter as received (names lower-cased), for extensions.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None
    userhash: bool = False
    params: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def nc_value(self) -> int | None:
        """``nc`` as an integer, or None without qop."""
        return int(self.nc, 16) if self.nc is not None else None


def _decode_ext_value(value: str) -> str:
    # username* uses RFC 5987 ext-value: charset "'" [ language ] "'" value-chars
    parts = value.split("'", 2)
    if len(parts) != 3 or parts[0].lower() != "utf-8":
        raise DigestParseError("username* must be UTF-8 ext-value")
    try:
        return unquote(parts[2], encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise DigestParseError("username* is not valid UTF-8") from None


# The shape nearly every device sends: "Digest" then name=value pairs separated by
# commas, values either tokens or quoted strings without escapes. Matched with one
# regex pass; anything else (escapes, odd spacing, duplicates) takes the full parser.
_FAST_HEAD_RE: Final = re.compile(r"[ \t]*[Dd][Ii][Gg][Ee][Ss][Tt][ \t]+")
_FAST_PARAM_RE: Final = re.compile(
    r'[ \t]*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)[ \t]*=[ \t]*(?:"([^"\\\x00-\x08\x0a-\x1f\x7f]*)"|([A-Za-z0-9!#$%&\'*+.^_`|~/:-]+))[ \t]*(,|$)'
)


def _fast_params(value: str) -> dict[str, str] | None:
    m = _FAST_HEAD_RE.match(value)
    if m is None:
        return None
    pos = m.end()
    end = len(value)
    params: dict[str, str] = {}
    match = _FAST_PARAM_RE.match
    while pos < end:
        pm = match(value, pos)
        if pm is None:
            return None
        name = pm.group(1).lower()
        if name in params:
            return None  # let the full parser report the duplicate
        quoted = pm.group(2)
        params[name] = quoted if quoted is not None else pm.group(3)
        pos = pm.end()
        if not pm.group(4) and pos < end:
            return None
    return params if params else None


def parse_credentials(header_value: str) -> Credentials:
    """Parse an Authorization / Proxy-Authorization value carrying Digest.

    Raises ``DigestParseError`` on anything malformed: wrong scheme, more than
    one credentials set, missing required parameter, bad ``nc``, ``qop``
    without ``cnonce``/``nc``.
    """
    fast = _fast_params(header_value)
    if fast is not None:
        scheme, params = "Digest", fast
    else:
        items = _parse_auth_list(header_value)
        if len(items) != 1:
            raise DigestParseError("expected exactly one set of credentials")
        scheme, params = items[0]
    if scheme.lower() != "digest":
        raise DigestParseError(f"unsupported auth-scheme {scheme!r}")

    if "username*" in params:
        if "username" in params:
            # RFC 7616 §3.4: username and username* MUST NOT both be present.
            raise DigestParseError("both username and username* present")
        username = _decode_ext_value(params["username*"])
    elif "username" in params:
        username = params["username"]
    else:
        raise DigestParseError("credentials lack required parameter 'username'")
    try:
        realm, nonce, uri, response = (
            params["realm"],
            params["nonce"],
            params["uri"],
            params["response"],
        )
    except KeyError as exc:
        raise DigestParseError(
            f"credentials lack required parameter {exc.args[0]!r}"
        ) from None

    qop = params.get("qop")
    cnonce = params.get("cnonce")
    nc = params.get("nc")
    if qop is not None:
        # RFC 7616 §3.4: cnonce and nc MUST be sent when qop is.
        if cnonce is None or nc is None:
            raise DigestParseError("qop present without cnonce and nc")
        if not _NC_RE.fullmatch(nc):
            raise DigestParseError(f"nc must be 8 hex digits, got {nc!r}")
    else:
        # RFC 2617 §3.2.2: without qop these MUST NOT be sent; ignore them.
        cnonce = None
        nc = None

    algorithm = params.get("algorithm", "MD5")
    return Credentials(
        username=username,
        realm=realm,
        nonce=nonce,
        uri=uri,
        response=response,
        algorithm=canonical_algorithm(algorithm) or algorithm,
        cnonce=cnonce,
        opaque=params.get("opaque"),
        qop=qop,
        nc=nc,
        userhash=params.get("userhash", "false").lower() == "true",
        params=MappingProxyType(dict(params)),
    )


# ---------------------------------------------------------------------------
# The digest computation (RFC 7616 §3.4.1-§3.4.3, RFC 2617 §3.2.2.1)
# ---------------------------------------------------------------------------


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username ":" realm ":" password), hex, UTF-8 encoded (RFC 7616 §3.4.2).

    For ``-sess`` algorithms this is the stored base value; ``verify`` and the
    client fold in nonce and cnonce per request.
    """
    alg = _require_algorithm(algorithm)
    return _h(alg, f"{username}:{realm}:{password}")


def _response(
    alg: _Algorithm,
    ha1_hex: str,
    *,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
    body: bytes,
) -> str | None:
    """The expected ``response`` value, or None when it cannot be computed."""
    a1 = ha1_hex.lower()
    kind = qop.lower() if qop is not None else None
    if alg.sess:
        if cnonce is None:
            return None
        a1 = _h(alg, f"{a1}:{nonce}:{cnonce}")
    if kind == "auth-int":
        a2 = _h(alg, f"{method}:{uri}:{_h(alg, body)}")
    elif kind is None or kind == "auth":
        a2 = _h(alg, f"{method}:{uri}")
    else:
        return None
    if qop is None:
        # RFC 2069 compatibility (RFC 2617 §3.2.2.1).
        return _h(alg, f"{a1}:{nonce}:{a2}")
    return _h(alg, f"{a1}:{nonce}:{nc}:{cnonce}:{qop}:{a2}")


def verify(
    creds: Credentials,
    method: str,
    ha1_hex: str,
    body: bytes = b"",
    *,
    allow_rfc2069: bool = True,
) -> bool:
    """True when ``creds.response`` is right for this request and HA1.

    Compares in constant time. Does NOT check realm, nonce freshness, the
    request URI or nc replay: see the module docstring for the full list.
    ``allow_rfc2069=False`` refuses responses without qop (they carry no nc,
    so a captured request can be replayed while its nonce lives).
    """
    alg = _algorithm(creds.algorithm)
    if alg is None:
        return False
    if creds.qop is None and not allow_rfc2069:
        return False
    expected = _response(
        alg,
        ha1_hex,
        nonce=creds.nonce,
        method=method,
        uri=creds.uri,
        qop=creds.qop,
        nc=creds.nc,
        cnonce=creds.cnonce,
        body=body,
    )
    if expected is None:
        return False
    # compare_digest on str demands ASCII; the client's value may not be.
    return hmac.compare_digest(
        expected.encode("ascii"), creds.response.lower().encode("utf-8")
    )


def dummy_ha1(realm: str, username: str, algorithm: str, secret: bytes) -> str:
    """A stable fake HA1 for an unknown user (see "User enumeration" above).

    Same length as a real HA1 for ``algorithm``, derived with HMAC from a
    server secret: unrelated to any password, so no guess verifies, and
    unpredictable to anyone without the secret.
    """
    alg = _require_algorithm(algorithm)
    mac = hmac.new(
        secret,
        b"\0".join([b"dummy-ha1", alg.name.encode(), realm.encode(), username.encode()]),
        hashlib.sha512,
    ).hexdigest()
    return mac[: len(_h(alg, b""))]


def challenges_for(
    realm: str,
    nonce_manager: NonceManager,
    now: float,
    stale: bool = False,
    algorithms: Iterable[str] = ("SHA-256", "MD5"),
    *,
    binding: str = "",
    opaque: str | None = None,
    qop: str | None = "auth",
) -> list[Challenge]:
    """One challenge per algorithm, strongest first (RFC 8760 §2.4, RFC 7616 §3.7).

    All share one nonce, as in the RFC 7616 §3.9.1 example. Send each as its
    own WWW-Authenticate / Proxy-Authenticate header field.
    """
    algs = [_require_algorithm(a) for a in algorithms]
    if not algs:
        raise DigestError("at least one algorithm is required")
    algs.sort(key=lambda a: -a.strength)  # stable: equal strength keeps caller order
    nonce = nonce_manager.make(now, binding)
    return [
        Challenge(realm=realm, nonce=nonce, algorithm=a.name, qop=qop, opaque=opaque, stale=stale)
        for a in algs
    ]


# ---------------------------------------------------------------------------
# Client side
# ---------------------------------------------------------------------------


def choose_challenge(challenges: Sequence[Challenge]) -> Challenge:
    """The challenge with the strongest supported algorithm; ties: first listed.

    Raises ``DigestError`` when none is usable.
    """
    best: Challenge | None = None
    best_strength = 0
    for ch in challenges:
        alg = _algorithm(ch.algorithm)
        if alg is None:
            continue
        if ch.qop is None:
            if alg.sess:  # -sess needs a cnonce, which only exists with qop
                continue
        elif not {"auth", "auth-int"} & set(ch.qop_options):
            continue
        if alg.strength > best_strength:
            best, best_strength = ch, alg.strength
    if best is None:
        raise DigestError("no supported Digest challenge offered")
    return best


class DigestClient:
    """Answers Digest challenges for one account (carrier trunk registration).

    Keeps a nonce-count per nonce so reusing a nonce (pre-emptive
    authorisation of later requests) sends nc=2, 3, ... (RFC 7616 §3.4).
    """

    def __init__(self, username: str, password: str, *, max_nonces: int = 64) -> None:
        self.username = username
        self._password = password
        self._max_nonces = max_nonces
        self._nc: OrderedDict[str, int] = OrderedDict()

    def _next_nc(self, nonce: str) -> int:
        count = self._nc.pop(nonce, 0) + 1
        self._nc[nonce] = count
        while len(self._nc) > self._max_nonces:
            self._nc.popitem(last=False)
        return count

    def authorize(
        self,
        challenge: Challenge,
        method: str,
        uri: str,
        body: bytes = b"",
        cnonce: str | None = None,
    ) -> str:
        """The Authorization / Proxy-Authorization value answering ``challenge``.

        ``uri`` is the Request-URI as sent. Prefers qop=auth, then auth-int
        (which covers ``body``), then RFC 2069 when no qop is offered.
        """
        alg = _require_algorithm(challenge.algorithm)
        options = challenge.qop_options
        qop: str | None
        if challenge.qop is None:
            qop = None
        elif "auth" in options:
            qop = "auth"
        elif "auth-int" in options:
            qop = "auth-int"
        else:
            raise DigestError(f"no supported qop in {challenge.qop!r}")

        nc: str | None = None
        if qop is not None:
            if cnonce is None:
                cnonce = secrets.token_hex(16)
            nc = f"{self._next_nc(challenge.nonce):08x}"
        elif alg.sess:
            raise DigestError("-sess algorithms need qop (a cnonce)")
        else:
            cnonce = None

        response = _response(
            alg,
            ha1(self.username, challenge.realm, self._password, alg.name),
            nonce=challenge.nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        assert response is not None  # qop and cnonce were chosen above
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(challenge.realm)}",
            f"nonce={_quote(challenge.nonce)}",
            f"uri={_quote(uri)}",
            f"response={_quote(response)}",
            f"algorithm={alg.name}",
        ]
        if qop is not None:
            assert cnonce is not None and nc is not None
            parts.append(f"cnonce={_quote(cnonce)}")
        if challenge.opaque is not None:
            parts.append(f"opaque={_quote(challenge.opaque)}")
        if qop is not None:
            # qop and nc are sent unquoted (RFC 7616 §3.4, RFC 3261 §25.1).
            parts.append(f"qop={qop}")
            parts.append(f"nc={nc}")
        return "Digest " + ", ".join(parts)
