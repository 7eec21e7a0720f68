"""SIP requests and responses (RFC 3261 §7).

A message is a start line, a :class:`Headers` multimap and a body. Typed
accessors (``call_id``, ``cseq``, ``vias``, ``from_``, ``to``, ``contacts``,
``max_forwards``, ``expires``) parse on first use and cache the result in the
headers object until a header changes; a malformed header raises
:class:`ParseError` carrying the 400 to answer.

``to_bytes`` always writes a Content-Length that matches the body.
"""

from __future__ import annotations

import secrets
from typing import Callable, TypeVar

from .errors import ParseError
from .headers import CSeq, Headers, NameAddr, Via
from .status import reason_phrase
from .uri import Uri, parse_uri

__all__ = ["Message", "Request", "Response", "response_for", "new_tag", "new_branch", "new_call_id", "MAGIC_COOKIE"]

MAGIC_COOKIE = "z9hG4bK"
T = TypeVar("T")


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(10)


def new_call_id(host: str = "") -> str:
    cid = secrets.token_hex(12)
    return f"{cid}@{host}" if host else cid


class Message:
    __slots__ = ("headers", "body")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body

    # -- typed accessors -------------------------------------------------
    def _cached(self, key: str, build: Callable[[], T]) -> T:
        cache = self.headers.cache
        try:
            return cache[key]  # type: ignore[return-value]
        except KeyError:
            value = build()
            cache[key] = value
            return value

    def _required(self, name: str) -> str:
        v = self.headers.get(name)
        if v is None:
            raise ParseError(f"Missing {name} header")
        return v

    @property
    def call_id(self) -> str:
        def build() -> str:
            v = self._required("Call-ID").strip()
            if not v or " " in v:
                raise ParseError("Bad Call-ID header")
            return v

        return self._cached("call-id", build)

    @property
    def cseq(self) -> CSeq:
        return self._cached("cseq", lambda: CSeq.parse(self._required("CSeq")))

    @property
    def vias(self) -> list[Via]:
        def build() -> list[Via]:
            vals = self.headers.values("Via")
            if not vals:
                raise ParseError("Missing Via header")
            return [Via.parse(v) for v in vals]

        return self._cached("via", build)

    @property
    def top_via(self) -> Via:
        return self.vias[0]

    @property
    def from_(self) -> NameAddr:
        return self._cached("from", lambda: NameAddr.parse(self._required("From")))

    @property
    def to(self) -> NameAddr:
        return self._cached("to", lambda: NameAddr.parse(self._required("To")))

    @property
    def contacts(self) -> list[NameAddr]:
        return self._cached("contact", lambda: [NameAddr.parse(v) for v in self.headers.values("Contact")])

    @property
    def max_forwards(self) -> int | None:
        def build() -> int | None:
            v = self.headers.get("Max-Forwards")
            if v is None:
                return None
            v = v.strip()
            if not v.isdigit() or len(v) > 3 or int(v) > 255:
                raise ParseError(f"Bad Max-Forwards: {v!r}")
            return int(v)

        return self._cached("max-forwards", build)

    @property
    def expires(self) -> int | None:
        def build() -> int | None:
            v = self.headers.get("Expires")
            if v is None:
                return None
            v = v.strip()
            if not v.isdigit():
                raise ParseError(f"Bad Expires: {v!r}")
            return min(int(v), 2**32 - 1)

        return self._cached("expires", build)

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
        lines = [self.start_line()]
        for key, display, value in self.headers.raw_items():
            if key != "content-length":
                lines.append(f"{display}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(Message):
    __slots__ = ("method", "uri", "_ruri")

    def __init__(self, method: str, uri: str | Uri, headers: Headers | None = None, body: bytes = b"") -> None:
        super().__init__(headers, body)
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

    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    __slots__ = ("status", "reason")

    def __init__(self, status: int, reason: str | None = None, headers: Headers | None = None, body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

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
    """
    items: list[tuple[str, str, str]] = []
    to_item: tuple[str, str, str] | None = None
    for item in request.headers.raw_items():
        key = item[0]
        if key == "via" or key in _COPY_TO_RESPONSE:
            items.append(item)
        elif key == "to":
            to_item = item
            items.append(item)
        elif key == "timestamp" and status == 100:
            items.append(item)  # §8.2.6.1
        elif key == "record-route" and copy_record_route:
            items.append(item)
    resp = Response(status, reason, Headers(items))
    if to_item is not None and to_tag and status != 100 and request.to.tag is None:
        resp.headers.set("To", f"{to_item[2]};tag={to_tag}")
    return resp
