"""Stateless final responses (RFC 3261 §8.2.7): answer once, keep no transaction.

The registrar challenges REGISTERs without credentials this way, so a flood or
a registration storm of unauthenticated requests leaves no 32-second Timer J
state behind, and a retransmission simply gets the same answer again.
"""

from __future__ import annotations

import pytest

from switch.sip.errors import TransactionError
from switch.sip.message import Request, Response, response_for, stateless_tag
from switch.sip.transaction import Peer, RequestReceived

from .txn_helpers import SERVER, drain_events, make_layer, parse, wire_request

SRC = Peer("udp", "10.0.0.1", 5060)


def _received(layer, data: bytes) -> RequestReceived:  # type: ignore[no-untyped-def]
    layer.receive(data, SRC, 0.0)
    evs = [e for e in drain_events(layer) if isinstance(e, RequestReceived)]
    assert len(evs) == 1
    return evs[0]


def test_challenge_is_sent_and_no_transaction_is_kept() -> None:
    layer = make_layer(*SERVER)
    data = wire_request("REGISTER", ruri="sip:example.com", rport=True)
    ev = _received(layer, data)
    assert layer.live_transactions == 1
    resp = response_for(ev.request, 401, to_tag=stateless_tag(ev.request))
    assert ev.tid is not None and layer.send_response_and_forget(ev.tid, resp, 0.0)
    out = layer.datagrams_to_send()
    assert len(out) == 1
    sent, dest = out[0]
    assert dest == Peer("udp", "10.0.0.1", 5060)  # routed like any response (§18.2.2, rport)
    assert parse(sent).status == 401  # type: ignore[union-attr]
    assert layer.live_transactions == 0
    assert layer.get_timer() is None  # no Timer J
    # Not even a lazily deleted heap entry: it would keep the transaction alive for 32 s.
    assert not layer._heap
    assert drain_events(layer) == []  # the TU is not told about a transaction it gave up

    # The retransmission is a new request to the layer and gets the same To tag again.
    ev2 = _received(layer, data)
    again = response_for(ev2.request, 401, to_tag=stateless_tag(ev2.request))
    assert again.to.tag == resp.to.tag
    assert ev2.tid is not None and layer.send_response_and_forget(ev2.tid, again, 0.0)
    assert layer.live_transactions == 0


def test_stateless_tag_depends_on_the_request() -> None:
    def req(**kw: object) -> Request:
        msg = parse(wire_request("REGISTER", ruri="sip:example.com", **kw))  # type: ignore[arg-type]
        assert isinstance(msg, Request)
        return msg

    base = stateless_tag(req())
    assert base == stateless_tag(req())
    assert base != stateless_tag(req(branch="z9hG4bK-other"))
    assert base != stateless_tag(req(cseq=2))
    assert base != stateless_tag(req(call_id="another@10.0.0.1"))
    assert len(base) == 12


@pytest.mark.parametrize("method, status", [("INVITE", 200), ("INVITE", 180), ("REGISTER", 100)])
def test_only_final_answers_and_no_2xx_to_an_invite(method: str, status: int) -> None:
    layer = make_layer(*SERVER)
    ev = _received(layer, wire_request(method))
    resp: Response = response_for(ev.request, status, to_tag="t")
    assert ev.tid is not None
    with pytest.raises(TransactionError):
        layer.send_response_and_forget(ev.tid, resp, 0.0)
    assert layer.live_transactions == 1  # still there, to be answered properly


def test_invite_challenge_is_one_datagram_and_no_state() -> None:
    """A 407 to an unauthenticated INVITE: no 100 Trying before it, no Timer G
    retransmissions after it (12 of them amplified a spoofed INVITE ~13x), nothing kept."""
    layer = make_layer(*SERVER)
    ev = _received(layer, wire_request("INVITE", rport=True))
    resp = response_for(ev.request, 407, to_tag=stateless_tag(ev.request))
    assert ev.tid is not None and layer.send_response_and_forget(ev.tid, resp, 0.0)
    out = layer.datagrams_to_send()
    assert [parse(d).status for d, _ in out] == [407]  # type: ignore[union-attr]
    assert out[0][1] == SRC
    assert layer.live_transactions == 0
    assert layer.get_timer() is None and not layer._heap
    # Its ACK finds no transaction: the TU sees a stray ACK (and ignores it); nothing is sent.
    ack = wire_request("INVITE", rport=True).replace(b"INVITE sip:", b"ACK sip:").replace(b"1 INVITE", b"1 ACK")
    layer.receive(ack, SRC, 0.1)
    evs = drain_events(layer)
    assert len(evs) == 1 and isinstance(evs[0], RequestReceived) and evs[0].tid is None
    assert layer.datagrams_to_send() == [] and layer.live_transactions == 0


def test_a_100_already_sent_is_not_taken_back() -> None:
    layer = make_layer(*SERVER)
    ev = _received(layer, wire_request("INVITE"))
    assert [parse(d).status for d, _ in layer.datagrams_to_send()] == [100]  # type: ignore[union-attr]
    assert ev.tid is not None
    assert layer.send_response_and_forget(ev.tid, response_for(ev.request, 407, to_tag="t"), 0.0)
    assert [parse(d).status for d, _ in layer.datagrams_to_send()] == [407]  # type: ignore[union-attr]
