"""Overload answers built from raw bytes, before any parsing (RFC 3261 §21.5.4, RFC 6357 §4).

When the queue in front of the switch is already too long, parsing a request
only to refuse it costs what serving it would. These helpers look at a
datagram's start line and the few header lines a response must copy (Via,
From, To, Call-ID, CSeq, compact forms too) and build the ``503`` with its
``Retry-After`` directly, in a few microseconds; what cannot be read that
cheaply is left to the normal path.
"""

from __future__ import annotations

import hashlib

#: requests that finish work already accepted (calls ending, dialogs, our own
#: transactions' answers): shedding them would only make the overload last longer;
#: and OPTIONS, the keep-alive ping: cheap to answer, and a 503 to it makes an
#: adapter fail over or show the line as down
NEVER_SHED = frozenset({b"ACK", b"BYE", b"CANCEL", b"PRACK", b"UPDATE", b"INFO", b"NOTIFY", b"OPTIONS"})

_COPY = {b"via": b"Via", b"v": b"Via", b"from": b"From", b"f": b"From", b"to": b"To", b"t": b"To",
         b"call-id": b"Call-ID", b"i": b"Call-ID", b"cseq": b"CSeq"}


def request_line(data: bytes) -> tuple[bytes, bytes] | None:
    """(method, Request-URI) of a request datagram; None for a response or garbage."""
    end = data.find(b"\r\n", 0, 2048)
    if end < 0:
        return None
    parts = data[:end].split(b" ")
    if len(parts) != 3 or parts[0] == b"SIP/2.0" or not parts[2].startswith(b"SIP/"):
        return None
    return parts[0], parts[1]


def has_credentials(data: bytes) -> bool:
    """The request carries Authorization or Proxy-Authorization (a second round trip)."""
    head_end = data.find(b"\r\n\r\n")
    head = data if head_end < 0 else data[:head_end]
    return b"uthorization:" in head or b"UTHORIZATION:" in head


def overload_response(data: bytes, retry_after: int) -> bytes | None:
    """``503 Service Unavailable`` + ``Retry-After`` for the request in ``data``; None if it cannot be built."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = data[:head_end].split(b"\r\n")
    out = [b"SIP/2.0 503 Service Unavailable"]
    seen: set[bytes] = set()
    call_id = b""
    for line in lines[1:]:
        if not line or line[0] in b" \t":  # folded continuation: give up, the parser will do it
            if line:
                return None
            continue
        colon = line.find(b":")
        if colon <= 0:
            return None
        name = _COPY.get(line[:colon].strip().lower())
        if name is None:
            continue
        value = line[colon + 1 :].strip()
        if name == b"To" and b";tag=" not in value.lower():
            value += b";tag=" + hashlib.blake2s(data[:head_end], digest_size=6).hexdigest().encode()
        if name == b"Call-ID":
            call_id = value
        seen.add(name)
        out.append(name + b": " + value)
    if len(seen) != 5 or not call_id:
        return None
    out.append(b"Retry-After: " + str(int(retry_after)).encode())
    out.append(b"Content-Length: 0")
    return b"\r\n".join(out) + b"\r\n\r\n"


class RetrySchedule:
    """``Retry-After`` values that bring the refused back no faster than the switch can serve them.

    A client returns at the instant it was refused plus the whole seconds of its
    ``Retry-After``: the sub-second phase of a refusal is kept. Refusals come in
    bursts (a stall of the loop, then a queue read at once), so a burst refused
    with nearby values comes back as a burst, waits past the budget and is refused
    again. So the future is cut into ``slot``-long buckets, each holding what the
    serving rate gets through in it, and each refusal takes the nearest whole-second
    offset (``floor``..``ceiling``) whose bucket, at its own phase, still has room.

    The serving rate is the busiest second of the last ``window`` seconds
    (datagrams served, ``cost`` per returning request: the challenge and the
    answer), and at least ``min_rate`` (``--overload-capacity``). Measured with
    ``bench_register.py --storm 100000`` (SIPp): a fixed 2-20 s window sent each
    line back about three times; a booking at the last second's rate (floor
    200/s) booked a storm's first burst 80 s out, the switch then idle; a booking
    by whole seconds only sent bursts back as bursts (registrations per second
    swinging between 100 and 2,300 while 2,300 a second were refused again).
    Times are the caller's clock (seconds); nothing here reads one.
    """

    def __init__(self, floor: int = 2, ceiling: int = 120, cost: float = 2.0,
                 min_rate: float = 2000.0, window: int = 60, slot: float = 0.1) -> None:
        self.floor = floor
        self.ceiling = ceiling
        self.cost = cost
        self.min_rate = min_rate
        self.window = window
        self.slot = slot
        self._per_second = int(round(1.0 / slot))
        self._seconds: list[int] = []
        """datagrams served in each of the last ``window`` whole seconds, oldest first"""
        self._peak = 0
        self._served = 0
        self._second = -1
        self._booked: dict[int, int] = {}
        """bucket number (time / slot) -> returns booked in it"""
        self._hint = (-1, 0)
        """(bucket of the last refusal, the offset it got): refusals of one bucket search on from there"""
        self.unbooked = 0
        """refusals that found no room within ``ceiling`` (they got ``ceiling``)"""

    @property
    def rate(self) -> float:
        """Datagrams per second the booking assumes."""
        return max(self.min_rate, float(self._peak))

    def served(self, now: float) -> None:
        """A datagram went on to the normal path (it was not refused)."""
        second = int(now)
        if second != self._second:
            self._roll(second)
        self._served += 1

    def _roll(self, second: int) -> None:
        if self._second >= 0:
            gap = min(second - self._second - 1, self.window)
            self._seconds.append(self._served)
            self._seconds.extend([0] * max(gap, 0))
            del self._seconds[: max(0, len(self._seconds) - self.window)]
            self._peak = max(self._seconds) if self._seconds else 0
        self._served = 0
        self._second = second
        past = int(second / self.slot)
        for bucket in [b for b in self._booked if b < past]:
            del self._booked[bucket]

    def retry_after(self, now: float) -> int:
        """Whole seconds for the ``Retry-After`` of a request refused at ``now``."""
        second = int(now)
        if second != self._second:
            self._roll(second)
        room = max(1, int(self.rate / self.cost * self.slot))
        here = int(now / self.slot)
        hint_bucket, hint_offset = self._hint
        offset = hint_offset if hint_bucket == here else self.floor
        booked = self._booked
        step = self._per_second
        while offset < self.ceiling:
            bucket = here + offset * step
            n = booked.get(bucket, 0)
            if n < room:
                booked[bucket] = n + 1
                self._hint = (here, offset)
                return offset
            offset += 1
        self._hint = (here, self.ceiling)
        self.unbooked += 1
        return self.ceiling
