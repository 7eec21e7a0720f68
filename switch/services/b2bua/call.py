"""One call: an A-leg, the current B-leg, a list of targets and the timers.

Theory of operation
-------------------
The call is sippy's ``CallController`` reduced to what this switch needs. It
speaks only call-control events (``events.py``): legs report what their SIP
peer did through :meth:`Call.event`, and the call tells legs what to do with
``leg.send(event)``. It never sees a SIP message, so it is tested with fake
legs and a fake clock (``tests/services/test_b2bua_call.py``).

States::

    PROCEEDING --Ring/Progress--> EARLY --Answer--> CONNECTED --Disconnect--> ENDED
         \\___________________________\\___Fail/Cancel/timeout_______________/

Every (state, side, event type) the call reacts to is a row of ``_TABLE``;
anything else is dropped (a late 180 after the 200, a second Answer from a
leg already replaced), never an exception: the network decides what arrives.

Targets and hunting (serial forking, sippy's route list): the B-leg tries
``targets`` in order. A failure the target list may recover from (a carrier
trunk timing out, 5xx, 503, refusing our credentials; a line's contact not
answering at all) moves to the next target; anything the *callee* said
(busy, not found, declined) stops the hunt (``causes.should_hunt``). When the
list is exhausted the last failure is mapped to the caller's answer
(``causes.map_failure``): all trunks failing is our own 503, never a relay.

Redirects (3xx) are never followed blindly: the ``reroute`` callback
(supplied by the manager) turns a Contact into new targets only through the
routing tables, so a 3xx can never send a call somewhere the caller could
not have dialled (it re-runs barring), and at most ``max_redirects`` times.

Forwarding (busy, no answer, unreachable) is the policy's decision, asked
through the ``forward`` hook when its condition happens: a line's adapter
answers 486/600 (busy) or fails as a whole with 408/480/5xx (unreachable),
or the ring time of a no-answer forward runs out (``forward_on`` and
``ring_time`` say which apply to the current target). The hook answers
new targets (the current B-leg, if any, is cancelled first: never two
B-legs at once), a refusal, or None to carry on as if nothing were set.
The caller keeps hearing ringing across the move.

Timers are ``call_later`` handles, not tasks (one per timer, cancelled as
soon as it is moot): the no-answer timer from the first B-leg INVITE, the
maximum-duration timer from the answer. Emergency calls get neither a short
no-answer limit nor a maximum duration: nobody is cut off from 112.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from switch.sip.transaction.events import Peer
from switch.store.models import ForwardKind

from ..cdr import CdrDraft
from ..lines import LineInfo
from ..trunks import TrunkInfo
from .causes import Cause, map_failure, should_hunt
from .events import Ack, Answer, Disconnect, Event, Fail, Info, Progress, Redirect, Reply, Ring, Try, Update

__all__ = ["CallState", "Side", "Target", "Leg", "Clock", "Handle", "CallConfig", "Call"]

log = logging.getLogger(__name__)


class CallState(enum.Enum):
    PROCEEDING = "proceeding"
    """A B-leg INVITE is out; the caller has heard nothing but 100 Trying."""
    EARLY = "early"
    """The caller got a 18x (ringing or early media)."""
    CONNECTED = "connected"
    """Answered; mid-call requests are relayed both ways."""
    ENDED = "ended"


class Side(enum.Enum):
    A = "A"
    B = "B"


@dataclass(frozen=True, slots=True)
class Target:
    """One place the B-leg may try: a line's registered contact or a carrier trunk."""

    ruri: str
    peer: Peer
    """Where the INVITE (and every later request of the leg) is sent."""
    number: str
    """The called number as the B side should see it (To user)."""
    to_uri: str = ""
    """To header URI ("" = the Request-URI)."""
    line: LineInfo | None = None
    trunk: TrunkInfo | None = None
    route_id: int | None = None
    route_prefix: str | None = None

    @property
    def is_trunk(self) -> bool:
        return self.trunk is not None


class Leg(Protocol):
    """What the call needs from a leg (UasLeg, UacLeg, or a test fake)."""

    def send(self, event: Event) -> None:
        """Carry out ``event`` towards this leg's SIP peer."""

    def detach(self) -> None:
        """Stop reporting to the call; finish any SIP clean-up alone."""


class Handle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time, wall time and one-shot timers (asyncio's loop, or a fake in tests)."""

    def now(self) -> float: ...

    def wall(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle: ...


@dataclass(frozen=True, slots=True)
class CallConfig:
    no_answer_timeout: float = 60.0
    max_duration: float = 4 * 3600.0
    """0 disables the limit."""
    emergency_no_answer_timeout: float = 600.0
    """Only a guard against a B side that never answers at all."""
    max_redirects: int = 1


LegFactory = Callable[["Call", Target], Leg]
Reroute = Callable[["Call", str], list[Target] | None]
"""Given a 3xx Contact URI, new targets reached through the routing tables, or None to refuse."""
ForwardHook = Callable[["Call", ForwardKind], "list[Target] | tuple[Cause, int] | None"]
"""A conditional forward fired: new targets, a refusal (cause, status), or None (no such forward)."""


class Call:
    """A-leg, B-leg, targets, timers, CDR draft. See the module docstring."""

    __slots__ = (
        "a",
        "b",
        "state",
        "trying",
        "targets",
        "target",
        "record",
        "emergency",
        "_clock",
        "_config",
        "_new_leg",
        "_reroute",
        "_on_end",
        "_no_answer",
        "_max_duration",
        "_cut_cause",
        "budget",
        "_redirects",
        "_last_failure",
        "attempts",
        "ctx",
        "forward_on",
        "ring_time",
        "legs",
        "_forward",
        "_ring",
        "__weakref__",  # tests prove a finished call is freed by reference counting alone
    )

    def __init__(
        self,
        *,
        a: Leg,
        trying: Try,
        record: CdrDraft,
        clock: Clock,
        config: CallConfig,
        new_leg: LegFactory,
        on_end: Callable[[Call], None],
        reroute: Reroute | None = None,
        emergency: bool = False,
        forward: ForwardHook | None = None,
        budget: Callable[[Call], None] | None = None,
    ) -> None:
        self.a = a
        self.b: Leg | None = None
        self.state = CallState.PROCEEDING
        self.trying = trying
        """The A-leg's INVITE as an event: the offer, Max-Forwards and privacy every B-leg gets."""
        self.targets: list[Target] = []
        self.target: Target | None = None
        self.record = record
        self.emergency = emergency
        self._clock = clock
        self._config = config
        self._new_leg = new_leg
        self._reroute = reroute
        self._on_end = on_end
        self._no_answer: Handle | None = None
        self._max_duration: Handle | None = None
        self._cut_cause = Cause.MAX_DURATION
        self.budget = budget
        """Told when the call is answered (the credit limit), which may then call ``limit_duration``."""
        self._redirects = 0
        self._last_failure: tuple[int, Target] | None = None
        self.attempts = 0
        self.ctx: object = None
        """The owner's per-call state (the manager keeps the policy's chain and trail here)."""
        self.forward_on: frozenset[ForwardKind] = frozenset()
        """Conditional forwards set for the current target (busy, no_answer, unreachable)."""
        self.ring_time: float | None = None
        """Seconds the current target rings before its no-answer forward."""
        self.legs: list[CdrDraft] = []
        """Records of earlier legs of a forwarded call (``record`` is the current leg's); they share its outcome."""
        self._forward = forward
        self._ring: Handle | None = None

    def __repr__(self) -> str:
        return f"<Call {self.record.call_id} {self.state.value} attempts={self.attempts}>"

    # -- starting -------------------------------------------------------------------
    def start(self, targets: list[Target]) -> None:
        """Try ``targets`` in order (at least one)."""
        if not targets:
            raise ValueError("a call needs at least one target")
        self.targets = list(targets)
        timeout = self._config.emergency_no_answer_timeout if self.emergency else self._config.no_answer_timeout
        if timeout > 0:
            self._no_answer = self._clock.call_later(timeout, self._on_no_answer)
        self._arm_ring()
        self._next_target()

    def reject(self, cause: Cause, code: int = 0, prompts: tuple[str, ...] = ()) -> None:
        """Refuse the call before any B-leg (routing said no).

        ``prompts``: what the caller hears first instead of the cause's own
        prompt (a star code's spoken result); see ``docs/announcements.md``.
        """
        status = code or cause.code
        self.a.send(Fail(code=status, cause=cause, prompts=prompts))
        self._end(cause, status)

    # -- the event entry point ----------------------------------------------------------
    def event(self, leg: Leg, ev: Event) -> None:
        """A leg reports ``ev``. Events from a B-leg that is no longer current are dropped."""
        if leg is self.a:
            side = Side.A
        elif leg is self.b and leg is not None:
            side = Side.B
        else:
            return
        handler = _TABLE.get((self.state, side, type(ev)))
        if handler is None:
            log.debug("%r: ignoring %s from %s in %s", self, type(ev).__name__, side.value, self.state.value)
            return
        handler(self, side, ev)

    # -- handlers ---------------------------------------------------------------------
    def _relay(self, side: Side, ev: Event) -> None:
        other = self.b if side is Side.A else self.a
        if other is not None:
            other.send(ev)
        elif isinstance(ev, (Update, Info)):
            # Nobody on the other side yet (between two B-leg attempts): refuse, RFC 3311 §5.2 style.
            self.a.send(Reply(seq=ev.seq, code=500, reason="No Dialog Yet"))

    def _early(self, side: Side, ev: Event) -> None:
        self.state = CallState.EARLY
        if self.record.ring_at is None:
            self.record.ring_at = self._clock.wall()
        self.a.send(ev)

    def _answered(self, side: Side, ev: Event) -> None:
        assert isinstance(ev, Answer)
        self.state = CallState.CONNECTED
        self._cancel_timer("_no_answer")
        self._cancel_timer("_ring")
        rec = self.record
        rec.answer_at = self._clock.wall()
        rec.answer_mono = self._clock.now()
        for leg in self.legs:
            leg.answer_at, leg.answer_mono = rec.answer_at, rec.answer_mono
        if self._config.max_duration > 0 and not self.emergency:
            self._max_duration = self._clock.call_later(self._config.max_duration, self._on_max_duration)
        self.a.send(ev)
        if self.budget is not None and not self.emergency:
            try:
                self.budget(self)
            except Exception:  # noqa: BLE001 - the call goes on with its ordinary limit
                log.exception("%r: the credit limit check failed", self)

    def limit_duration(self, seconds: float, cause: Cause) -> None:
        """End the connected call ``seconds`` from now with ``cause`` (earlier than the
        maximum duration only); again later to move that moment. Never an emergency call."""
        if self.emergency or self.state is not CallState.CONNECTED or self.record.answer_mono is None:
            return
        self._cancel_timer("_max_duration")
        delay, self._cut_cause = max(0.0, seconds), cause
        if self._config.max_duration > 0:
            left = self._config.max_duration - (self._clock.now() - self.record.answer_mono)
            if left <= delay:
                delay, self._cut_cause = max(0.0, left), Cause.MAX_DURATION
        self._max_duration = self._clock.call_later(delay, self._on_max_duration)

    def _b_failed(self, side: Side, ev: Event) -> None:
        assert isinstance(ev, Fail) and self.target is not None
        self._failed(ev.code, ev.reason)

    def _failed(self, code: int, reason: str | None) -> None:
        target = self.target
        assert target is not None
        self._last_failure = (code, target)
        if self.b is not None:
            self.b.detach()
            self.b = None
        if self.targets and should_hunt(code, trunk=target.is_trunk):
            log.info("%r: %s answered %d, trying the next target", self, _target_name(target), code)
            self._next_target()
            return
        if target.line is not None and self.forward_on:
            kind = _forward_kind(code)
            if kind is not None and self._try_forward(kind):
                return
        cause, status = self._final_mapping(code, target)
        self.a.send(Fail(code=status, cause=cause))
        self._end(cause, status)

    def _final_mapping(self, code: int, target: Target) -> tuple[Cause, int]:
        if target.is_trunk and should_hunt(code, trunk=True):
            cause = Cause.EMERGENCY_UNAVAILABLE if self.emergency else Cause.CONGESTION
            return cause, cause.code
        if 300 <= code < 400:
            return Cause.REDIRECT_REFUSED, Cause.REDIRECT_REFUSED.code
        return map_failure(code, trunk=target.is_trunk)

    def _redirected(self, side: Side, ev: Event) -> None:
        assert isinstance(ev, Redirect)
        if self._reroute is not None and self._redirects < self._config.max_redirects and not self.emergency:
            for contact in ev.contacts:
                new = self._reroute(self, contact)
                if new:
                    self._redirects += 1
                    log.info("%r: following %d to %s through the routing tables", self, ev.code, contact)
                    if self.b is not None:
                        self.b.detach()
                        self.b = None
                    self.targets = list(new)
                    self._next_target()
                    return
        self._failed(ev.code, None)

    def _a_cancelled(self, side: Side, ev: Event) -> None:
        """The caller gave up (CANCEL) before the answer."""
        self._drop_b(Cause.CANCELLED)
        self.a.send(Fail(code=487, cause=Cause.CANCELLED))
        self._end(Cause.CANCELLED, 487)

    def _hangup(self, side: Side, ev: Event) -> None:
        assert isinstance(ev, Disconnect)
        other = self.b if side is Side.A else self.a
        if other is not None:
            other.send(Disconnect(cause=ev.cause))
        self._end(ev.cause, 200)

    # -- timers -------------------------------------------------------------------------
    def _arm_ring(self) -> None:
        self._cancel_timer("_ring")
        if ForwardKind.NO_ANSWER in self.forward_on and self.ring_time and not self.emergency:
            self._ring = self._clock.call_later(self.ring_time, self._on_ring_time)

    def _on_ring_time(self) -> None:
        self._ring = None
        if self.state in (CallState.PROCEEDING, CallState.EARLY):
            self._try_forward(ForwardKind.NO_ANSWER)

    def _try_forward(self, kind: ForwardKind) -> bool:
        """Ask the policy to forward for ``kind``; True when it took the call over (moved or refused it)."""
        if self._forward is None or kind not in self.forward_on or self.emergency:
            return False
        self.forward_on = frozenset()  # used up: the hook sets the next target's own
        self.ring_time = None
        self._cancel_timer("_ring")
        outcome = self._forward(self, kind)
        if outcome is None:
            return False
        log.info("%r: forwarding (%s)", self, kind.value)
        self._drop_b(Cause.NO_ANSWER if kind is ForwardKind.NO_ANSWER else Cause.NORMAL)
        if isinstance(outcome, tuple):
            cause, status = outcome
            self.a.send(Fail(code=status or cause.code, cause=cause))
            self._end(cause, status or cause.code)
            return True
        if not outcome:
            raise ValueError("a forward needs at least one target")
        self.targets = list(outcome)
        self._cancel_timer("_no_answer")
        timeout = self._config.no_answer_timeout
        if timeout > 0:
            self._no_answer = self._clock.call_later(timeout, self._on_no_answer)
        self._arm_ring()
        self._next_target()
        return True

    def _on_no_answer(self) -> None:
        self._no_answer = None
        if self.state in (CallState.PROCEEDING, CallState.EARLY):
            if self._try_forward(ForwardKind.NO_ANSWER):
                return
            log.info("%r: no answer", self)
            self._drop_b(Cause.NO_ANSWER)
            self.a.send(Fail(code=Cause.NO_ANSWER.code, cause=Cause.NO_ANSWER))
            self._end(Cause.NO_ANSWER, Cause.NO_ANSWER.code)

    def _on_max_duration(self) -> None:
        self._max_duration = None
        if self.state is CallState.CONNECTED:
            cause = self._cut_cause
            log.info("%r: %s", self, "maximum call duration reached" if cause is Cause.MAX_DURATION else cause.value)
            self.a.send(Disconnect(cause=cause))
            if self.b is not None:
                self.b.send(Disconnect(cause=cause))
            self._end(cause, 200)

    # -- termination from outside ------------------------------------------------------------
    def shutdown(self, cause: Cause = Cause.SHUTDOWN) -> None:
        """End the call now (drain on shutdown, or after an internal error)."""
        if self.state is CallState.ENDED:
            return
        if self.state is CallState.CONNECTED:
            _safe(self.a.send, Disconnect(cause=cause))
            if self.b is not None:
                _safe(self.b.send, Disconnect(cause=cause))
            self._end(cause, 200)
            return
        if self.b is not None:
            _safe(self.b.send, Disconnect(cause=cause))
            self.b = None
        _safe(self.a.send, Fail(code=cause.code, cause=cause))
        self._end(cause, cause.code)

    # -- helpers ------------------------------------------------------------------------
    def _next_target(self) -> None:
        target = self.targets.pop(0)
        self.target = target
        self.attempts += 1
        rec = self.record
        if target.trunk is not None:
            rec.trunk_id = target.trunk.trunk_id
            rec.trunk_name = target.trunk.name
        if target.route_prefix is not None:
            rec.route_id = target.route_id
            rec.route_prefix = target.route_prefix
        if target.line is not None:
            rec.called_line_id = target.line.line_id
        try:
            leg = self._new_leg(self, target)
        except Exception:  # noqa: BLE001 - e.g. no socket for that transport: next target
            log.exception("%r: cannot start a B-leg to %s", self, _target_name(target))
            self._failed(503, None)
            return
        self.b = leg
        leg.send(self.trying)

    def _drop_b(self, cause: Cause) -> None:
        if self.b is not None:
            self.b.send(Disconnect(cause=cause))
            self.b = None

    def _cancel_timer(self, name: str) -> None:
        handle: Handle | None = getattr(self, name)
        if handle is not None:
            handle.cancel()
            setattr(self, name, None)

    def _end(self, cause: Cause, code: int) -> None:
        if self.state is CallState.ENDED:
            return
        self.state = CallState.ENDED
        self._cancel_timer("_no_answer")
        self._cancel_timer("_max_duration")
        self._cancel_timer("_ring")
        rec = self.record
        rec.end_at = self._clock.wall()
        rec.end_mono = self._clock.now()
        rec.cause = cause.value
        rec.final_code = code
        for leg in self.legs:
            leg.end_at, leg.end_mono, leg.cause, leg.final_code = rec.end_at, rec.end_mono, rec.cause, code
        # Legs finish their SIP clean-up alone; cutting their link back to the call
        # breaks the reference cycle so the call is freed without the cycle collector.
        self.a.detach()
        if self.b is not None:
            self.b.detach()
        self._on_end(self)


def _forward_kind(code: int) -> ForwardKind | None:
    """Which conditional forward a line's final failure triggers: busy, or unreachable (dead contact, 480, 5xx)."""
    if code in (486, 600):
        return ForwardKind.BUSY
    if code in (408, 480) or 500 <= code < 600:
        return ForwardKind.UNREACHABLE
    return None


def _target_name(t: Target) -> str:
    if t.trunk is not None:
        return f"trunk {t.trunk.name}"
    if t.line is not None:
        return f"line {t.line.number} at {t.peer.host}:{t.peer.port}"
    return t.ruri


def _safe(fn: Callable[[Event], None], ev: Event) -> None:
    try:
        fn(ev)
    except Exception:  # noqa: BLE001 - tearing down: the other leg still needs its BYE
        log.exception("leg failed while ending the call")


_Handler = Callable[[Call, Side, Event], None]
_P, _E, _C = CallState.PROCEEDING, CallState.EARLY, CallState.CONNECTED
A, B = Side.A, Side.B

#: (state, side the event came from, event type) -> handler. Anything else is ignored.
_TABLE: dict[tuple[CallState, Side, type], _Handler] = {}
for _st in (_P, _E):
    _TABLE.update(
        {
            (_st, B, Ring): Call._early,
            (_st, B, Progress): Call._early,
            (_st, B, Answer): Call._answered,
            (_st, B, Fail): Call._b_failed,
            (_st, B, Redirect): Call._redirected,
            (_st, A, Disconnect): Call._a_cancelled,
            # Early-dialog UPDATE / INFO (e.g. early-media changes): relayed; the other leg refuses if it cannot.
            (_st, A, Update): Call._relay,
            (_st, A, Info): Call._relay,
            (_st, A, Reply): Call._relay,
            (_st, B, Update): Call._relay,
            (_st, B, Info): Call._relay,
            (_st, B, Reply): Call._relay,
        }
    )
_TABLE.update(
    {
        (_C, A, Disconnect): Call._hangup,
        (_C, B, Disconnect): Call._hangup,
        (_C, A, Ack): Call._relay,
        (_C, B, Ack): Call._relay,
        (_C, A, Update): Call._relay,
        (_C, B, Update): Call._relay,
        (_C, A, Info): Call._relay,
        (_C, B, Info): Call._relay,
        (_C, A, Reply): Call._relay,
        (_C, B, Reply): Call._relay,
    }
)
