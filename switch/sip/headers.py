"""Header storage and the typed header values the switch actually reads.

Theory of operation: a parsed message keeps its headers as raw ``(key,
display-name, value)`` triples in wire order. Nothing is parsed beyond that
until somebody asks: the registrar reads perhaps six headers of a REGISTER,
the B2BUA a few more of an INVITE. Typed values (Via, name-addr, CSeq) are
parsed on first access and cached until that header is changed.

Names are case-insensitive and compact forms are expanded (RFC 3261 §7.3.3,
§20): ``key`` is the lower-case long name, ``display`` the canonical spelling
we emit. Headers whose grammar is a comma-separated list are split into
elements on request; the others (notably the authentication headers, whose
values contain commas) never are (§7.3.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Iterator

from .errors import ParseError
from .uri import SipUri, Uri, format_host, parse_uri, split_hostport

__all__ = [
    "Headers",
    "Via",
    "NameAddr",
    "CSeq",
    "canonical",
    "split_commas",
    "parse_params",
    "format_params",
    "MULTI_VALUE",
]

_CANONICAL = [
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length", "Content-Type",
    "CSeq", "Date", "Diversion", "Error-Info", "Event", "Expires", "From", "History-Info",
    "Identity", "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version",
    "Organization", "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority", "Privacy",
    "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reply-To", "Require", "Retry-After", "Route",
    "RSeq", "Server", "Service-Route", "Session-Expires", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
    "WWW-Authenticate",
]
_BY_KEY: dict[str, str] = {n.lower(): n for n in _CANONICAL}
# RFC 3261 §7.3.3 and the registries since (RFC 3265 o/u, RFC 3515 r, RFC 3892 b, RFC 4028 x).
_COMPACT = {
    "i": "call-id", "m": "contact", "f": "from", "t": "to", "v": "via", "l": "content-length",
    "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding",
    "o": "event", "u": "allow-events", "r": "refer-to", "b": "referred-by", "x": "session-expires",
    "a": "accept-contact", "j": "reject-contact", "d": "request-disposition", "y": "identity",
}
# Headers whose grammar is `#element`: they may be combined with commas (§7.3.1).
MULTI_VALUE = frozenset(
    k.lower()
    for k in (
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
        "Call-Info", "Contact", "Content-Encoding", "Content-Language", "Diversion", "Error-Info",
        "History-Info", "In-Reply-To", "P-Asserted-Identity", "P-Preferred-Identity", "Path",
        "Proxy-Require", "Record-Route", "Require", "Route", "Service-Route", "Supported",
        "Unsupported", "Via", "Warning", "Reason",
    )
)
_NAME_CACHE: dict[str, tuple[str, str]] = {}
# sent-protocol allows LWS around the slashes (RFC 4475 §3.1.1.1).
_VIA_PROTO = re.compile(r"^\s*([A-Za-z0-9.!%*_+`'~-]+)\s*/\s*([A-Za-z0-9.!%*_+`'~-]+)\s*/\s*([A-Za-z0-9.!%*_+`'~-]+)\s+(\S.*)$", re.S)
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


def canonical(name: str) -> tuple[str, str]:
    """Map a header name as written to (lookup key, canonical display name)."""
    hit = _NAME_CACHE.get(name)
    if hit is not None:
        return hit
    if not name or not all(c in _TOKEN_CHARS for c in name):
        raise ParseError(f"Bad header name: {name!r}")
    low = name.lower()
    low = _COMPACT.get(low, low)
    display = _BY_KEY.get(low) or "-".join(p[:1].upper() + p[1:] for p in low.split("-"))
    result = (low, display)
    if len(_NAME_CACHE) < 4096:
        _NAME_CACHE[name] = result
    return result


def split_commas(value: str) -> list[str]:
    """Split a list header at commas that are outside quotes and <...>."""
    if '"' not in value and "<" not in value:
        return [p.strip() for p in value.split(",") if p.strip()]
    parts: list[str] = []
    buf: list[str] = []
    in_quote = False
    in_angle = False
    escaped = False
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
            part = "".join(buf).strip()
            if part:
                parts.append(part)
            buf = []
            continue
        buf.append(ch)
    if in_quote:
        raise ParseError("Unterminated quoted string")
    part = "".join(buf).strip()
    if part:
        parts.append(part)
    return parts


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c;d="x;y"`` (leading ';' optional). Names are lower-cased."""
    params: dict[str, str | None] = {}
    text = text.strip()
    if text.startswith(";"):
        text = text[1:]
    if not text:
        return params
    if '"' not in text:
        items = text.split(";")
    else:
        items = []
        buf: list[str] = []
        in_quote = False
        escaped = False
        for ch in text:
            if in_quote:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_quote = False
            elif ch == '"':
                in_quote = True
            elif ch == ";":
                items.append("".join(buf))
                buf = []
                continue
            buf.append(ch)
        if in_quote:
            raise ParseError("Unterminated quoted string in parameters")
        items.append("".join(buf))
    for item in items:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not name:
            raise ParseError(f"Empty parameter in {text!r}")
        params[name.lower()] = value.strip() if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass(frozen=True, slots=True)
class Via:
    """One Via element (RFC 3261 §20.42, RFC 3581 rport)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _VIA_PROTO.match(text)
        if not m:
            raise ParseError(f"Bad Via: {text!r}")
        name, version, transport, rest = m.groups()
        if name.upper() != "SIP" or version != "2.0":
            raise ParseError(f"Bad Via protocol: {text!r}")
        hostport, _, ptext = rest.partition(";")
        hostport = "".join(hostport.split())
        if not hostport:
            raise ParseError(f"Via without sent-by: {text!r}")
        host, port = split_hostport(hostport)
        return cls(
            transport=transport.upper(),
            host=host,
            port=port,
            params=parse_params(ptext),
        )

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host.lower(), self.port

    @property
    def rport(self) -> int | None:
        v = self.params.get("rport")
        return int(v) if v and v.isdigit() else None

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


def _unquote_display(s: str) -> str:
    s = s.strip()
    if s.startswith('"'):
        if len(s) < 2 or not s.endswith('"'):
            raise ParseError(f"Bad quoted display name: {s!r}")
        out: list[str] = []
        esc = False
        for ch in s[1:-1]:
            if esc:
                out.append(ch)
                esc = False
            elif ch == "\\":
                esc = True
            else:
                out.append(ch)
        return "".join(out)
    return " ".join(s.split())


def _quote_display(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class NameAddr:
    """From / To / Contact / Route value: display name, URI, header params (§20.10)."""

    uri: Uri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    wildcard: bool = False

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if text == "*":
            return cls(uri=SipUri(host="invalid"), wildcard=True)
        if "<" in text:
            lt = text.index("<")
            display_raw = text[:lt]
            gt = text.find(">", lt)
            if gt < 0:
                raise ParseError(f"Unterminated <URI> in {text!r}")
            # a '<' inside a quoted display name: find the first '<' after the closing quote
            if display_raw.count('"') % 2 == 1:
                q_end = text.find('"', display_raw.index('"') + 1)
                while q_end > 0 and text[q_end - 1] == "\\":
                    q_end = text.find('"', q_end + 1)
                if q_end < 0:
                    raise ParseError(f"Unterminated quoted display name in {text!r}")
                lt = text.index("<", q_end)
                gt = text.find(">", lt)
                display_raw = text[:lt]
                if gt < 0:
                    raise ParseError(f"Unterminated <URI> in {text!r}")
            uri = parse_uri(text[lt + 1 : gt].strip())
            display = _unquote_display(display_raw) if display_raw.strip() else None
            return cls(uri=uri, display=display, params=parse_params(text[gt + 1 :]))
        # addr-spec: parameters after the URI belong to the header, not the URI,
        # and the URI may not contain ',', ';' or '?' (§20.10).
        uri_text, _, ptext = text.partition(";")
        if " " in uri_text.strip():
            raise ParseError(f"Bad name-addr (display name needs <URI>): {text!r}")
        return cls(uri=parse_uri(uri_text.strip()), params=parse_params(ptext))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        v = self.params.get("expires")
        if v is None:
            return None
        if not v.isdigit():
            raise ParseError(f"Bad expires parameter: {v!r}")
        return int(v)

    def with_params(self, **params: str | None) -> NameAddr:
        merged = dict(self.params)
        merged.update(params)
        return replace(self, params=merged)

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        disp = f"{_quote_display(self.display)} " if self.display else ""
        return f"{disp}<{self.uri}>{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10:
            raise ParseError(f"Bad CSeq: {text!r}")
        seq = int(parts[0])
        if seq >= 2**31:
            raise ParseError(f"CSeq number too large: {text!r}")
        return cls(seq, parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


class Headers:
    """Ordered, case-insensitive multimap of raw header values.

    Values are stored as they arrived (one entry per header line). ``get`` returns
    the first line's value; ``values`` returns every element, splitting list
    headers at commas.
    """

    __slots__ = ("_items", "cache")

    def __init__(self, items: list[tuple[str, str, str]] | None = None) -> None:
        self._items: list[tuple[str, str, str]] = items if items is not None else []
        #: typed values parsed on demand by Message; cleared on every change.
        self.cache: dict[str, object] = {}

    @classmethod
    def of(cls, pairs: list[tuple[str, str]]) -> Headers:
        h = cls()
        for name, value in pairs:
            h.add(name, value)
        return h

    def copy(self) -> Headers:
        return Headers(list(self._items))

    def __contains__(self, name: str) -> bool:
        key = canonical(name)[0]
        return any(k == key for k, _, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for _, display, value in self._items:
            yield display, value

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:
        return [k for k, _, _ in self._items]

    def get(self, name: str, default: str | None = None) -> str | None:
        key = canonical(name)[0]
        for k, _, v in self._items:
            if k == key:
                return v
        return default

    def get_lines(self, name: str) -> list[str]:
        key = canonical(name)[0]
        return [v for k, _, v in self._items if k == key]

    def values(self, name: str) -> list[str]:
        key = canonical(name)[0]
        lines = [v for k, _, v in self._items if k == key]
        if key not in MULTI_VALUE:
            return lines
        out: list[str] = []
        for line in lines:
            out.extend(split_commas(line))
        return out

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        self.cache.clear()
        key, display = canonical(name)
        if first:
            self._items.insert(0, (key, display, value))
        else:
            self._items.append((key, display, value))

    def set(self, name: str, value: str) -> None:
        """Replace every occurrence, keeping the position of the first."""
        self.cache.clear()
        key, display = canonical(name)
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
        key = canonical(name)[0]
        self._items = [it for it in self._items if it[0] != key]

    def pop_first_element(self, name: str) -> str | None:
        """Remove and return the first list element of ``name`` (e.g. top Route)."""
        self.cache.clear()
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
        key, display = canonical(name)
        for i, (k, d, v) in enumerate(self._items):
            if k == key:
                parts = split_commas(v) if key in MULTI_VALUE else [v]
                parts[0] = value
                self._items[i] = (k, d, ", ".join(parts))
                return
        self._items.insert(0, (key, display, value))

    def raw_items(self) -> list[tuple[str, str, str]]:
        return self._items
