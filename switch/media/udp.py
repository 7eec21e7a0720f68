"""The announcement player's I/O: one UDP socket per playing prompt on the asyncio loop.

This is the only module of ``switch.media`` that touches sockets, the loop or
the clock; the packets and their timing come from :class:`~.stream.PromptStream`.
Each playback binds an even port from the :class:`~.ports.PortPool`, sends
with ``sock.sendto`` from a loop timer set to the next packet's due time (no
task, no asyncio transport: one ``call_at`` per packet), and gives the port
back when the prompt ends, when it is stopped (CANCEL, the caller hung up,
shutdown) or when it could not start.

Timers: every stream starts on a whole millisecond, so its packets fall due on
whole milliseconds too, and all streams due in the same millisecond share one
loop timer (a slot). However many prompts play, the loop runs at most one
timer callback per millisecond for them -- the per-packet cost is the
``sendto`` and the header, not the scheduling. ``PlayerStats.late`` counts how
late each packet left (0-100 ms buckets): the send jitter as the switch sees it.

Symmetric RTP (latching, as rtpengine, Kamailio's ``rtp_symmetric`` and
Asterisk's ``nat=force_rport,comedia`` do): packets go to the SDP address
until the first RTP packet from the caller arrives, then to that packet's
source address -- the adapter's NAT mapping. Only a packet from the IP the
INVITE came from may move the stream, so nobody else can hijack it. After
latching the socket is no longer read (the caller's own RTP is not needed).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from .answer import answer, parse_offer
from .ports import PortPool
from .rtp import Packetiser, looks_like_rtp
from .stream import PromptStream

__all__ = ["AnnouncementPlayer", "Playback", "PlayerStats"]

log = logging.getLogger(__name__)
_BIND_TRIES = 4
_SLACK = 0.0005
"""Packets due within half a millisecond go now: uvloop's clock and timers count whole milliseconds."""


@dataclass(slots=True)
class PlayerStats:
    started: int = 0
    finished: int = 0
    stopped: int = 0
    no_port: int = 0
    """Refused because the pool was at its limit (the caller got the plain final response)."""
    no_codec: int = 0
    latched: int = 0
    packets: int = 0
    send_errors: int = 0
    late: list[int] = field(default_factory=lambda: [0] * 101)
    """Packets by how many whole milliseconds after their due time they were sent (the last bucket: 100+)."""

    def snapshot(self) -> dict[str, object]:
        return {
            "started": self.started, "finished": self.finished, "stopped": self.stopped, "no_port": self.no_port,
            "no_codec": self.no_codec, "latched": self.latched, "packets": self.packets,
            "send_errors": self.send_errors, "late_ms": {str(i): n for i, n in enumerate(self.late) if n},
        }


class Playback:
    """One prompt being played to one caller."""

    __slots__ = (
        "player", "sock", "port", "stream", "remote", "signalling_host", "answer", "encoding",
        "latched", "_on_end", "_handle", "_reading", "_closed", "send_times",
    )

    def __init__(
        self,
        player: AnnouncementPlayer,
        sock: socket.socket,
        port: int,
        stream: PromptStream,
        remote: tuple[str, int],
        signalling_host: str,
        answer: bytes,
        encoding: str,
        on_end: Callable[[], None],
    ) -> None:
        self.player = player
        self.sock = sock
        self.port = port
        self.stream = stream
        self.remote = remote
        self.signalling_host = signalling_host
        self.answer = answer
        """The SDP answer to put in the 183."""
        self.encoding = encoding
        self.latched = False
        self._on_end = on_end
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._reading = False
        self._closed = False
        self.send_times: list[float] | None = None
        """Set to a list to record each packet's send time (the benchmark does)."""

    @property
    def active(self) -> bool:
        return not self._closed

    def _begin(self) -> None:
        loop = self.player.loop
        loop.add_reader(self.sock.fileno(), self._readable)
        self._reading = True
        self.player._schedule(self, self.stream.deadline)

    def _tick(self, now: float) -> None:
        if self._closed:
            return
        stream = self.stream
        due = stream.deadline
        packets = stream.due(now + _SLACK)
        if packets:
            sock, remote, stats = self.sock, self.remote, self.player.stats
            late = stats.late
            for k, packet in enumerate(packets):
                try:
                    sock.sendto(packet, remote)
                except OSError:  # a full buffer or an unreachable SDP address: that packet is lost
                    stats.send_errors += 1
                late[min(100, max(0, int((now - due) * 1000.0) - 20 * k))] += 1
            stats.packets += len(packets)
            if self.send_times is not None:
                self.send_times.extend([now] * len(packets))
        if stream.done:
            self._handle = self.player.loop.call_at(stream.ends_at, self._finished)
        else:
            self.player._schedule(self, stream.deadline)

    def _readable(self) -> None:
        try:
            while True:
                data, addr = self.sock.recvfrom(2048)
                if self.latched:
                    continue
                if addr[0] == self.signalling_host and looks_like_rtp(data):
                    if (addr[0], addr[1]) != self.remote:
                        log.debug("RTP latched from %s:%d to %s:%d", self.remote[0], self.remote[1], addr[0], addr[1])
                    self.remote = (addr[0], addr[1])
                    self.latched = True
                    self.player.stats.latched += 1
                    self._stop_reading()
                    return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # e.g. ICMP port unreachable reported on the socket: keep playing
            return

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.player.loop.remove_reader(self.sock.fileno())

    def _finished(self) -> None:
        self._handle = None
        if self._closed:
            return
        self._close()
        self.player.stats.finished += 1
        self._on_end()

    def stop(self) -> None:
        """Stop now and free the port; ``on_end`` is not called (the caller is gone)."""
        if not self._closed:
            self._close()
            self.player.stats.stopped += 1

    def finish_now(self) -> None:
        """Stop now but let the owner send its final response (shutdown)."""
        if not self._closed:
            self._close()
            self.player.stats.stopped += 1
            self._on_end()

    def _close(self) -> None:
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._stop_reading()
        self.sock.close()
        self.player._released(self)


class AnnouncementPlayer:
    """Starts playbacks on ports from ``pool``; ``close()`` ends them all."""

    def __init__(
        self,
        pool: PortPool,
        bind_host: str,
        advertise_host: str | Callable[[], str] | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.pool = pool
        self.bind_host = bind_host
        #: the address the SDP answers name; a function when it is known only once the SIP
        #: sockets are open (a wildcard bind: our Via address)
        self._advertise: str | Callable[[], str] = advertise_host or bind_host
        self.family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        self.loop = loop or asyncio.get_running_loop()
        self.stats = PlayerStats()
        self.playing: set[Playback] = set()
        #: due millisecond -> the playbacks to tick then (one loop timer per slot)
        self._slots: dict[int, list[Playback]] = {}

    def _schedule(self, playback: Playback, when: float) -> None:
        slot = round(when * 1000.0)
        members = self._slots.get(slot)
        if members is None:
            self._slots[slot] = [playback]
            self.loop.call_at(slot / 1000.0, self._fire, slot)
        else:
            members.append(playback)

    def _fire(self, slot: int) -> None:
        members = self._slots.pop(slot, ())
        now = self.loop.time()
        for playback in members:
            try:
                playback._tick(now)
            except Exception:  # noqa: BLE001 - one broken stream must not stop the others
                log.exception("announcement stream failed")
                playback.finish_now()

    @property
    def advertise_host(self) -> str:
        a = self._advertise
        return a if isinstance(a, str) else a()

    @property
    def active(self) -> int:
        return len(self.playing)

    def start(
        self,
        offer: bytes,
        signalling_host: str,
        audio: Callable[[str], bytes],
        on_end: Callable[[], None],
    ) -> Playback | None:
        """Play ``audio(encoding)`` to the offerer of ``offer``; None when it cannot be done.

        None means: the offer has neither PCMA nor PCMU (or a different address
        family), or no port is free -- the caller then gets the plain final
        response. Otherwise the first packet goes out on the next loop
        iteration, after the caller has sent the 183 carrying ``answer``.
        """
        parsed = parse_offer(offer)
        if parsed is None or _family(parsed.remote[0]) != self.family:
            self.stats.no_codec += 1
            return None
        bound = self._bind()
        if bound is None:
            self.stats.no_port += 1
            return None
        sock, port = bound
        negotiated = answer(parsed, self.advertise_host, port, session_id=str(random.getrandbits(31)))
        try:
            data = audio(negotiated.encoding)
        except Exception:
            sock.close()
            self.pool.release(port)
            raise
        fill = 0xD5 if negotiated.encoding == "PCMA" else 0xFF
        packetiser = Packetiser(
            negotiated.payload_type, random.getrandbits(32), random.getrandbits(16), random.getrandbits(32)
        )
        start = math.ceil(self.loop.time() * 1000.0) / 1000.0  # a whole millisecond: see the module docstring
        stream = PromptStream(data, packetiser, start, fill=fill)
        playback = Playback(
            self, sock, port, stream, negotiated.remote, signalling_host, negotiated.body, negotiated.encoding, on_end
        )
        self.playing.add(playback)
        self.stats.started += 1
        playback._begin()
        return playback

    def _bind(self) -> tuple[socket.socket, int] | None:
        for _ in range(_BIND_TRIES):
            port = self.pool.acquire()
            if port is None:
                return None
            sock = socket.socket(self.family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.bind((self.bind_host, port))
            except OSError as exc:
                sock.close()
                self.pool.discard(port)
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    log.warning("cannot bind RTP port %s:%d: %s", self.bind_host, port, exc)
                    return None
                continue
            return sock, port
        return None

    def _released(self, playback: Playback) -> None:
        self.playing.discard(playback)
        self.pool.release(playback.port)

    def close(self) -> None:
        """End every playback now; each owner still sends its final response."""
        for playback in list(self.playing):
            playback.finish_now()


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
