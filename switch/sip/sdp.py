"""A small SDP model (RFC 4566) and the offer/answer rules we need (RFC 3264).

The softswitch mostly carries SDP through untouched; this module exists for
the places that must look inside: answering an offer locally, spotting a
hold, switching a call to T.38 fax, and keeping the ``o=`` version honest.

* :func:`parse_sdp` / :meth:`SessionDescription.to_bytes` — the model keeps
  every line it does not interpret, so parse + serialise keeps the content.
* :func:`answer_for` — RFC 3264 §6: one answer stream per offered stream,
  rejected streams get port 0, dynamic payload numbers follow the offer.
* :func:`negotiate_direction`, :func:`is_hold`, :func:`hold`, :func:`resume`.
* :func:`next_version` — §8: the version goes up by one iff the content changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from .errors import ParseError

__all__ = [
    "SdpError",
    "Origin",
    "Connection",
    "Codec",
    "MediaDescription",
    "SessionDescription",
    "parse_sdp",
    "answer_for",
    "negotiate_direction",
    "is_hold",
    "hold",
    "resume",
    "next_version",
    "DIRECTIONS",
    "STATIC_PAYLOAD_TYPES",
]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# RFC 3551 §6 static payload types: number -> (encoding, clock rate, channels)
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, 1), 3: ("GSM", 8000, 1), 4: ("G723", 8000, 1), 5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1), 7: ("LPC", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1),
    10: ("L16", 44100, 2), 11: ("L16", 44100, 1), 12: ("QCELP", 8000, 1), 13: ("CN", 8000, 1),
    14: ("MPA", 90000, None), 15: ("G728", 8000, 1), 16: ("DVI4", 11025, 1), 17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1), 25: ("CelB", 90000, None), 26: ("JPEG", 90000, None), 28: ("nv", 90000, None),
    31: ("H261", 90000, None), 32: ("MPV", 90000, None), 33: ("MP2T", 90000, None), 34: ("H263", 90000, None),
}
# T.38 attributes echoed from offer to answer (ITU-T T.38 Annex D)
_T38_ATTRS = (
    "t38faxversion", "t38maxbitrate", "t38faxfillbitremoval", "t38faxtranscodingmmr",
    "t38faxtranscodingjbig", "t38faxratemanagement", "t38faxmaxbuffer", "t38faxmaxdatagram",
    "t38faxudpec",
)
_MAX_SDP = 65535
_MAX_LINES = 1024


class SdpError(ParseError):
    """A body that is not usable SDP (answered with 400, or 488 by a TU that prefers)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>"""

    username: str
    session_id: str
    version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def __str__(self) -> str:
        return f"{self.username} {self.session_id} {self.version} {self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class Connection:
    """c=<nettype> <addrtype> <connection-address> (TTL/count suffixes kept in ``address``)."""

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    @classmethod
    def for_address(cls, address: str) -> Connection:
        return cls(address, addrtype="IP6" if ":" in address else "IP4")

    @property
    def is_null(self) -> bool:
        """0.0.0.0 (or ::): the RFC 2543 way of putting a call on hold (RFC 3264 §8.4)."""
        host = self.address.split("/", 1)[0]
        return host in ("0.0.0.0", "::", "0:0:0:0:0:0:0:0")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class Codec:
    """An RTP payload format: a=rtpmap (or the static table) plus a=fmtp."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None
    fmtp: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        """Encoding names compare case-insensitively (RFC 4855 §3)."""
        return self.encoding.lower(), self.clock_rate

    @property
    def rtpmap(self) -> str:
        chans = f"/{self.channels}" if self.channels and self.channels != 1 else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{chans}"

    @classmethod
    def parse_spec(cls, spec: str) -> tuple[str, int, int | None]:
        """'PCMA/8000' or 'opus/48000/2' -> (encoding, rate, channels)."""
        parts = spec.split("/")
        try:
            rate = int(parts[1]) if len(parts) > 1 else 8000
            chans = int(parts[2]) if len(parts) > 2 else None
        except ValueError:
            raise ValueError(f"bad codec spec {spec!r}") from None
        return parts[0], rate, chans


def _attr_line(name: str, value: str | None) -> str:
    return f"a={name}" if value is None else f"a={name}:{value}"


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One m= section. ``attributes`` keeps every a= line in order."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    connection: Connection | None = None
    bandwidths: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str | None], ...] = ()
    other: tuple[tuple[str, str], ...] = ()  # i=, k= lines, kept as they came

    # -- reading ----------------------------------------------------------
    def attribute(self, name: str) -> str | None:
        """Value of the first a=name (None if absent or a flag)."""
        low = name.lower()
        for n, v in self.attributes:
            if n.lower() == low:
                return v
        return None

    def has_attribute(self, name: str) -> bool:
        low = name.lower()
        return any(n.lower() == low for n, _ in self.attributes)

    def attributes_named(self, name: str) -> list[str | None]:
        low = name.lower()
        return [v for n, v in self.attributes if n.lower() == low]

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, if any (RFC 3264 §5.1)."""
        for n, _ in self.attributes:
            if n in DIRECTIONS:
                return n
        return None

    @property
    def ptime(self) -> int | None:
        v = self.attribute("ptime")
        return int(v) if v is not None and v.isdigit() and len(v) < 6 else None

    @property
    def is_rtp(self) -> bool:
        return self.proto.upper().startswith("RTP/")

    @property
    def is_t38(self) -> bool:
        return self.media == "image" and self.proto.lower() == "udptl" and "t38" in [f.lower() for f in self.formats]

    @property
    def codecs(self) -> list[Codec]:
        """The RTP formats in offer order, with rtpmap/fmtp resolved."""
        if not self.is_rtp:
            return []
        rtpmaps: dict[str, tuple[str, int, int | None]] = {}
        fmtps: dict[str, str] = {}
        for n, v in self.attributes:
            ln = n.lower()
            if v is None:
                continue
            if ln == "rtpmap":
                num, _, enc = v.partition(" ")
                parts = enc.strip().split("/")
                if len(parts) >= 2 and parts[1].isdigit() and len(parts[1]) < 8:
                    chans = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() and len(parts[2]) < 4 else None
                    rtpmaps[num] = (parts[0], int(parts[1]), chans)
                elif parts[0] and num.isdigit() and len(num) < 4 and int(num) in STATIC_PAYLOAD_TYPES:
                    # no clock rate (RFC 4475 torture bodies say "a=rtpmap:31 LPC"): keep the static one
                    rtpmaps[num] = (parts[0],) + STATIC_PAYLOAD_TYPES[int(num)][1:]
            elif ln == "fmtp":
                num, _, params = v.partition(" ")
                fmtps[num] = params.strip()
        out: list[Codec] = []
        for fmt in self.formats:
            if not fmt.isdigit() or len(fmt) > 3:
                continue
            spec = rtpmaps.get(fmt) or STATIC_PAYLOAD_TYPES.get(int(fmt))
            if spec is None:
                continue
            out.append(Codec(int(fmt), spec[0], spec[1], spec[2], fmtps.get(fmt)))
        return out

    # -- changing -----------------------------------------------------------
    def with_direction(self, direction: str) -> MediaDescription:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        attrs = tuple(a for a in self.attributes if a[0] not in DIRECTIONS) + ((direction, None),)
        return replace(self, attributes=attrs)

    def lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}".rstrip()]
        out += [f"{t}={v}" for t, v in self.other if t == "i"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"b={b}" for b in self.bandwidths]
        out += [f"{t}={v}" for t, v in self.other if t != "i"]
        out += [_attr_line(n, v) for n, v in self.attributes]
        return out


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body. Serialises in RFC 4566 §5 order."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    times: tuple[str, ...] = ("0 0",)
    attributes: tuple[tuple[str, str | None], ...] = ()
    media: tuple[MediaDescription, ...] = ()
    bandwidths: tuple[str, ...] = ()
    other: tuple[tuple[str, str], ...] = ()  # i u e p r z k (and unknown) lines, kept as they came
    version: int = 0

    @property
    def direction(self) -> str:
        """Session-level direction (sendrecv when absent, RFC 3264 §5.1)."""
        for n, _ in self.attributes:
            if n in DIRECTIONS:
                return n
        return "sendrecv"

    def media_direction(self, m: MediaDescription) -> str:
        """Effective direction of one stream: its own attribute, else the session's."""
        return m.direction or self.direction

    def media_connection(self, m: MediaDescription) -> Connection | None:
        return m.connection or self.connection

    def attribute(self, name: str) -> str | None:
        low = name.lower()
        for n, v in self.attributes:
            if n.lower() == low:
                return v
        return None

    def to_bytes(self) -> bytes:
        return self.to_str().encode("utf-8", "surrogateescape")

    def to_str(self) -> str:
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        lines += [f"{t}={v}" for t, v in self.other if t in ("i", "u", "e", "p")]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += [f"b={b}" for b in self.bandwidths]
        lines += [f"t={t}" for t in self.times]
        lines += [f"r={v}" for t, v in self.other if t == "r"]
        lines += [f"{t}={v}" for t, v in self.other if t in ("z", "k")]
        lines += [f"{t}={v}" for t, v in self.other if t not in ("i", "u", "e", "p", "r", "z", "k")]
        lines += [_attr_line(n, v) for n, v in self.attributes]
        for m in self.media:
            lines += m.lines()
        return "\r\n".join(lines) + "\r\n"

    def bumped(self) -> SessionDescription:
        """The same description with the o= version incremented (RFC 3264 §8)."""
        return replace(self, origin=replace(self.origin, version=self.origin.version + 1))

    def with_media(self, media: Iterable[MediaDescription]) -> SessionDescription:
        return replace(self, media=tuple(media))


def _split_attr(value: str) -> tuple[str, str | None]:
    name, colon, rest = value.partition(":")
    return name, rest if colon else None


def parse_sdp(body: bytes | str) -> SessionDescription:
    """Parse an SDP body; raises :class:`SdpError` (400) when it is not SDP."""
    if isinstance(body, bytes):
        if len(body) > _MAX_SDP:
            raise SdpError("SDP body too large")
        text = body.decode("utf-8", "surrogateescape")
    else:
        text = body
    raw_lines = text.replace("\r\n", "\n").split("\n")
    while raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    if len(raw_lines) > _MAX_LINES:
        raise SdpError("SDP has too many lines")
    if not raw_lines or not raw_lines[0].startswith("v="):
        raise SdpError("SDP must start with v=")
    if raw_lines[0] != "v=0":
        raise SdpError(f"Unsupported SDP version: {raw_lines[0][:20]!r}")
    origin: Origin | None = None
    session_name: str | None = None
    connection: Connection | None = None
    times: list[str] = []
    attrs: list[tuple[str, str | None]] = []
    bws: list[str] = []
    other: list[tuple[str, str]] = []
    media: list[MediaDescription] = []
    cur: _MediaBuilder | None = None
    for line in raw_lines[1:]:
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError(f"Bad SDP line: {line[:40]!r}")
        t, v = line[0], line[2:]
        if t == "m":
            if cur is not None:
                media.append(cur.build())
            cur = _MediaBuilder(v)
            continue
        if cur is not None:
            if t == "c":
                cur.conn = _connection(v)
            elif t == "b":
                cur.bws.append(v)
            elif t == "a":
                cur.attrs.append(_split_attr(v))
            else:
                cur.other.append((t, v))
            continue
        if t == "o":
            origin = _origin(v)
        elif t == "s":
            session_name = v
        elif t == "c":
            connection = _connection(v)
        elif t == "t":
            times.append(v)
        elif t == "b":
            bws.append(v)
        elif t == "a":
            attrs.append(_split_attr(v))
        elif t == "r":
            other.append(("r", v))
        else:
            other.append((t, v))
    if cur is not None:
        media.append(cur.build())
    if origin is None:
        raise SdpError("SDP without o= line")
    if session_name is None:
        session_name = "-"  # s= is mandatory, but a missing one is harmless to us
    return SessionDescription(
        origin=origin,
        session_name=session_name,
        connection=connection,
        times=tuple(times) or ("0 0",),
        attributes=tuple(attrs),
        media=tuple(media),
        bandwidths=tuple(bws),
        other=tuple(other),
    )


def _origin(v: str) -> Origin:
    parts = v.split()
    if len(parts) != 6 or not parts[2].isdigit() or len(parts[2]) > 20:
        raise SdpError(f"Bad o= line: {v[:60]!r}")
    return Origin(parts[0], parts[1], int(parts[2]), parts[5], parts[3], parts[4])


def _connection(v: str) -> Connection:
    parts = v.split()
    if len(parts) != 3:
        raise SdpError(f"Bad c= line: {v[:60]!r}")
    return Connection(parts[2], parts[0], parts[1])


class _MediaBuilder:
    """The lines of one m= section while it is being read."""

    __slots__ = ("media", "port", "count", "proto", "fmts", "conn", "bws", "attrs", "other")

    def __init__(self, v: str) -> None:
        parts = v.split()
        if len(parts) < 3:
            raise SdpError(f"Bad m= line: {v[:60]!r}")
        port_s, slash, count_s = parts[1].partition("/")
        if not port_s.isdigit() or len(port_s) > 5 or int(port_s) > 65535:
            raise SdpError(f"Bad m= port: {v[:60]!r}")
        if slash and (not count_s.isdigit() or len(count_s) > 5):
            raise SdpError(f"Bad m= port count: {v[:60]!r}")
        self.media = parts[0]
        self.port = int(port_s)
        self.count = int(count_s) if slash else None
        self.proto = parts[2]
        self.fmts = tuple(parts[3:])
        self.conn: Connection | None = None
        self.bws: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.other: list[tuple[str, str]] = []

    def build(self) -> MediaDescription:
        return MediaDescription(
            media=self.media,
            port=self.port,
            proto=self.proto,
            formats=self.fmts,
            port_count=self.count,
            connection=self.conn,
            bandwidths=tuple(self.bws),
            attributes=tuple(self.attrs),
            other=tuple(self.other),
        )


# -- offer / answer -----------------------------------------------------------


def negotiate_direction(offered: str, local: str = "sendrecv") -> str:
    """RFC 3264 §6.1: the answer's direction for an offered one.

    ``local`` is what this side is willing to do (sendrecv unless it holds).
    """
    if offered not in DIRECTIONS or local not in DIRECTIONS:
        raise ValueError("unknown direction")
    we_send = local in ("sendrecv", "sendonly") and offered in ("sendrecv", "recvonly")
    we_recv = local in ("sendrecv", "recvonly") and offered in ("sendrecv", "sendonly")
    if we_send and we_recv:
        return "sendrecv"
    if we_send:
        return "sendonly"
    if we_recv:
        return "recvonly"
    return "inactive"


def is_hold(sdp: SessionDescription) -> bool:
    """Does this offer put the other side on hold (RFC 3264 §8.4, RFC 2543 c=0.0.0.0)?

    True when every active (port != 0) stream is sendonly or inactive, or has a
    null connection address. An SDP without active streams is not a hold.
    """
    active = [m for m in sdp.media if m.port != 0]
    if not active:
        return False
    for m in active:
        conn = sdp.media_connection(m)
        if conn is not None and conn.is_null:
            continue
        if sdp.media_direction(m) in ("sendonly", "inactive"):
            continue
        return False
    return True


def hold(sdp: SessionDescription, *, inactive: bool = False) -> SessionDescription:
    """Our next offer, putting the peer on hold: every active stream sendonly (or inactive)."""
    direction = "inactive" if inactive else "sendonly"
    media = [m.with_direction(direction) if m.port != 0 else m for m in sdp.media]
    attrs = tuple(a for a in sdp.attributes if a[0] not in DIRECTIONS)
    return replace(sdp, media=tuple(media), attributes=attrs).bumped()


def resume(sdp: SessionDescription) -> SessionDescription:
    """Our next offer, taking the call off hold: every active stream sendrecv."""
    media = [m.with_direction("sendrecv") if m.port != 0 else m for m in sdp.media]
    attrs = tuple(a for a in sdp.attributes if a[0] not in DIRECTIONS)
    return replace(sdp, media=tuple(media), attributes=attrs).bumped()


def next_version(previous: SessionDescription | None, new: SessionDescription) -> SessionDescription:
    """RFC 3264 §8: same version if nothing changed, previous + 1 otherwise.

    ``new`` is what we want to send; ``previous`` what we sent last in this
    session (None for the first offer/answer, which keeps ``new``'s version).
    The session id and username follow ``previous`` too (§8: o= stays but for the version).
    """
    if previous is None:
        return new
    prev_o = previous.origin
    candidate = replace(new, origin=replace(new.origin, username=prev_o.username, session_id=prev_o.session_id,
                                            version=prev_o.version))
    if candidate.to_str() == previous.to_str():
        return previous
    return replace(candidate, origin=replace(candidate.origin, version=prev_o.version + 1))


def answer_for(
    offer: SessionDescription,
    supported_codecs: Sequence[str],
    local_ip: str,
    local_port: int | Sequence[int],
    *,
    session_id: str = "0",
    session_version: int = 0,
    username: str = "-",
    direction: str = "sendrecv",
    ptime: int | None = None,
    session_name: str = "-",
) -> SessionDescription:
    """Build the answer to ``offer`` (RFC 3264 §6).

    ``supported_codecs`` lists what we accept, in our order of preference, as
    ``"encoding/rate[/channels]"`` (``"PCMA/8000"``, ``"telephone-event/8000"``)
    plus ``"t38"`` to accept T.38 image streams. Each offered stream is answered
    in order: accepted with the common formats (the offer's payload numbers, our
    order) or rejected with port 0. ``local_port`` is an int (first accepted
    stream; later accepted streams get +2, +4, ...) or one port per m-line (0
    rejects it). ``direction`` is what we are willing to do; the answer's
    direction follows :func:`negotiate_direction`.
    """
    wants: list[tuple[str, int]] = []
    accept_t38 = False
    for spec in supported_codecs:
        if spec.lower() == "t38":
            accept_t38 = True
            continue
        enc, rate, _ = Codec.parse_spec(spec)
        wants.append((enc.lower(), rate))
    ports = None if isinstance(local_port, int) else list(local_port)
    next_port = local_port if isinstance(local_port, int) else 0
    answered: list[MediaDescription] = []
    for i, m in enumerate(offer.media):
        port = ports[i] if ports is not None and i < len(ports) else next_port
        offered_dir = offer.media_direction(m)
        media = _answer_stream(m, wants, accept_t38, port, negotiate_direction(offered_dir, direction), ptime)
        if media.port != 0 and ports is None:
            next_port += 2
        answered.append(media)
    return SessionDescription(
        origin=Origin(username, session_id, session_version, local_ip, addrtype="IP6" if ":" in local_ip else "IP4"),
        session_name=session_name,
        connection=Connection.for_address(local_ip),
        times=("0 0",),
        media=tuple(answered),
    )


def _rejected(m: MediaDescription) -> MediaDescription:
    # §6: port zero, and at least one format from the offer
    return MediaDescription(m.media, 0, m.proto, m.formats[:1] or ("0",))


def _answer_stream(
    m: MediaDescription,
    wants: list[tuple[str, int]],
    accept_t38: bool,
    port: int,
    direction: str,
    ptime: int | None,
) -> MediaDescription:
    if m.port == 0 or port == 0:
        return _rejected(m)
    if m.is_t38:
        if not accept_t38:
            return _rejected(m)
        t38 = tuple((n, v) for n, v in m.attributes if n.lower() in _T38_ATTRS)
        return MediaDescription("image", port, m.proto, ("t38",), attributes=t38)
    if not m.is_rtp or m.media != "audio":
        return _rejected(m)
    offered = m.codecs
    chosen: list[Codec] = []
    for want in wants:
        for c in offered:
            if c.key == want and c not in chosen:
                chosen.append(c)
                break
    if not any(c.key[0] not in ("telephone-event", "cn") for c in chosen):
        return _rejected(m)  # events or comfort noise alone are no audio stream
    attrs: list[tuple[str, str | None]] = []
    for c in chosen:
        attrs.append(("rtpmap", c.rtpmap))
        if c.fmtp is not None:
            attrs.append(("fmtp", f"{c.payload_type} {c.fmtp}"))
    use_ptime = ptime if ptime is not None else m.ptime
    if use_ptime is not None:
        attrs.append(("ptime", str(use_ptime)))
    attrs.append((direction, None))
    return MediaDescription(
        "audio", port, m.proto, tuple(str(c.payload_type) for c in chosen), attributes=tuple(attrs)
    )
