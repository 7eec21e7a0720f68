"""Bytes → messages (RFC 3261 §7, §18.3), for datagrams and for streams.

Only the start line and header *lines* are parsed eagerly; the headers a
server must check before answering anything (Via, CSeq, Call-ID, From, To,
Max-Forwards, Contact, the Request-URI) are validated by
:func:`validate_request`, everything else is parsed on access. Errors carry
the status to answer; when the request line and headers were readable the
partial request rides on the error (``error.partial``) so the transport can
build a stateless response from it. Responses that fail to parse or validate
are never answered: the caller drops them.

Limits keep memory bounded whatever arrives: total size, number of header
lines, length of one line (all answered with 513).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from dataclasses import dataclass

from .abnf import SIP_VERSION_RE, TOKEN_RE
from .errors import BadExtension, MessageTooLarge, ParseError, VersionNotSupported
from .headers import _NAME_CACHE, Headers
from .message import Message, Request, Response
from .uri import SipUri

__all__ = [
    "Limits",
    "DEFAULT_LIMITS",
    "parse_message",
    "validate_request",
    "validate_response",
    "check_require",
    "StreamParser",
    "KEEPALIVE_PING",
    "KEEPALIVE_PONG",
]

KEEPALIVE_PING = b"\r\n\r\n"  # RFC 5626 §3.5.1 double-CRLF ping
KEEPALIVE_PONG = b"\r\n"


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard bounds on what one message may cost (RFC 3261 §18.1.1 hints 65535 over UDP)."""

    max_message: int = 65535
    """Bytes in one message, head and body together."""
    max_headers: int = 256
    """Header lines (continuation lines included)."""
    max_line: int = 8192
    """Bytes in one line of the head."""


DEFAULT_LIMITS = Limits()
# header fields that may appear only once (§20: not a comma-separated list)
_SINGLE = (("call-id", "Call-ID"), ("cseq", "CSeq"), ("from", "From"), ("to", "To"), ("max-forwards", "Max-Forwards"))
_LENIENT_BLANK = re.compile(rb"\r?\n\r?\n")


# (start line, header items, Content-Length values, strict): a plain tuple, built
# for every message. ``strict`` means CRLF line ends only, so the received bytes
# may be reused as they are.
_Head = tuple[str, list[tuple[str, str, str]], list[str], bool]


def _snip(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def _attach(err: ParseError, partial: Request | None) -> ParseError:
    err.partial = partial
    return err


def _split_lines_lenient(text: str) -> list[str]:
    """Lines of a head that uses bare LF somewhere (tolerated); bare CR is not."""
    out: list[str] = []
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if "\r" in line:
            raise ParseError("Bare CR in message head")
        out.append(line)
    return out


def _parse_head(head: bytes, limits: Limits) -> _Head:
    """Start line and header lines, unfolded and with names canonicalised.

    The common case (CRLF only, no folding, short lines) runs one tight loop;
    anything else takes the careful line-by-line path, which also produces
    the precise error.
    """
    text = head.decode("utf-8", "surrogateescape")
    lines = text.split("\r\n")
    nl = len(lines) - 1
    if (
        nl > limits.max_headers
        or len(text) > limits.max_line
        or text.count("\n") != nl
        or text.count("\r") != nl
        or not lines[0]
    ):
        return _parse_head_slow(text, limits)
    names = _NAME_CACHE
    items: list[tuple[str, str, str]] = []
    append = items.append
    content_length: list[str] = []
    try:
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ParseError("no colon")
            # a folded line fails here too: its "name" starts with SP/HTAB
            kd = names[name]  # HCOLON = *( SP / HTAB ) ":" SWS
            value = value.strip(" \t")
            append(kd + (value,))
            if kd[0] == "content-length":
                content_length.append(value)
    except ParseError:
        return _parse_head_slow(text, limits)
    return lines[0], items, content_length, True


def _parse_head_slow(text: str, limits: Limits) -> _Head:
    lines = text.split("\r\n")
    nl = len(lines) - 1
    strict = True
    if text.count("\n") != nl or text.count("\r") != nl:
        lines = _split_lines_lenient(text)
        strict = False
    first = 0
    while first < len(lines) and not lines[first]:
        first += 1  # §7.5: CRLFs before the start line are ignored
    if first == len(lines):
        raise ParseError("Empty message")
    if len(lines) - first - 1 > limits.max_headers:
        raise MessageTooLarge(f"Too many header lines (limit {limits.max_headers})")
    max_line = limits.max_line
    start = lines[first]
    if len(start) > max_line:
        raise MessageTooLarge(f"Start line longer than {max_line} bytes")
    items: list[tuple[str, str, str]] = []
    append = items.append
    content_length: list[str] = []
    names = _NAME_CACHE
    for i in range(first + 1, len(lines)):
        line = lines[i]
        if len(line) > max_line:
            raise MessageTooLarge(f"Header line longer than {max_line} bytes")
        c = line[:1]
        if c == " " or c == "\t" or not line:
            # §7.3.1 folding: a continuation line is the previous value plus one SP
            if not items:
                raise ParseError("Continuation line before the first header")
            k, d, v = items[-1]
            more = line.strip(" \t")
            items[-1] = (k, d, f"{v} {more}" if v and more else v or more)
            if k == "content-length":
                content_length[-1] = items[-1][2]
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"Header line without colon: {_snip(line)}")
        key, display = names[name]  # HCOLON = *( SP / HTAB ) ":" SWS
        value = value.strip(" \t")
        append((key, display, value))
        if key == "content-length":
            content_length.append(value)
    return start, items, content_length, strict and first == 0


def _request_line(start: str, headers: Headers) -> Request:
    """Request-Line = Method SP Request-URI SP SIP-Version (exactly one SP each)."""
    parts = start.split(" ")
    if len(parts) != 3 or not parts[1]:
        # still build a partial so the 400 can be sent (RFC 4475 §3.1.2.8-10)
        words = start.split()
        method = words[0] if words and TOKEN_RE.fullmatch(words[0]) else "UNKNOWN"
        partial = Request(method, words[1] if len(words) > 1 else "", headers)
        raise _attach(ParseError(f"Bad request line: {_snip(start)}"), partial)
    method, uri, version = parts
    if not (method.isascii() and method.isalpha()) and not TOKEN_RE.fullmatch(method):
        raise _attach(ParseError(f"Bad method: {_snip(method)}"), Request("UNKNOWN", uri, headers))
    req = Request(method, uri, headers)
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        if SIP_VERSION_RE.fullmatch(version):
            raise _attach(VersionNotSupported(f"Version Not Supported: {version[:20]}"), req)
        raise _attach(ParseError(f"Bad SIP version: {_snip(version)}"), req)
    return req


def _status_line(start: str, headers: Headers) -> Response:
    """Status-Line = SIP-Version SP Status-Code SP Reason-Phrase."""
    version, _, rest = start.partition(" ")
    if version.upper() != "SIP/2.0":
        if SIP_VERSION_RE.fullmatch(version):
            raise VersionNotSupported(f"Version Not Supported: {version[:20]}")
        raise ParseError(f"Bad SIP version: {_snip(version)}")
    # a missing SP after the code is tolerated (RFC 4475 §3.1.1.13 says liberal is fine)
    code, _, reason = rest.partition(" ")
    if len(code) != 3 or not (code.isascii() and code.isdigit()) or not 100 <= int(code) <= 699:
        raise ParseError(f"Bad status code: {_snip(code)}")
    return Response(int(code), reason, headers)


def _build(head: _Head, rest: bytes, stream: bool, wire: bytes | None = None) -> Message:
    """The message from a parsed head and the bytes after the empty line.

    ``wire`` is the whole received message (head, CRLFCRLF, rest) when it was
    CRLF-framed; it is kept for ``to_bytes`` if Content-Length was present.
    """
    start, items, cls, strict = head
    headers = Headers(items)
    msg: Message
    partial: Request | None = None
    if start[:4].upper() == "SIP/":
        msg = _status_line(start, headers)
    else:
        msg = partial = _request_line(start, headers)
    if cls:
        if len(cls) > 1:
            raise _attach(ParseError("Multiple Content-Length headers"), partial)
        cl = cls[0]
        if not (cl.isascii() and cl.isdigit()) or len(cl) > 10:
            raise _attach(ParseError(f"Bad Content-Length: {_snip(cl)}"), partial)
        n = int(cl)
        if n > len(rest):
            raise _attach(ParseError(f"Content-Length {n} exceeds the {len(rest)} body bytes received"), partial)
        # §18.3: octets beyond Content-Length in a datagram are discarded
        if n != len(rest):
            if wire is not None:
                wire = wire[: len(wire) - len(rest) + n]
            rest = rest[:n]
        msg.body = rest
        if wire is not None and strict:
            msg.keep_wire(wire)
    elif stream:
        raise _attach(ParseError("Missing Content-Length on a stream transport"), partial)
    else:
        msg.body = rest
    return msg


def _split(data: bytes) -> tuple[bytes, bytes, bool]:
    """(head, rest, CRLF-framed) around the empty line; without one it is all head."""
    idx = data.find(b"\r\n\r\n")
    if idx >= 0:
        return data[:idx], data[idx + 4 :], True
    m = _LENIENT_BLANK.search(data)
    if m is not None:
        return data[: m.start()], data[m.end() :], False
    return data.rstrip(b"\r\n"), b"", False


def _too_large(data: bytes, limits: Limits) -> MessageTooLarge:
    """513, with the partial request when its head alone is readable (§21.5.14)."""
    err = MessageTooLarge(f"Message of {len(data)} bytes exceeds {limits.max_message}")
    window = data[: limits.max_message]
    idx = window.find(b"\r\n\r\n")
    if idx >= 0:
        try:
            start, items, _, _ = _parse_head(window[:idx], limits)
            if start[:4].upper() != "SIP/":
                err.partial = _request_line(start, Headers(items))
        except ParseError:
            pass
    return err


def parse_message(data: bytes, *, limits: Limits = DEFAULT_LIMITS, stream: bool = False) -> Message:
    """Parse one complete message.

    Datagram semantics (§18.3): bytes beyond Content-Length are discarded, a body
    shorter than Content-Length is an error; without Content-Length the rest of
    the datagram is the body. ``stream=True`` makes a missing Content-Length an error.
    """
    if len(data) > limits.max_message:
        raise _too_large(data, limits)
    if data[:2] == b"\r\n":
        data = data.lstrip(b"\r\n")
    idx = data.find(b"\r\n\r\n")
    if idx >= 0:
        return _build(_parse_head(data[:idx], limits), data[idx + 4 :], stream, data)
    head, rest, _ = _split(data)
    return _build(_parse_head(head, limits), rest, stream, None)


def _check_single(headers: Headers) -> None:
    """Single-value header fields appear once (RFC 4475 §3.3.8)."""
    get = headers.lines_for_key
    for key, name in _SINGLE:
        lst = get(key)
        if lst is not None and len(lst) > 1:
            raise ParseError(f"Multiple {name} headers")


def validate_request(req: Request) -> None:
    """Check what every server must read before it can answer (§8.2, §16.3).

    Parses and caches Via, CSeq (its method must match, RFC 4475 §3.1.2.17-18),
    Call-ID, From, To, Max-Forwards, Contact and the Request-URI, and rejects
    duplicated single-value headers (§3.3.8) and a Request-URI with headers
    (§3.1.2.11). Raises ParseError (400) or UnsupportedScheme (416, checked
    after the syntax) with ``partial = req``.
    """
    try:
        _check_single(req.headers)
        req.vias  # noqa: B018 - parse and cache every Via
        if req.cseq.method != req.method:
            raise ParseError("CSeq method does not match the request method")
        req.call_id  # noqa: B018
        req.from_  # noqa: B018
        req.to  # noqa: B018
        req.max_forwards  # noqa: B018
        ruri = req.ruri
        if isinstance(ruri, SipUri) and ruri.headers:
            raise ParseError("Request-URI must not contain headers")
        req.contacts  # noqa: B018
    except ParseError as err:
        raise _attach(err, req) from None


def validate_response(resp: Response) -> None:
    """The response counterpart: a response failing this is dropped (§18.1.2, RFC 4475 §3.1.2.5)."""
    _check_single(resp.headers)
    resp.vias  # noqa: B018
    resp.cseq  # noqa: B018
    resp.call_id  # noqa: B018
    resp.from_  # noqa: B018
    resp.to  # noqa: B018


def check_require(req: Request, supported: Iterable[str], *, proxy: bool = False) -> None:
    """Raise :class:`BadExtension` (420) for option-tags we do not support (§8.2.2.3).

    A UAS looks at Require only; ``proxy=True`` adds Proxy-Require (§16.3 item 5).
    ACK and CANCEL are never rejected for this (§8.2.2.3, §9.2). The error's
    ``options`` go into the Unsupported header of the 420.
    """
    if req.method == "ACK" or req.method == "CANCEL":
        return
    known = {s.lower() for s in supported}
    unknown: list[str] = []
    for name in ("Require", "Proxy-Require") if proxy else ("Require",):
        for opt in req.headers.values(name):
            if opt.lower() not in known and opt not in unknown:
                unknown.append(opt)
    if unknown:
        raise BadExtension(unknown)


class StreamParser:
    """Incremental framing for TCP/TLS (RFC 3261 §18.3).

    ``feed`` returns complete messages and ``StreamParser.PING`` markers for
    RFC 5626 double-CRLF keep-alives (a lone CRLF pong is swallowed). A
    framing error cannot be recovered from: the connection should be answered
    (``err.partial``) and closed. Messages completed before the error in the
    same ``feed`` are still returned; the error is raised by the next call.
    """

    PING: Final = object()

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._buf = bytearray()
        self._limits = limits
        self._head: tuple[int, _Head, int] | None = None  # (head end, parsed head, frame size)
        self._error: ParseError | None = None

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete message held (the transport's read timeout watches this)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[object]:
        if self._error is not None:
            raise self._error
        self._buf += data
        out: list[object] = []
        try:
            self._drain(out)
        except ParseError as err:
            self._buf.clear()
            self._head = None
            if not out:
                raise
            self._error = err
        return out

    def _drain(self, out: list[object]) -> None:
        buf = self._buf
        limits = self._limits
        while buf:
            if self._head is None:
                if buf[0] == 13:  # CR: keep-alive traffic between messages
                    if buf[:4] == KEEPALIVE_PING:
                        del buf[:4]
                        out.append(StreamParser.PING)
                        continue
                    if len(buf) < 4 and KEEPALIVE_PING.startswith(bytes(buf)):
                        return  # maybe a ping still arriving
                    if buf[:2] == b"\r\n":
                        del buf[:2]  # a pong or a stray CRLF
                        continue
                idx = buf.find(b"\r\n\r\n")
                if idx < 0:
                    if len(buf) > limits.max_message:
                        raise MessageTooLarge("Header block exceeds the message size limit")
                    return
                if idx + 4 > limits.max_message:
                    raise MessageTooLarge("Header block exceeds the message size limit")
                head = _parse_head(bytes(buf[:idx]), limits)
                start, items, cls, _ = head
                if len(cls) != 1 or not (cls[0].isascii() and cls[0].isdigit()) or len(cls[0]) > 10:
                    _build(head, b"", stream=True)  # raises the precise error, with partial
                    raise ParseError("Bad Content-Length")  # pragma: no cover
                total = idx + 4 + int(cls[0])
                if total > limits.max_message:
                    err = MessageTooLarge(f"Message of {total} bytes exceeds {limits.max_message}")
                    if start[:4].upper() != "SIP/":
                        try:
                            err.partial = _request_line(start, Headers(items))
                        except ParseError:
                            pass
                    raise err
                self._head = (idx, head, total)
            idx, head, total = self._head
            if len(buf) < total:
                return
            frame = bytes(buf[:total])
            del buf[:total]
            self._head = None
            out.append(_build(head, frame[idx + 4 :], True, frame))
