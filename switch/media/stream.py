"""One prompt as an RTP stream, paced against a clock it is given (sans-IO).

The transport asks :meth:`PromptStream.due` with the current monotonic time
and sends what it returns, then sleeps until :attr:`PromptStream.deadline`.
Packet *n* is due at ``start + n * ptime`` -- computed from the start, never
by adding 20 ms to the last send time -- so a late wake-up does not push
every later packet back: the drift of a loop that oversleeps does not
accumulate (RFC 3550 §5.1 timestamps stay tied to the sampling clock, and the
send times stay tied to the timestamps). A wake-up more than one packet late
sends every packet that is due at once (receivers' jitter buffers absorb a
burst; a skipped packet would be a gap in the prompt).
"""

from __future__ import annotations

from .rtp import Packetiser

__all__ = ["PromptStream", "PTIME", "SAMPLES_PER_PACKET"]

PTIME = 0.020
"""20 ms per packet, the G.711 default (RFC 3551 §4.5) and what we put in a=ptime."""
SAMPLES_PER_PACKET = 160
"""8000 Hz × 20 ms: G.711 has one byte per sample."""


class PromptStream:
    """The packets of one prompt with their due times."""

    __slots__ = ("_audio", "_packetiser", "_start", "_sent", "_count", "_ptime", "_size")

    def __init__(
        self,
        audio: bytes,
        packetiser: Packetiser,
        start: float,
        *,
        ptime: float = PTIME,
        samples: int = SAMPLES_PER_PACKET,
        fill: int = 0xD5,
    ) -> None:
        rest = len(audio) % samples
        if rest:
            audio += bytes((fill,)) * (samples - rest)  # the last packet is padded with silence, not short
        self._audio = audio
        self._packetiser = packetiser
        self._start = start
        self._sent = 0
        self._count = len(audio) // samples
        self._ptime = ptime
        self._size = samples

    @property
    def count(self) -> int:
        """Packets in the whole prompt."""
        return self._count

    @property
    def sent(self) -> int:
        return self._sent

    @property
    def done(self) -> bool:
        return self._sent >= self._count

    @property
    def deadline(self) -> float:
        """When the next packet is due (the end of the last packet's 20 ms once done)."""
        return self._start + self._sent * self._ptime

    @property
    def ends_at(self) -> float:
        """When the last packet's audio has played out at the receiver."""
        return self._start + self._count * self._ptime

    def due(self, now: float) -> list[bytes]:
        """Every packet whose time has come by ``now`` (usually one)."""
        out: list[bytes] = []
        size = self._size
        while self._sent < self._count and self._start + self._sent * self._ptime <= now + 1e-9:
            offset = self._sent * size
            out.append(self._packetiser.packet(self._audio[offset : offset + size]))
            self._sent += 1
        return out
