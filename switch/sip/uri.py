"""SIP, SIPS (RFC 3261 §19.1) and tel (RFC 3966) URIs.

URIs are immutable values. ``parse_uri`` accepts any of the three schemes and
raises :class:`UnsupportedScheme` (416) for others and :class:`ParseError` for
garbage. Equality follows RFC 3261 §19.1.4 (``uri_equal``), not string identity:
escaped and unescaped user parts are equal, hosts compare case-insensitively,
and a parameter present on one side only is ignored unless it is one of
``user``, ``ttl``, ``method``, ``maddr`` or ``transport``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import unquote

from .errors import ParseError, UnsupportedScheme

__all__ = ["SipUri", "TelUri", "Uri", "parse_uri", "uri_equal", "split_hostport", "format_host"]

# RFC 3261 §25.1: characters allowed unescaped in the user part (unreserved / user-unreserved).
_USER_OK = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+$")
_HOST_NAME = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?$")
_IPV4 = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]+$")
_TEL_GLOBAL = re.compile(r"^\+[0-9\-.()]*[0-9][0-9\-.()]*$")
_TEL_LOCAL = re.compile(r"^[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*$")
_TEL_SEPARATORS = str.maketrans("", "", "-.()")
# §19.1.4: these parameters must match if present in either URI.
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def _check_host(host: str) -> str:
    if host.startswith("["):
        if not host.endswith("]") or not _IPV6.match(host[1:-1]) or host.count(":") < 2:
            raise ParseError(f"Bad IPv6 reference in URI host: {host!r}")
        return host
    if _IPV4.match(host):
        if any(int(p) > 255 for p in host.split(".")):
            raise ParseError(f"Bad IPv4 address in URI host: {host!r}")
        return host
    if not _HOST_NAME.match(host):
        raise ParseError(f"Bad host in URI: {host!r}")
    return host


def split_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` where host may be a bracketed IPv6 reference."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"Unterminated IPv6 reference: {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ParseError(f"Bad host:port: {text!r}")
        port_s = rest[1:] if rest else ""
    else:
        host, _, port_s = text.partition(":")
    host = _check_host(host)
    if not port_s:
        if text.endswith(":"):
            raise ParseError(f"Empty port in {text!r}")
        return host, None
    if not port_s.isdigit() or len(port_s) > 5 or int(port_s) > 65535:
        raise ParseError(f"Bad port in {text!r}")
    return host, int(port_s)


def format_host(host: str) -> str:
    """Bracket a bare IPv6 address for use in a URI or Via."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _parse_params(text: str, where: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    if not text:
        return params
    for part in text.split(";"):
        if not part:
            raise ParseError(f"Empty parameter in {where}")
        name, eq, value = part.partition("=")
        if not name:
            raise ParseError(f"Parameter without a name in {where}")
        params[name.lower()] = value if eq else None
    return params


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI. ``user`` keeps its escapes as received."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else unquote(self.user)

    @property
    def transport(self) -> str | None:
        t = self.params.get("transport")
        return t.lower() if t else None

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, **params: str | None) -> SipUri:
        merged = dict(self.params)
        merged.update(params)
        return replace(self, params=merged)

    def without_params(self, *names: str) -> SipUri:
        return replace(self, params={k: v for k, v in self.params.items() if k not in names})

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out += [":", self.password]
            out.append("@")
        out.append(self.hostport)
        out.append(_format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(out)


@dataclass(frozen=True, slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966). ``number`` keeps visual separators as received."""

    number: str
    params: dict[str, str | None] = field(default_factory=dict)
    scheme: str = "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1)."""
        return self.number.translate(_TEL_SEPARATORS)

    @property
    def user(self) -> str:
        return self.digits

    def __str__(self) -> str:
        return f"tel:{self.number}{_format_params(self.params)}"


Uri = SipUri | TelUri


def _parse_sip(scheme: str, rest: str, original: str) -> SipUri:
    hdrs: dict[str, str] = {}
    rest, q, hpart = rest.partition("?")
    if q:
        for item in hpart.split("&"):
            hn, eq, hv = item.partition("=")
            if not hn or not eq:
                raise ParseError(f"Bad URI header in {original!r}")
            hdrs[hn] = hv
    user: str | None = None
    password: str | None = None
    at = rest.rfind("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if colon:
            password = pw
        if not user or not _USER_OK.match(user):
            raise ParseError(f"Bad user part in URI {original!r}")
    hostport, _, ptext = rest.partition(";")
    if not hostport:
        raise ParseError(f"URI without host: {original!r}")
    host, port = split_hostport(hostport)
    return SipUri(
        host=host,
        user=user,
        password=password,
        port=port,
        scheme=scheme,
        params=_parse_params(ptext, original),
        headers=hdrs,
    )


def _parse_tel(rest: str, original: str) -> TelUri:
    number, _, ptext = rest.partition(";")
    if number.startswith("+"):
        ok = _TEL_GLOBAL.match(number)
    else:
        ok = _TEL_LOCAL.match(number)
    if not ok:
        raise ParseError(f"Bad telephone number in {original!r}")
    params = _parse_params(ptext, original)
    if not number.startswith("+") and "phone-context" not in params:
        # RFC 3966 §5.1.5: a local number MUST carry phone-context. Real devices
        # omit it; we accept and let the numbering plan decide.
        pass
    return TelUri(number=number, params=params)


def parse_uri(text: str) -> Uri:
    """Parse a URI string; raises ParseError / UnsupportedScheme (416)."""
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme:
        raise ParseError(f"Not a URI: {text!r}")
    lscheme = scheme.lower()
    if lscheme in ("sip", "sips"):
        return _parse_sip(lscheme, rest, text)
    if lscheme == "tel":
        return _parse_tel(rest, text)
    if not re.match(r"^[A-Za-z][A-Za-z0-9+\-.]*$", scheme):
        raise ParseError(f"Bad URI scheme in {text!r}")
    raise UnsupportedScheme(f"Unsupported URI Scheme: {lscheme}")


def uri_equal(a: Uri, b: Uri) -> bool:
    """RFC 3261 §19.1.4 / RFC 3966 §4 comparison."""
    if isinstance(a, TelUri) or isinstance(b, TelUri):
        if not (isinstance(a, TelUri) and isinstance(b, TelUri)):
            return False
        if a.digits.lower() != b.digits.lower():
            return False
        return {k: (v or "").lower() for k, v in a.params.items()} == {
            k: (v or "").lower() for k, v in b.params.items()
        }
    if a.scheme != b.scheme:
        return False
    if (a.user_unescaped, None if a.password is None else unquote(a.password)) != (
        b.user_unescaped,
        None if b.password is None else unquote(b.password),
    ):
        return False
    if a.host.lower() != b.host.lower() or a.port != b.port:
        return False
    for name in _STRICT_PARAMS:
        va, vb = a.params.get(name), b.params.get(name)
        if (name in a.params) != (name in b.params):
            return False
        if va is not None and vb is not None and unquote(va).lower() != unquote(vb).lower():
            return False
    for name, va in a.params.items():
        if name in b.params:
            vb = b.params[name]
            if (va is None) != (vb is None):
                return False
            if va is not None and vb is not None and unquote(va).lower() != unquote(vb).lower():
                return False
    ha = {k.lower(): unquote(v) for k, v in a.headers.items()}
    hb = {k.lower(): unquote(v) for k, v in b.headers.items()}
    return ha == hb
