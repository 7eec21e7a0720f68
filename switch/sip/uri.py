"""SIP, SIPS (RFC 3261 §19.1) and tel (RFC 3966) URIs.

URIs are immutable values: the parser hands out read-only parameter mappings
and may return the *same* object for the same text (a small bounded cache,
because a registrar sees the same AORs and Contacts over and over). Build a
changed URI with ``with_params`` / ``without_params`` / ``dataclasses.replace``.

``parse_uri`` accepts sip, sips and tel and raises :class:`UnsupportedScheme`
(416) for other well-formed schemes and :class:`ParseError` for garbage. With
``absolute_ok=True`` (used for From/To/Contact, RFC 3261 §20.10 ``absoluteURI``)
other schemes come back as :class:`AbsoluteUri` instead: RFC 4475 §3.3.4 says a
parser must accept them there and leave the decision to the application.

Equality follows RFC 3261 §19.1.4 (``uri_equal``), not string identity.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping
from urllib.parse import unquote

from .abnf import (
    HNAME_RE,
    HOSTNAME_RE,
    HVALUE_RE,
    IPV4_RE,
    PARAMCHAR_RE,
    PASSWORD_RE,
    RESERVED,
    SCHEME_RE,
    TEL_GLOBAL_RE,
    TEL_LOCAL_RE,
    TEL_PNAME_RE,
    USER_RE,
)
from .errors import ParseError, UnsupportedScheme

__all__ = [
    "SipUri",
    "TelUri",
    "AbsoluteUri",
    "Uri",
    "parse_uri",
    "uri_equal",
    "split_hostport",
    "format_host",
    "unescape",
]

_TEL_SEPARATORS = str.maketrans("", "", "-.()")
# §19.1.4: these parameters must match if present in either URI.
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")
_EMPTY: Mapping[str, str | None] = MappingProxyType({})
_EMPTY_HEADERS: Mapping[str, str] = MappingProxyType({})
_HEX = "0123456789abcdefABCDEF"
_CACHE_SIZE = 2048
# text -> parsed value. Both hold only immutable values, so sharing is safe.
_URI_CACHE: dict[str, SipUri | TelUri] = {}
_HOST_CACHE: dict[str, str] = {}


def clear_uri_caches() -> None:
    """Empty the URI and host parse caches (see ``headers.clear_parse_caches``)."""
    _URI_CACHE.clear()
    _HOST_CACHE.clear()


def _snip(text: str) -> str:
    """A short, printable rendering of peer data for a reason phrase."""
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def unescape(text: str) -> str:
    """Decode %HH escapes (RFC 3261 §25.1 ``escaped``); other '%' stay as they are."""
    return unquote(text, errors="surrogateescape") if "%" in text else text


def _canon_escapes(text: str) -> str:
    """Normalise escapes for comparison (§19.1.4).

    Characters outside ``reserved`` are equivalent to their escape, so those
    escapes are decoded; escapes of reserved characters stay (upper-cased),
    because ``%3B`` is *not* the same as ``;``.
    """
    if "%" not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "%" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            code = int(text[i + 1 : i + 3], 16)
            dec = chr(code)
            out.append(f"%{code:02X}" if dec in RESERVED else dec)
            i += 3
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _check_host(host: str) -> str:
    """Validate ``host`` (RFC 3261 §25.1); results are cached by exact text."""
    if host in _HOST_CACHE:
        return host
    if not host:
        raise ParseError("Empty host")
    if host[0] == "[":
        inner = host[1:-1]
        if host[-1] != "]" or ":" not in inner:
            raise ParseError(f"Bad IPv6 reference: {_snip(host)}")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise ParseError(f"Bad IPv6 reference: {_snip(host)}") from None
    elif IPV4_RE.fullmatch(host):
        if any(int(p) > 255 for p in host.split(".")):
            raise ParseError(f"Bad IPv4 address: {_snip(host)}")
    elif not HOSTNAME_RE.fullmatch(host) or host.rstrip(".").rsplit(".", 1)[-1].isdigit():
        # a numeric last label that is not a valid dotted quad (e.g. 1.2.3.4.5)
        raise ParseError(f"Bad host: {_snip(host)}")
    if len(_HOST_CACHE) >= _CACHE_SIZE:
        _HOST_CACHE.clear()
    _HOST_CACHE[host] = host
    return host


def split_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` where host may be a bracketed IPv6 reference.

    The host comes back as written (IPv6 keeps its brackets).
    """
    if text[:1] == "[":
        end = text.find("]")
        if end < 0:
            raise ParseError(f"Unterminated IPv6 reference: {_snip(text)}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and rest[0] != ":":
            raise ParseError(f"Bad host:port: {_snip(text)}")
        port_s = rest[1:]
        has_colon = bool(rest)
    else:
        host, colon, port_s = text.partition(":")
        has_colon = bool(colon)
    _check_host(host)
    if not has_colon:
        return host, None
    if not (port_s.isascii() and port_s.isdigit()) or len(port_s) > 5 or int(port_s) > 65535:
        raise ParseError(f"Bad port in {_snip(text)}")
    return host, int(port_s)


def format_host(host: str) -> str:
    """Bracket a bare IPv6 address for use in a URI or Via."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _parse_uri_params(text: str, where: str) -> Mapping[str, str | None]:
    """uri-parameters = *( ";" uri-parameter ) after the first ';'; names are case-insensitive."""
    params: dict[str, str | None] = {}
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if not PARAMCHAR_RE.fullmatch(name):
            raise ParseError(f"Bad URI parameter in {_snip(where)}")
        if eq:
            if not PARAMCHAR_RE.fullmatch(value):
                raise ParseError(f"Bad URI parameter value in {_snip(where)}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return MappingProxyType(params)


def _format_params(params: Mapping[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI. ``user`` and parameter values keep their escapes."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: Mapping[str, str | None] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else unescape(self.user)

    @property
    def transport(self) -> str | None:
        t = self.params.get("transport")
        return t.lower() if t else None

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def lr(self) -> bool:
        """Loose routing flag (RFC 3261 §19.1.1)."""
        return "lr" in self.params

    def with_params(self, **params: str | None) -> SipUri:
        merged = dict(self.params)
        merged.update(params)
        return replace(self, params=merged)

    def without_params(self, *names: str) -> SipUri:
        return replace(self, params={k: v for k, v in self.params.items() if k not in names})

    def without_headers(self) -> SipUri:
        return replace(self, headers={})

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out += [":", self.password]
            out.append("@")
        out.append(format_host(self.host))
        if self.port is not None:
            out.append(f":{self.port}")
        if self.params:
            out.append(_format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(out)


@dataclass(frozen=True, slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966). ``number`` keeps visual separators as received."""

    number: str
    params: Mapping[str, str | None] = field(default_factory=dict)
    scheme: str = "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1)."""
        return unescape(self.number).translate(_TEL_SEPARATORS)

    @property
    def user(self) -> str:
        return self.digits

    @property
    def phone_context(self) -> str | None:
        """RFC 3966 §5.1.5 context of a local number (a domain or a global prefix)."""
        return self.params.get("phone-context")

    def __str__(self) -> str:
        return f"tel:{self.number}{_format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other scheme (RFC 3261 §25.1 ``absoluteURI``), kept opaque.

    Only ever produced for name-addr/addr-spec values (From, To, Contact, ...);
    the Request-URI answers 416 for these. The attributes below mirror SipUri's
    so code that only reads them does not crash.
    """

    scheme: str
    opaque: str

    @property
    def user(self) -> None:
        return None

    @property
    def host(self) -> str:
        return ""

    @property
    def port(self) -> None:
        return None

    @property
    def params(self) -> Mapping[str, str | None]:
        return _EMPTY

    @property
    def headers(self) -> Mapping[str, str]:
        return _EMPTY_HEADERS

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


Uri = SipUri | TelUri | AbsoluteUri


def _parse_sip(scheme: str, rest: str, original: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    # '@' cannot appear unescaped after the userinfo (hostport, params and
    # headers exclude it), while the user part may contain ';' and '?' (RFC 4475 §3.1.1.2).
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if not USER_RE.fullmatch(user):
            raise ParseError(f"Bad user part in URI {_snip(original)}")
        if colon:
            if not PASSWORD_RE.fullmatch(pw):
                raise ParseError(f"Bad password in URI {_snip(original)}")
            password = pw
    headers: Mapping[str, str] = _EMPTY_HEADERS
    rest, q, htext = rest.partition("?")
    if q:
        hdrs: dict[str, str] = {}
        for item in htext.split("&"):
            hn, eq, hv = item.partition("=")
            if not eq or not HNAME_RE.fullmatch(hn) or not HVALUE_RE.fullmatch(hv):
                raise ParseError(f"Bad URI header in {_snip(original)}")
            hdrs[hn] = hv
        headers = MappingProxyType(hdrs)
    hostport, semi, ptext = rest.partition(";")
    if not hostport:
        raise ParseError(f"URI without host: {_snip(original)}")
    host, port = split_hostport(hostport)
    return SipUri(
        host=host,
        user=user,
        password=password,
        port=port,
        scheme=scheme,
        params=_parse_uri_params(ptext, original) if semi else _EMPTY,
        headers=headers,
    )


def _parse_tel(rest: str, original: str) -> TelUri:
    number, _, ptext = rest.partition(";")
    if number.startswith("+"):
        ok = TEL_GLOBAL_RE.fullmatch(number)
    else:
        ok = TEL_LOCAL_RE.fullmatch(number)
    if not ok:
        raise ParseError(f"Bad telephone number in {_snip(original)}")
    params: dict[str, str | None] = {}
    if ptext:
        for part in ptext.split(";"):
            name, eq, value = part.partition("=")
            if not TEL_PNAME_RE.fullmatch(name) or (eq and not PARAMCHAR_RE.fullmatch(value)):
                raise ParseError(f"Bad tel URI parameter in {_snip(original)}")
            params[name.lower()] = value if eq else None
    ctx = params.get("phone-context")
    if ctx is not None and not (TEL_GLOBAL_RE.fullmatch(ctx) or HOSTNAME_RE.fullmatch(ctx)):
        raise ParseError(f"Bad phone-context in {_snip(original)}")
    # RFC 3966 §5.1.5: a local number MUST carry phone-context. Real devices
    # omit it; we accept and let the numbering plan decide.
    return TelUri(number=number, params=MappingProxyType(params) if params else _EMPTY)


def parse_uri(text: str, *, absolute_ok: bool = False) -> Uri:
    """Parse a URI string; raises ParseError (400) / UnsupportedScheme (416)."""
    hit = _URI_CACHE.get(text)
    if hit is not None:
        return hit
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme:
        raise ParseError(f"Not a URI: {_snip(text)}")
    lscheme = scheme.lower()
    uri: SipUri | TelUri
    if lscheme == "sip" or lscheme == "sips":
        uri = _parse_sip(lscheme, rest, text)
    elif lscheme == "tel":
        uri = _parse_tel(rest, text)
    elif not SCHEME_RE.fullmatch(scheme):
        raise ParseError(f"Bad URI scheme in {_snip(text)}")
    elif not rest or any(c in rest for c in " \t\r\n<>\""):
        raise ParseError(f"Bad URI: {_snip(text)}")
    elif absolute_ok:
        return AbsoluteUri(lscheme, rest)
    else:
        raise UnsupportedScheme(f"Unsupported URI Scheme: {scheme[:40]}")
    if len(_URI_CACHE) >= _CACHE_SIZE:
        _URI_CACHE.clear()
    _URI_CACHE[text] = uri
    return uri


def _host_key(host: str) -> str:
    if host.startswith("["):
        try:
            return "[" + ipaddress.IPv6Address(host[1:-1]).compressed + "]"
        except ValueError:  # pragma: no cover - hosts are validated at parse time
            return host.lower()
    return host.lower()


def _param_value(v: str | None) -> str | None:
    return None if v is None else _canon_escapes(v).lower()


def _tel_param(name: str, v: str | None) -> str | None:
    if v is None:
        return None
    v = unescape(v).lower()
    if name in ("phone-context", "ext", "isub") and (name != "phone-context" or v.startswith("+")):
        v = v.translate(_TEL_SEPARATORS)
    return v


def uri_equal(a: Uri, b: Uri) -> bool:
    """RFC 3261 §19.1.4 / RFC 3966 §4 comparison (not transitive, by design)."""
    if isinstance(a, AbsoluteUri) or isinstance(b, AbsoluteUri):
        # RFC 3986 §6.2.1: simple string comparison, scheme case-insensitive
        return isinstance(a, AbsoluteUri) and isinstance(b, AbsoluteUri) and (a.scheme, a.opaque) == (b.scheme, b.opaque)
    if isinstance(a, TelUri) or isinstance(b, TelUri):
        if not (isinstance(a, TelUri) and isinstance(b, TelUri)):
            return False
        if a.is_global != b.is_global or a.digits.lower() != b.digits.lower():
            return False
        # every parameter must be present in both and compare equal
        return {k: _tel_param(k, v) for k, v in a.params.items()} == {
            k: _tel_param(k, v) for k, v in b.params.items()
        }
    if a.scheme != b.scheme:
        return False
    # userinfo is case-sensitive; escapes of unreserved characters are not significant
    if (a.user is None) != (b.user is None) or (a.password is None) != (b.password is None):
        return False
    if a.user is not None and b.user is not None and _canon_escapes(a.user) != _canon_escapes(b.user):
        return False
    if a.password is not None and b.password is not None and _canon_escapes(a.password) != _canon_escapes(b.password):
        return False
    if a.port != b.port or _host_key(a.host) != _host_key(b.host):
        return False
    pa = {_canon_escapes(k).lower(): _param_value(v) for k, v in a.params.items()}
    pb = {_canon_escapes(k).lower(): _param_value(v) for k, v in b.params.items()}
    for name in _STRICT_PARAMS:
        if (name in pa) != (name in pb):
            return False
    for name, va in pa.items():
        if name in pb and pb[name] != va:
            return False
    # header components are never ignored (names case-insensitive)
    ha = {_canon_escapes(k).lower(): _canon_escapes(v) for k, v in a.headers.items()}
    hb = {_canon_escapes(k).lower(): _canon_escapes(v) for k, v in b.headers.items()}
    return ha == hb

