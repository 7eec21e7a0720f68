"""Transaction layer behaviour, end to end between two layers on a simulated wire.

Each test names the RFC rule it checks. No sockets, no sleeping: time moves
when the test says so, packets are lost or duplicated when the test says so.
"""

from __future__ import annotations

import pytest

from switch.sip.errors import TransactionError
from switch.sip.headers import Headers
from switch.sip.message import Request, Response
from switch.sip.timers import TimerConfig
from switch.sip.transaction import (
    CancelReceived,
    Drop,
    Peer,
    RequestReceived,
    ResponseReceived,
    State,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from switch.sip.transaction.events import Event

from .txn_helpers import (
    CLIENT,
    CONN_ID,
    SERVER,
    Network,
    Packet,
    drain_events,
    drop_matching,
    duplicate_all,
    event_names,
    make_layer,
    make_request,
    parse,
    short,
    wire_request,
)


def requests(events: list[Event]) -> list[RequestReceived]:
    return [e for e in events if isinstance(e, RequestReceived)]


def responses(events: list[Event]) -> list[ResponseReceived]:
    return [e for e in events if isinstance(e, ResponseReceived)]


def statuses(events: list[Event]) -> list[int]:
    return [e.response.status for e in responses(events)]


def packets(net: Network, what: str, direction: str) -> list[Packet]:
    return [p for p in net.log if p.short == what and p.direction == direction]


def answer(net: Network, status: int, index: int = -1) -> Response:
    """The server TU answers the request it received last (or ``index``)."""
    ev = requests(net.server_events)[index]
    assert ev.tid is not None
    resp = net.server.create_response(ev.tid, status)
    assert net.server.send_response(ev.tid, resp, net.now)
    net.flush()
    return resp


# ---------------------------------------------------------------------------- basic flows


def test_non_invite_round_trip_and_cleanup() -> None:
    net = Network()
    tid = net.client.send_request(make_request("OPTIONS"), net.server_peer, net.now)
    net.flush()
    [req_ev] = requests(net.server_events)
    assert req_ev.request.method == "OPTIONS" and req_ev.source == Peer("udp", *CLIENT)
    answer(net, 200)
    # Completed (Timer K) is a lingering record: the TU hears the end right after the response
    assert [(type(e).__name__, getattr(e, "tid", None)) for e in net.client_events] == [
        ("ResponseReceived", tid), ("TransactionTerminated", tid)]
    assert net.sent() == ["OPTIONS", "200"]
    net.advance(100.0)
    assert net.client.lingering == 0 and net.server.lingering == 0
    assert net.client.live_transactions == 0 and net.server.live_transactions == 0
    assert event_names(net.client_events)[-1] == "TransactionTerminated"
    assert net.client.get_timer() is None and net.server.get_timer() is None


def test_invite_2xx_flow_ack_is_not_part_of_the_transaction() -> None:
    """§17: the ACK for a 2xx is a separate transaction owned by the TU; it arrives with tid None."""
    net = Network()
    tid = net.client.send_request(make_request("INVITE"), net.server_peer, net.now)
    net.flush()
    assert net.sent() == ["INVITE", "100"]
    answer(net, 180)
    ok = answer(net, 200)
    assert statuses(net.client_events) == [100, 180, 200]
    assert net.client.transaction_state(tid) is State.ACCEPTED
    server_tid = requests(net.server_events)[0].tid
    assert server_tid is not None and net.server.transaction_state(server_tid) is State.ACCEPTED
    # The client TU ACKs the 2xx with a new branch (§13.2.2.4).
    ack = make_request("ACK", to_tag=ok.to.tag)
    assert net.client.send_request(ack, net.server_peer, net.now) == ""
    net.flush()
    acks = [e for e in requests(net.server_events) if e.request.method == "ACK"]
    assert len(acks) == 1 and acks[0].tid is None
    assert ack.top_via.branch != parse(packets(net, "INVITE", "c2s")[0].data).top_via.branch
    net.advance(100.0)
    assert packets(net, "200", "s2c") and len(packets(net, "200", "s2c")) == 1  # no retransmission after the ACK
    assert [e for e in net.server_events if isinstance(e, TransactionTimeout)] == []


def test_accepted_invite_transactions_let_go_of_the_parsed_invite() -> None:
    """An accepted INVITE lingers 32 s (Timer L/M) only to absorb retransmissions: the parsed
    INVITE (header objects, a few KB) is dropped then, so a call burst's lingering transactions
    do not hold the burst's messages (the RSS of bench_calls.py's ladder)."""
    net = Network()
    tid = net.client.send_request(make_request("INVITE"), net.server_peer, net.now)
    net.flush()
    ok = answer(net, 200)
    server_tid = requests(net.server_events)[0].tid
    assert server_tid is not None
    assert net.client.transaction_state(tid) is State.ACCEPTED
    assert net.client._client[tid].request is None  # no CANCEL, no ACK of its own, no retransmission any more
    assert net.server.server_request(server_tid) is not None  # still waiting for the ACK
    net.client.send_request(make_request("ACK", to_tag=ok.to.tag), net.server_peer, net.now)
    net.flush()
    # After the ACK the IST is a lingering record (linger.py): no INVITE, no 2xx, no object.
    assert net.server.transaction_state(server_tid) is None and net.server.lingering >= 1
    assert net.server.server_request(server_tid) is None
    sent_before = len(net.sent())
    # Still absorbs a retransmitted INVITE and passes a repeated ACK on, until Timer L.
    net.server.receive(packets(net, "INVITE", "c2s")[0].data, Peer("udp", *CLIENT), net.now)
    net.server.receive(packets(net, "ACK", "c2s")[0].data, Peer("udp", *CLIENT), net.now)
    net.flush()
    assert [e.request.method for e in requests(net.server_events)] == ["INVITE", "ACK", "ACK"]
    assert len(net.sent()) == sent_before  # absorbed: nothing sent back
    # With the ACK in, only copies already in the network can come: the IST waits T4, not all of L.
    net.advance(4.5)
    net.server.receive(packets(net, "INVITE", "c2s")[0].data, Peer("udp", *CLIENT), net.now)
    assert [e.request.method for e in requests(net.server_events)] == ["INVITE", "ACK", "ACK"]  # still absorbed
    net.advance(7.0)  # T4 after the ACK, and the record released in the batch after it (GRACE)
    assert net.server.live_transactions == 0 and net.server.lingering == 0
    assert net.client.transaction_state(tid) is State.ACCEPTED  # Timer M: 2xx retransmissions still get here
    net.advance(40.0)
    assert net.client.live_transactions == 0 and net.server.live_transactions == 0


def test_ack_for_non_2xx_is_built_by_the_client_transaction() -> None:
    """§17.1.1.3: same Request-URI, Call-ID, From, CSeq number; To with the response's tag;
    one Via equal to the INVITE's top Via; the INVITE's Route headers."""
    net = Network()
    invite = make_request("INVITE", extra=(("Route", "<sip:p1.example.com;lr>"), ("Route", "<sip:p2.example.com;lr>")))
    net.client.send_request(invite, net.server_peer, net.now)
    net.flush()
    busy = answer(net, 486)
    [ack_pkt] = packets(net, "ACK", "c2s")
    ack = parse(ack_pkt.data)
    sent_invite = parse(packets(net, "INVITE", "c2s")[0].data)
    assert isinstance(ack, Request) and isinstance(sent_invite, Request)
    assert ack.uri == sent_invite.uri
    assert ack.call_id == sent_invite.call_id
    assert ack.headers.get("From") == sent_invite.headers.get("From")
    assert ack.to.tag == busy.to.tag is not None
    assert (ack.cseq.seq, ack.cseq.method) == (sent_invite.cseq.seq, "ACK")
    assert ack.headers.get_lines("Via") == [sent_invite.headers.get_lines("Via")[0]]
    assert ack.headers.get_lines("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert ack.max_forwards == 70
    # The server absorbs it: IST Confirmed, nothing for the TU.
    server_tid = requests(net.server_events)[0].tid
    assert server_tid is not None and net.server.transaction_state(server_tid) is State.CONFIRMED
    assert [e.request.method for e in requests(net.server_events)] == ["INVITE"]
    assert statuses(net.client_events) == [100, 486]


def test_forked_2xx_responses_all_reach_the_tu() -> None:
    """RFC 6026 §8.4: in Accepted every 2xx goes up, so the TU can ACK each fork."""
    layer = make_layer(*CLIENT)
    tid = layer.send_request(make_request("INVITE"), Peer("udp", *SERVER), 0.0)
    invite = layer.datagrams_to_send()[0][0]
    from .txn_helpers import response_bytes

    layer.receive(response_bytes(invite, 200, to_tag="fork-a"), Peer("udp", *SERVER), 0.1)
    layer.receive(response_bytes(invite, 200, to_tag="fork-b"), Peer("udp", *SERVER), 0.2)
    got = responses(drain_events(layer))
    assert [(e.tid, e.response.to.tag) for e in got] == [(tid, "fork-a"), (tid, "fork-b")]


def test_late_2xx_after_the_ict_is_gone_still_reaches_the_tu() -> None:
    layer = make_layer(*CLIENT)
    layer.send_request(make_request("INVITE"), Peer("udp", *SERVER), 0.0)
    invite = layer.datagrams_to_send()[0][0]
    from .txn_helpers import response_bytes

    layer.receive(response_bytes(invite, 200), Peer("udp", *SERVER), 1.0)
    layer.handle_timer(100.0)  # Timer M ends the ICT
    drain_events(layer)
    layer.receive(response_bytes(invite, 200), Peer("udp", *SERVER), 101.0)
    [late] = drain_events(layer)
    assert isinstance(late, ResponseReceived) and late.tid == "" and late.response.status == 200
    # Anything else without a transaction is dropped.
    layer.receive(response_bytes(invite, 486), Peer("udp", *SERVER), 102.0)
    assert drain_events(layer) == [] and layer.stats.dropped[Drop.UNMATCHED_RESPONSE] == 1


# ---------------------------------------------------------------------------- loss and duplication


def test_lost_invite_is_retransmitted_and_the_tu_sees_it_once() -> None:
    net = Network(fate=drop_matching("INVITE", "c2s", count=2))
    net.client.send_request(make_request("INVITE"), net.server_peer, net.now)
    net.advance(2.0)
    assert [p.time for p in packets(net, "INVITE", "c2s")] == [0.0, 0.5, 1.5]
    assert len(requests(net.server_events)) == 1
    assert statuses(net.client_events) == [100]


def test_lost_final_response_is_resent_by_the_server_transaction() -> None:
    """§17.2.1: Timer G retransmits the non-2xx final until the ACK arrives."""
    net = Network(fate=drop_matching("486", "s2c"))
    net.client.send_request(make_request("INVITE"), net.server_peer, net.now)
    net.flush()
    answer(net, 486)
    assert statuses(net.client_events) == [100]
    net.advance(1.0)
    assert [p.time for p in packets(net, "486", "s2c")] == [0.0, 0.5]
    assert statuses(net.client_events) == [100, 486]
    assert len(packets(net, "ACK", "c2s")) == 1
    net.advance(100.0)
    assert len(packets(net, "486", "s2c")) == 2  # Confirmed: no more retransmissions


def test_lost_ack_makes_the_client_ack_again() -> None:
    """§17.1.1.2: a retransmitted final in Completed is ACKed again and not passed up."""
    net = Network(fate=drop_matching("ACK", "c2s"))
    net.client.send_request(make_request("INVITE"), net.server_peer, net.now)
    net.flush()
    answer(net, 486)
    net.advance(1.0)
    assert [p.time for p in packets(net, "ACK", "c2s")] == [0.0, 0.5]
    assert statuses(net.client_events) == [100, 486]
    server_tid = requests(net.server_events)[0].tid
    assert server_tid is not None and net.server.transaction_state(server_tid) is State.CONFIRMED
    assert net.server.stats.retransmissions == 1 and net.client.stats.retransmissions == 1


def test_lost_non_invite_response_is_answered_from_the_server_transaction() -> None:
    """§17.2.2: a retransmitted request in Completed gets the final response again."""
    net = Network(fate=drop_matching("200", "s2c"))
    net.client.send_request(make_request("REGISTER", ruri="sip:example.com"), net.server_peer, net.now)
    net.flush()
    answer(net, 200)
    assert statuses(net.client_events) == []
    net.advance(1.0)
    assert [p.time for p in packets(net, "REGISTER", "c2s")] == [0.0, 0.5]
    assert statuses(net.client_events) == [200]
    assert len(requests(net.server_events)) == 1
    assert net.server.stats.absorbed == 1


def test_duplicated_packets_are_absorbed() -> None:
    net = Network(fate=duplicate_all)
    net.client.send_request(make_request("OPTIONS"), net.server_peer, net.now)
    net.flush()
    assert len(requests(net.server_events)) == 1
    answer(net, 200)
    assert statuses(net.client_events) == [200]
    net.advance(100.0)
    assert net.client.live_transactions == net.server.live_transactions == 0


def test_duplicated_invite_flow() -> None:
    """Duplicates never make a second server transaction. Every copy of a 1xx (§17.1.1.2) and of a
    2xx (RFC 6026) reaches the client TU; a non-2xx final only once."""
    net = Network(fate=duplicate_all)
    net.client.send_request(make_request("INVITE"), net.server_peer, net.now)
    net.flush()
    assert len(requests(net.server_events)) == 1
    answer(net, 486)
    assert [s for s in statuses(net.client_events) if s >= 200] == [486]
    net.client.send_request(make_request("INVITE", call_id="call-2"), net.server_peer, net.now)
    net.flush()
    assert len(requests(net.server_events)) == 2
    answer(net, 200)
    assert [s for s in statuses(net.client_events) if s >= 200] == [486, 200, 200]


# ---------------------------------------------------------------------------- CANCEL (§9)


def test_cancel_after_provisional() -> None:
    net = Network()
    invite = make_request("INVITE", extra=(("Route", "<sip:p1.example.com;lr>"),))
    tid = net.client.send_request(invite, net.server_peer, net.now)
    net.flush()
    answer(net, 180)
    cancel_tid = net.client.cancel(tid, net.now)
    assert cancel_tid is not None and cancel_tid.endswith("|CANCEL")
    assert net.client.cancel(tid, net.now) == cancel_tid  # idempotent
    net.flush()
    # §9.1: same Request-URI, Call-ID, From, To, CSeq number, single Via with the INVITE's branch, Route.
    sent_invite = parse(packets(net, "INVITE", "c2s")[0].data)
    cancel = parse(packets(net, "CANCEL", "c2s")[0].data)
    assert isinstance(cancel, Request) and isinstance(sent_invite, Request)
    assert cancel.uri == sent_invite.uri and cancel.call_id == sent_invite.call_id
    assert cancel.headers.get("From") == sent_invite.headers.get("From")
    assert cancel.headers.get("To") == sent_invite.headers.get("To")
    assert str(cancel.cseq) == f"{sent_invite.cseq.seq} CANCEL"
    assert cancel.headers.get_lines("Via") == [sent_invite.headers.get_lines("Via")[0]]
    assert cancel.headers.get_lines("Route") == ["<sip:p1.example.com;lr>"]
    # §9.2: the server answers the CANCEL 200 itself and tells the TU.
    invite_tid = requests(net.server_events)[0].tid
    cancels = [e for e in net.server_events if isinstance(e, CancelReceived)]
    assert [(c.tid, c.cancel.method) for c in cancels] == [(invite_tid, "CANCEL")]
    assert [e.request.method for e in requests(net.server_events)] == ["INVITE"]
    ok = [p for p in packets(net, "200", "s2c")]
    assert len(ok) == 1 and parse(ok[0].data).cseq.method == "CANCEL"
    # The 200 to the CANCEL carries the INVITE's To tag (§9.2 SHOULD).
    ringing = [p for p in packets(net, "180", "s2c")]
    assert parse(ok[0].data).to.tag == parse(ringing[0].data).to.tag
    assert invite_tid is not None
    net.server.send_response(invite_tid, net.server.create_response(invite_tid, 487), net.now)
    net.flush()
    got = [(e.tid, e.response.status) for e in responses(net.client_events)]
    assert got == [(tid, 100), (tid, 180), (cancel_tid, 200), (tid, 487)]
    assert len(packets(net, "ACK", "c2s")) == 1


def test_cancel_before_any_provisional_waits_for_one() -> None:
    """§9.1: a CANCEL must not be sent before a provisional response arrived."""
    net = Network(server_config={"auto_100": False})
    tid = net.client.send_request(make_request("INVITE"), net.server_peer, net.now)
    net.flush()
    cancel_tid = net.client.cancel(tid, net.now)
    net.flush()
    assert cancel_tid is not None and packets(net, "CANCEL", "c2s") == []
    answer(net, 183)
    assert len(packets(net, "CANCEL", "c2s")) == 1
    assert [e.tid for e in net.server_events if isinstance(e, CancelReceived)] == [requests(net.server_events)[0].tid]


def test_pending_cancel_is_dropped_when_the_final_response_comes_first() -> None:
    net = Network(server_config={"auto_100": False})
    tid = net.client.send_request(make_request("INVITE"), net.server_peer, net.now)
    net.flush()
    cancel_tid = net.client.cancel(tid, net.now)
    answer(net, 486)
    assert packets(net, "CANCEL", "c2s") == []
    assert TransactionTerminated(tid=cancel_tid) in net.client_events  # type: ignore[arg-type]
    assert net.client.cancel(tid, net.now) == cancel_tid


def test_cancel_of_nothing_returns_none() -> None:
    net = Network()
    assert net.client.cancel("nope|INVITE", 0.0) is None
    opt = net.client.send_request(make_request("OPTIONS"), net.server_peer, 0.0)
    assert net.client.cancel(opt, 0.0) is None
    inv = net.client.send_request(make_request("INVITE", call_id="c2"), net.server_peer, 0.0)
    net.flush()
    answer(net, 486)
    assert net.client.cancel(inv, net.now) is None


def test_cancel_without_matching_invite_gets_481_statefully() -> None:
    layer = make_layer(*SERVER)
    src = Peer("udp", *CLIENT)
    cancel = wire_request("CANCEL", branch="z9hG4bK-unknown")
    layer.receive(cancel, src, 0.0)
    layer.receive(cancel, src, 0.5)  # retransmission: same answer from the NIST
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["481", "481"]
    assert drain_events(layer) == []
    assert layer.stats.rejected == {481: 1}


def test_cancel_after_the_final_response_is_answered_200_without_effect() -> None:
    layer = make_layer(*SERVER)
    src = Peer("udp", *CLIENT)
    layer.receive(wire_request("INVITE"), src, 0.0)
    [ev] = requests(drain_events(layer))
    assert ev.tid is not None
    layer.send_response(ev.tid, layer.create_response(ev.tid, 486), 0.1)
    layer.datagrams_to_send()
    layer.receive(wire_request("CANCEL"), src, 0.2)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["200"]
    assert drain_events(layer) == []


def test_cancel_guard_gives_up_on_the_invite_after_64_t1() -> None:
    """§9.1: no final response 64*T1 after the CANCEL: the INVITE transaction is destroyed."""
    net = Network()
    tid = net.client.send_request(make_request("INVITE"), net.server_peer, net.now)
    net.flush()
    net.advance(10.0)
    net.client.cancel(tid, net.now)
    net.flush()
    net.advance(100.0)  # the server TU never answers the INVITE
    timeouts = [e for e in net.client_events if isinstance(e, TransactionTimeout)]
    assert timeouts == [TransactionTimeout(tid=tid, timer="B")]
    terminated_at = [p for p in net.log if p.short == "CANCEL"][0].time + 32.0
    assert terminated_at == 42.0 and net.client.transaction_state(tid) is None


def test_cancel_must_use_cancel_not_send_request() -> None:
    layer = make_layer(*CLIENT)
    with pytest.raises(TransactionError):
        layer.send_request(make_request("CANCEL"), Peer("udp", *SERVER), 0.0)


# ---------------------------------------------------------------------------- server-side checks


def test_auto_100_trying_is_sent_at_once_without_to_tag() -> None:
    """§17.2.1 / §8.2.6.1: 100 Trying carries the Timestamp and no To tag."""
    layer = make_layer(*SERVER, server_header="sw/1")
    layer.receive(wire_request("INVITE", extra=(("Timestamp", "54"),)), Peer("udp", *CLIENT), 0.0)
    [(data, dest)] = layer.datagrams_to_send()
    trying = parse(data)
    assert isinstance(trying, Response) and trying.status == 100
    assert trying.to.tag is None and trying.headers.get("Timestamp") == "54"
    assert trying.headers.get("Server") == "sw/1"
    assert dest == Peer("udp", *CLIENT)
    off = make_layer(*SERVER, auto_100=False)
    off.receive(wire_request("INVITE"), Peer("udp", *CLIENT), 0.0)
    assert off.datagrams_to_send() == []
    # Non-INVITE requests never get an automatic 100.
    layer.receive(wire_request("OPTIONS", branch="z9hG4bK-o"), Peer("udp", *CLIENT), 0.0)
    assert layer.datagrams_to_send() == []


def test_rport_and_received_through_a_nat() -> None:
    """RFC 3581 §4: received and rport are filled in; responses go to the source address and port."""
    net = Network(client_public=("203.0.113.5", 40000))
    net.client.send_request(make_request("OPTIONS"), net.server_peer, net.now)
    net.flush()
    [ev] = requests(net.server_events)
    via = ev.request.top_via
    assert (via.host, via.port, via.received, via.rport) == ("10.0.0.1", 5060, "203.0.113.5", 40000)
    answer(net, 200)
    assert net.misrouted == [] and statuses(net.client_events) == [200]
    assert packets(net, "200", "s2c")[0].dest == Peer("udp", "203.0.113.5", 40000)
    # The client accepts it: the top Via is still its own sent-by.


def test_received_without_rport_uses_the_via_port() -> None:
    """§18.2.2: without rport the response goes to received + the sent-by port."""
    layer = make_layer(*SERVER)
    layer.receive(wire_request("OPTIONS"), Peer("udp", "203.0.113.5", 40000), 0.0)
    [ev] = requests(drain_events(layer))
    assert ev.request.top_via.received == "203.0.113.5" and "rport" not in ev.request.top_via.params
    assert ev.tid is not None
    layer.send_response(ev.tid, layer.create_response(ev.tid, 200), 0.0)
    assert layer.datagrams_to_send()[0][1] == Peer("udp", "203.0.113.5", 5060)


def test_no_received_when_the_source_matches_the_via() -> None:
    layer = make_layer(*SERVER)
    layer.receive(wire_request("OPTIONS"), Peer("udp", *CLIENT), 0.0)
    [ev] = requests(drain_events(layer))
    assert ev.request.top_via.params == {"branch": "z9hG4bK-client-1"}
    assert ev.request.headers.get_lines("Via") == [f"SIP/2.0/UDP {CLIENT[0]}:{CLIENT[1]};branch=z9hG4bK-client-1"]


def test_rport_is_filled_even_when_the_host_matches() -> None:
    layer = make_layer(*SERVER)
    layer.receive(wire_request("OPTIONS", rport=True), Peer("udp", CLIENT[0], 5070), 0.0)
    [ev] = requests(drain_events(layer))
    assert ev.request.top_via.params == {"branch": "z9hG4bK-client-1", "rport": "5070", "received": CLIENT[0]}


@pytest.mark.parametrize(
    "via,source,expected",
    [
        ("SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKa", Peer("tcp", "10.0.0.1", 50123, 9), Peer("tcp", "10.0.0.1", 50123, 9)),
        ("SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKa", Peer("tcp", "10.0.0.1", 50123), Peer("tcp", "10.0.0.1", 5060)),
        ("SIP/2.0/TLS 10.0.0.1;branch=z9hG4bKa", Peer("tls", "10.0.0.1", 50123), Peer("tls", "10.0.0.1", 5061)),
        ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa;maddr=224.0.1.75", Peer("udp", "10.0.0.1", 5060), Peer("udp", "10.0.0.1", 5060)),
        ("SIP/2.0/UDP host.example.com:5070;branch=z9hG4bKa", Peer("udp", "10.0.0.1", 5090), Peer("udp", "10.0.0.1", 5070)),
        ("SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKa", Peer("udp", "2001:db8::1", 5070), Peer("udp", "2001:db8::1", 5070)),
    ],
)
def test_response_destination(via: str, source: Peer, expected: Peer) -> None:
    """§18.2.2: the same connection for streams, else the source address (a sender's maddr is
    ignored: see test_txn_reflection) at the sent-by port or 5060/5061."""
    layer = make_layer(*SERVER)
    req = make_request("OPTIONS")
    req.headers.add("Via", via, first=True)
    if source.host != req.top_via.host.strip("[]"):
        req.headers.replace_first_element("Via", f"{via};received={source.host}")
    assert layer.response_destination(req, source) == expected


def test_max_forwards_zero_gets_483_except_options() -> None:
    """§16.3 / §8.2: 483 Too Many Hops; OPTIONS is left to the TU (it may answer for the hop)."""
    layer = make_layer(*SERVER)
    src = Peer("udp", *CLIENT)
    invite = wire_request("INVITE").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    layer.receive(invite, src, 0.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["483"]
    assert drain_events(layer) == []
    # The 483 went through an IST: a retransmitted INVITE gets the 483 again and its ACK is absorbed.
    layer.receive(invite, src, 0.1)
    [(data, _)] = layer.datagrams_to_send()
    too_many = parse(data)
    assert isinstance(too_many, Response) and too_many.status == 483
    layer.receive(wire_request("ACK", to_tag=too_many.to.tag), src, 0.15)
    assert drain_events(layer) == []
    assert layer.transaction_state("z9hG4bK-client-1|10.0.0.1:5060|INVITE") is State.CONFIRMED
    options = wire_request("OPTIONS", branch="z9hG4bK-o").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    layer.receive(options, src, 0.2)
    assert [e.request.method for e in requests(drain_events(layer))] == ["OPTIONS"]
    assert layer.stats.rejected == {483: 1}


def test_loop_is_detected_from_our_own_via() -> None:
    """§16.3 item 4 / §8.2.2.2: a request carrying our sent-by and a live branch of ours came back."""
    layer = make_layer(*CLIENT)
    proxy = Peer("udp", "10.0.0.5", 5060)
    layer.send_request(make_request("OPTIONS"), proxy, 0.0)
    sent = parse(layer.datagrams_to_send()[0][0])
    assert isinstance(sent, Request)
    sent.headers.add("Via", "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-proxy", first=True)
    layer.receive(sent.to_bytes(), proxy, 0.1)
    out = layer.datagrams_to_send()
    assert [short(d) for d, _ in out] == ["482"] and out[0][1] == proxy
    assert parse(out[0][0]).to.tag is not None
    assert requests(drain_events(layer)) == []
    assert layer.stats.rejected == {482: 1}


def test_request_sent_to_ourselves_is_a_loop() -> None:
    layer = make_layer(*CLIENT)
    me = Peer("udp", *CLIENT)
    layer.send_request(make_request("OPTIONS"), me, 0.0)
    data, _ = layer.datagrams_to_send()[0]
    layer.receive(data, me, 0.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["482"]


def test_merged_request_gets_482() -> None:
    """§8.2.2.2: no To tag, same From tag, Call-ID and CSeq as a live transaction, other branch."""
    layer = make_layer(*SERVER)
    layer.receive(wire_request("INVITE", branch="z9hG4bK-path-1"), Peer("udp", "10.0.0.7", 5060), 0.0)
    layer.receive(
        wire_request("INVITE", branch="z9hG4bK-path-2", via_host="10.0.0.8"), Peer("udp", "10.0.0.8", 5060), 0.0
    )
    out = [(short(d), p.host) for d, p in layer.datagrams_to_send()]
    assert out == [("100", "10.0.0.7"), ("482", "10.0.0.8")]
    assert len(requests(drain_events(layer))) == 1
    # A different CSeq (a new request) is not merged.
    layer.receive(wire_request("INVITE", branch="z9hG4bK-path-3", cseq=2), Peer("udp", "10.0.0.7", 5060), 0.0)
    assert len(requests(drain_events(layer))) == 1
    assert layer.transaction_state("z9hG4bK-path-1|10.0.0.1:5060|INVITE") is State.PROCEEDING
    assert layer.transaction_state("z9hG4bK-path-2|10.0.0.8:5060|INVITE") is State.COMPLETED


def test_unsupported_require_gets_420_with_unsupported() -> None:
    """§8.2.2.3."""
    layer = make_layer(*SERVER, supported=frozenset({"100rel", "timer"}))
    src = Peer("udp", *CLIENT)
    layer.receive(wire_request("INVITE", extra=(("Require", "100rel, foo, bar"),)), src, 0.0)
    [(data, _)] = layer.datagrams_to_send()
    resp = parse(data)
    assert isinstance(resp, Response) and resp.status == 420
    assert resp.headers.get("Unsupported") == "foo, bar"
    assert drain_events(layer) == []
    layer.receive(wire_request("INVITE", branch="z9hG4bK-2", cseq=2, extra=(("Require", "timer"),)), src, 0.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["100"]
    # ACK and CANCEL are never refused for Require.
    layer.receive(wire_request("CANCEL", branch="z9hG4bK-2", cseq=2, extra=(("Require", "foo"),)), src, 0.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["200"]


# ---------------------------------------------------------------------------- RFC 2543 fallback


def test_rfc2543_requests_are_matched_without_a_branch() -> None:
    """§17.2.3: no magic cookie → match on Request-URI, tags, Call-ID, CSeq and top Via."""
    layer = make_layer(*SERVER)
    src = Peer("udp", *CLIENT)
    invite = wire_request("INVITE", branch=None)
    layer.receive(invite, src, 0.0)
    [ev] = requests(drain_events(layer))
    assert ev.tid is not None and ev.tid.startswith("2543|")
    layer.datagrams_to_send()
    layer.receive(invite, src, 0.1)  # retransmission → the last provisional again
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["100"]
    assert drain_events(layer) == []
    resp = layer.create_response(ev.tid, 486)
    layer.send_response(ev.tid, resp, 0.2)
    layer.datagrams_to_send()
    # An ACK with another To tag is not for this transaction: it goes to the TU.
    layer.receive(wire_request("ACK", branch=None, to_tag="someone-else"), src, 0.3)
    assert [e.tid for e in requests(drain_events(layer))] == [None]
    assert layer.transaction_state(ev.tid) is State.COMPLETED
    layer.receive(wire_request("ACK", branch=None, to_tag=resp.to.tag), src, 0.4)
    assert drain_events(layer) == [] and layer.transaction_state(ev.tid) is State.CONFIRMED
    # A branch that is only the cookie is not an RFC 3261 branch either.
    layer.receive(wire_request("OPTIONS", branch="z9hG4bK"), src, 0.5)
    [opt] = requests(drain_events(layer))
    assert opt.tid is not None and opt.tid.startswith("2543|")


def test_rfc2543_cancel_matches_the_invite() -> None:
    layer = make_layer(*SERVER)
    src = Peer("udp", *CLIENT)
    layer.receive(wire_request("INVITE", branch="old-style-1"), src, 0.0)
    [ev] = requests(drain_events(layer))
    layer.datagrams_to_send()
    layer.receive(wire_request("CANCEL", branch="old-style-1"), src, 0.1)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["200"]
    [cancel_ev] = drain_events(layer)
    assert isinstance(cancel_ev, CancelReceived) and cancel_ev.tid == ev.tid and cancel_ev.cancel.method == "CANCEL"


# ---------------------------------------------------------------------------- malformed input


def test_malformed_request_gets_a_stateless_400() -> None:
    layer = make_layer(*SERVER)
    bad = wire_request("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS")
    layer.receive(bad, Peer("udp", "203.0.113.5", 40000), 0.0)
    [(data, dest)] = layer.datagrams_to_send()
    resp = parse(data)
    assert isinstance(resp, Response) and resp.status == 400
    assert dest == Peer("udp", "203.0.113.5", 5060)  # received + Via port (§18.2.2)
    assert resp.top_via.received == "203.0.113.5"
    assert layer.live_transactions == 0 and drain_events(layer) == []
    assert layer.stats.rejected == {400: 1}


def test_cseq_method_mismatch_is_400() -> None:
    layer = make_layer(*SERVER)
    bad = wire_request("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    layer.receive(bad, Peer("udp", *CLIENT), 0.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["400"]


def test_unsupported_uri_scheme_is_416() -> None:
    layer = make_layer(*SERVER)
    bad = wire_request("OPTIONS", ruri="http://example.com/")
    layer.receive(bad, Peer("udp", *CLIENT), 0.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["416"]


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"\x00\x01garbage\r\n\r\n", Drop.MALFORMED),
        (b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nCall-ID: x\r\n\r\n", Drop.MALFORMED),  # no Via: nowhere to answer
    ],
)
def test_unanswerable_requests_are_dropped(data: bytes, reason: str) -> None:
    layer = make_layer(*SERVER)
    layer.receive(data, Peer("udp", *CLIENT), 0.0)
    assert layer.datagrams_to_send() == [] and drain_events(layer) == []
    assert layer.stats.dropped == {reason: 1}


def test_malformed_ack_is_never_answered() -> None:
    layer = make_layer(*SERVER)
    bad = wire_request("ACK").replace(b"CSeq: 1 ACK", b"CSeq: x ACK")
    layer.receive(bad, Peer("udp", *CLIENT), 0.0)
    assert layer.datagrams_to_send() == [] and layer.stats.dropped == {Drop.MALFORMED_ACK: 1}


def test_malformed_and_foreign_responses_are_dropped() -> None:
    """§18.1.2: a response whose top Via is not ours is discarded; so is a broken one."""
    layer = make_layer(*CLIENT)
    layer.send_request(make_request("OPTIONS"), Peer("udp", *SERVER), 0.0)
    sent = layer.datagrams_to_send()[0][0]
    from .txn_helpers import response_bytes

    good = response_bytes(sent, 200)
    layer.receive(good.replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS"), Peer("udp", *SERVER), 0.1)
    layer.receive(good.replace(b"10.0.0.1:5060", b"10.9.9.9:5060"), Peer("udp", *SERVER), 0.1)
    layer.receive(b"SIP/2.0 200\r\ngarbage", Peer("udp", *SERVER), 0.1)
    assert drain_events(layer) == []
    assert layer.stats.dropped == {Drop.MALFORMED_RESPONSE: 1, Drop.FOREIGN_VIA: 1, Drop.MALFORMED: 1}
    layer.receive(good, Peer("udp", *SERVER), 0.2)
    assert statuses(drain_events(layer)) == [200]


# ---------------------------------------------------------------------------- TU-facing API


def test_send_request_adds_via_and_max_forwards() -> None:
    layer = make_layer(*CLIENT)
    req = make_request("OPTIONS")
    tid = layer.send_request(req, Peer("udp", *SERVER), 0.0)
    via = req.top_via
    assert (via.transport, via.host, via.port, "rport" in via.params) == ("UDP", CLIENT[0], CLIENT[1], True)
    assert via.branch is not None and via.branch.startswith("z9hG4bK") and tid == f"{via.branch}|OPTIONS"
    assert req.max_forwards == 70
    req2 = make_request("OPTIONS", extra=(("Max-Forwards", "10"),))
    tid2 = layer.send_request(req2, Peer("udp", *SERVER), 0.0)
    assert req2.max_forwards == 10 and tid2 != tid
    with pytest.raises(TransactionError):
        layer.send_request(make_request("OPTIONS"), Peer("tls", *SERVER), 0.0)  # no TLS Via address


def test_ack_via_send_request_is_stateless() -> None:
    layer = make_layer(*CLIENT)
    ack = make_request("ACK", to_tag="t")
    assert layer.send_request(ack, Peer("udp", *SERVER), 0.0) == ""
    assert layer.live_transactions == 0
    [(data, dest)] = layer.datagrams_to_send()
    assert short(data) == "ACK" and dest == Peer("udp", *SERVER)
    assert ack.top_via.branch is not None and ack.top_via.branch.startswith("z9hG4bK")
    # Re-sending the same ACK (for a retransmitted 2xx) does not add a second Via.
    layer.send_stateless(ack, Peer("udp", *SERVER))
    [(again, _)] = layer.datagrams_to_send()
    assert again == data


def test_send_stateless_adds_a_via_only_when_missing() -> None:
    layer = make_layer(*CLIENT)
    ack = make_request("ACK", to_tag="t")
    layer.send_stateless(ack, Peer("udp", *SERVER))
    assert len(ack.vias) == 1
    resp = Response(200, headers=Headers.of([("Via", "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx")]))
    layer.send_stateless(resp, Peer("udp", "10.0.0.9", 5060))
    assert layer.datagrams_to_send()[-1] == (resp.to_bytes(), Peer("udp", "10.0.0.9", 5060))


def test_send_response_refusals_are_counted_not_raised() -> None:
    """§17.2.2: further final responses from the TU are discarded; a gone transaction too."""
    layer = make_layer(*SERVER)
    layer.receive(wire_request("REGISTER"), Peer("udp", *CLIENT), 0.0)
    [ev] = requests(drain_events(layer))
    assert ev.tid is not None
    late = layer.create_response(ev.tid, 500)
    assert layer.send_response(ev.tid, layer.create_response(ev.tid, 200), 0.0) is True
    assert layer.send_response(ev.tid, late, 0.0) is False
    assert layer.send_response("gone|x|REGISTER", late, 0.0) is False
    with pytest.raises(TransactionError):  # a completed NIST keeps only the response bytes
        layer.create_response(ev.tid, 500)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["200"]
    assert layer.stats.dropped == {Drop.LATE_TU_RESPONSE: 1, Drop.UNKNOWN_TRANSACTION: 1}
    with pytest.raises(TransactionError):
        layer.create_response("gone|x|REGISTER", 200)


def test_create_response_uses_one_to_tag_per_transaction() -> None:
    layer = make_layer(*SERVER)
    layer.receive(wire_request("INVITE"), Peer("udp", *CLIENT), 0.0)
    [ev] = requests(drain_events(layer))
    assert ev.tid is not None
    r1, r2 = layer.create_response(ev.tid, 180), layer.create_response(ev.tid, 486)
    assert r1.to.tag == r2.to.tag is not None
    assert layer.server_request(ev.tid) is ev.request
    assert layer.server_request("nope") is None


def test_transport_error_ends_the_transactions_to_that_peer() -> None:
    layer = make_layer(*CLIENT)
    a = layer.send_request(make_request("OPTIONS"), Peer("udp", *SERVER), 0.0)
    b = layer.send_request(make_request("INVITE"), Peer("udp", "10.0.0.3", 5060), 0.0)
    assert layer.transport_error(Peer("udp", *SERVER), 1.0) == 1
    assert drain_events(layer) == [TransportError(tid=a), TransactionTerminated(tid=a)]
    assert layer.transaction_state(b) is State.CALLING


def test_tcp_flow_uses_the_connection_and_never_retransmits() -> None:
    net = Network(transport="tcp")
    tid = net.client.send_request(make_request("INVITE"), net.server_peer, net.now)
    net.flush()
    answer(net, 486)
    assert net.sent() == ["INVITE", "100", "486", "ACK"]
    assert all(p.dest.conn == CONN_ID for p in net.log if p.direction == "s2c")
    # Reliable: D, I are zero, so both sides are already finished.
    assert net.client.transaction_state(tid) is None
    assert net.server.live_transactions == 0
    net.advance(100.0)
    assert net.sent() == ["INVITE", "100", "486", "ACK"]


def test_2xx_retransmission_can_be_left_to_the_tu() -> None:
    """With retransmit_2xx off, the TU re-sends the 2xx itself through the Accepted IST."""
    net = Network(server_config={"retransmit_2xx": False})
    net.client.send_request(make_request("INVITE"), net.server_peer, net.now)
    net.flush()
    ok = answer(net, 200)
    net.advance(5.0)
    assert len(packets(net, "200", "s2c")) == 1
    tid = requests(net.server_events)[0].tid
    assert tid is not None and net.server.send_response(tid, ok, net.now)
    net.flush()
    assert len(packets(net, "200", "s2c")) == 2
    net.advance(100.0)
    assert [e for e in net.server_events if isinstance(e, TransactionTimeout)] == []


def test_counters() -> None:
    net = Network(fate=drop_matching("OPTIONS", "c2s"))
    net.client.send_request(make_request("OPTIONS"), net.server_peer, net.now)
    net.advance(1.0)
    answer(net, 200)
    assert net.client.stats.retransmissions == 1
    assert net.client.stats.sent == 2 and net.server.stats.received == 1
    # both completed transactions are lingering records (client: Timer K, server: Timer J)
    assert net.client.live_transactions == 0 and net.client.lingering == 1
    # (two records: the 200 for retransmissions, and the request's merge key, §8.2.2.2)
    assert net.server.live_server_transactions == 0 and net.server.lingering == 2


def test_custom_t1_speeds_up_everything() -> None:
    net = Network(timers=TimerConfig(t1=0.1, t2=0.8, t4=1.0), fate=lambda p: "drop" if p.direction == "c2s" else "deliver")
    net.client.send_request(make_request("OPTIONS"), net.server_peer, net.now)
    net.advance(10.0)
    times = [round(p.time, 6) for p in packets(net, "OPTIONS", "c2s")]
    assert times == [0.0, 0.1, 0.3, 0.7, 1.5, 2.3, 3.1, 3.9, 4.7, 5.5, 6.3]
    assert [e for e in net.client_events if isinstance(e, TransactionTimeout)][0].timer == "F"


def test_the_layers_own_transactions_stay_silent() -> None:
    """Rejections and CANCEL answers run in server transactions the TU never heard of:
    no TransactionTerminated for them, but every tid the TU was given ends with one."""
    layer = make_layer(*SERVER)
    src = Peer("udp", *CLIENT)
    layer.receive(wire_request("INVITE", branch="z9hG4bK-a"), src, 0.0)  # → TU
    layer.receive(wire_request("OPTIONS", branch="z9hG4bK-b", extra=(("Require", "x"),)), src, 0.0)  # → 420
    layer.receive(wire_request("CANCEL", branch="z9hG4bK-a"), src, 0.0)  # → 200 + CancelReceived
    layer.receive(wire_request("CANCEL", branch="z9hG4bK-c"), src, 0.0)  # → 481
    [invite] = requests(drain_events(layer))
    assert invite.tid is not None
    layer.send_response(invite.tid, layer.create_response(invite.tid, 487), 0.1)
    layer.receive(wire_request("ACK", branch="z9hG4bK-a", to_tag=layer.create_response(invite.tid, 487).to.tag), src, 0.2)
    layer.handle_timer(1000.0)
    assert drain_events(layer) == [TransactionTerminated(tid=invite.tid)]
    assert layer.live_transactions == 0


def test_malformed_header_found_while_screening_gets_400() -> None:
    layer = make_layer(*SERVER)
    layer.receive(wire_request("OPTIONS", extra=(("Require", '"unterminated'),)), Peer("udp", *CLIENT), 0.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["400"]
    assert drain_events(layer) == [] and layer.live_transactions == 0
