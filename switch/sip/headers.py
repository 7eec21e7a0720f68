"""Header storage and the typed header values the switch actually reads.

Theory of operation: a parsed message keeps its headers as raw ``(key,
display-name, value)`` triples in wire order. Nothing is parsed beyond that
until somebody asks: the registrar reads perhaps six headers of a REGISTER,
the B2BUA a few more of an INVITE. Typed values (Via, name-addr, CSeq) are
parsed on first access and cached until that header is changed; a small
per-message index makes repeated lookups cheap. Parsed name-addr values are
immutable and shared between messages with the same text.

Names are case-insensitive and compact forms are expanded (RFC 3261 §7.3.3,
§20): ``key`` is the lower-case long name, ``display`` the canonical spelling
we emit (unknown names keep the spelling they arrived with). Headers whose grammar is a comma-separated list are split into
elements on request; the others (notably the authentication headers, whose
values contain commas) never are (§7.3.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Iterator, Mapping

from .abnf import GEN_VALUE_RE, TOKEN_RE
from .errors import ParseError
from .uri import SipUri, Uri, clear_uri_caches, format_host, parse_uri, split_hostport

__all__ = [
    "clear_parse_caches",
    "Headers",
    "Via",
    "NameAddr",
    "CSeq",
    "canonical",
    "split_commas",
    "parse_params",
    "format_params",
    "quote_string",
    "unquote_string",
    "MULTI_VALUE",
    "MAGIC_COOKIE",
]

MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 §8.1.1.7

_CANONICAL = [
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Accept-Resource-Priority",
    "Alert-Info", "Allow", "Allow-Events", "Authentication-Info", "Authorization", "Call-ID",
    "Call-Info", "Contact", "Content-Disposition", "Content-Encoding", "Content-Language",
    "Content-Length", "Content-Type", "CSeq", "Date", "Diversion", "Error-Info", "Event", "Expires",
    "From", "History-Info", "Identity", "Identity-Info", "In-Reply-To", "Max-Forwards", "Min-Expires",
    "Min-SE", "MIME-Version", "Organization", "P-Asserted-Identity", "P-Associated-URI",
    "P-Early-Media", "P-Preferred-Identity", "Path", "Priority", "Privacy", "Proxy-Authenticate",
    "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route", "Recv-Info",
    "Refer-To", "Referred-By", "Reject-Contact", "Replaces", "Reply-To", "Request-Disposition",
    "Require", "Resource-Priority", "Retry-After", "Route", "RSeq", "Security-Client",
    "Security-Server", "Security-Verify", "Server", "Service-Route", "Session-Expires",
    "SIP-ETag", "SIP-If-Match", "Subject", "Subscription-State", "Supported", "Timestamp", "To",
    "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
]
_BY_KEY: dict[str, str] = {n.lower(): n for n in _CANONICAL}
# RFC 3261 §7.3.3 and the registries since (RFC 3265 o/u, RFC 3515 r, RFC 3892 b,
# RFC 4028 x, RFC 3841 a/j/d, RFC 4474 y).
_COMPACT = {
    "i": "call-id", "m": "contact", "f": "from", "t": "to", "v": "via", "l": "content-length",
    "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding",
    "o": "event", "u": "allow-events", "r": "refer-to", "b": "referred-by", "x": "session-expires",
    "a": "accept-contact", "j": "reject-contact", "d": "request-disposition", "y": "identity",
}
# Headers whose grammar is `#element`: they may be combined with commas (§7.3.1).
# Not here on purpose: the authentication headers (their values contain commas),
# Date, Subject, Call-ID, CSeq, From, To and anything unknown.
MULTI_VALUE = frozenset(
    k.lower()
    for k in (
        "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Accept-Resource-Priority",
        "Alert-Info", "Allow", "Allow-Events", "Call-Info", "Contact", "Content-Encoding",
        "Content-Language", "Diversion", "Error-Info", "History-Info", "In-Reply-To",
        "P-Asserted-Identity", "P-Associated-URI", "P-Preferred-Identity", "Path", "Proxy-Require",
        "Reason", "Record-Route", "Recv-Info", "Reject-Contact", "Request-Disposition", "Require",
        "Resource-Priority", "Route", "Security-Client", "Security-Server", "Security-Verify",
        "Service-Route", "Supported", "Unsupported", "Via", "Warning",
    )
)


class _NameCache(dict[str, tuple[str, str]]):
    """Header name as written (trailing SP/HTAB included) -> (key, display).

    ``key`` is the lower-case long form (compact forms expanded); ``display``
    is the canonical spelling for names we know and the name as written otherwise.

    ``cache[name]`` canonicalises on a miss, so the parser's hot loop is a
    plain subscript. Bounded: unknown names stop being remembered at 4096.
    """

    def __missing__(self, name: str) -> tuple[str, str]:
        stripped = name.rstrip(" \t")
        if not stripped or not TOKEN_RE.fullmatch(stripped):
            raise ParseError(f"Bad header name: {_snip(name)}")
        low = stripped.lower()
        low = _COMPACT.get(low, low)
        # known names get their canonical spelling; unknown ones stay as written
        result = (low, _BY_KEY.get(low) or stripped)
        if len(self) < 4096:
            self[name] = result
        return result


_NAME_CACHE = _NameCache()
# sent-protocol = protocol-name SLASH protocol-version SLASH transport, where
# SLASH = SWS "/" SWS, followed by LWS sent-by (RFC 4475 §3.1.1.1 folds it all).
_VIA_PROTO = re.compile(
    r"[ \t]*([A-Za-z0-9.!%*_+`'~-]+)[ \t]*/[ \t]*([A-Za-z0-9.!%*_+`'~-]+)[ \t]*/[ \t]*([A-Za-z0-9.!%*_+`'~-]+)[ \t]+(\S.*)",
    re.S,
)
# COLON = SWS ":" SWS, so "host : 5060" is a legal sent-by
_SENT_BY_COLON = re.compile(r"[ \t]*:[ \t]*")


def _snip(text: str) -> str:
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def canonical(name: str) -> tuple[str, str]:
    """Map a header name as written to (lookup key, canonical display name).

    Trailing SP/HTAB (as in ``Via  :``) is tolerated, other non-token text raises.
    """
    return _NAME_CACHE[name]


def _quoted_end(s: str, start: int) -> int:
    """Index of the DQUOTE closing the quoted-string opened at ``start``."""
    i = start + 1
    while True:
        q = s.find('"', i)
        if q < 0:
            raise ParseError(f"Unterminated quoted string: {_snip(s[start:])}")
        j = q - 1
        while j > start and s[j] == "\\":
            j -= 1
        if (q - 1 - j) % 2 == 0:  # an even run of backslashes escapes nothing
            return q
        i = q + 1


def unquote_string(text: str) -> str:
    """Strip the quotes of a quoted-string and resolve quoted-pairs (§25.1).

    Text that is not quoted comes back unchanged.
    """
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    esc = False
    for ch in inner:
        if esc:
            out.append(ch)
            esc = False
        elif ch == "\\":
            esc = True
        else:
            out.append(ch)
    return "".join(out)


def quote_string(text: str) -> str:
    """Make a quoted-string: escape '"', '\\' and controls; CR/LF become SP."""
    out = ['"']
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "\r" or ch == "\n":
            out.append(" ")
        elif (ch < " " and ch != "\t") or ch == "\x7f":
            out.append("\\" + ch)  # quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def split_commas(value: str, *, strict: bool = False) -> list[str]:
    """Split a list header at commas that are outside quotes and <...>.

    Empty elements are dropped, or rejected with ``strict=True`` (the grammar
    of Via, Contact and Route is ``x *(COMMA x)``, RFC 4475 §3.1.2.1).
    """
    if '"' not in value and "<" not in value:
        parts = [p.strip() for p in value.split(",")]
    else:
        parts = []
        buf: list[str] = []
        in_quote = in_angle = escaped = False
        for ch in value:
            if in_quote:
                buf.append(ch)
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_quote = False
                continue
            if ch == '"':
                in_quote = True
            elif ch == "<":
                in_angle = True
            elif ch == ">":
                in_angle = False
            elif ch == "," and not in_angle:
                parts.append("".join(buf).strip())
                buf = []
                continue
            buf.append(ch)
        if in_quote:
            raise ParseError(f"Unterminated quoted string: {_snip(value)}")
        parts.append("".join(buf).strip())
    if strict:
        if not all(parts):
            raise ParseError(f"Empty list element in {_snip(value)}")
        return parts
    return [p for p in parts if p]


def _split_semis(text: str) -> list[str]:
    """Split at ';' outside quoted strings."""
    if '"' not in text:
        return text.split(";")
    items: list[str] = []
    start = 0
    i = 0
    while True:
        semi = text.find(";", i)
        quote = text.find('"', i)
        if quote >= 0 and (semi < 0 or quote < semi):
            i = _quoted_end(text, quote) + 1
            continue
        if semi < 0:
            items.append(text[start:])
            return items
        items.append(text[start:semi])
        start = i = semi + 1


def _is_token(text: str) -> bool:
    # most names and values are plain alphanumerics: skip the regex for those
    return (text.isascii() and text.isalnum()) or TOKEN_RE.fullmatch(text) is not None


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c;d="x;y"`` (leading ';' optional) into a dict.

    generic-param = token [ EQUAL gen-value ]; gen-value = token / host /
    quoted-string (§25.1). Names are lower-cased; values are kept as written,
    quotes included (use :func:`unquote_string`). LWS around ';' and '=' is
    allowed (RFC 4475 §3.1.1.1); empty parameters are not (§3.1.2.1).
    """
    text = text.strip(" \t")
    if text[:1] == ";":
        text = text[1:]
    params: dict[str, str | None] = {}
    if not text:
        return params
    for item in _split_semis(text):
        name, eq, value = item.partition("=")
        name = name.strip(" \t")
        if not _is_token(name):
            raise ParseError(f"Bad parameter in {_snip(text)}")
        if eq:
            value = value.strip(" \t")
            if not (value.isascii() and value.isalnum()) and not GEN_VALUE_RE.fullmatch(value):
                raise ParseError(f"Bad parameter value in {_snip(text)}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def format_params(params: Mapping[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass(frozen=True, slots=True)
class Via:
    """One Via element (RFC 3261 §20.42, RFC 3581 rport). ``host`` keeps IPv6 brackets."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        if text.startswith("SIP/2.0/"):
            sp = text.find(" ", 8)
            transport = text[8:sp]
            rest = text[sp + 1 :]
            if sp < 0 or not (transport.isascii() and transport.isalpha()) and not TOKEN_RE.fullmatch(transport):
                return cls._parse_slow(text)
        else:
            return cls._parse_slow(text)
        return cls._finish(transport, rest, text)

    @classmethod
    def _parse_slow(cls, text: str) -> Via:
        m = _VIA_PROTO.fullmatch(text)
        if not m:
            raise ParseError(f"Bad Via: {_snip(text)}")
        name, version, transport, rest = m.groups()
        if name.upper() != "SIP" or version != "2.0":
            raise ParseError(f"Bad Via protocol: {_snip(text)}")
        return cls._finish(transport, rest, text)

    @classmethod
    def _finish(cls, transport: str, rest: str, text: str) -> Via:
        hostport, semi, ptext = rest.partition(";")
        hostport = hostport.strip(" \t")
        if " " in hostport or "\t" in hostport:
            hostport = _SENT_BY_COLON.sub(":", hostport)
            if " " in hostport or "\t" in hostport:
                raise ParseError(f"Bad Via sent-by: {_snip(text)}")
        if not hostport:
            raise ParseError(f"Via without sent-by: {_snip(text)}")
        host, port = split_hostport(hostport)
        params = parse_params(";" + ptext) if semi else {}
        if semi and not params:
            raise ParseError(f"Empty Via parameter: {_snip(text)}")
        return cls(transport.upper(), host, port, params)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def has_rfc3261_branch(self) -> bool:
        """True when the branch carries the magic cookie and an identifier (§17.2.3).

        False means RFC 2543 transaction matching applies (RFC 4475 §3.2.1, §3.4.1).
        """
        b = self.params.get("branch")
        return b is not None and len(b) > len(MAGIC_COOKIE) and b.startswith(MAGIC_COOKIE)

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host.lower(), self.port

    @property
    def rport(self) -> int | None:
        v = self.params.get("rport")
        return int(v) if v and v.isascii() and v.isdigit() and len(v) <= 5 else None

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    def with_params(self, **params: str | None) -> Via:
        merged = dict(self.params)
        merged.update(params)
        return replace(self, params=merged)

    def __str__(self) -> str:
        hp = format_host(self.host) if self.port is None else f"{format_host(self.host)}:{self.port}"
        return f"{self.protocol}/{self.transport} {hp}{format_params(self.params)}"


_WILDCARD_URI = SipUri(host="invalid")
_NO_PARAMS: Mapping[str, str | None] = MappingProxyType({})
# element text -> NameAddr; safe to share because NameAddr is immutable all the way down
_ADDR_CACHE: dict[str, NameAddr] = {}
_ADDR_CACHE_SIZE = 2048


def clear_parse_caches() -> None:
    """Empty the address and URI parse caches (called with the quiet-time full collection).

    Their entries are the texts of the latest messages (From/To with tags, Contact), made
    during whatever burst filled them: left in place they would keep a few thousand small
    blocks spread over that burst's allocator arenas, which then cannot be released.
    """
    _ADDR_CACHE.clear()
    clear_uri_caches()


@dataclass(frozen=True, slots=True)
class NameAddr:
    """From / To / Contact / Route value: display name, URI, header params (§20.10).

    ``display`` is unquoted (quoted-pairs resolved); ``params`` are the header
    parameters, not the URI's (RFC 4475 §3.3.12 vs §3.3.13). Parsed values are
    shared between messages with the same text, so their ``params`` are
    read-only: use ``with_params`` to derive a changed value.
    """

    uri: Uri
    display: str | None = None
    params: Mapping[str, str | None] = field(default_factory=dict)
    wildcard: bool = False

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        hit = _ADDR_CACHE.get(text)
        if hit is not None:
            return hit
        value = cls._parse(text)
        if len(_ADDR_CACHE) >= _ADDR_CACHE_SIZE:
            _ADDR_CACHE.clear()
        _ADDR_CACHE[text] = value
        return value

    @classmethod
    def _parse(cls, text: str) -> NameAddr:
        s = text.strip(" \t")
        if not s:
            raise ParseError("Empty address")
        if s == "*":
            return cls(uri=_WILDCARD_URI, params=_NO_PARAMS, wildcard=True)
        display: str | None = None
        if s[0] == '"':
            end = _quoted_end(s, 0)
            display = unquote_string(s[: end + 1])
            lt = end + 1
            while lt < len(s) and s[lt] in " \t":
                lt += 1
            if s[lt : lt + 1] != "<":
                raise ParseError(f"Quoted display name without <URI>: {_snip(s)}")
        else:
            lt = s.find("<")
            if lt < 0:
                return cls._parse_addr_spec(s)
            if lt:
                # display-name = *(token LWS) / quoted-string (RFC 4475 §3.1.2.15)
                words = s[:lt].split()
                for w in words:
                    if not TOKEN_RE.fullmatch(w):
                        raise ParseError(f"Display name must be quoted: {_snip(s[:lt])}")
                display = " ".join(words) or None
        gt = s.find(">", lt + 1)
        if gt < 0:
            raise ParseError(f"Unterminated <URI> in {_snip(s)}")
        uri_text = s[lt + 1 : gt]
        if not uri_text or " " in uri_text or "\t" in uri_text:
            # LAQUOT/RAQUOT allow no whitespace inside the brackets (RFC 4475 §3.1.2.14)
            raise ParseError(f"Bad URI in <>: {_snip(uri_text)}")
        uri = parse_uri(uri_text, absolute_ok=True)
        params = _NO_PARAMS
        if gt + 1 < len(s):
            tail = s[gt + 1 :].lstrip(" \t")
            if tail[:1] != ";":
                raise ParseError(f"Unexpected text after <URI>: {_snip(tail)}")
            params = MappingProxyType(parse_params(tail))
        return cls(uri, display, params)

    @classmethod
    def _parse_addr_spec(cls, s: str) -> NameAddr:
        # §20.10: without <>, everything after the first ';' is a header
        # parameter, and a URI with ',', '?' or ';' had to be enclosed.
        uri_text, semi, ptext = s.partition(";")
        uri_text = uri_text.rstrip(" \t")
        if not uri_text or " " in uri_text or "\t" in uri_text:
            raise ParseError(f"Bad address (display name needs <URI>): {_snip(s)}")
        if "?" in uri_text or "," in uri_text:
            raise ParseError(f"URI with headers must be enclosed in <>: {_snip(uri_text)}")
        uri = parse_uri(uri_text, absolute_ok=True)
        return cls(uri, None, MappingProxyType(parse_params(";" + ptext)) if semi else _NO_PARAMS)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """The ``expires`` parameter; values beyond 2**32-1 are clamped (RFC 4475 §3.1.2.4)."""
        v = self.params.get("expires")
        if v is None:
            return None
        if not (v.isascii() and v.isdigit()):
            raise ParseError(f"Bad expires parameter: {_snip(v)}")
        return min(int(v), 2**32 - 1) if len(v) < 12 else 2**32 - 1

    def with_params(self, **params: str | None) -> NameAddr:
        merged = dict(self.params)
        merged.update(params)
        return replace(self, params=merged)

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        disp = f"{quote_string(self.display)} " if self.display else ""
        return f"{disp}<{self.uri}>{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """CSeq = 1*DIGIT LWS Method; the number is below 2**31 (§8.1.1.5)."""
        parts = text.split()
        if len(parts) != 2:
            raise ParseError(f"Bad CSeq: {_snip(text)}")
        num, method = parts
        if not (num.isascii() and num.isdigit()) or len(num) > 10 or int(num) >= 2**31:
            raise ParseError(f"Bad CSeq number: {_snip(num)}")
        if not (method.isascii() and method.isalpha()) and not TOKEN_RE.fullmatch(method):
            raise ParseError(f"Bad CSeq method: {_snip(method)}")
        return cls(int(num), method)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def _check_value(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("header values cannot contain CR or LF")
    return value


_INDEX = "\0index"  # key of the per-name index in Headers.cache (no header key starts with NUL)


class Headers:
    """Ordered, case-insensitive multimap of raw header values.

    Values are stored as they arrived (one entry per header line). ``get`` returns
    the first line's value; ``values`` returns every element, splitting list
    headers at commas. Every mutation clears the typed cache.
    """

    __slots__ = ("_items", "cache", "version")

    def __init__(self, items: list[tuple[str, str, str]] | None = None) -> None:
        self._items: list[tuple[str, str, str]] = items if items is not None else []
        #: typed values parsed on demand by Message; cleared on every change.
        self.cache: dict[str, object] = {}
        #: bumped by every mutation (lets a message know its wire bytes are stale)
        self.version = 0

    @classmethod
    def of(cls, pairs: list[tuple[str, str]]) -> Headers:
        h = cls()
        for name, value in pairs:
            h.add(name, value)
        return h

    def copy(self) -> Headers:
        return Headers(list(self._items))

    def _index(self) -> dict[str, list[str]]:
        """key -> values in order, built on first lookup and dropped on change."""
        cache = self.cache
        idx: dict[str, list[str]] | None = cache.get(_INDEX)  # type: ignore[assignment]
        if idx is None:
            idx = {}
            for k, _, v in self._items:
                lst = idx.get(k)
                if lst is None:
                    idx[k] = [v]
                else:
                    lst.append(v)
            cache[_INDEX] = idx
        return idx

    def __contains__(self, name: str) -> bool:
        return canonical(name)[0] in self._index()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for _, display, value in self._items:
            yield display, value

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({[(d, v) for _, d, v in self._items]!r})"

    def keys(self) -> list[str]:
        return [k for k, _, _ in self._items]

    def get(self, name: str, default: str | None = None) -> str | None:
        lst = self._index().get(_NAME_CACHE[name][0])
        return lst[0] if lst else default

    def lines_for_key(self, key: str) -> list[str] | None:
        """Values stored under a lower-case long ``key`` (no name mapping); read-only."""
        idx: dict[str, list[str]] | None = self.cache.get(_INDEX)  # type: ignore[assignment]
        if idx is None:
            idx = self._index()
        return idx.get(key)

    def count(self, name: str) -> int:
        """Number of header lines with this name (a combined list counts once)."""
        lst = self._index().get(canonical(name)[0])
        return len(lst) if lst else 0

    def get_lines(self, name: str) -> list[str]:
        lst = self._index().get(canonical(name)[0])
        return list(lst) if lst else []

    def values(self, name: str) -> list[str]:
        key = canonical(name)[0]
        lines = self._index().get(key) or []
        if key not in MULTI_VALUE:
            return list(lines)
        out: list[str] = []
        for line in lines:
            out.extend(split_commas(line))
        return out

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        self.version += 1
        key, display = canonical(name)
        value = _check_value(value)
        item = (key, display, value)
        if first:
            self._items.insert(0, item)
        else:
            self._items.append(item)
        cache = self.cache
        if cache:
            # Messages are built by many add()s between reads: keep the index and
            # the other headers' parsed values, drop only what this header changes.
            cache.pop(key, None)
            idx: dict[str, list[str]] | None = cache.get(_INDEX)  # type: ignore[assignment]
            if idx is not None:
                lst = idx.get(key)
                if lst is None:
                    idx[key] = [value]
                elif first:
                    lst.insert(0, value)
                else:
                    lst.append(value)

    def set(self, name: str, value: str) -> None:
        """Replace every occurrence, keeping the position of the first."""
        self.cache.clear()
        self.version += 1
        key, display = canonical(name)
        _check_value(value)
        out: list[tuple[str, str, str]] = []
        done = False
        for item in self._items:
            if item[0] == key:
                if not done:
                    out.append((key, display, value))
                    done = True
            else:
                out.append(item)
        if not done:
            out.append((key, display, value))
        self._items = out

    def remove(self, name: str) -> None:
        self.cache.clear()
        self.version += 1
        key = canonical(name)[0]
        self._items = [it for it in self._items if it[0] != key]

    def pop_first_element(self, name: str) -> str | None:
        """Remove and return the first list element of ``name`` (e.g. top Route)."""
        self.cache.clear()
        self.version += 1
        key = canonical(name)[0]
        for i, (k, d, v) in enumerate(self._items):
            if k == key:
                parts = split_commas(v) if key in MULTI_VALUE else [v]
                if len(parts) <= 1:
                    del self._items[i]
                else:
                    self._items[i] = (k, d, ", ".join(parts[1:]))
                return parts[0] if parts else None
        return None

    def replace_first_element(self, name: str, value: str) -> None:
        self.cache.clear()
        self.version += 1
        key, display = canonical(name)
        _check_value(value)
        for i, (k, d, v) in enumerate(self._items):
            if k == key:
                parts = split_commas(v) if key in MULTI_VALUE else [v]
                if parts:
                    parts[0] = value
                else:
                    parts = [value]
                self._items[i] = (k, d, ", ".join(parts))
                return
        self._items.insert(0, (key, display, value))

    def raw_items(self) -> list[tuple[str, str, str]]:
        """The stored ``(key, display, value)`` triples; treat as read-only."""
        return self._items

