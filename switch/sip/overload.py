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

    A fixed window (2-20 s) sends every refused request back within 20 s, whatever
    the backlog: in a storm of 100,000 lines re-registering within 10 s each line
    was refused about three times over, and those refusals, with the kernel drops
    and retransmissions they caused, were most of the switch's work (47,935 of
    100,000 registered within a minute). Here each refusal books the next free
    return slot at the serving rate (``cost`` datagrams per returning request: the
    challenge and the answer), no sooner than ``floor`` and no later than
    ``ceiling`` seconds ahead.

    The serving rate is the busiest second of the last ``window`` seconds, and at
    least ``min_rate`` datagrams/s (``--overload-capacity``). An earlier version
    took the last second alone with a floor of 200/s: the second before a storm
    is idle, so the storm's first burst of refusals was booked 80 s and more
    ahead and the switch then sat idle (22,725 registered within a minute).
    Times are the caller's clock (seconds); nothing here reads one.
    """

    def __init__(self, floor: float = 2.0, ceiling: float = 120.0, cost: float = 2.0,
                 min_rate: float = 2000.0, window: int = 60) -> None:
        self.floor = floor
        self.ceiling = ceiling
        self.cost = cost
        self.min_rate = min_rate
        self.window = window
        self._seconds: list[int] = []
        """datagrams served in each of the last ``window`` whole seconds, oldest first"""
        self._peak = 0
        self._next = 0.0
        self._served = 0
        self._second = -1

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

    def retry_after(self, now: float) -> int:
        """Whole seconds for the ``Retry-After`` of a request refused at ``now``."""
        second = int(now)
        if second != self._second:
            self._roll(second)
        start = now + self.floor
        if self._next < start:
            self._next = start
        self._next += self.cost / self.rate
        return int(min(self.ceiling, self._next - now))
