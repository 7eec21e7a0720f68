"""RTP packetiser and pacer with a fake clock: header fields, sizes, timing without drift."""

from __future__ import annotations

import random

import pytest

from switch.media.rtp import HEADER_SIZE, Packetiser, looks_like_rtp, parse
from switch.media.stream import PTIME, PromptStream


def test_packet_header_fields() -> None:
    p = Packetiser(8, ssrc=0xDEADBEEF, sequence=65534, timestamp=0xFFFFFF00)
    first = parse(p.packet(b"\xd5" * 160))
    second = parse(p.packet(b"\xd5" * 160))
    third = parse(p.packet(b"\xd5" * 160))
    assert (first.payload_type, first.ssrc, first.sequence, first.timestamp, first.marker) == (8, 0xDEADBEEF, 65534, 0xFFFFFF00, True)
    assert (second.sequence, second.timestamp, second.marker) == (65535, 0xFFFFFFA0, False)
    # both counters wrap (RFC 3550 §5.1: modulo 2^16 and 2^32)
    assert (third.sequence, third.timestamp) == (0, 0x40)
    assert first.payload == b"\xd5" * 160


def test_looks_like_rtp_refuses_rtcp_and_junk() -> None:
    assert looks_like_rtp(Packetiser(0, 1, 1, 1).packet(b"x" * 160))
    assert not looks_like_rtp(b"\x80\xc8" + b"\x00" * 30)  # RTCP sender report
    assert not looks_like_rtp(b"STUN" * 5)
    assert not looks_like_rtp(b"\x80\x00")


def _run(stream: PromptStream, clock: float, step: float) -> list[tuple[float, bytes]]:
    sent: list[tuple[float, bytes]] = []
    while not stream.done:
        clock = max(clock + step, stream.deadline) if step else stream.deadline
        for pkt in stream.due(clock):
            sent.append((clock, pkt))
    return sent


def test_stream_of_10000_packets_has_no_drift_and_exact_headers() -> None:
    audio = bytes(random.Random(1).randrange(256) for _ in range(160 * 10_000))
    stream = PromptStream(audio, Packetiser(0, ssrc=4242, sequence=100, timestamp=5000), start=1000.0)
    assert stream.count == 10_000
    sent: list[tuple[float, bytes]] = []
    rng = random.Random(7)
    now = 1000.0
    while not stream.done:
        # a loop that wakes up 0-3 ms late at every timer, as asyncio does under load
        now = stream.deadline + rng.uniform(0, 0.003)
        sent += [(now, p) for p in stream.due(now)]
    assert len(sent) == 10_000
    packets = [parse(p) for _, p in sent]
    assert [p.sequence for p in packets] == [(100 + i) & 0xFFFF for i in range(10_000)]
    assert [p.timestamp for p in packets] == [5000 + 160 * i for i in range(10_000)]
    assert {p.ssrc for p in packets} == {4242}
    assert [p.marker for p in packets] == [True] + [False] * 9_999
    assert all(len(raw) == HEADER_SIZE + 160 for _, raw in sent)
    assert b"".join(p.payload for p in packets) == audio
    # packet n left within 3 ms of start + n*20 ms: lateness never adds up
    for i, (t, _) in enumerate(sent):
        assert 0 <= t - (1000.0 + i * PTIME) <= 0.003 + 1e-9
    assert stream.ends_at == pytest.approx(1000.0 + 10_000 * PTIME)


def test_a_late_wake_up_sends_every_due_packet_then_gets_back_on_time() -> None:
    stream = PromptStream(b"\x00" * 1600, Packetiser(8, 1, 0, 0), start=0.0)
    assert len(stream.due(0.0)) == 1
    assert stream.deadline == pytest.approx(0.020)
    burst = stream.due(0.071)  # the loop slept 51 ms too long
    assert len(burst) == 3
    assert stream.deadline == pytest.approx(0.080)  # the schedule is still start + n*20 ms
    assert stream.due(0.079) == []
    assert len(stream.due(0.080)) == 1


def test_the_last_packet_is_padded_with_silence_not_short() -> None:
    stream = PromptStream(b"\x01" * 170, Packetiser(8, 1, 0, 0), start=0.0, fill=0xD5)
    packets = [parse(p) for p in stream.due(1.0)]
    assert [len(p.payload) for p in packets] == [160, 160]
    assert packets[1].payload == b"\x01" * 10 + b"\xd5" * 150
    assert stream.done
