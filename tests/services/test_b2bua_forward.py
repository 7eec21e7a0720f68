"""Conditional forwarding inside the Call (fake legs, fake clock): when the hook is asked, what happens to the legs.

The policy decides *whether* and *where* (tests/services/test_policy_engine.py); the Call decides *when*:
486/600 from a line → busy; a line failing as a whole (408/480/5xx) → unreachable; the ring time of a
no-answer forward → no_answer, while the caller keeps its ringing; never two B-legs at once.
"""

from __future__ import annotations

from switch.services.b2bua.call import Call, CallState, Target
from switch.services.b2bua.causes import Cause
from switch.services.b2bua.events import Answer, Disconnect, Fail, Ring
from switch.store.models import ForwardKind as FK

from .b2bua_fakes import Harness, line_target, make_call, trunk_target


class Hook:
    """Answers the Call's forward hook from a script, and records what it was asked."""

    def __init__(self, *answers: list[Target] | tuple[Cause, int] | None) -> None:
        self.answers = list(answers)
        self.asked: list[FK] = []

    def __call__(self, call: Call, kind: FK) -> list[Target] | tuple[Cause, int] | None:
        self.asked.append(kind)
        return self.answers.pop(0)


def ringing(hook: Hook, forward_on: set[FK], ring_time: float | None = None) -> Harness:
    h = make_call(forward=hook)
    h.call.forward_on = frozenset(forward_on)
    h.call.ring_time = ring_time
    h.call.start([line_target(2)])
    h.call.event(h.b, Ring())
    return h


def test_no_answer_forward_cancels_the_ringing_leg_and_rings_the_target_after_the_ring_time() -> None:
    hook = Hook([trunk_target(1)])
    h = ringing(hook, {FK.NO_ANSWER}, ring_time=20.0)
    first = h.b
    h.clock.advance(19.9)
    assert hook.asked == [] and len(h.b_legs) == 1
    h.clock.advance(0.2)
    assert hook.asked == [FK.NO_ANSWER]
    assert first.sent[-1] == Disconnect(cause=Cause.NO_ANSWER)  # CANCEL towards the first callee
    assert len(h.b_legs) == 2 and h.b is not first and h.b_legs[1][1].trunk is not None
    assert [type(e) for e in h.a.sent] == [Ring]  # the caller heard ringing, nothing else
    h.call.event(first, Answer())  # a late answer from the abandoned leg is ignored
    assert h.call.state is CallState.EARLY
    h.call.event(h.b, Answer())
    assert h.call.state is CallState.CONNECTED


def test_busy_from_the_line_forwards_and_other_failures_do_not() -> None:
    hook = Hook([line_target(3)])
    h = ringing(hook, {FK.BUSY})
    h.call.event(h.b, Fail(code=486))
    assert hook.asked == [FK.BUSY] and len(h.b_legs) == 2
    assert h.b_legs[1][1].line is not None and h.b_legs[1][1].line.line_id == 3
    # Without a busy forward, 486 is the caller's answer as before.
    h2 = ringing(Hook(), {FK.NO_ANSWER}, ring_time=20.0)
    h2.call.event(h2.b, Fail(code=486))
    assert h2.a.sent[-1] == Fail(code=486, cause=Cause.BUSY) and h2.call.state is CallState.ENDED


def test_a_dead_contact_is_unreachable_and_a_refused_forward_ends_the_call_with_its_cause() -> None:
    hook = Hook((Cause.FORWARD_NOT_ALLOWED, 0))
    h = ringing(hook, {FK.UNREACHABLE})
    h.call.event(h.b, Fail(code=408))
    assert hook.asked == [FK.UNREACHABLE]
    assert h.a.sent[-1] == Fail(code=403, cause=Cause.FORWARD_NOT_ALLOWED)
    assert h.call.state is CallState.ENDED and h.record.cause == "forward_not_allowed"


def test_the_hook_saying_no_leaves_the_call_as_it_was_and_a_forward_fires_once() -> None:
    hook = Hook(None)
    h = ringing(hook, {FK.NO_ANSWER}, ring_time=5.0)
    h.clock.advance(5.0)
    assert hook.asked == [FK.NO_ANSWER] and len(h.b_legs) == 1 and h.call.state is CallState.EARLY
    h.clock.advance(55.0)  # the call's own no-answer timer: the forward is not asked again
    assert hook.asked == [FK.NO_ANSWER]
    assert h.a.sent[-1] == Fail(code=480, cause=Cause.NO_ANSWER)


def test_forwarded_legs_share_the_outcome_of_the_call() -> None:
    hook = Hook([trunk_target(1)])
    h = ringing(hook, {FK.BUSY})
    from switch.services.cdr import CdrDraft
    from switch.store.models import CallDirection

    first = h.call.record
    h.call.legs.append(first)
    h.call.record = CdrDraft(call_id=first.call_id, direction=CallDirection.OUTGOING, calling_number="+4722000002",
                             dialled="91234567", setup_at=h.clock.wall())
    h.call.event(h.b, Fail(code=600))
    h.call.event(h.b, Answer())
    h.clock.advance(10)
    h.call.event(h.a, Disconnect())
    assert first.answer_at == h.call.record.answer_at is not None
    assert first.cause == h.call.record.cause == "normal" and first.duration_s == h.call.record.duration_s == 10
    assert h.call.record.trunk_name == "carrier1" and first.trunk_name is None
