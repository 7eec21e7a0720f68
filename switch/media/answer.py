"""The SDP answer for an announcement (RFC 3264 §6), from the caller's offer.

We only send, so the answer is ``a=sendonly`` with one audio stream in the
first G.711 law the *offer* lists (PCMA or PCMU; the offerer's order states its
preference, RFC 3264 §5.1), ``a=ptime:20``, and every other stream rejected
with port 0. An offer without either law -- or whose direction does not let
it receive (sendonly/inactive) -- has no answer: the caller gets the plain
final response.
"""

from __future__ import annotations

from dataclasses import dataclass

from switch.sip.sdp import SdpError, SessionDescription, answer_for, parse_sdp

__all__ = ["Negotiated", "Offer", "negotiate", "parse_offer", "answer", "LAWS"]

LAWS = ("pcma", "pcmu")


@dataclass(frozen=True, slots=True)
class Negotiated:
    encoding: str
    """"PCMA" or "PCMU"."""
    payload_type: int
    remote: tuple[str, int]
    """The offer's c= address and m= port: where RTP goes until latching."""
    body: bytes
    """The SDP answer."""


def negotiate(offer_body: bytes, local_ip: str, local_port: int, *, session_id: str = "0") -> Negotiated | None:
    """The answer to ``offer_body``, or None when no prompt can be played to it."""
    offer = parse_offer(offer_body)
    return None if offer is None else answer(offer, local_ip, local_port, session_id=session_id)


@dataclass(frozen=True, slots=True)
class Offer:
    """An offer we can answer: the parsed SDP and the stream and law we picked."""

    sdp: SessionDescription
    index: int
    encoding: str
    payload_type: int
    remote: tuple[str, int]


def parse_offer(offer_body: bytes) -> Offer | None:
    """The offer's first audio stream that can receive PCMA or PCMU; None if there is none."""
    if not offer_body:
        return None
    try:
        sdp = parse_sdp(offer_body)
    except SdpError:
        return None
    chosen = _first_law(sdp)
    if chosen is None:
        return None
    index, encoding, payload_type, host, port = chosen
    return Offer(sdp, index, encoding, payload_type, (host, port))


def answer(offer: Offer, local_ip: str, local_port: int, *, session_id: str = "0") -> Negotiated:
    """Our sendonly answer on ``local_ip:local_port``; the other streams get port 0."""
    ports = [local_port if i == offer.index else 0 for i in range(len(offer.sdp.media))]
    sdp = answer_for(
        offer.sdp,
        [f"{offer.encoding}/8000"],
        local_ip,
        ports,
        session_id=session_id,
        username="softswitch",
        direction="sendonly",
        ptime=20,
    )
    return Negotiated(offer.encoding, offer.payload_type, offer.remote, sdp.to_bytes())


def _first_law(offer: SessionDescription) -> tuple[int, str, int, str, int] | None:
    for index, m in enumerate(offer.media):
        if m.media != "audio" or m.port == 0 or not m.is_rtp:
            continue
        if offer.media_direction(m) not in ("sendrecv", "recvonly"):
            continue
        conn = offer.media_connection(m)
        if conn is None or conn.is_null:
            continue  # on hold (RFC 3264 §8.4): nobody listens
        for codec in m.codecs:  # in the offer's order
            name = codec.encoding.lower()
            if name in LAWS and codec.clock_rate == 8000:
                host = conn.address.split("/", 1)[0]
                return index, codec.encoding.upper(), codec.payload_type, host, m.port
    return None
