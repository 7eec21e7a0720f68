"""Responses go to the source address, whatever the request's Via says (no reflection).

A spoofed request that writes a third party into its own Via (``received=``,
``maddr=``) must not turn the switch into an amplifier aimed at that third
party. RFC 3261 §18.2.2 lets ``maddr`` steer responses (multicast); nothing a
home adapter does needs it, so it is ignored, and ``received`` is always the
one the switch stamps itself (§18.2.1).
"""

from __future__ import annotations

import pytest

from switch.sip.message import Request
from switch.sip.transaction import Peer, RequestReceived

from .txn_helpers import SERVER, drain_events, make_layer, parse, wire_request

VICTIM = "192.0.2.99"
SRC = Peer("udp", "10.0.0.1", 5070)


@pytest.mark.parametrize(
    "via_params, want_port",
    [
        (f";received={VICTIM}", 5070),       # host in the Via equals the source: received was kept as sent
        (f";maddr={VICTIM}", 5070),
        (f";maddr={VICTIM};received={VICTIM}", 5070),
        (f";received={VICTIM};rport=9999", 5070),
    ],
)
def test_sender_supplied_received_and_maddr_are_not_obeyed(via_params: str, want_port: int) -> None:
    layer = make_layer(*SERVER)
    data = wire_request("OPTIONS", via_host="10.0.0.1", via_port=5070).replace(
        b"branch=z9hG4bK-client-1", b"branch=z9hG4bK-client-1" + via_params.encode()
    )
    layer.receive(data, SRC, 0.0)
    evs = [e for e in drain_events(layer) if isinstance(e, RequestReceived)]
    assert len(evs) == 1 and evs[0].tid is not None
    req = evs[0].request
    assert isinstance(req, Request)
    assert req.top_via.received in (None, "10.0.0.1")  # the sender's own value is gone
    layer.send_response(evs[0].tid, layer.create_response(evs[0].tid, 200), 0.0)
    out = layer.datagrams_to_send()
    assert [dest for _, dest in out] == [Peer("udp", "10.0.0.1", want_port)]


def test_malformed_request_is_answered_to_its_source_too() -> None:
    layer = make_layer(*SERVER)
    data = wire_request("INVITE", via_host="10.0.0.1", via_port=5070).replace(b"Max-Forwards: 70", b"Max-Forwards: x")
    data = data.replace(b"branch=z9hG4bK-client-1", b"branch=z9hG4bK-client-1;maddr=" + VICTIM.encode())
    layer.receive(data, SRC, 0.0)
    out = layer.datagrams_to_send()
    assert len(out) == 1 and out[0][1].host == "10.0.0.1"
    assert parse(out[0][0]).status == 400  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "via, status",
    [
        ("SIP/2.0/UDP 192.0.2.15;;,;,,", 400),  # RFC 4475 §3.1.2.1: the Via itself is malformed
        ("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw", 505),  # §3.1.2.16 with a SIP/7.0 request line
    ],
)
def test_request_with_an_unusable_via_still_gets_its_error_at_the_source(via: str, status: int) -> None:
    layer = make_layer(*SERVER)
    version = "SIP/7.0" if status == 505 else "SIP/2.0"
    data = (
        f"OPTIONS sip:bob@10.0.0.2 {version}\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
        "From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: uv1\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    layer.receive(data, SRC, 0.0)
    out = layer.datagrams_to_send()
    assert len(out) == 1, layer.stats
    assert out[0][1] == SRC
    resp = parse(out[0][0])
    assert resp.status == status  # type: ignore[union-attr]
    assert resp.headers.get("Via") == via  # copied as it was (§8.2.6.2)
