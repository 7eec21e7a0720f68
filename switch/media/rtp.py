"""RTP packets (RFC 3550 §5.1): the 12-byte fixed header, built and read with ``struct``.

The announcement player only sends: no CSRC list, no extension, no padding.
``parse`` exists for the latching check (is this datagram RTP at all?) and
for tests that read what the switch sent.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["RtpPacket", "Packetiser", "parse", "looks_like_rtp", "HEADER_SIZE"]

HEADER_SIZE = 12
_HEADER = struct.Struct("!BBHII")
_VERSION = 2 << 6


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


class Packetiser:
    """One RTP stream's header state: one SSRC, sequence +1 and timestamp +samples per packet.

    RFC 3550 §5.1: the first sequence number and timestamp are random (the
    caller passes them in, so tests are deterministic); the marker bit is set
    on the first packet of a talkspurt (RFC 3551 §4.1), which for a prompt is
    the first packet of the stream.
    """

    __slots__ = ("payload_type", "ssrc", "sequence", "timestamp", "_first")

    def __init__(self, payload_type: int, ssrc: int, sequence: int, timestamp: int) -> None:
        if not 0 <= payload_type < 128:
            raise ValueError("payload type is 7 bits")
        self.payload_type = payload_type
        self.ssrc = ssrc & 0xFFFFFFFF
        self.sequence = sequence & 0xFFFF
        self.timestamp = timestamp & 0xFFFFFFFF
        self._first = True

    def packet(self, payload: bytes, samples: int | None = None) -> bytes:
        """The next packet carrying ``payload`` (``samples`` defaults to its length: G.711)."""
        pt = self.payload_type | 0x80 if self._first else self.payload_type
        self._first = False
        data = _HEADER.pack(_VERSION, pt, self.sequence, self.timestamp, self.ssrc) + payload
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + (len(payload) if samples is None else samples)) & 0xFFFFFFFF
        return data


def looks_like_rtp(data: bytes) -> bool:
    """Version 2 and long enough; RTCP (payload types 200-204 with the marker bit) is not RTP."""
    return len(data) >= HEADER_SIZE and data[0] >> 6 == 2 and not 72 <= (data[1] & 0x7F) <= 76


def parse(data: bytes) -> RtpPacket:
    """Read one RTP packet (CSRCs and a header extension are skipped)."""
    if len(data) < HEADER_SIZE:
        raise ValueError("shorter than an RTP header")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        raise ValueError("not RTP version 2")
    offset = HEADER_SIZE + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if len(data) < offset + 4:
            raise ValueError("truncated header extension")
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    end = len(data)
    if b0 & 0x20:
        end -= data[-1]
    if offset > end:
        raise ValueError("truncated RTP packet")
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), data[offset:end])
