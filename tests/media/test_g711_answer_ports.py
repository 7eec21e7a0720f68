"""G.711 tables, the SDP answer for an announcement, the RTP port pool."""

from __future__ import annotations

import pytest

from switch.media import g711
from switch.media.answer import negotiate
from switch.media.ports import PortPool, parse_range
from switch.sip.sdp import parse_sdp


def test_alaw_decode_encode_round_trip_and_known_values() -> None:
    assert all(g711.linear_to_alaw(g711.alaw_to_linear(b)) == b for b in range(256))
    assert g711.alaw_to_linear(0xD5) == 8 and g711.ulaw_to_linear(0xFF) == 0
    assert g711.linear_to_alaw(32767) == 0xAA and g711.linear_to_alaw(-32768) == 0x2A
    assert g711.linear_to_ulaw(32767) == 0x80 and g711.linear_to_ulaw(-32768) == 0x00


def test_law_translation_keeps_the_sample_close() -> None:
    for b in range(256):
        a = g711.alaw_to_linear(b)
        u = g711.ulaw_to_linear(g711.alaw_to_ulaw(bytes([b]))[0])
        assert abs(a - u) <= max(64, abs(a) // 16), (b, a, u)
    assert [abs(v) for v in g711.decode(g711.alaw_to_ulaw(g711.silence("PCMA", 4)), "PCMU")] == [8] * 4


def _offer(formats: str, rtpmaps: str = "", extra: str = "", conn: str = "192.168.1.20") -> bytes:
    return (
        "v=0\r\no=- 1 1 IN IP4 {c}\r\ns=-\r\nc=IN IP4 {c}\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP {f}\r\n{r}{e}"
    ).format(c=conn, f=formats, r=rtpmaps, e=extra).encode()


@pytest.mark.parametrize(
    ("formats", "rtpmaps", "encoding", "pt"),
    [
        ("8 0 101", "a=rtpmap:101 telephone-event/8000\r\n", "PCMA", 8),
        ("0 8", "", "PCMU", 0),
        ("18 0", "", "PCMU", 0),  # G.729 first: the first *G.711* law the offer lists
        ("96 8", "a=rtpmap:96 PCMU/8000\r\n", "PCMU", 96),  # a dynamic number keeps the offer's
    ],
)
def test_answer_takes_the_first_law_the_offer_lists(formats: str, rtpmaps: str, encoding: str, pt: int) -> None:
    n = negotiate(_offer(formats, rtpmaps), "10.0.0.1", 20000)
    assert n is not None
    assert (n.encoding, n.payload_type, n.remote) == (encoding, pt, ("192.168.1.20", 4000))
    sdp = parse_sdp(n.body)
    (m,) = sdp.media
    assert m.port == 20000 and m.formats == (str(pt),)
    assert m.direction == "sendonly" and m.ptime == 20
    assert sdp.connection is not None and sdp.connection.address == "10.0.0.1"


@pytest.mark.parametrize(
    "body",
    [
        _offer("18 9"),  # G.729 and G.722 only
        _offer("8", extra="a=sendonly\r\n"),  # the caller will not receive
        _offer("8", conn="0.0.0.0"),  # on hold
        b"",  # late offer: we do not send one
        b"not sdp",
    ],
)
def test_no_answer_without_a_usable_law(body: bytes) -> None:
    assert negotiate(body, "10.0.0.1", 20000) is None


def test_other_streams_are_rejected_with_port_zero() -> None:
    body = _offer("8") + b"m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    n = negotiate(body, "10.0.0.1", 20000)
    assert n is not None
    audio, video = parse_sdp(n.body).media
    assert audio.port == 20000 and video.port == 0


def test_port_pool_is_bounded_even_and_fifo() -> None:
    pool = PortPool(20001, 20010, limit=3)
    got = [pool.acquire() for _ in range(4)]
    assert got == [20002, 20004, 20006, None]  # even ports, the limit holds
    pool.release(20002)
    pool.release(20002)  # twice is harmless
    assert pool.in_use == 2
    assert pool.acquire() == 20008  # the freed port goes to the back of the queue
    assert pool.acquire() is None


def test_port_range_parsing() -> None:
    assert parse_range("20000-20999") == (20000, 20999)
    for bad in ("20000", "x-y", "30000-20000", "80-90", "20000-20000"):
        with pytest.raises(ValueError):
            parse_range(bad)
