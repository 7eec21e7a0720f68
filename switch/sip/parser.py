"""Bytes → messages (RFC 3261 §7, §18.3), for datagrams and for streams.

Only the start line and header *lines* are parsed eagerly; the headers a
server must check before answering anything (Via, CSeq, Call-ID, From, To,
Max-Forwards) are validated by :func:`validate_request`, everything else is
parsed on access. Errors carry the status to answer; when the request line
and headers were readable the partial request rides on the error
(``error.partial``) so the transport can build a stateless response from it.

Limits keep memory bounded whatever arrives: total size (513), number of
header lines, length of one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import MessageTooLarge, ParseError, VersionNotSupported
from .headers import Headers, canonical
from .message import Message, Request, Response

__all__ = ["Limits", "parse_message", "validate_request", "StreamParser", "KEEPALIVE_PING", "KEEPALIVE_PONG"]

KEEPALIVE_PING = b"\r\n\r\n"  # RFC 5626 §3.5.1 double-CRLF ping
KEEPALIVE_PONG = b"\r\n"


@dataclass(frozen=True, slots=True)
class Limits:
    max_message: int = 65535
    max_headers: int = 256
    max_line: int = 8192


DEFAULT_LIMITS = Limits()
_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


def _attach(err: ParseError, partial: Request | None) -> ParseError:
    err.partial = partial  # type: ignore[attr-defined]
    return err


def _split_head(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Return (head, separator, rest). Tolerates bare-LF framing."""
    idx = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if idx >= 0 and (lf < 0 or idx <= lf):
        return data[:idx], b"\r\n", data[idx + 4 :]
    if lf >= 0:
        return data[:lf], b"\n", data[lf + 2 :]
    # no blank line: the whole thing is a head with no body
    return data.rstrip(b"\r\n"), (b"\r\n" if b"\r\n" in data else b"\n"), b""


def _parse_head(head: bytes, eol: bytes, limits: Limits) -> tuple[str, list[tuple[str, str, str]]]:
    text = head.decode("utf-8", "surrogateescape")
    lines = text.split(eol.decode())
    if eol == b"\r\n" and "\n" in text:
        # mixed endings: split the remaining bare LFs too
        lines = [part for line in lines for part in line.split("\n")]
    # RFC 3261 §7.5: tolerate leading CRLFs before the start line.
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise ParseError("Empty message")
    if len(lines) > limits.max_headers + 1:
        raise MessageTooLarge(f"Too many header lines (limit {limits.max_headers})")
    start = lines[0].rstrip("\r")
    items: list[tuple[str, str, str]] = []
    for raw in lines[1:]:
        line = raw[:-1] if raw.endswith("\r") else raw
        if len(line) > limits.max_line:
            raise MessageTooLarge(f"Header line longer than {limits.max_line} bytes")
        if line[:1] in (" ", "\t"):
            # §7.3.1 folding: continuation of the previous header value
            if not items:
                raise ParseError("Continuation line before the first header")
            k, d, v = items[-1]
            items[-1] = (k, d, f"{v} {line.strip()}".strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"Header line without colon: {line[:40]!r}")
        key, display = canonical(name.rstrip(" \t"))
        items.append((key, display, value.strip(" \t")))
    return start, items


def parse_message(data: bytes, *, limits: Limits = DEFAULT_LIMITS, stream: bool = False) -> Message:
    """Parse one complete message.

    Datagram semantics (§18.3): bytes beyond Content-Length are discarded, a body
    shorter than Content-Length is an error; without Content-Length the rest of
    the datagram is the body. ``stream=True`` makes a missing Content-Length an error.
    """
    if len(data) > limits.max_message:
        raise MessageTooLarge(f"Message of {len(data)} bytes exceeds {limits.max_message}")
    head, eol, rest = _split_head(data)
    start, items = _parse_head(head, eol, limits)
    headers = Headers(items)
    msg: Message
    if start.startswith("SIP/"):
        version, sp, rest_line = start.partition(" ")
        code, _, reason = rest_line.partition(" ")
        if version != "SIP/2.0":
            raise VersionNotSupported(f"Version Not Supported: {version}")
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise ParseError(f"Bad status code: {code!r}")
        msg = Response(int(code), reason, headers)
        partial: Request | None = None
    else:
        parts = start.split(" ")
        if len(parts) != 3:
            raise ParseError(f"Bad request line: {start[:80]!r}")
        method, uri, version = parts
        if not method or not all(c in _TOKEN for c in method):
            raise ParseError(f"Bad method: {method[:40]!r}")
        if not uri:
            raise ParseError("Empty Request-URI")
        msg = partial = Request(method, uri, headers)
        if version.upper() != "SIP/2.0":
            if version.upper().startswith("SIP/"):
                raise _attach(VersionNotSupported(f"Version Not Supported: {version}"), partial)
            raise ParseError(f"Bad SIP version: {version[:20]!r}")
    # Content-Length framing
    cl_lines = headers.get_lines("Content-Length")
    if cl_lines:
        cl = cl_lines[0].strip()
        if not cl.isdigit() or len(cl) > 9 or any(x.strip() != cl for x in cl_lines[1:]):
            raise _attach(ParseError(f"Bad Content-Length: {cl[:20]!r}"), partial)
        n = int(cl)
        if n > len(rest):
            raise _attach(ParseError(f"Content-Length {n} larger than body of {len(rest)} bytes"), partial)
        msg.body = rest[:n]
    else:
        if stream:
            raise _attach(ParseError("Missing Content-Length on a stream transport"), partial)
        msg.body = rest
    return msg


def validate_request(req: Request) -> None:
    """Check what every server must read before it can answer (§8.2, §16.3).

    Raises ParseError (400) / UnsupportedScheme (416); on error the request
    itself is attached as ``partial``.
    """
    try:
        req.vias  # noqa: B018 - parse and cache every Via
        cseq = req.cseq
        if cseq.method != req.method:
            raise ParseError("CSeq method does not match the request method")
        req.call_id  # noqa: B018
        req.from_  # noqa: B018
        req.to  # noqa: B018
        req.max_forwards  # noqa: B018
        if req.method != "ACK" or True:
            req.ruri  # noqa: B018
    except ParseError as err:
        raise _attach(err, req) from None


class StreamParser:
    """Incremental framing for TCP/TLS (RFC 3261 §18.3).

    ``feed`` returns complete messages, ``b"ping"`` markers for RFC 5626
    double-CRLF keep-alives, and raises ParseError when the stream cannot be
    resynchronised (the connection should be answered, if possible, and closed).
    """

    PING = object()

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._buf = bytearray()
        self._limits = limits

    def feed(self, data: bytes) -> list[object]:
        self._buf += data
        out: list[object] = []
        buf = self._buf
        while buf:
            # keep-alives between messages
            if buf[:4] == KEEPALIVE_PING:
                del buf[:4]
                out.append(StreamParser.PING)
                continue
            if buf[:2] == b"\r\n":
                if len(buf) < 4 and KEEPALIVE_PING.startswith(bytes(buf)):
                    break  # maybe a ping still arriving
                del buf[:2]  # a pong or stray CRLF
                continue
            idx = buf.find(b"\r\n\r\n")
            if idx < 0:
                if len(buf) > self._limits.max_message:
                    raise MessageTooLarge("Header block exceeds the message size limit")
                break
            head = bytes(buf[:idx])
            cl = _content_length(head)
            if cl is None:
                msg = parse_message(bytes(buf[: idx + 4]), limits=self._limits, stream=True)
                # parse_message raised for a missing Content-Length; unreachable
                raise ParseError("Missing Content-Length on a stream transport")  # pragma: no cover
            total = idx + 4 + cl
            if total > self._limits.max_message:
                raise MessageTooLarge(f"Message of {total} bytes exceeds {self._limits.max_message}")
            if len(buf) < total:
                break
            frame = bytes(buf[:total])
            del buf[:total]
            out.append(parse_message(frame, limits=self._limits, stream=True))
        return out


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            v = value.strip()
            if not v.isdigit() or len(v) > 9:
                raise ParseError(f"Bad Content-Length: {v[:20]!r}")
            return int(v)
    return None
