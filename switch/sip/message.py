"""SIP requests and responses (RFC 3261 §7).

A message is a start line, a :class:`Headers` multimap and a body. Typed
accessors (``call_id``, ``cseq``, ``vias``, ``from_``, ``to``, ``contacts``,
``max_forwards``, ``expires``, ...) parse on first use and cache the result in
the headers object until a header changes; a malformed header raises
:class:`ParseError` carrying the 400 to answer.

``to_bytes`` always writes a Content-Length that matches the body.
"""

from __future__ import annotations

import hashlib
import os

from .abnf import CALL_ID_RE, SIP_DATE_RE
from .errors import ParseError
from .headers import MAGIC_COOKIE, CSeq, Headers, NameAddr, Via, split_commas
from .status import reason_phrase
from .uri import Uri, parse_uri

__all__ = ["Message", "Request", "Response", "response_for", "new_tag", "stateless_tag", "new_branch", "new_call_id", "MAGIC_COOKIE"]

_MISSING = object()
_MAX_DELTA = 2**32 - 1  # delta-seconds beyond this are clamped (RFC 4475 §3.1.2.4)


class _Entropy:
    """``os.urandom`` drawn 4 KiB at a time and handed out in slices.

    Tags, branches and Call-IDs must be cryptographically random (RFC 3261
    §19.3, §8.1.1.7). One getrandom() system call each was 3.8 % of the event
    loop at 3,000 registrations/s on this VM; one per 4 KiB is noise. The pool
    is dropped in a forked child so parent and child never hand out the same
    bytes.
    """

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def reset(self) -> None:
        self._buf = b""
        self._pos = 0

    def hex(self, nbytes: int) -> str:
        pos = self._pos
        if pos + nbytes > len(self._buf):
            self._buf = os.urandom(max(4096, nbytes))
            pos = 0
        self._pos = pos + nbytes
        return self._buf[pos : pos + nbytes].hex()


_ENTROPY = _Entropy()
os.register_at_fork(after_in_child=_ENTROPY.reset)


def new_tag() -> str:
    return _ENTROPY.hex(6)


def stateless_tag(request: Request) -> str:
    """A To tag for a response sent without a transaction (RFC 3261 §8.2.7).

    The same request, retransmissions included, must get the same tag, so it is
    derived from what identifies the request instead of drawn at random.
    """
    via = request.top_via
    key = f"{request.call_id}\0{request.from_.tag or ''}\0{via.branch or ''}\0{request.cseq.seq}"
    return hashlib.blake2s(key.encode("utf-8", "surrogateescape"), digest_size=6).hexdigest()


def new_branch() -> str:
    return MAGIC_COOKIE + _ENTROPY.hex(10)


def new_call_id(host: str = "") -> str:
    cid = _ENTROPY.hex(12)
    return f"{cid}@{host}" if host else cid


def _snip(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


class Message:
    __slots__ = ("headers", "body", "_wire")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        # (bytes as received, headers, headers.version, header count, body, start a, start b):
        # lets to_bytes hand back the received bytes while nothing has changed.
        self._wire: tuple[bytes, Headers, int, int, bytes, object, object] | None = None

    def _start_fields(self) -> tuple[object, object]:
        raise NotImplementedError

    def keep_wire(self, data: bytes) -> None:
        """Remember ``data`` as this message's exact encoding (used by the parser).

        Only valid for bytes that carry a correct Content-Length and CRLF line
        ends; any later change to the start line, headers or body drops it.
        """
        h = self.headers
        a, b = self._start_fields()
        self._wire = (data, h, h.version, len(h.raw_items()), self.body, a, b)

    # -- typed accessors -------------------------------------------------
    # Written out one by one (no per-call closures): these sit on the hot path
    # of every request the registrar and the B2BUA handle.
    def _required(self, key: str, name: str) -> str:
        lst = self.headers.lines_for_key(key)
        if not lst:
            raise ParseError(f"Missing {name} header")
        return lst[0]

    @property
    def call_id(self) -> str:
        cache = self.headers.cache
        v = cache.get("call-id")
        if v is None:
            raw = self._required("call-id", "Call-ID")
            if not CALL_ID_RE.fullmatch(raw):
                raise ParseError(f"Bad Call-ID: {_snip(raw)}")
            cache["call-id"] = v = raw
        return v  # type: ignore[return-value]

    @property
    def cseq(self) -> CSeq:
        cache = self.headers.cache
        v = cache.get("cseq")
        if v is None:
            cache["cseq"] = v = CSeq.parse(self._required("cseq", "CSeq"))
        return v  # type: ignore[return-value]

    @property
    def vias(self) -> list[Via]:
        cache = self.headers.cache
        v = cache.get("via")
        if v is None:
            lines = self.headers.lines_for_key("via")
            if not lines:
                raise ParseError("Missing Via header")
            vias: list[Via] = []
            for line in lines:
                if "," in line:
                    vias.extend(Via.parse(p) for p in split_commas(line, strict=True))
                else:
                    vias.append(Via.parse(line))
            cache["via"] = v = vias
        return v  # type: ignore[return-value]

    @property
    def top_via(self) -> Via:
        return self.vias[0]

    @property
    def from_(self) -> NameAddr:
        cache = self.headers.cache
        v = cache.get("from")
        if v is None:
            cache["from"] = v = NameAddr.parse(self._required("from", "From"))
        return v  # type: ignore[return-value]

    @property
    def to(self) -> NameAddr:
        cache = self.headers.cache
        v = cache.get("to")
        if v is None:
            cache["to"] = v = NameAddr.parse(self._required("to", "To"))
        return v  # type: ignore[return-value]

    def _name_addrs(self, key: str) -> list[NameAddr]:
        cache = self.headers.cache
        v = cache.get(key)
        if v is None:
            out: list[NameAddr] = []
            for line in self.headers.lines_for_key(key) or ():
                if "," in line:
                    out.extend(NameAddr.parse(p) for p in split_commas(line, strict=True))
                else:
                    out.append(NameAddr.parse(line))
            cache[key] = v = out
        return v  # type: ignore[return-value]

    @property
    def contacts(self) -> list[NameAddr]:
        return self._name_addrs("contact")

    @property
    def routes(self) -> list[NameAddr]:
        return self._name_addrs("route")

    @property
    def record_routes(self) -> list[NameAddr]:
        return self._name_addrs("record-route")

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards = 1*DIGIT, 0-255; leading zeros allowed (RFC 4475 §3.1.1.1)."""
        cache = self.headers.cache
        v = cache.get("max-forwards", _MISSING)
        if v is _MISSING:
            lst = self.headers.lines_for_key("max-forwards")
            if not lst:
                v = None
            else:
                raw = lst[0].strip()
                if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or int(raw) > 255:
                    raise ParseError(f"Bad Max-Forwards: {_snip(raw)}")
                v = int(raw)
            cache["max-forwards"] = v
        return v  # type: ignore[return-value]

    @property
    def expires(self) -> int | None:
        cache = self.headers.cache
        v = cache.get("expires", _MISSING)
        if v is _MISSING:
            lst = self.headers.lines_for_key("expires")
            if not lst:
                v = None
            else:
                raw = lst[0].strip()
                if not (raw.isascii() and raw.isdigit()):
                    raise ParseError(f"Bad Expires: {_snip(raw)}")
                v = min(int(raw), _MAX_DELTA) if len(raw) <= 10 else _MAX_DELTA
            cache["expires"] = v
        return v  # type: ignore[return-value]

    @property
    def date(self) -> str | None:
        """The Date header, checked to be an RFC 1123 date in GMT (§20.17).

        Not part of request validation: RFC 4475 §3.1.2.12 says a bad Date
        should only cause a 400 where the element actually uses it.
        """
        raw = self.headers.get("Date")
        if raw is None:
            return None
        raw = raw.strip()
        if not SIP_DATE_RE.fullmatch(raw):
            raise ParseError(f"Bad Date (must be RFC 1123 in GMT): {_snip(raw)}")
        return raw

    @property
    def content_type(self) -> str | None:
        v = self.headers.get("Content-Type")
        return v.split(";", 1)[0].strip().lower() if v else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    # -- serialisation ---------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        w = self._wire
        if w is not None:
            h = self.headers
            a, b = self._start_fields()
            if (
                w[1] is h
                and w[2] == h.version
                and w[3] == len(h.raw_items())
                and w[4] is self.body
                and w[5] == a
                and w[6] == b
            ):
                return w[0]
            self._wire = None
        parts = [self.start_line()]
        append = parts.append
        for key, display, value in self.headers.raw_items():
            if key != "content-length":
                append(f"{display}: {value}")
        append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "\r\n".join(parts).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(Message):
    __slots__ = ("method", "uri", "_ruri")

    def __init__(self, method: str, uri: str | Uri, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._wire = None
        self.method = method
        self.uri = str(uri)
        self._ruri: Uri | None = None if isinstance(uri, str) else uri

    @property
    def ruri(self) -> Uri:
        """The Request-URI, parsed (ParseError / UnsupportedScheme on failure)."""
        if self._ruri is None:
            self._ruri = parse_uri(self.uri)
        return self._ruri

    def set_uri(self, uri: str | Uri) -> None:
        self.uri = str(uri)
        self._ruri = None if isinstance(uri, str) else uri

    def _start_fields(self) -> tuple[object, object]:
        return self.method, self.uri

    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    __slots__ = ("status", "reason")

    def __init__(self, status: int, reason: str | None = None, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._wire = None
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)

    def _start_fields(self) -> tuple[object, object]:
        return self.status, self.reason

    def start_line(self) -> str:
        # a reason built from peer data must not break the start line
        reason = self.reason
        if "\r" in reason or "\n" in reason:
            reason = reason.replace("\r", " ").replace("\n", " ")
        return f"SIP/2.0 {self.status} {reason}"

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


_COPY_TO_RESPONSE = ("call-id", "cseq", "from")


def response_for(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    copy_record_route: bool = False,
) -> Response:
    """Build a response per RFC 3261 §8.2.6.2: Via, From, To, Call-ID, CSeq copied.

    ``to_tag`` is added to To when the request's To has no tag (never for 100).
    Works on partially parsed requests too (a malformed To gets no tag).
    """
    items: list[tuple[str, str, str]] = []
    to_item: tuple[str, str, str] | None = None
    for item in request.headers.raw_items():
        key = item[0]
        if key == "via" or key in _COPY_TO_RESPONSE:
            items.append(item)
        elif key == "to":
            if to_item is None:
                to_item = item
            items.append(item)
        elif key == "timestamp" and status == 100:
            items.append(item)  # §8.2.6.1
        elif key == "record-route" and copy_record_route:
            items.append(item)
    resp = Response(status, reason, Headers(items))
    if to_item is not None and to_tag and status != 100:
        try:
            has_tag = request.to.tag is not None
        except ParseError:
            has_tag = True  # cannot tell: leave the To as it came
        if not has_tag:
            resp.headers.set("To", f"{to_item[2]};tag={to_tag}")
    return resp
