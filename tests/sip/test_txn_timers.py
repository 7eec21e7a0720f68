"""Timers A-M fire at the instants RFC 3261 §17 (Table 4) and RFC 6026 give, without sleeping.

Time only moves when a test calls ``handle_timer(get_timer())`` (aioquic's
style), so every deadline is asserted exactly.
"""

from __future__ import annotations

import pytest

from switch.sip.timers import TimerConfig, is_reliable
from switch.sip.transaction import Peer, RequestReceived, State, TransactionLayer, TransactionTimeout
from switch.sip.transaction.events import Event

from switch.sip.transaction.linger import GRACE

from .txn_helpers import drain_events, event_names, make_layer, make_request, response_bytes, short, wire_request

REMOTE_UDP = Peer("udp", "10.0.0.9", 5060)
REMOTE_TCP = Peer("tcp", "10.0.0.9", 5060)


def run(layer: TransactionLayer, until: float) -> list[tuple[float, str]]:
    """Fire timers up to ``until``; returns (time, what) for every datagram sent and event emitted."""
    out: list[tuple[float, str]] = []
    while (t := layer.get_timer()) is not None and t <= until:
        layer.handle_timer(t)
        out += [(t, short(d)) for d, _ in layer.datagrams_to_send()]
        out += [(t, name) for name in event_names(drain_events(layer))]
    return out


def times_of(timeline: list[tuple[float, str]], what: str) -> list[float]:
    return [t for t, w in timeline if w == what]


# ---------------------------------------------------------------------------- TimerConfig


def test_default_timer_values_follow_table_4() -> None:
    c = TimerConfig()
    assert (c.t1, c.t2, c.t4) == (0.5, 4.0, 5.0)
    assert (c.A, c.B, c.C, c.D, c.E, c.F, c.G, c.H, c.I, c.J, c.K, c.L, c.M) == (
        0.5, 32.0, 180.0, 32.0, 0.5, 32.0, 0.5, 32.0, 5.0, 32.0, 5.0, 32.0, 32.0,
    )


def test_timers_scale_with_t1_and_t4() -> None:
    c = TimerConfig(t1=1.0, t2=8.0, t4=10.0)
    assert (c.A, c.B, c.D, c.F, c.H, c.J, c.I, c.K) == (1.0, 64.0, 64.0, 64.0, 64.0, 64.0, 10.0, 10.0)
    # Timer D never drops below 32 s (§17.1.1.2), even with a small T1.
    assert TimerConfig(t1=0.1).D == 32.0


def test_reliable_transports_skip_retransmits_and_zero_the_waits() -> None:
    rel = TimerConfig().for_transport(True)
    assert (rel.a, rel.e, rel.g) == (None, None, None)
    assert (rel.d, rel.i, rel.j, rel.k) == (0.0, 0.0, 0.0, 0.0)
    assert (rel.b, rel.f, rel.h, rel.l, rel.m) == (32.0, 32.0, 32.0, 32.0, 32.0)
    udp = TimerConfig().for_transport(False)
    assert (udp.a, udp.d, udp.e, udp.g, udp.i, udp.j, udp.k) == (0.5, 32.0, 0.5, 0.5, 5.0, 32.0, 5.0)
    assert [is_reliable(t) for t in ("udp", "tcp", "TLS", "ws")] == [False, True, True, True]


@pytest.mark.parametrize("bad", [dict(t1=0.0), dict(t1=1.0, t2=0.5), dict(t4=-1.0)])
def test_bad_timer_config_is_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TimerConfig(**bad)


# ---------------------------------------------------------------------------- client transactions


def test_ict_udp_timer_a_doubles_without_cap_and_b_fires_at_64_t1() -> None:
    layer = make_layer("10.0.0.1", 5060)
    tid = layer.send_request(make_request("INVITE"), REMOTE_UDP, 0.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["INVITE"]
    assert layer.get_timer() == 0.5
    timeline = run(layer, 100.0)
    # §17.1.1.2: retransmit at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 (interval doubling, no T2 cap); B at 32.
    assert times_of(timeline, "INVITE") == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert timeline[-2:] == [(32.0, "TransactionTimeout"), (32.0, "TransactionTerminated")]
    assert layer.transaction_state(tid) is None
    assert layer.stats.retransmissions == 6
    assert layer.get_timer() is None


def test_ict_timeout_event_names_timer_b() -> None:
    layer = make_layer("10.0.0.1", 5060)
    tid = layer.send_request(make_request("INVITE"), REMOTE_UDP, 0.0)
    layer.handle_timer(32.0)  # a late loop: every due timer fires in one call
    events = drain_events(layer)
    assert events[-2] == TransactionTimeout(tid=tid, timer="B")


def test_ict_tcp_never_retransmits_but_still_times_out() -> None:
    layer = make_layer("10.0.0.1", 5060, "tcp")
    layer.send_request(make_request("INVITE"), REMOTE_TCP, 0.0)
    layer.datagrams_to_send()
    assert layer.get_timer() == 32.0
    timeline = run(layer, 100.0)
    assert timeline == [(32.0, "TransactionTimeout"), (32.0, "TransactionTerminated")]


def test_ict_timer_d_udp_32s_then_terminated() -> None:
    layer = make_layer("10.0.0.1", 5060)
    tid = layer.send_request(make_request("INVITE"), REMOTE_UDP, 0.0)
    invite = layer.datagrams_to_send()[0][0]
    layer.receive(response_bytes(invite, 486), REMOTE_UDP, 2.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["ACK"]
    assert event_names(drain_events(layer)) == ["ResponseReceived"]
    assert layer.get_timer() == 34.0  # D = 32 s from the final response; A and B are gone
    # A retransmitted 486 during D gets the ACK again (absorbed).
    layer.receive(response_bytes(invite, 486), REMOTE_UDP, 20.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["ACK"]
    assert drain_events(layer) == []
    assert run(layer, 100.0) == [(34.0, "TransactionTerminated")]
    assert layer.transaction_state(tid) is None


def test_ict_tcp_non_2xx_terminates_at_once() -> None:
    layer = make_layer("10.0.0.1", 5060, "tcp")
    tid = layer.send_request(make_request("INVITE"), REMOTE_TCP, 0.0)
    invite = layer.datagrams_to_send()[0][0]
    layer.receive(response_bytes(invite, 486), REMOTE_TCP, 1.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["ACK"]
    assert event_names(drain_events(layer)) == ["ResponseReceived", "TransactionTerminated"]
    assert layer.transaction_state(tid) is None
    assert layer.get_timer() is None


@pytest.mark.parametrize("remote", [REMOTE_UDP, REMOTE_TCP], ids=["udp", "tcp"])
def test_ict_accepted_lasts_timer_m(remote: Peer) -> None:
    layer = make_layer("10.0.0.1", 5060, remote.transport)
    tid = layer.send_request(make_request("INVITE"), remote, 0.0)
    invite = layer.datagrams_to_send()[0][0]
    layer.receive(response_bytes(invite, 200), remote, 3.0)
    assert event_names(drain_events(layer)) == ["ResponseReceived"]
    assert layer.transaction_state(tid) is State.ACCEPTED
    assert layer.get_timer() == 35.0  # M = 64*T1 on every transport (RFC 6026 §8.4)
    assert run(layer, 100.0) == [(35.0, "TransactionTerminated")]


def test_nict_udp_timer_e_caps_at_t2_and_f_fires_at_64_t1() -> None:
    layer = make_layer("10.0.0.1", 5060)
    tid = layer.send_request(make_request("OPTIONS"), REMOTE_UDP, 0.0)
    layer.datagrams_to_send()
    timeline = run(layer, 100.0)
    # §17.1.2.2: 0.5, 1, 2, then T2 = 4 s between retransmissions.
    assert times_of(timeline, "OPTIONS") == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timeline[-2:] == [(32.0, "TransactionTimeout"), (32.0, "TransactionTerminated")]
    assert layer.transaction_state(tid) is None


def test_nict_udp_proceeding_retransmits_every_t2() -> None:
    layer = make_layer("10.0.0.1", 5060)
    layer.send_request(make_request("OPTIONS"), REMOTE_UDP, 0.0)
    request = layer.datagrams_to_send()[0][0]
    layer.receive(response_bytes(request, 100), REMOTE_UDP, 0.2)
    drain_events(layer)
    timeline = run(layer, 100.0)
    # E was armed for 0.5 in Trying; when it fires in Proceeding it is reset to T2 (§17.1.2.2).
    assert times_of(timeline, "OPTIONS") == [0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5]
    assert times_of(timeline, "TransactionTimeout") == [32.0]


@pytest.mark.parametrize("remote,k", [(REMOTE_UDP, 5.0), (REMOTE_TCP, 0.0)], ids=["udp", "tcp"])
def test_nict_timer_k(remote: Peer, k: float) -> None:
    layer = make_layer("10.0.0.1", 5060, remote.transport)
    tid = layer.send_request(make_request("OPTIONS"), remote, 0.0)
    request = layer.datagrams_to_send()[0][0]
    layer.receive(response_bytes(request, 200), remote, 1.0)
    events = event_names(drain_events(layer))
    if k:
        # Completed on UDP is a lingering record (linger.py): the TU hears the end at once
        assert events == ["ResponseReceived", "TransactionTerminated"]
        assert layer.lingering == 1 and layer.get_timer() == 1.0 + k + GRACE
        layer.receive(response_bytes(request, 200), remote, 1.0 + k - 0.01)  # a copy: absorbed
        assert drain_events(layer) == [] and layer.stats.absorbed == 1
        assert run(layer, 100.0) == [] and layer.lingering == 0
    else:
        assert events == ["ResponseReceived", "TransactionTerminated"]
        assert layer.get_timer() is None
    assert layer.transaction_state(tid) is None


def test_nict_tcp_never_retransmits() -> None:
    layer = make_layer("10.0.0.1", 5060, "tcp")
    layer.send_request(make_request("OPTIONS"), REMOTE_TCP, 0.0)
    layer.datagrams_to_send()
    assert run(layer, 100.0) == [(32.0, "TransactionTimeout"), (32.0, "TransactionTerminated")]


# ---------------------------------------------------------------------------- server transactions


def _server(transport: str = "udp", method: str = "INVITE") -> tuple[TransactionLayer, str, Peer]:
    layer = make_layer("10.0.0.2", 5060, transport)
    src = Peer(transport, "10.0.0.1", 5060, 3 if transport != "udp" else None)
    layer.receive(wire_request(method), src, 0.0)
    ev = drain_events(layer)[0]
    assert isinstance(ev, RequestReceived) and ev.tid is not None
    layer.datagrams_to_send()
    return layer, ev.tid, src


def test_ist_udp_timer_g_caps_at_t2_and_h_reports_missing_ack() -> None:
    layer, tid, _ = _server()
    layer.send_response(tid, layer.create_response(tid, 486), 1.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["486"]
    timeline = run(layer, 100.0)
    assert times_of(timeline, "486") == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert timeline[-2:] == [(33.0, "TransactionTimeout"), (33.0, "TransactionTerminated")]


def test_ist_tcp_no_g_but_h_still_runs() -> None:
    layer, tid, _ = _server("tcp")
    layer.send_response(tid, layer.create_response(tid, 486), 1.0)
    layer.datagrams_to_send()
    assert run(layer, 100.0) == [(33.0, "TransactionTimeout"), (33.0, "TransactionTerminated")]


@pytest.mark.parametrize("transport,i", [("udp", 5.0), ("tcp", 0.0)])
def test_ist_timer_i_after_ack(transport: str, i: float) -> None:
    layer, tid, src = _server(transport)
    layer.send_response(tid, layer.create_response(tid, 486), 1.0)
    resp = layer.datagrams_to_send()[0][0]
    to_tag = resp.split(b"tag=")[-1].split(b"\r\n")[0].decode()
    layer.receive(wire_request("ACK", to_tag=to_tag), src, 2.0)
    if i:
        assert layer.transaction_state(tid) is State.CONFIRMED
        assert layer.get_timer() == 2.0 + i
        assert run(layer, 100.0) == [(2.0 + i, "TransactionTerminated")]
    else:
        assert layer.transaction_state(tid) is None
        assert event_names(drain_events(layer)) == ["TransactionTerminated"]
        assert layer.get_timer() is None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_ist_2xx_retransmitted_until_timer_l_even_on_tcp(transport: str) -> None:
    """§13.3.1.4: the 2xx is retransmitted T1, 2T1, ... T2 on every transport; no ACK → L reports."""
    layer, tid, _ = _server(transport)
    layer.send_response(tid, layer.create_response(tid, 200), 0.0)
    layer.datagrams_to_send()
    timeline = run(layer, 100.0)
    assert times_of(timeline, "200") == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timeline[-2:] == [(32.0, "TransactionTimeout"), (32.0, "TransactionTerminated")]


def test_ist_2xx_retransmission_stops_at_the_ack_and_l_ends_quietly() -> None:
    layer, tid, src = _server()
    ok = layer.create_response(tid, 200)
    layer.send_response(tid, ok, 0.0)
    layer.datagrams_to_send()
    run(layer, 2.0)  # retransmissions at 0.5 and 1.5
    # The ACK for a 2xx has its own branch (§13.2.2.4); the layer finds the IST by dialog.
    ack = wire_request("ACK", branch="z9hG4bK-ack-2xx", to_tag=ok.to.tag)
    layer.receive(ack, src, 2.0)
    events = drain_events(layer)
    assert isinstance(events[0], RequestReceived) and events[0].tid is None
    assert event_names(events[1:]) == ["TransactionTerminated"]
    # With the ACK in, the IST only waits T4 for copies of the INVITE still in the network,
    # as a lingering record that absorbs them silently.
    assert layer.lingering >= 1 and layer.get_timer() == 7.0 + GRACE
    layer.receive(wire_request("INVITE"), src, 6.9)
    assert drain_events(layer) == [] and layer.datagrams_to_send() == []
    assert run(layer, 100.0) == [] and layer.lingering == 0
    assert layer.stats.retransmissions == 2


@pytest.mark.parametrize("transport,j", [("udp", 32.0), ("tcp", 0.0)])
def test_nist_timer_j(transport: str, j: float) -> None:
    layer, tid, _ = _server(transport, "REGISTER")
    layer.send_response(tid, layer.create_response(tid, 200), 1.0)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["200"]
    if j:
        # Completed on UDP is a record (linger.py): the TU hears the end at once, the record
        # answers retransmissions until Timer J and goes in the next batch after it (GRACE).
        assert event_names(drain_events(layer)) == ["TransactionTerminated"]
        assert layer.transaction_state(tid) is None and layer.lingering == 2  # answer + merge key
        assert layer.get_timer() == 1.0 + j + GRACE
        assert run(layer, 100.0) == []
        assert layer.lingering == 0
    else:
        assert event_names(drain_events(layer)) == ["TransactionTerminated"]
        assert layer.transaction_state(tid) is None


def test_nist_never_retransmits_on_its_own() -> None:
    layer, tid, _ = _server("udp", "REGISTER")
    layer.send_response(tid, layer.create_response(tid, 200), 0.0)
    layer.datagrams_to_send()
    drain_events(layer)
    timeline = run(layer, 100.0)
    assert timeline == []  # nothing sent, nothing more to tell


# ---------------------------------------------------------------------------- the timer heap


def test_handle_timer_before_the_deadline_does_nothing() -> None:
    layer = make_layer("10.0.0.1", 5060)
    layer.send_request(make_request("INVITE"), REMOTE_UDP, 0.0)
    layer.datagrams_to_send()
    layer.handle_timer(0.499)
    assert layer.datagrams_to_send() == []
    layer.handle_timer(0.5)
    assert [short(d) for d, _ in layer.datagrams_to_send()] == ["INVITE"]
    assert layer.get_timer() == 1.5


def test_get_timer_is_the_earliest_over_all_transactions() -> None:
    layer = make_layer("10.0.0.1", 5060)
    layer.send_request(make_request("OPTIONS", call_id="a"), REMOTE_UDP, 10.0)
    layer.send_request(make_request("OPTIONS", call_id="b"), REMOTE_UDP, 3.0)
    layer.send_request(make_request("OPTIONS", call_id="c"), REMOTE_UDP, 7.0)
    assert layer.get_timer() == 3.5


def test_disarmed_timers_do_not_fire() -> None:
    layer = make_layer("10.0.0.1", 5060)
    layer.send_request(make_request("INVITE"), REMOTE_UDP, 0.0)
    request = layer.datagrams_to_send()[0][0]
    layer.receive(response_bytes(request, 486), REMOTE_UDP, 0.1)
    layer.datagrams_to_send()  # the ACK
    drain_events(layer)
    # A (0.5) and B (32) were disarmed lazily: the next live deadline is D.
    assert layer.get_timer() == 32.1
    assert run(layer, 100.0) == [(32.1, "TransactionTerminated")]


def test_stale_heap_entries_are_compacted() -> None:
    layer = make_layer("10.0.0.1", 5060)
    for n in range(3000):
        layer.send_request(make_request("INVITE", call_id=f"c{n}"), REMOTE_UDP, 0.0)
        request = layer.datagrams_to_send()[0][0]
        layer.receive(response_bytes(request, 486), REMOTE_UDP, 0.0)
        layer.datagrams_to_send()
    drain_events(layer)
    # 3000 live D timers; the 6000 disarmed A/B entries must not all linger.
    assert layer.live_transactions == 3000
    assert len(layer._heap) <= 3000 + 3000 // 4 + 1024
    assert run(layer, 40.0)[-1] == (32.0, "TransactionTerminated")
    assert layer.live_transactions == 0
    assert layer.get_timer() is None


def test_stale_entries_do_not_hold_finished_transactions_for_timer_f() -> None:
    """Finished non-INVITE transactions (K, 5 s) must not stay in memory until their disarmed
    Timer F's deadline (32 s) because the heap still points at them: stale entries are
    compacted away once they pass a quarter of the live timers."""
    layer = make_layer("10.0.0.1", 5060)
    for n in range(4000):  # a busy switch: 4,000 requests still waiting (8,000 live E/F timers)
        layer.send_request(make_request("OPTIONS", call_id=f"p{n}"), REMOTE_UDP, 0.0)
    layer.datagrams_to_send()
    finished = set()
    for n in range(3000):
        finished.add(layer.send_request(make_request("OPTIONS", call_id=f"c{n}"), REMOTE_UDP, 0.0))
        request = layer.datagrams_to_send()[0][0]
        layer.receive(response_bytes(request, 200), REMOTE_UDP, 0.0)
    drain_events(layer)
    run(layer, 6.0)
    assert layer.live_transactions == 4000
    layer.send_request(make_request("OPTIONS", call_id="later"), REMOTE_UDP, 6.0)
    # Their Timer F entries (due at 32 s) are stale: at most a quarter of the live timers (+1024) stay.
    held = [e for e in layer._heap if e[2].tid in finished]
    assert len(held) <= 8002 // 4 + 1024  # (of 6,000: every finished one had an E and an F entry)


def _events_of_type(events: list[Event], cls: type) -> list[Event]:
    return [e for e in events if isinstance(e, cls)]


def test_compaction_while_timers_fire_loses_nothing() -> None:
    """Compaction may happen inside handle_timer (a fired timer arms the next); no timer may be lost."""
    layer = make_layer("10.0.0.1", 5060)
    for n in range(1250):
        layer.send_request(make_request("OPTIONS", call_id=f"c{n}"), REMOTE_UDP, 0.0)
        request = layer.datagrams_to_send()[0][0]
        if n >= 50:
            layer.receive(response_bytes(request, 200), REMOTE_UDP, 0.0)  # leaves stale E/F entries
    drain_events(layer)
    heap_sizes = []
    timeline: list[tuple[float, str]] = []
    while (t := layer.get_timer()) is not None:
        layer.handle_timer(t)
        heap_sizes.append(len(layer._heap))
        timeline += [(t, short(d)) for d, _ in layer.datagrams_to_send()]
        timeline += [(t, name) for name in event_names(drain_events(layer))]
    # After the K timers (5 s) only 50 transactions are live: the 1200 stale F entries get compacted.
    assert min(heap_sizes[-20:]) < 200
    # The 50 unanswered requests: each retransmitted 10 times and timed out once at 32 s.
    assert len(times_of(timeline, "OPTIONS")) == 50 * 10
    assert times_of(timeline, "TransactionTimeout") == [32.0] * 50
    assert layer.live_transactions == 0
