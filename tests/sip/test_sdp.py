"""SDP model (RFC 4566) and offer/answer helpers (RFC 3264)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.parser import parse_message
from switch.sip.sdp import (
    Codec,
    Connection,
    SdpError,
    answer_for,
    hold,
    is_hold,
    negotiate_direction,
    next_version,
    parse_sdp,
    resume,
)

OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 198.51.100.23\r\n"
    b"s=-\r\n"
    b"c=IN IP4 198.51.100.23\r\n"
    b"t=0 0\r\n"
    b"a=tool:ht802\r\n"
    b"m=audio 49170 RTP/AVP 0 8 18 97 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=fmtp:18 annexb=no\r\n"
    b"a=rtpmap:97 iLBC/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
    b"m=video 51372 RTP/AVP 31\r\n"
    b"a=rtpmap:31 H261/90000\r\n"
)

T38_OFFER = (
    b"v=0\r\n"
    b"o=gw 1 2 IN IP4 192.0.2.40\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.40\r\n"
    b"t=0 0\r\n"
    b"m=image 4000 udptl t38\r\n"
    b"a=T38FaxVersion:0\r\n"
    b"a=T38MaxBitRate:14400\r\n"
    b"a=T38FaxRateManagement:transferredTCF\r\n"
    b"a=T38FaxMaxDatagram:176\r\n"
    b"a=T38FaxUdpEC:t38UDPRedundancy\r\n"
    b"a=x-unrelated:1\r\n"
)


def test_parse_session_and_media() -> None:
    sdp = parse_sdp(OFFER)
    assert (sdp.origin.username, sdp.origin.session_id, sdp.origin.version) == ("alice", "2890844526", 2890844526)
    assert sdp.origin.address == "198.51.100.23" and sdp.session_name == "-"
    assert sdp.connection == Connection("198.51.100.23")
    assert sdp.times == ("0 0",) and sdp.attribute("tool") == "ht802"
    audio, video = sdp.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == ("audio", 49170, "RTP/AVP", ("0", "8", "18", "97", "101"))
    assert audio.ptime == 20 and audio.direction == "sendrecv" and sdp.media_direction(audio) == "sendrecv"
    assert [c.encoding for c in audio.codecs] == ["PCMU", "PCMA", "G729", "iLBC", "telephone-event"]
    g729 = audio.codecs[2]
    assert g729 == Codec(18, "G729", 8000, None, "annexb=no")
    assert audio.codecs[4].fmtp == "0-15"
    assert video.media == "video" and video.codecs[0].clock_rate == 90000
    assert video.direction is None and sdp.media_direction(video) == "sendrecv"


def test_round_trip_keeps_the_content() -> None:
    assert parse_sdp(OFFER).to_bytes() == OFFER
    assert parse_sdp(T38_OFFER).to_bytes() == T38_OFFER
    odd = b"v=0\no=- 1 1 IN IP6 2001:db8::1\ns=call\ni=info\nc=IN IP6 2001:db8::1\nb=AS:64\nt=0 0\nr=7d 1h 0 25h\nz=0 -1h\nk=clear:x\nx=unknown\na=recvonly\nm=audio 5000/2 RTP/AVP 0\ni=m-info\nb=TIAS:64000\nk=prompt\na=rtcp:5001\n"
    sdp = parse_sdp(odd)
    assert sdp.media[0].port_count == 2 and sdp.direction == "recvonly"
    again = parse_sdp(sdp.to_bytes())
    assert again == sdp
    assert sdp.to_bytes() == odd.replace(b"\n", b"\r\n")


def test_static_payload_types_without_rtpmap() -> None:
    sdp = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0 8 18 3 99\r\n")
    assert [(c.payload_type, c.encoding) for c in sdp.media[0].codecs] == [(0, "PCMU"), (8, "PCMA"), (18, "G729"), (3, "GSM")]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"o=- 1 1 IN IP4 h\r\n",
        b"v=1\r\no=- 1 1 IN IP4 h\r\n",
        b"v=0\r\ns=-\r\n",
        b"v=0\r\no=- x 1 IN IP4\r\n",
        b"v=0\r\no=- 1 1 IN IP4 h\r\nbad line\r\n",
        b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio\r\n",
        b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 99999 RTP/AVP 0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4\r\n",
        b"v=0\r\no=- 1 1 IN IP4 h\r\n" + b"a=x\r\n" * 2000,
    ],
)
def test_bad_sdp(body: bytes) -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp(body)
    assert info.value.status == 400


def test_sdp_bodies_of_the_torture_messages_parse() -> None:
    data = Path(__file__).parent / "data" / "torture"
    for name in ("wsinv", "esc01", "longreq", "unreason", "bcast"):
        msg = parse_message((data / f"{name}.dat").read_bytes())
        sdp = parse_sdp(msg.body)
        assert [m.media for m in sdp.media] == ["audio", "video"]
        assert sdp.media[1].codecs[0].encoding == "LPC"  # a=rtpmap:31 LPC overrides the static table
    # mismatch02 has no s= and no t= line: still usable
    msg = parse_message((data / "mismatch02.dat").read_bytes())
    assert parse_sdp(msg.body).session_name == "-"


# --- direction ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "local", "answer"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendonly", "sendonly"),
        ("sendrecv", "recvonly", "recvonly"),
        ("sendrecv", "inactive", "inactive"),
        ("sendonly", "sendonly", "inactive"),
        ("recvonly", "recvonly", "inactive"),
    ],
)
def test_negotiate_direction(offered: str, local: str, answer: str) -> None:
    assert negotiate_direction(offered, local) == answer


def test_negotiate_direction_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        negotiate_direction("both")


# --- answering -----------------------------------------------------------------------------------


def test_answer_picks_common_codecs_in_our_order_and_rejects_video() -> None:
    offer = parse_sdp(OFFER)
    answer = answer_for(offer, ["PCMA/8000", "G729/8000", "telephone-event/8000", "opus/48000/2"], "203.0.113.5", 40000,
                        session_id="77", session_version=1)
    audio, video = answer.media
    assert (audio.port, audio.formats) == (40000, ("8", "18", "101"))
    assert audio.attributes == (
        ("rtpmap", "8 PCMA/8000"), ("rtpmap", "18 G729/8000"), ("fmtp", "18 annexb=no"),
        ("rtpmap", "101 telephone-event/8000"), ("fmtp", "101 0-15"), ("ptime", "20"), ("sendrecv", None),
    )
    assert (video.port, video.formats) == (0, ("31",))  # rejected: port 0, one format from the offer
    assert answer.connection == Connection("203.0.113.5")
    assert (answer.origin.session_id, answer.origin.version, answer.origin.address) == ("77", 1, "203.0.113.5")
    text = answer.to_bytes()
    assert b"m=video 0 RTP/AVP 31\r\n" in text
    assert parse_sdp(text) == answer


def test_answer_keeps_offered_dynamic_payload_numbers() -> None:
    offer = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1000 RTP/AVP 96 120\r\n"
                      b"a=rtpmap:96 PCMA/8000\r\na=rtpmap:120 TELEPHONE-EVENT/8000\r\n")
    answer = answer_for(offer, ["pcma/8000", "telephone-event/8000"], "10.0.0.1", 2000)
    assert answer.media[0].formats == ("96", "120")


def test_answer_rejects_when_nothing_in_common() -> None:
    offer = parse_sdp(OFFER)
    answer = answer_for(offer, ["AMR/8000", "telephone-event/8000"], "203.0.113.5", 40000)
    assert [m.port for m in answer.media] == [0, 0]


def test_answer_direction_follows_the_offer() -> None:
    offer = hold(parse_sdp(OFFER))
    answer = answer_for(offer, ["PCMU/8000"], "203.0.113.5", 40000)
    assert answer.media[0].direction == "recvonly"
    assert answer_for(parse_sdp(OFFER), ["PCMU/8000"], "h", 1, direction="inactive").media[0].direction == "inactive"


def test_answer_ports_per_stream_and_ipv6() -> None:
    two = parse_sdp(OFFER.replace(b"m=video 51372 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n",
                                  b"m=audio 51372 RTP/AVP 0\r\n"))
    a = answer_for(two, ["PCMU/8000"], "2001:db8::5", 30000)
    assert [m.port for m in a.media] == [30000, 30002]
    assert a.connection == Connection("2001:db8::5", addrtype="IP6") and a.origin.addrtype == "IP6"
    b = answer_for(two, ["PCMU/8000"], "192.0.2.1", [31000, 0])
    assert [m.port for m in b.media] == [31000, 0]


def test_t38_answer() -> None:
    offer = parse_sdp(T38_OFFER)
    assert offer.media[0].is_t38
    rejected = answer_for(offer, ["PCMA/8000"], "192.0.2.1", 6000)
    assert rejected.media[0].port == 0
    answer = answer_for(offer, ["PCMA/8000", "t38"], "192.0.2.1", 6000)
    (m,) = answer.media
    assert (m.media, m.port, m.proto, m.formats) == ("image", 6000, "udptl", ("t38",))
    assert m.attribute("T38FaxMaxDatagram") == "176" and m.attribute("T38FaxUdpEC") == "t38UDPRedundancy"
    assert not m.has_attribute("x-unrelated")


# --- hold and versions -----------------------------------------------------------------------------


def test_hold_detection() -> None:
    offer = parse_sdp(OFFER)
    assert not is_hold(offer)
    assert is_hold(hold(offer)) and is_hold(hold(offer, inactive=True))
    assert not is_hold(resume(hold(offer)))
    old_style = parse_sdp(OFFER.replace(b"c=IN IP4 198.51.100.23", b"c=IN IP4 0.0.0.0"))
    assert is_hold(old_style)
    session_level = parse_sdp(OFFER.replace(b"a=sendrecv\r\n", b"").replace(b"a=tool:ht802", b"a=sendonly"))
    assert is_hold(session_level)
    only_rejected = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n")
    assert not is_hold(only_rejected)
    one_active = parse_sdp(OFFER.replace(b"a=sendrecv", b"a=sendonly"))  # video still sendrecv
    assert not is_hold(one_active)


def test_hold_and_resume_bump_the_version() -> None:
    offer = parse_sdp(OFFER)
    held = hold(offer)
    assert held.origin.version == offer.origin.version + 1
    assert all(m.direction == "sendonly" for m in held.media)
    assert resume(held).origin.version == offer.origin.version + 2


def test_next_version() -> None:
    first = answer_for(parse_sdp(OFFER), ["PCMU/8000"], "192.0.2.1", 4000, session_id="9", session_version=5)
    assert next_version(None, first) is first
    same = answer_for(parse_sdp(OFFER), ["PCMU/8000"], "192.0.2.1", 4000, session_id="other", session_version=0)
    assert next_version(first, same) is first  # unchanged content keeps the version
    changed = answer_for(parse_sdp(OFFER), ["PCMU/8000"], "192.0.2.1", 4002)
    bumped = next_version(first, changed)
    assert (bumped.origin.session_id, bumped.origin.version) == ("9", 6)
    assert bumped.media[0].port == 4002


def test_with_direction_validates() -> None:
    m = parse_sdp(OFFER).media[0]
    assert m.with_direction("inactive").direction == "inactive"
    with pytest.raises(ValueError):
        m.with_direction("off")


# --- robustness ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None)
@given(st.data())
def test_mutated_sdp_only_raises_sdp_errors(data: st.DataObject) -> None:
    body = bytearray(data.draw(st.sampled_from([OFFER, T38_OFFER])))
    for _ in range(data.draw(st.integers(1, 5))):
        pos = data.draw(st.integers(0, max(0, len(body) - 1)))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and body:
            body[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del body[pos : pos + data.draw(st.integers(1, 20))]
        else:
            body[pos:pos] = data.draw(st.sampled_from([b"\r\n", b"=", b" ", b"/", b":", b"m=", b"a=rtpmap:", b"\xff"]))
    try:
        sdp = parse_sdp(bytes(body))
    except SdpError:
        return
    parse_sdp(sdp.to_bytes())
    is_hold(sdp)
    for m in sdp.media:
        m.codecs  # noqa: B018
    answer_for(sdp, ["PCMA/8000", "telephone-event/8000", "t38"], "192.0.2.1", 7000).to_bytes()
