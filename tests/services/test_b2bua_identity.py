"""Caller presentation, privacy detection, and SDP origin keeping: pure helpers of the legs and manager."""

from __future__ import annotations

import pytest

from switch.services.b2bua.leg import OriginKeeper
from switch.services.b2bua.manager import (
    ANONYMOUS_FROM,
    dialled_of,
    identity_for,
    national_form,
    presented_number,
    wants_privacy,
)
from switch.sip.headers import Headers
from switch.sip.message import Request

from .b2bua_fakes import line_target, trunk_target


def invite(from_: str = "<sip:22000001@sw>;tag=1", ruri: str = "sip:22000002@sw", extra: list[tuple[str, str]] | None = None) -> Request:
    h = Headers.of(
        [
            ("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1"),
            ("From", from_),
            ("To", f"<{ruri}>"),
            ("Call-ID", "c1"),
            ("CSeq", "1 INVITE"),
            ("Max-Forwards", "70"),
            *(extra or []),
        ]
    )
    return Request("INVITE", ruri, h)


def test_carriers_get_e164_in_pai_and_from() -> None:
    ident = identity_for("+4722000001", trunk_target(1), False, "voip.example.no")
    assert ident.from_ == "<sip:+4722000001@voip.example.no;user=phone>"
    assert ident.headers == (("P-Asserted-Identity", "<sip:+4722000001@voip.example.no;user=phone>"),)


def test_carriers_get_the_real_number_and_privacy_id_for_anonymous_calls() -> None:
    ident = identity_for("+4722000001", trunk_target(1), True, "voip.example.no")
    assert ident.from_ == ANONYMOUS_FROM
    assert ident.headers == (
        ("P-Asserted-Identity", "<sip:+4722000001@voip.example.no;user=phone>"),
        ("Privacy", "id"),
    )


def test_adapters_see_the_national_number_or_nothing() -> None:
    ident = identity_for("+4722000001", line_target(), False, "voip.example.no")
    assert ident.from_ == "<sip:22000001@voip.example.no>"
    assert ident.headers == (("P-Asserted-Identity", "<sip:22000001@voip.example.no>"),)
    anon = identity_for("+4722000001", line_target(), True, "voip.example.no")
    assert (anon.from_, anon.headers) == (ANONYMOUS_FROM, ())  # no PAI outside the trust domain (RFC 3325)
    foreign = identity_for("+46812345678", line_target(), False, "sw")
    assert foreign.from_ == "<sip:+46812345678@sw>"
    unknown = identity_for(None, trunk_target(1), False, "sw")
    assert (unknown.from_, unknown.headers) == (ANONYMOUS_FROM, (("Privacy", "id"),))


@pytest.mark.parametrize(
    ("from_", "extra", "private"),
    [
        ("<sip:22000001@sw>;tag=1", [], False),
        ("<sip:22000001@sw>;tag=1", [("Privacy", "id")], True),
        ("<sip:22000001@sw>;tag=1", [("Privacy", "header; id")], True),
        ("<sip:22000001@sw>;tag=1", [("Privacy", "none")], False),
        ('"Anonymous" <sip:22000001@sw>;tag=1', [], True),
        ("<sip:anonymous@anonymous.invalid>;tag=1", [], True),
        ("<sip:Anonymous@sw>;tag=1", [], True),
    ],
)
def test_privacy_requests_from_adapters(from_: str, extra: list[tuple[str, str]], private: bool) -> None:
    assert wants_privacy(invite(from_, extra=extra)) is private


def test_the_number_a_carrier_presents_prefers_pai() -> None:
    req = invite("<sip:+4798765432@carrier>;tag=1", extra=[("P-Asserted-Identity", "<sip:+4791111111@carrier>")])
    n = presented_number(req)
    assert n is not None and n.e164 == "+4791111111"
    assert presented_number(invite("<sip:98765432@carrier>;tag=1")).e164 == "+4798765432"  # type: ignore[union-attr]
    assert presented_number(invite("<sip:anonymous@anonymous.invalid>;tag=1")) is None


def test_dialled_number_comes_from_the_request_uri() -> None:
    assert dialled_of(invite(ruri="sip:91234567@sw;user=phone")) == "91234567"
    assert dialled_of(invite(ruri="tel:+4791234567")) == "tel:+4791234567"
    assert dialled_of(invite(ruri="sip:sw")) == ""
    assert national_form("+4722000001") == "22000001" and national_form("+4612") == "+4612"


A = b"v=0\r\no=carrierA 111 5 IN IP4 192.0.2.1\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\n"
A2 = b"v=0\r\no=carrierA 111 6 IN IP4 192.0.2.1\r\ns=-\r\nm=audio 4002 RTP/AVP 0\r\n"
B = b"v=0\r\no=carrierB 999 1 IN IP4 198.51.100.7\r\ns=-\r\nm=audio 5000 RTP/AVP 0\r\n"


def test_origin_keeper_passes_one_session_unchanged() -> None:
    keeper = OriginKeeper()
    assert keeper.outgoing(A) == A
    assert keeper.outgoing(A) == A
    assert keeper.outgoing(A2) == A2
    assert keeper.outgoing(b"not sdp") == b"not sdp"


def test_origin_keeper_makes_a_new_carrier_look_like_the_next_version() -> None:
    keeper = OriginKeeper()
    keeper.outgoing(A)
    first = keeper.outgoing(B)
    assert first == B.replace(b"o=carrierB 999 1 IN IP4 198.51.100.7", b"o=carrierA 111 6 IN IP4 198.51.100.7")
    assert keeper.outgoing(B) == first  # same content again: same version
    changed = B.replace(b"5000", b"5002")
    assert b"o=carrierA 111 7 " in keeper.outgoing(changed)
