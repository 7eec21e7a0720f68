"""Lingering records (transaction/linger.py): a finished transaction's last Timer J / M without its object.

The records must answer exactly what the transaction in Completed (NIST) or
Accepted (ICT) would have answered, for exactly as long, and then be gone.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.message import Request, response_for
from switch.sip.transaction import LateAnswer, Peer, RequestReceived, ResponseReceived, TransactionLayer
from switch.sip.transaction.linger import GRACE, Lingering

from .txn_helpers import (
    CLIENT,
    SERVER,
    drain_events,
    make_layer,
    make_request,
    response_bytes,
    short,
    wire_request,
)

A = Peer("udp", "10.0.0.9", 5060)
B = Peer("udp", "10.0.0.8", 5070)


# ---------------------------------------------------------------------------- the record store


def test_a_record_is_found_until_its_deadline_and_released_after() -> None:
    lg = Lingering()
    lg.add("k1", b"answer", A, 10.0, b"note")
    rec = lg.find("k1", 9.99)
    assert rec is not None and (rec.payload, rec.peer, rec.note) == (b"answer", A, b"note")
    assert lg.find("k1", 10.0) is None  # the deadline itself is past (as a timer firing at it)
    assert lg.find("k2", 5.0) is None
    assert lg.next_deadline() == 10.0 + GRACE
    assert lg.expire(10.0) == 1 and len(lg) == 0 and lg.next_deadline() is None


def test_a_newer_record_for_the_same_key_wins() -> None:
    lg = Lingering()
    lg.add("k", b"old", A, 10.0)
    lg.add("k", b"new", B, 20.0)
    rec = lg.find("k", 15.0)
    assert rec is not None and (rec.payload, rec.peer) == (b"new", B)


def test_keys_are_compared_in_full_and_non_ascii_keys_work() -> None:
    lg = Lingering()
    lg.add("z9hG4bKæøå|host|BYE", b"x", A, 10.0)
    assert lg.find("z9hG4bKæøå|host|BYE", 1.0) is not None
    assert lg.find("z9hG4bKæøå|host|BYF", 1.0) is None


def test_a_burst_is_released_and_the_buffers_shrink() -> None:
    lg = Lingering()
    for i in range(20_000):
        lg.add(f"branch-{i}|10.0.0.1:5060|BYE", b"SIP/2.0 200 OK\r\n" * 20, A, 32.0 + i / 1000)
    assert len(lg) == 20_000 and lg.buffered_bytes > 20_000 * 300
    assert lg.find("branch-19999|10.0.0.1:5060|BYE", 40.0) is not None
    lg.expire(100.0)
    assert len(lg) == 0 and lg.buffered_bytes == 0
    assert lg.find("branch-19999|10.0.0.1:5060|BYE", 40.0) is None
    lg.add("again", b"y", A, 200.0)  # still usable after the cut
    assert lg.find("again", 150.0) is not None


ops = st.lists(
    st.tuples(st.sampled_from(["add", "find", "expire"]), st.integers(0, 40), st.floats(0, 5)),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_behaves_like_a_dict_of_deadlines(script: list[tuple[str, int, float]]) -> None:
    """Against a plain model: a key is found while its newest record's deadline is in the future."""
    lg = Lingering()
    model: dict[str, tuple[bytes, float]] = {}
    now = 0.0
    for op, k, dt in script:
        key = f"key-{k}"
        now += dt / 10
        if op == "add":
            until = now + dt
            lg.add(key, key.encode(), A, until)
            model[key] = (key.encode(), until)
        elif op == "find":
            rec = lg.find(key, now)
            want = model.get(key)
            if want is None or want[1] <= now:
                assert rec is None
            else:
                assert rec is not None and rec.payload == want[0]
        else:
            lg.expire(now)
            # expire only releases the past; nothing live may disappear
            for mk, (payload, until) in model.items():
                if until > now:
                    found = lg.find(mk, now)
                    assert found is not None and found.payload == payload


# ---------------------------------------------------------------------------- NIST: Completed as a record


def _answered(method: str = "BYE", to_tag: str | None = "t") -> tuple[TransactionLayer, str, Request]:
    layer = make_layer(*SERVER)
    layer.receive(wire_request(method, to_tag=to_tag), Peer("udp", *CLIENT), 0.0)
    [ev] = drain_events(layer)
    assert isinstance(ev, RequestReceived) and ev.tid is not None
    layer.send_response(ev.tid, layer.create_response(ev.tid, 200), 0.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["200"]
    return layer, ev.tid, ev.request


def test_a_retransmitted_request_gets_the_same_final_response_until_timer_j() -> None:
    layer, tid, _req = _answered()
    first = layer.lingering
    assert layer.live_server_transactions == 0 and first >= 1
    assert [type(e).__name__ for e in drain_events(layer)] == ["TransactionTerminated"]
    for t in (1.0, 31.9):
        layer.receive(wire_request("BYE", to_tag="t"), Peer("udp", *CLIENT), t)
        out = layer.datagrams_to_send()
        assert [short(d) for d, _ in out] == ["200"] and out[0][1] == Peer("udp", *CLIENT)
        assert drain_events(layer) == []  # absorbed: the TU never sees a retransmission
    assert layer.stats.retransmissions == 2 and layer.stats.absorbed == 2
    # After Timer J (64*T1 = 32 s) it is a new request again.
    layer.handle_timer(32.0 + GRACE)
    assert layer.lingering == 0
    layer.receive(wire_request("BYE", to_tag="t"), Peer("udp", *CLIENT), 33.0)
    assert [type(e).__name__ for e in drain_events(layer)] == ["RequestReceived"]


def test_a_second_final_from_the_tu_is_discarded_as_late() -> None:
    """§17.2.2: the TU's further finals are discarded -- counted as late, not as unknown."""
    layer, tid, req = _answered()
    assert layer.send_response(tid, response_for(req, 500, to_tag="t"), 1.0) is False
    assert layer.stats.dropped == {"late_tu_response": 1}
    assert layer.datagrams_to_send() == []


def test_a_merged_request_is_refused_while_the_first_one_lingers() -> None:
    """§8.2.2.2: same From tag, Call-ID and CSeq, another branch, no To tag -> 482."""
    layer, _tid, _req = _answered("OPTIONS", to_tag=None)
    drain_events(layer)
    layer.receive(wire_request("OPTIONS", to_tag=None, branch="z9hG4bK-other-path"), Peer("udp", *CLIENT), 5.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["482"]
    assert drain_events(layer) == []
    layer.handle_timer(40.0)
    layer.receive(wire_request("OPTIONS", to_tag=None, branch="z9hG4bK-third"), Peer("udp", *CLIENT), 41.0)
    assert [type(e).__name__ for e in drain_events(layer)] == ["RequestReceived"]


def test_tcp_keeps_nothing_after_the_final_response() -> None:
    """Timer J is zero on reliable transports (§17.2.2): no record either."""
    layer = make_layer(*SERVER, transport="tcp")
    src = Peer("tcp", *CLIENT, 3)
    layer.receive(wire_request("BYE", to_tag="t"), src, 0.0)
    [ev] = drain_events(layer)
    assert isinstance(ev, RequestReceived) and ev.tid is not None
    layer.send_response(ev.tid, layer.create_response(ev.tid, 200), 0.0)
    assert layer.lingering == 0 and layer.live_server_transactions == 0


def test_a_challenge_sent_statelessly_leaves_no_record() -> None:
    layer = make_layer(*SERVER)
    layer.receive(wire_request("REGISTER"), Peer("udp", *CLIENT), 0.0)
    [ev] = drain_events(layer)
    assert isinstance(ev, RequestReceived) and ev.tid is not None
    layer.send_response_and_forget(ev.tid, layer.create_response(ev.tid, 401), 0.0)
    assert layer.lingering == 0 and layer.get_timer() is None


# ---------------------------------------------------------------------------- ICT: Accepted handed over


def _accepted() -> tuple[TransactionLayer, str, bytes]:
    layer = make_layer(*CLIENT)
    tid = layer.send_request(make_request("INVITE"), A, 0.0)
    [(invite, _)] = layer.datagrams_to_send()
    layer.receive(response_bytes(invite, 200, to_tag="callee"), A, 0.1)
    [ev] = drain_events(layer)
    assert isinstance(ev, ResponseReceived) and ev.tid == tid
    return layer, tid, invite


def test_the_layer_acks_the_dialogs_retransmitted_2xx_and_hands_other_forks_up() -> None:
    layer, tid, invite = _accepted()
    assert layer.linger_client(tid, b"ACK our-bytes", "callee", b"seed", 0.2)
    assert layer.live_client_transactions == 0 and drain_events(layer) == []
    layer.receive(response_bytes(invite, 200, to_tag="callee"), A, 1.0)
    assert layer.datagrams_to_send() == [(b"ACK our-bytes", A)]
    assert drain_events(layer) == []
    layer.receive(response_bytes(invite, 200, to_tag="fork-2"), B, 2.0)
    [ev] = drain_events(layer)
    assert isinstance(ev, LateAnswer) and ev.tid == tid and ev.note == b"seed" and ev.peer == A
    assert ev.response.to.tag == "fork-2" and ev.source == B
    # After Timer M: a late 2xx is the TU's business again (tid "").
    layer.handle_timer(0.2 + 32.0 + GRACE)
    layer.receive(response_bytes(invite, 200, to_tag="callee"), A, 40.0)
    [late] = drain_events(layer)
    assert isinstance(late, ResponseReceived) and late.tid == ""


def test_only_an_accepted_invite_can_be_handed_over() -> None:
    layer = make_layer(*CLIENT)
    tid = layer.send_request(make_request("INVITE"), A, 0.0)
    assert not layer.linger_client(tid, b"ACK", "x", b"", 0.1)  # still Calling
    assert not layer.linger_client("nope|INVITE", b"ACK", "x", b"", 0.1)
    opt = layer.send_request(make_request("OPTIONS", call_id="o"), A, 0.0)
    assert not layer.linger_client(opt, b"ACK", "x", b"", 0.1)
    assert layer.live_client_transactions == 2


def test_a_cancel_for_an_answered_and_acked_invite_gets_200_with_its_tag() -> None:
    """§9.2: the INVITE transaction still exists (as a record): 200 to the CANCEL, nothing else."""
    layer = make_layer(*SERVER)
    src = Peer("udp", *CLIENT)
    layer.receive(wire_request("INVITE"), src, 0.0)
    [ev] = drain_events(layer)
    assert isinstance(ev, RequestReceived) and ev.tid is not None
    ok = layer.create_response(ev.tid, 200)
    layer.send_response(ev.tid, ok, 0.0)
    layer.receive(wire_request("ACK", branch="z9hG4bK-ack", to_tag=ok.to.tag), src, 0.1)
    layer.datagrams_to_send()
    drain_events(layer)
    assert layer.transaction(ev.tid) is None and layer.lingering >= 1
    layer.receive(wire_request("CANCEL"), src, 1.0)
    [(data, _)] = layer.datagrams_to_send()
    assert short(data) == "200" and f"tag={ok.to.tag}".encode() in data
    assert drain_events(layer) == []  # no CancelReceived: the INVITE has long been answered
    layer.handle_timer(10.0)
    layer.receive(wire_request("CANCEL", branch="z9hG4bK-late"), src, 11.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["481"]
