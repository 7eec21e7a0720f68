"""Property tests: whole transactions over a wire that loses and duplicates packets at random.

Hypothesis picks the loss and duplication rates, the seed of the wire, the
method and the final status. Scripted TUs on both sides answer at once (the
server) and ACK every 2xx (the client). Whatever the wire does, the RFC 3261
guarantees must hold: one request per transaction for the server TU, at most
one non-2xx final for the client TU, a timeout exactly when nothing got
through, the server's ACK timeout exactly when no ACK got through, and every
transaction gone once the timers have run out.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.transaction import RequestReceived, ResponseReceived, State, TransactionTimeout
from switch.sip.transaction.events import Event

from .txn_helpers import Network, Packet, make_request


def _server_tu(final: int):  # type: ignore[no-untyped-def]
    def tu(net: Network, ev: Event) -> None:
        if isinstance(ev, RequestReceived) and ev.tid is not None:
            if ev.request.method == "INVITE":
                net.server.send_response(ev.tid, net.server.create_response(ev.tid, 180), net.now)
            net.server.send_response(ev.tid, net.server.create_response(ev.tid, final), net.now)

    return tu


def _client_tu(net: Network, ev: Event) -> None:
    # §13.2.2.4: the UAC core ACKs every 2xx to an INVITE (a new transaction each time).
    if isinstance(ev, ResponseReceived) and ev.response.cseq.method == "INVITE" and 200 <= ev.response.status < 300:
        ack = make_request("ACK", to_tag=ev.response.to.tag)
        net.client.send_request(ack, net.server_peer, net.now)


def delivered(net: Network, what: str, direction: str, before: float = float("inf")) -> int:
    return sum(p.copies for p in net.log if p.short == what and p.direction == direction and p.time < before)


#: Timer B / F of the client transaction started at t=0 (64*T1, T1 = 0.5 s). A copy that
#: lands at that very instant meets a transaction that has just timed out.
CLIENT_GIVES_UP = 32.0


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["OPTIONS", "INVITE"]),
    final=st.sampled_from([200, 486]),
    loss=st.floats(0.0, 0.7),
    dup=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**32 - 1),
)
def test_transactions_survive_loss_and_duplication(method: str, final: int, loss: float, dup: float, seed: int) -> None:
    rng = random.Random(seed)

    def fate(pkt: Packet) -> str:
        r = rng.random()
        return "drop" if r < loss else "dup" if r < loss + dup else "deliver"

    net = Network(fate=fate, server_tu=_server_tu(final if method == "INVITE" else (200 if final == 200 else 404)),
                  client_tu=_client_tu)
    tid = net.client.send_request(make_request(method), net.server_peer, 0.0)
    net.advance(300.0)
    final_code = final if method == "INVITE" else (200 if final == 200 else 404)

    # The server TU sees the request once, if any copy arrived.
    new_requests = [e for e in net.server_events if isinstance(e, RequestReceived) and e.request.method == method]
    assert len(new_requests) == (1 if delivered(net, method, "c2s") else 0)

    finals = [e.response.status for e in net.client_events
              if isinstance(e, ResponseReceived) and e.response.status >= 200]
    timeouts = [e for e in net.client_events if isinstance(e, TransactionTimeout) and e.tid == tid]
    final_copies = delivered(net, str(final_code), "s2c")
    provisional = method == "INVITE" and (
        delivered(net, "100", "s2c", CLIENT_GIVES_UP) + delivered(net, "180", "s2c", CLIENT_GIVES_UP)
    )
    # A provisional in time stops Timer B (§17.1.1.2): then the transaction waits for ever.
    in_time = delivered(net, str(final_code), "s2c", before=float("inf") if provisional else CLIENT_GIVES_UP)
    if method == "INVITE" and final_code == 200:
        # Every 2xx copy that reached the client reaches its TU (RFC 6026), here within Timer M.
        assert finals == [200] * final_copies
    else:
        assert finals == ([final_code] if in_time else [])
    # A timeout exactly when no final response got through in time -- except that an INVITE
    # which already had a provisional has no Timer B (§17.1.1.2): it waits for the TU to give up.
    if in_time:
        assert timeouts == []
    elif provisional:
        assert timeouts == [] and net.client.transaction_state(tid) is State.PROCEEDING
        net.client.cancel(tid, net.now)  # the TU gives up; §9.1 Timer B then ends it
        net.advance(600.0)
        assert [e.timer for e in net.client_events if isinstance(e, TransactionTimeout)] == ["B"]
    else:
        assert [e.timer for e in timeouts] == ["B" if method == "INVITE" else "F"]

    # The server's INVITE transaction reports a missing ACK exactly when none arrived.
    if method == "INVITE" and new_requests:
        ack_timeouts = [e.timer for e in net.server_events if isinstance(e, TransactionTimeout)]
        acked = delivered(net, "ACK", "c2s") > 0
        assert ack_timeouts == ([] if acked else ["L" if final_code == 200 else "H"])

    # Nothing is left behind.
    assert net.server.live_transactions == 0 and net.server.get_timer() is None
    assert net.client.live_transactions == 0 and net.client.get_timer() is None


@settings(max_examples=30, deadline=None)
@given(method=st.sampled_from(["OPTIONS", "INVITE", "REGISTER"]), final=st.sampled_from([200, 404, 486]))
def test_transactions_over_tcp_send_each_message_once(method: str, final: int) -> None:
    net = Network(transport="tcp", server_tu=_server_tu(final), client_tu=_client_tu)
    net.client.send_request(make_request(method), net.server_peer, 0.0)
    net.advance(300.0)
    counts: dict[str, int] = {}
    for p in net.log:
        counts[p.short] = counts.get(p.short, 0) + 1
    if method == "INVITE" and final == 200:
        # §13.3.1.4: the 2xx is retransmitted even on TCP until the ACK; here the ACK arrives at once.
        assert counts == {"INVITE": 1, "100": 1, "180": 1, "200": 1, "ACK": 1}
    elif method == "INVITE":
        assert counts == {"INVITE": 1, "100": 1, "180": 1, str(final): 1, "ACK": 1}
    else:
        assert counts == {method: 1, str(final): 1}
    assert net.client.live_transactions == 0 and net.server.live_transactions == 0
