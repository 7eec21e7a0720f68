"""The Call state machine with fake legs and a fake clock: no SIP, no sockets, no sleeping."""

from __future__ import annotations

import pytest

from switch.services.b2bua.call import CallConfig, CallState, Target, _TABLE
from switch.services.b2bua.causes import Cause
from switch.services.b2bua.events import (
    Ack,
    Answer,
    Disconnect,
    Event,
    Fail,
    Info,
    Progress,
    Redirect,
    Reply,
    Ring,
    Try,
    Update,
)

from .b2bua_fakes import FakeLeg, Harness, line_target, make_call, trunk_target

SDP_OFFER = b"v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\n"
SDP_ANSWER = b"v=0\r\no=b 7 7 IN IP4 192.0.2.50\r\n"


def answered(h: Harness) -> None:
    h.call.event(h.b, Ring())
    h.call.event(h.b, Answer(body=SDP_ANSWER, content_type="application/sdp"))


def test_first_target_gets_the_callers_offer_unchanged() -> None:
    trying = Try(body=SDP_OFFER, content_type="application/sdp", max_forwards=69, privacy=True)
    h = make_call(trying=trying)
    h.call.start([trunk_target(1)])
    assert h.b.sent == [trying]
    assert h.call.state is CallState.PROCEEDING
    assert h.record.trunk_name == "carrier1" and h.record.trunk_id == 1
    assert h.record.route_prefix == "+47" and h.record.route_id == 7


def test_ring_answer_ack_and_hangup_are_relayed_and_recorded() -> None:
    h = make_call()
    h.call.start([trunk_target(1)])
    h.clock.advance(2.0)
    h.call.event(h.b, Ring())
    assert h.call.state is CallState.EARLY
    h.call.event(h.b, Progress(body=SDP_ANSWER, content_type="application/sdp"))
    h.clock.advance(3.0)
    h.call.event(h.b, Answer(body=SDP_ANSWER, content_type="application/sdp"))
    assert h.call.state is CallState.CONNECTED
    h.call.event(h.a, Ack())
    h.clock.advance(61.4)
    h.call.event(h.a, Disconnect())
    assert h.a.sent == [
        Ring(),
        Progress(body=SDP_ANSWER, content_type="application/sdp"),
        Answer(body=SDP_ANSWER, content_type="application/sdp"),
    ]
    assert h.b.sent[1:] == [Ack(), Disconnect(cause=Cause.NORMAL)]
    assert h.call.state is CallState.ENDED
    assert h.ended == [h.call]
    rec = h.record
    assert (rec.cause, rec.final_code, rec.duration_s) == ("normal", 200, 62)
    assert rec.answer_at == pytest.approx(rec.setup_at + 5.0)
    assert rec.end_at == pytest.approx(rec.setup_at + 66.4)
    assert h.clock.live() == []  # no timer left behind


def test_bye_from_the_callee_hangs_up_the_caller() -> None:
    h = make_call()
    h.call.start([line_target()])
    answered(h)
    h.call.event(h.b, Disconnect())
    assert h.a.sent[-1] == Disconnect(cause=Cause.NORMAL)
    assert h.record.cause == "normal" and h.record.final_code == 200
    assert h.record.called_line_id == 2


def test_failover_across_trunks_then_congestion_not_the_carriers_503() -> None:
    targets = [trunk_target(1), trunk_target(2), trunk_target(3)]
    h = make_call()
    h.call.start(targets)
    h.call.event(h.b, Fail(code=503))
    h.call.event(h.b, Fail(code=408))
    assert [t for _, t in h.b_legs] == targets
    assert h.b_legs[0][0].detached and h.b_legs[1][0].detached
    h.call.event(h.b, Fail(code=500))
    assert h.a.sent == [Fail(code=503, cause=Cause.CONGESTION)]
    assert h.record.cause == "congestion" and h.record.final_code == 503
    assert h.record.trunk_name == "carrier3"
    assert h.call.attempts == 3


def test_early_media_from_a_failing_trunk_then_the_next_trunk_answers() -> None:
    h = make_call()
    h.call.start([trunk_target(1), trunk_target(2)])
    h.call.event(h.b, Progress(body=SDP_ANSWER, content_type="application/sdp"))
    h.call.event(h.b, Fail(code=503))
    assert h.call.state is CallState.EARLY
    h.call.event(h.b, Answer())
    assert h.call.state is CallState.CONNECTED
    assert h.record.trunk_name == "carrier2"


@pytest.mark.parametrize(
    ("b_code", "a_code", "cause"),
    [
        (486, 486, Cause.BUSY),
        (600, 486, Cause.BUSY),
        (404, 404, Cause.NUMBER_NOT_IN_USE),
        (604, 404, Cause.NUMBER_NOT_IN_USE),
        (484, 484, Cause.INCOMPLETE_NUMBER),
        (480, 480, Cause.UNAVAILABLE),
        (603, 603, Cause.DECLINED),
        (488, 488, Cause.MEDIA_NOT_ACCEPTABLE),
        (410, 410, Cause.NUMBER_CHANGED),
        (483, 483, Cause.TOO_MANY_HOPS),
        (402, 402, Cause.REJECTED),
    ],
)
def test_callee_answers_stop_the_hunt_and_map_to_the_caller(b_code: int, a_code: int, cause: Cause) -> None:
    h = make_call()
    h.call.start([trunk_target(1), trunk_target(2)])
    h.call.event(h.b, Fail(code=b_code))
    assert len(h.b_legs) == 1  # the second trunk was not tried
    assert h.a.sent == [Fail(code=a_code, cause=cause)]
    assert h.record.final_code == a_code and h.record.cause == cause.value


@pytest.mark.parametrize("b_code", [401, 407, 403, 408, 500, 502, 503, 504, 302, 420])
def test_trunk_failures_hunt_and_are_never_relayed(b_code: int) -> None:
    h = make_call()
    h.call.start([trunk_target(1)])
    h.call.event(h.b, Fail(code=b_code))
    assert h.a.sent == [Fail(code=503, cause=Cause.CONGESTION)]


@pytest.mark.parametrize(
    ("b_code", "a_code", "cause"),
    [(408, 480, Cause.UNAVAILABLE), (503, 480, Cause.UNAVAILABLE), (401, 480, Cause.UNAVAILABLE), (486, 486, Cause.BUSY)],
)
def test_line_failures_map_without_exposing_hop_by_hop_codes(b_code: int, a_code: int, cause: Cause) -> None:
    h = make_call()
    h.call.start([line_target()])
    h.call.event(h.b, Fail(code=b_code))
    assert h.a.sent == [Fail(code=a_code, cause=cause)]


def test_a_line_with_two_contacts_hunts_only_when_a_contact_does_not_work() -> None:
    h = make_call()
    h.call.start([line_target(2, 5062), line_target(2, 5064)])
    h.call.event(h.b, Fail(code=408))
    assert len(h.b_legs) == 2
    h.call.event(h.b, Fail(code=486))
    assert h.a.sent == [Fail(code=486, cause=Cause.BUSY)]


def test_no_answer_timeout_cancels_the_callee_and_answers_480() -> None:
    h = make_call(config=CallConfig(no_answer_timeout=30.0))
    h.call.start([line_target()])
    h.call.event(h.b, Ring())
    h.clock.advance(29.9)
    assert h.call.state is CallState.EARLY
    h.clock.advance(0.2)
    assert h.b.sent[-1] == Disconnect(cause=Cause.NO_ANSWER)
    assert h.a.sent[-1] == Fail(code=480, cause=Cause.NO_ANSWER)
    assert h.record.cause == "no_answer" and h.record.final_code == 480
    assert h.record.duration_s == 0 and h.record.answer_at is None


def test_no_answer_timer_runs_across_failover_from_the_first_attempt() -> None:
    h = make_call(config=CallConfig(no_answer_timeout=30.0))
    h.call.start([trunk_target(1), trunk_target(2)])
    h.clock.advance(20.0)
    h.call.event(h.b, Fail(code=503))
    h.clock.advance(10.5)
    assert h.a.sent[-1] == Fail(code=480, cause=Cause.NO_ANSWER)


def test_answer_stops_the_no_answer_timer_and_max_duration_hangs_up_both() -> None:
    h = make_call(config=CallConfig(no_answer_timeout=30.0, max_duration=600.0))
    h.call.start([trunk_target(1)])
    h.clock.advance(10.0)
    answered(h)
    h.clock.advance(25.0)  # past the old no-answer deadline: nothing happens
    assert h.call.state is CallState.CONNECTED
    h.clock.advance(575.0)
    assert h.a.sent[-1] == Disconnect(cause=Cause.MAX_DURATION)
    assert h.b.sent[-1] == Disconnect(cause=Cause.MAX_DURATION)
    assert (h.record.cause, h.record.final_code, h.record.duration_s) == ("max_duration", 200, 600)


def test_emergency_calls_have_no_max_duration_and_a_long_ring_limit() -> None:
    h = make_call(config=CallConfig(no_answer_timeout=30.0, max_duration=60.0, emergency_no_answer_timeout=600.0), emergency=True)
    h.call.start([trunk_target(1)])
    h.clock.advance(100.0)
    assert h.call.state is CallState.PROCEEDING
    answered(h)
    h.clock.advance(7200.0)
    assert h.call.state is CallState.CONNECTED


def test_emergency_trunks_all_failing_is_emergency_unavailable() -> None:
    h = make_call(emergency=True)
    h.call.start([trunk_target(1), trunk_target(2)])
    h.call.event(h.b, Fail(code=503))
    h.call.event(h.b, Fail(code=408))
    assert h.a.sent == [Fail(code=503, cause=Cause.EMERGENCY_UNAVAILABLE)]


def test_emergency_calls_do_not_follow_redirects() -> None:
    followed: list[str] = []
    h = make_call(emergency=True, reroute=lambda call, c: followed.append(c) or [line_target()])
    h.call.start([trunk_target(1), trunk_target(2)])
    h.call.event(h.b, Redirect(code=302, contacts=("sip:22000002@x",)))
    assert followed == []
    assert [t.trunk.name for _, t in h.b_legs if t.trunk] == ["carrier1", "carrier2"]


def test_cancel_from_the_caller_while_ringing() -> None:
    h = make_call()
    h.call.start([line_target()])
    h.call.event(h.b, Ring())
    h.call.event(h.a, Disconnect(cause=Cause.CANCELLED))
    assert h.b.sent[-1] == Disconnect(cause=Cause.CANCELLED)
    assert h.a.sent[-1] == Fail(code=487, cause=Cause.CANCELLED)
    assert h.record.cause == "cancelled" and h.record.final_code == 487
    assert h.clock.live() == []


def test_redirect_is_followed_only_through_reroute_and_only_once() -> None:
    seen: list[str] = []

    def reroute(call: object, contact: str) -> list[Target] | None:
        seen.append(contact)
        return [line_target(3)] if "22000003" in contact else None

    h = make_call(reroute=reroute)
    h.call.start([line_target(2)])
    h.call.event(h.b, Redirect(code=302, contacts=("sip:evil@203.0.113.66", "sip:22000003@switch")))
    assert seen == ["sip:evil@203.0.113.66", "sip:22000003@switch"]
    assert h.b_legs[-1][1] == line_target(3)
    assert h.b_legs[0][0].detached
    h.call.event(h.b, Redirect(code=302, contacts=("sip:22000003@switch",)))
    assert len(seen) == 2  # the second redirect is not even looked at
    assert h.a.sent == [Fail(code=480, cause=Cause.REDIRECT_REFUSED)]


def test_redirect_from_a_trunk_that_cannot_be_followed_tries_the_next_trunk() -> None:
    h = make_call(reroute=lambda call, c: None)
    h.call.start([trunk_target(1), trunk_target(2)])
    h.call.event(h.b, Redirect(code=301, contacts=("sip:+4799999999@203.0.113.66",)))
    assert h.b_legs[-1][1].trunk is not None and h.b_legs[-1][1].trunk.name == "carrier2"


def test_events_from_a_replaced_b_leg_are_ignored() -> None:
    h = make_call()
    h.call.start([trunk_target(1), trunk_target(2)])
    old = h.b
    h.call.event(old, Fail(code=503))
    h.call.event(old, Answer())
    assert h.call.state is CallState.PROCEEDING
    assert h.a.sent == []


def test_events_after_the_end_change_nothing() -> None:
    h = make_call()
    h.call.start([trunk_target(1)])
    answered(h)
    h.call.event(h.a, Disconnect())
    sent_a, sent_b = list(h.a.sent), list(h.b.sent)
    for ev in (Disconnect(), Answer(), Update(method="INVITE", seq=1), Ack()):
        h.call.event(h.b, ev)
        h.call.event(h.a, ev)
    assert (h.a.sent, h.b.sent) == (sent_a, sent_b)
    assert len(h.ended) == 1


def test_mid_call_requests_and_replies_are_relayed_both_ways() -> None:
    h = make_call()
    h.call.start([trunk_target(1)])
    answered(h)
    hold = Update(method="INVITE", seq=1, body=b"v=0\r\na=sendonly\r\n", content_type="application/sdp")
    h.call.event(h.a, hold)
    assert h.b.sent[-1] == hold
    h.call.event(h.b, Reply(seq=1, code=200, body=SDP_ANSWER, content_type="application/sdp"))
    assert h.a.sent[-1] == Reply(seq=1, code=200, body=SDP_ANSWER, content_type="application/sdp")
    h.call.event(h.a, Ack())
    assert h.b.sent[-1] == Ack()
    info = Info(method="INFO", seq=5, body=b"Signal=5\r\n", content_type="application/dtmf-relay")
    h.call.event(h.b, info)
    assert h.a.sent[-1] == info
    h.call.event(h.a, Reply(seq=5, code=200))
    assert h.b.sent[-1] == Reply(seq=5, code=200)


def test_update_from_the_caller_between_two_attempts_is_refused() -> None:
    h = make_call()
    h.call.start([trunk_target(1), trunk_target(2)])
    h.call.b = None  # the instant between the failure and the next INVITE
    h.call.event(h.a, Update(method="UPDATE", seq=3))
    assert h.a.sent == [Reply(seq=3, code=500, reason="No Dialog Yet")]


def test_a_b_leg_that_cannot_be_created_counts_as_a_failed_target() -> None:
    h = make_call(failing_factory=True)
    h.call.start([trunk_target(1), trunk_target(2)])
    assert h.call.b is h.b_legs[-1][0]
    assert h.b_legs[-1][1].trunk is not None and h.b_legs[-1][1].trunk.name == "carrier2"


def test_shutdown_of_a_connected_call_says_bye_to_both() -> None:
    h = make_call()
    h.call.start([trunk_target(1)])
    answered(h)
    h.clock.advance(12.0)
    h.call.shutdown()
    assert h.a.sent[-1] == Disconnect(cause=Cause.SHUTDOWN)
    assert h.b.sent[-1] == Disconnect(cause=Cause.SHUTDOWN)
    assert (h.record.cause, h.record.final_code, h.record.duration_s) == ("shutdown", 200, 12)


def test_shutdown_of_a_ringing_call_fails_the_caller_and_cancels_the_callee() -> None:
    h = make_call()
    h.call.start([line_target()])
    h.call.event(h.b, Ring())
    h.call.shutdown()
    assert h.a.sent[-1] == Fail(code=503, cause=Cause.SHUTDOWN)
    assert h.b.sent[-1] == Disconnect(cause=Cause.SHUTDOWN)
    h.call.shutdown()  # idempotent
    assert len(h.ended) == 1


def test_reject_answers_the_caller_and_records_the_cause() -> None:
    h = make_call()
    h.call.reject(Cause.BARRED)
    assert h.a.sent == [Fail(code=403, cause=Cause.BARRED)]
    assert h.b_legs == []
    assert (h.record.cause, h.record.final_code) == ("barred", 403)


def test_start_needs_a_target() -> None:
    h = make_call()
    with pytest.raises(ValueError):
        h.call.start([])


# -- every (state, side, event) pair: handled by the table or ignored without side effects --------

_EVENTS: list[Event] = [
    Try(),
    Ring(),
    Progress(),
    Answer(),
    Ack(),
    Update(method="UPDATE", seq=1),
    Info(method="INFO", seq=2),
    Reply(seq=1, code=200),
    Disconnect(),
    Fail(code=486),
    Redirect(code=302),
]


def _call_in(state: CallState) -> Harness:
    h = make_call()
    if state is CallState.ENDED:
        h.call.reject(Cause.NO_ROUTE)
        return h
    h.call.start([trunk_target(1), trunk_target(2)])
    if state in (CallState.EARLY, CallState.CONNECTED):
        h.call.event(h.b, Ring())
    if state is CallState.CONNECTED:
        h.call.event(h.b, Answer())
    assert h.call.state is state
    return h


@pytest.mark.parametrize("state", list(CallState))
@pytest.mark.parametrize("side", ["A", "B"])
@pytest.mark.parametrize("ev", _EVENTS, ids=lambda e: type(e).__name__)
def test_every_state_event_pair_is_handled_or_ignored_cleanly(state: CallState, side: str, ev: Event) -> None:
    h = _call_in(state)
    leg: FakeLeg = h.a if side == "A" else h.b_legs[-1][0] if h.b_legs else FakeLeg("none")
    before = (h.call.state, list(h.a.sent), [list(b.sent) for b, _ in h.b_legs])
    h.call.event(leg, ev)
    after = (h.call.state, list(h.a.sent), [list(b.sent) for b, _ in h.b_legs])
    handled = any(k[0] is state and k[1].value == side and k[2] is type(ev) for k in _TABLE)
    if not handled:
        assert after == before
    else:
        assert after != before  # a handled event always does something visible
