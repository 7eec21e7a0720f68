"""The asyncio player over real UDP sockets on loopback: packets, latching, the port coming back."""

from __future__ import annotations

import asyncio
import socket

from switch.media.ports import PortPool
from switch.media.rtp import Packetiser, parse
from switch.media.udp import AnnouncementPlayer
from switch.sip.sdp import parse_sdp


def _offer(host: str, port: int, formats: str = "0 8") -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {formats}\r\n").encode()


def _udp(host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setblocking(False)
    return s


async def _recv(sock: socket.socket, timeout: float = 2.0) -> bytes:
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recv(sock, 2048), timeout)


def _free_range() -> tuple[int, int]:
    s = _udp()
    port = s.getsockname()[1]
    s.close()
    base = port - port % 2
    return base, base + 9


async def test_plays_the_audio_to_the_sdp_address_then_frees_the_port() -> None:
    rx = _udp()
    low, high = _free_range()
    player = AnnouncementPlayer(PortPool(low, high), "127.0.0.1")
    ended = asyncio.Event()
    audio = bytes(range(256)) * 5  # 1280 bytes: 8 packets
    pb = player.start(_offer("127.0.0.1", rx.getsockname()[1]), "127.0.0.1", lambda enc: audio, ended.set)
    assert pb is not None and pb.encoding == "PCMU"
    (m,) = parse_sdp(pb.answer).media
    assert m.port == pb.port and low <= pb.port <= high and pb.port % 2 == 0
    packets = [parse(await _recv(rx)) for _ in range(8)]
    assert b"".join(p.payload for p in packets) == audio
    assert [p.payload_type for p in packets] == [0] * 8 and packets[0].marker
    await asyncio.wait_for(ended.wait(), 2)
    assert player.pool.in_use == 0 and player.active == 0
    rx.close()


async def test_latches_to_the_first_rtp_source_from_the_signalling_ip() -> None:
    private = _udp()  # what the adapter wrote in its SDP: nobody reads there in a NAT
    nat = _udp()  # the adapter's real, translated address
    stranger = _udp("127.0.0.2")
    low, high = _free_range()
    player = AnnouncementPlayer(PortPool(low, high), "127.0.0.1")
    pb = player.start(_offer("127.0.0.1", private.getsockname()[1], "8"), "127.0.0.1", lambda enc: b"\xd5" * 160 * 100, lambda: None)
    assert pb is not None and pb.encoding == "PCMA"
    first = parse(await _recv(private))
    assert first.marker
    hello = Packetiser(8, 99, 1, 1).packet(b"\xd5" * 160)
    stranger.sendto(hello, ("127.0.0.1", pb.port))  # another IP: must not take the stream
    await asyncio.sleep(0.06)
    assert not pb.latched
    nat.sendto(hello, ("127.0.0.1", pb.port))
    got = parse(await _recv(nat))
    assert pb.latched and pb.remote == nat.getsockname()
    assert got.ssrc == first.ssrc and not got.marker
    pb.stop()
    assert player.pool.in_use == 0
    for s in (private, nat, stranger):
        s.close()


async def test_bounded_the_excess_gets_none() -> None:
    rx = _udp()
    low, high = _free_range()
    player = AnnouncementPlayer(PortPool(low, high, limit=2), "127.0.0.1")
    offer = _offer("127.0.0.1", rx.getsockname()[1])
    long = lambda enc: b"\xff" * 16000  # noqa: E731
    ended: list[int] = []
    started = [player.start(offer, "127.0.0.1", long, lambda i=i: ended.append(i)) for i in range(3)]
    assert started[0] is not None and started[1] is not None and started[2] is None
    assert player.stats.no_port == 1
    assert player.start(_offer("127.0.0.1", 4000, "18"), "127.0.0.1", long, lambda: None) is None  # G.729 only
    player.close()  # shutdown: every owner still gets to send its final response
    assert sorted(ended) == [0, 1]
    assert player.active == 0 and player.pool.in_use == 0
    rx.close()
