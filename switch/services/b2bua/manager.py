"""CallManager: turns INVITEs into calls, dispatches in-dialog requests, drains on shutdown.

Order of checks for a new INVITE (what the caller hears first wins):

1. We are shutting down → 503 + Retry-After (adapters move to their backup proxy).
2. It carries our own loop token (``X-Switch-Loop``) → 482: a carrier routed
   our own B-leg back to us. (Via-branch loops and Max-Forwards 0 are caught
   by the transaction layer, RFC 3261 §8.2.2.2 / §16.3.)
3. Source address inside a trunk's ACL → a carrier call (a disabled trunk
   gets 403); otherwise digest with 407 (RFC 3261 §22.3) → a line's call.
   A failed digest is a 403, except for 110/112/113 from the exact address
   (IP and port) where the claimed line is registered: a throttled NAT
   address or a broken adapter config must not block an emergency call.
4. Numbering (``numbering.normalise``), then the call policy
   (``policy.engine.decide``: emergency first, suspension, fraud guard,
   barring, destination with the callee's forwarding, each forwarded leg
   decided again from the forwarder), which routes with ``routing.decide``.
5. The Call starts; every outcome, including refusals after authentication,
   ends in exactly one CDR.

In-dialog requests are found by (Call-ID, our tag) in one dict shared with
the legs; CANCEL by the INVITE's server transaction. Out-of-dialog OPTIONS,
NOTIFY and REFER get the endpoint's default answer: the calls only claim what
belongs to a dialog.

Performance: per INVITE there is one digest check, one normalisation, a few
dict probes for routing, and the SIP messages themselves; no database access
(the CDR is written by a group committer after the call) and no task per
call (timers are loop handles).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import feature_codes
from switch.sip import digest
from switch.sip.errors import ParseError, SipError
from switch.sip.headers import NameAddr
from switch.sip.message import MAGIC_COOKIE, Request, response_for, stateless_tag
from switch.sip.transaction.events import CancelReceived, LateAnswer, Peer, RequestReceived
from switch.sip.uri import SipUri, TelUri, parse_uri
from switch.store.models import CallDirection, ForwardKind

from ..auth import AuthChallenge, AuthOk, Authenticator
from ..cdr import CdrDraft, CdrWriter
from ..lines import LineDirectory, LineInfo
from ..location import LocationService
from ..numbering import Normalised, NumberClass, normalise
from ..policy import engine as policy_engine
from ..policy.diversion import forward_headers, incoming_diversions
from ..policy.engine import Hop, Instant, Refuse, Route
from ..policy.model import LiveView, PolicyState
from ..policy.service import Occupancy, PolicyService
from ..routing import (
    Caller,
    Emergency,
    FromLine,
    FromTrunk,
    OnNet,
    PolicyCheck,
    Reject,
    RouteDecision,
    RoutingSnapshot,
    Trunks,
    decide,
)
from ..periodic import Periodic
from ..sip_port import CallPort, RequestHandler
from ..trunks import TrunkInfo, TrunkService
from .announce import Announcer
from .bodies import refuse_body
from .call import Call, CallConfig, Target
from .causes import Cause
from .events import Try
from .leg import LOOP_HEADER, Identity, LegEnv
from .uac_leg import LateForks, UacLeg
from .uas_leg import UasLeg

if TYPE_CHECKING:
    from ..star_codes import StarCodeHandler

__all__ = ["CallSettings", "CallManager", "ManagerStats", "LoopClock", "identity_for", "wants_privacy"]

log = logging.getLogger(__name__)

ANONYMOUS_FROM = '"Anonymous" <sip:anonymous@anonymous.invalid>'
#: In-dialog methods the calls take; OPTIONS/NOTIFY/REFER also arrive out of dialog.
_DIALOG_METHODS = ("ACK", "BYE", "UPDATE", "INFO", "PRACK", "OPTIONS", "NOTIFY", "REFER")
#: Extensions a caller may not *require* of a call: we send no reliable provisionals
#: (RFC 3262), run no session timer (RFC 4028) and do not support Replaces (RFC 3891).
_NOT_RELAYED_EXTENSIONS = frozenset({"100rel", "timer", "replaces"})
#: Classes a 3xx may send a call to through the route table without the caller having dialled that class.
_REDIRECT_OK = frozenset({NumberClass.FIXED, NumberClass.MOBILE, NumberClass.FREEPHONE})


_NO_POLICY = PolicyState()
_NO_LIVE = LiveView()


@dataclass(slots=True)
class PolicyLeg:
    """The policy's view of one call while it runs (``Call.ctx``): chain, trail, what it holds."""

    caller: Caller
    dialled: str
    hops: tuple[Hop, ...] = ()
    seen: frozenset[str] = frozenset()
    trail: tuple[str, ...] = ()
    incoming_hops: int = 0
    callee: LineInfo | None = None
    """The on-net line ringing now (its conditional forwards may fire)."""
    occupancy: Occupancy | None = None


@dataclass(frozen=True, slots=True)
class CallSettings:
    domain: str
    """Host part of the From/To URIs we create (the realm)."""
    country_code: str = "47"
    no_answer_timeout: float = 60.0
    max_duration: float = 4 * 3600.0
    setup_timeout: float = 4.0
    """A B-leg INVITE with no response at all after this long fails over (Timer B is 32 s)."""
    ack_timeout: float = 32.0
    trunk_ping_interval: float = 30.0
    trunk_ping_timeout: float = 5.0
    trunk_reload_interval: float = 30.0
    """Re-read trunks and routes this often (``softswitch import`` runs in another process)."""
    shutdown_retry_after: int = 30

    @classmethod
    def from_settings(cls, settings: Any) -> CallSettings:
        t1 = float(settings.t1)
        return cls(
            domain=settings.effective_realm(),
            no_answer_timeout=float(settings.no_answer_timeout),
            max_duration=float(settings.max_call_duration),
            ack_timeout=64 * t1,
            setup_timeout=float(settings.trunk_setup_timeout),
            trunk_ping_interval=float(settings.trunk_ping_interval),
            trunk_ping_timeout=float(settings.trunk_ping_timeout),
        )


class LoopClock:
    """The Clock a Call needs, on the running asyncio loop."""

    __slots__ = ("_loop", "wall")

    def __init__(self, loop: asyncio.AbstractEventLoop, wall: Callable[[], float] = time.time) -> None:
        self._loop = loop
        self.wall = wall

    def now(self) -> float:
        return self._loop.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, callback)


@dataclass(slots=True)
class ManagerStats:
    invites: int = 0
    challenged: int = 0
    calls: int = 0
    answered: int = 0
    by_cause: dict[str, int] = field(default_factory=dict)


def wants_privacy(req: Request) -> bool:
    """The caller asked not to be presented (RFC 3323 Privacy, or an anonymous From, RFC 3261 §8.1.1.3)."""
    for token in req.headers.values("Privacy"):
        for part in token.split(";"):
            if part.strip().lower() in ("id", "user", "header"):
                return True
    try:
        frm = req.from_
    except ParseError:
        return False
    if frm.display and frm.display.strip().lower() == "anonymous":
        return True
    uri = frm.uri
    if isinstance(uri, SipUri):
        return (uri.user or "").lower() == "anonymous" or uri.host.lower() == "anonymous.invalid"
    return False


def national_form(e164: str, country_code: str = "47") -> str:
    """'+4722000001' → '22000001' (what a Norwegian phone displays); other numbers unchanged."""
    prefix = "+" + country_code
    if e164.startswith(prefix):
        return e164[len(prefix) :]
    return e164


def identity_for(number: str | None, target: Target, privacy: bool, domain: str, country_code: str = "47") -> Identity:
    """From / P-Asserted-Identity / Privacy for a B-leg INVITE.

    Carriers are inside the trust domain (RFC 3325 §2): they always get the
    real number in PAI, in E.164, and ``Privacy: id`` when the caller asked
    for it. Adapters are not: an anonymous call reaches them with an
    anonymous From and no PAI at all; otherwise both carry the national
    number the phone should display.
    """
    if target.trunk is not None:
        if number is None:
            return Identity(ANONYMOUS_FROM, (("Privacy", "id"),))
        pai = ("P-Asserted-Identity", f"<sip:{number}@{domain};user=phone>")
        if privacy:
            return Identity(ANONYMOUS_FROM, (pai, ("Privacy", "id")))
        return Identity(f"<sip:{number}@{domain};user=phone>", (pai,))
    if number is None or privacy:
        return Identity(ANONYMOUS_FROM)
    shown = national_form(number, country_code)
    return Identity(f"<sip:{shown}@{domain}>", (("P-Asserted-Identity", f"<sip:{shown}@{domain}>"),))


def _uri_user(uri: object) -> str | None:
    if isinstance(uri, TelUri):
        return str(uri)
    user = getattr(uri, "user", None)
    return str(user) if user else None


def dialled_of(req: Request) -> str:
    """What the caller dialled: the Request-URI's user part (a tel: URI whole)."""
    try:
        return _uri_user(req.ruri) or ""
    except SipError:
        return ""


def presented_number(req: Request, country_code: str = "47") -> Normalised | None:
    """The calling number a carrier asserts (PAI first, then From), normalised; None if anonymous."""
    candidates: list[str] = []
    for value in req.headers.values("P-Asserted-Identity"):
        try:
            user = _uri_user(NameAddr.parse(value).uri)
        except SipError:
            continue
        if user:
            candidates.append(user)
    try:
        user = _uri_user(req.from_.uri)
    except SipError:
        user = None
    if user:
        candidates.append(user)
    for c in candidates:
        n = normalise(c, country_code)
        if n.number_class is not NumberClass.INVALID:
            return n
    return None


class CallManager:
    """Creates calls, owns the dialog index, writes CDRs through the CdrWriter."""

    def __init__(
        self,
        *,
        endpoint: CallPort,
        auth: Authenticator,
        lines: LineDirectory,
        location: LocationService,
        trunks: TrunkService,
        cdr: CdrWriter | None,
        settings: CallSettings,
        policy: PolicyCheck | None = None,
        star_codes: StarCodeHandler | None = None,
        wall: Callable[[], float] = time.time,
        announcer: Announcer | None = None,
        policy_service: PolicyService | None = None,
        call_budget: Callable[[Call], None] | None = None,
        end_hooks: Sequence[Callable[[Call], None]] = (),
    ) -> None:
        self.endpoint = endpoint
        self._late_forks = LateForks(endpoint)
        self.auth = auth
        self.lines = lines
        self.location = location
        self.trunks = trunks
        self.cdr = cdr
        self.settings = settings
        self.policy = policy
        self.policy_service = policy_service
        self.star_codes = star_codes
        self.wall = wall
        self.clock = LoopClock(asyncio.get_running_loop(), wall)
        self.config = CallConfig(no_answer_timeout=settings.no_answer_timeout, max_duration=settings.max_duration)
        self.env = LegEnv(
            port=endpoint,
            clock=self.clock,
            create_response=endpoint.create_response,
            addresses=endpoint.via_addresses,
            domain=settings.domain,
            ack_timeout=settings.ack_timeout,
            setup_timeout=settings.setup_timeout,
            loop_token=secrets.token_hex(8),
            announcer=announcer,
        )
        self.calls: set[Call] = set()
        #: Told of each answered call (the credit limit: ``switch.services.rating.credit``).
        self.call_budget = call_budget
        #: Told of each ended call before its CDR is queued (``/metrics``).
        self.end_hooks: list[Callable[[Call], None]] = list(end_hooks)
        self.stats = ManagerStats()
        self._closing = False
        self._jobs: list[Periodic] = [
            trunks.liveness(endpoint, interval=settings.trunk_ping_interval, timeout=settings.trunk_ping_timeout,
                            from_host=settings.domain),
            trunks.reloader(settings.trunk_reload_interval),
        ]

    # -- wiring ---------------------------------------------------------------------
    @property
    def handlers(self) -> dict[str, RequestHandler]:
        """What the calls take from the endpoint, by method: INVITE and the in-dialog methods
        (CANCEL is ``on_cancel``). The composition root hands these to ``Endpoint.start``."""
        return {"INVITE": self.on_invite, **{method: self.on_dialog_request for method in _DIALOG_METHODS}}

    def start_background(self) -> None:
        """Trunk liveness pings and periodic reload of the trunk table."""
        for job in self._jobs:
            job.start()

    async def close(self, drain_timeout: float = 0.0) -> None:
        """Stop taking calls, let live ones finish for ``drain_timeout`` s, end the rest, flush CDRs."""
        if self._closing:
            return
        self._closing = True
        for job in self._jobs:
            await job.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout
        while self.calls and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for call in list(self.calls):
            call.shutdown(Cause.SHUTDOWN)
        if self.env.announcer is not None:
            self.env.announcer.close()  # prompts still playing: their final responses go out now
        # Give the BYE / CANCEL transactions a moment to complete.
        deadline = loop.time() + 2.0
        while self.env.dialogs and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self.cdr is not None:
            await self.cdr.close()

    # -- snapshot ---------------------------------------------------------------------
    def snapshot(self) -> RoutingSnapshot:
        return RoutingSnapshot(
            lines_by_number=self.lines.by_number,
            table=self.trunks.table,
            dead_trunks=self.trunks.dead,
            policy=self.policy,
            country_code=self.settings.country_code,
        )

    # -- INVITE -------------------------------------------------------------------------
    def on_invite(self, ev: RequestReceived) -> None:
        if ev.tid is None:
            return
        req = ev.request
        if req.to.tag is not None:
            self.on_dialog_request(ev)
            return
        self.stats.invites += 1
        try:
            self._new_call(ev)
        except Exception:  # noqa: BLE001 - one bad INVITE must not take the switch down
            log.exception("INVITE from %s:%d failed", ev.source.host, ev.source.port)
            leg = self.env.server_tids.get(ev.tid)
            if leg is not None and leg.call is not None:
                leg.call.shutdown(Cause.INTERNAL_ERROR)
            elif leg is None:
                self._answer(ev.tid, req, 500)

    def _answer(self, tid: str, req: Request, status: int, reason: str | None = None, headers: tuple[tuple[str, str], ...] = ()) -> None:
        try:
            resp = self.endpoint.create_response(tid, status, reason)
        except SipError:
            resp = response_for(req, status, reason)
        for name, value in headers:
            resp.headers.add(name, value)
        self.endpoint.reply(tid, resp)

    def _challenge(self, tid: str, req: Request, result: AuthChallenge) -> None:
        """407 sent statelessly (RFC 3261 §8.2.7): once, no 100 before it, no transaction
        after it. An unauthenticated INVITE costs no memory and, spoofed, is not
        amplified by Timer G retransmissions towards whoever its source pretends to be."""
        self.stats.challenged += 1
        resp = response_for(req, 407, to_tag=stateless_tag(req))
        for value in result.challenges:
            resp.headers.add("Proxy-Authenticate", value)
        self.endpoint.reply_and_forget(tid, resp)

    def _new_call(self, ev: RequestReceived) -> None:
        req = ev.request
        tid = ev.tid
        assert tid is not None
        if self._closing:
            self._answer(tid, req, 503, "Shutting Down", (("Retry-After", str(self.settings.shutdown_retry_after)),))
            return
        token = self.env.loop_token
        if token and req.headers.get(LOOP_HEADER) == token:
            self._answer(tid, req, 482, "Loop Detected", (("Reason", Cause.LOOP.reason_header),))
            return
        max_forwards = req.max_forwards
        if max_forwards is None:
            max_forwards = 70
        if max_forwards <= 0:
            self._answer(tid, req, 483, None, (("Reason", Cause.TOO_MANY_HOPS.reason_header),))
            return
        if not req.contacts and _rfc3261(req):  # an RFC 2543 client may leave it out (RFC 4475 §3.4.1)
            self._answer(tid, req, 400, "Missing Contact")
            return
        required = {t.lower() for t in req.headers.values("Require")} & _NOT_RELAYED_EXTENSIONS
        if required:
            # The layer accepts these option-tags for other users; a call cannot honour them.
            self._answer(tid, req, 420, None, (("Unsupported", ", ".join(sorted(required))),))
            return

        source = ev.source
        caller: Caller
        trunk = self.trunks.table.trunk_for_source(source.host)
        calling_number: str
        presented: str | None
        if trunk is not None:
            if not trunk.enabled:
                self._answer(tid, req, 403, "Trunk Disabled", (("Reason", Cause.FORBIDDEN_SOURCE.reason_header),))
                return
            caller = FromTrunk(trunk)
            shown = presented_number(req, self.settings.country_code)
            presented = None if shown is None else (shown.e164 or shown.national)
            calling_number = presented or "anonymous"
            calling_line_id = None
        else:
            result = self.auth.check(req, source.host, self.wall(), proxy=True, port=source.port)
            if isinstance(result, AuthChallenge):
                self._challenge(tid, req, result)
                return
            line: LineInfo
            if isinstance(result, AuthOk) and isinstance(result.credential, LineInfo):
                line = result.credential
            else:
                fallback = self._emergency_caller(req, source)
                if fallback is None:
                    self._answer(tid, req, 403, None, (("Reason", Cause.CALLER_AUTH_FAILED.reason_header),))
                    return
                line = fallback
            caller = FromLine(line)
            presented = calling_number = line.number
            calling_line_id = line.line_id

        privacy = wants_privacy(req)
        dialled = dialled_of(req)
        # Star codes (``*21*N#``, ``#21#`` …) from a line are parsed before numbering (feature_codes).
        star = feature_codes.parse(dialled) if self.star_codes is not None and isinstance(caller, FromLine) else None
        number = normalise(dialled, self.settings.country_code)
        ps = self.policy_service
        if isinstance(caller, FromTrunk):
            diverted = incoming_diversions(req.headers, number.e164, self.settings.country_code)
            seen, incoming_hops = diverted.numbers, diverted.hops
        else:
            seen, incoming_hops = (), 0
        now = ps.now() if ps is not None else Instant(self.wall(), 12)
        decision = policy_engine.decide(
            caller, number, self.snapshot(),
            ps.state if ps is not None else _NO_POLICY, ps.live if ps is not None else _NO_LIVE, now,
            diverted=seen, incoming_hops=incoming_hops,
        )

        leg = UasLeg(self.env, ev)
        first_hop_at = decision.hops[0] if decision.hops else None
        first_leg: RouteDecision
        if first_hop_at is not None:
            first_leg = _onnet_marker(first_hop_at)
        elif isinstance(decision, Route):
            first_leg = decision.route
        else:
            first_leg = Reject(decision.cause)
        leg.language = _language(caller, decision.route if isinstance(decision, Route) else first_leg)
        record = CdrDraft(
            call_id=req.call_id,
            direction=_direction(caller, first_leg),
            calling_number=calling_number,
            dialled=dialled,
            setup_at=self.wall(),
            calling_line_id=calling_line_id,
            normalised=number.e164 or number.national,
            number_class=number.number_class.value,
        )
        if first_hop_at is not None:
            record.called_line_id = first_hop_at.line_id
        body = req.body
        refused = refuse_body(body, req.headers.get("Content-Type"))
        if refused is not None:
            self._answer(tid, req, *refused)
            return
        trying = Try(
            body=body,
            content_type=req.headers.get("Content-Type") if body else None,
            max_forwards=max_forwards,
            privacy=privacy,
        )
        call = Call(
            a=leg,
            trying=trying,
            record=record,
            clock=self.clock,
            config=self.config,
            new_leg=partial(self._new_b_leg, presented, privacy),
            on_end=self._ended,
            reroute=partial(self._reroute, caller, number),
            emergency=isinstance(decision, Route) and isinstance(decision.route, Emergency),
            forward=self._forward if ps is not None else None,
            budget=self.call_budget,
        )
        call.ctx = PolicyLeg(caller, number.e164 or number.national or dialled, seen=frozenset(seen),
                             incoming_hops=incoming_hops)
        leg.attach(call)
        self.calls.add(call)
        self.stats.calls += 1
        if star is not None and self.star_codes is not None and isinstance(caller, FromLine):
            record.direction, record.number_class = CallDirection.ONNET, "feature_code"
            self.star_codes.handle(call, caller.line, star)
            return
        self._apply(call, decision, now)

    def _apply(self, call: Call, decision: Refuse | Route, now: Instant) -> None:
        """Carry out a policy decision: refuse, or start the targets; keep chain, trail and counters."""
        pc = call.ctx
        assert isinstance(pc, PolicyLeg)
        self._add_hops(call, pc, decision.hops)
        pc.trail = decision.trail
        ps = self.policy_service
        if isinstance(decision, Refuse):
            if ps is not None:
                if decision.attempts:
                    ps.record_attempts(decision.attempts, now.epoch)
                if decision.trip is not None:
                    ps.tripped(decision.trip)
            self._route(call, Reject(decision.cause, decision.code))
            return
        pc.seen = decision.seen or pc.seen
        route = decision.route
        if ps is not None and not isinstance(route, Emergency):
            if decision.attempts:
                ps.record_attempts(decision.attempts, now.epoch)
            lines: list[int] = []
            customers: list[int] = []
            if isinstance(pc.caller, FromLine):
                lines.append(pc.caller.line.line_id)
            for lid in [pc.caller.line.line_id] if isinstance(pc.caller, FromLine) else []:
                cid = ps.customer_of(lid)
                if cid is not None:
                    customers.append(cid)
            for hop in decision.hops:
                cid = ps.customer_of(hop.line_id)
                if cid is not None:
                    customers.append(cid)
            if isinstance(route, OnNet):
                lines.append(route.line.line_id)
                cid = ps.customer_of(route.line.line_id)
                if cid is not None:
                    customers.append(cid)
            if pc.occupancy is None:
                pc.occupancy = ps.hold(lines, customers)
            else:
                ps.add(pc.occupancy, lines, customers)
        if isinstance(route, OnNet):
            pc.callee = route.line
            call.forward_on = decision.forward_on
            call.ring_time = decision.ring_time
        else:
            pc.callee = None
        self._route(call, route)

    def _add_hops(self, call: Call, pc: PolicyLeg, hops: tuple[Hop, ...]) -> None:
        """One CDR per forwarded leg: the forwarder's own call to the target (billed to it)."""
        for hop in hops[len(pc.hops):]:
            number = normalise(hop.to_number, self.settings.country_code)
            leg = CdrDraft(
                call_id=call.record.call_id,
                direction=CallDirection.ONNET if number.e164 in self.lines.by_number else CallDirection.OUTGOING,
                calling_number=hop.from_number,
                dialled=hop.to_number,
                setup_at=self.wall(),
                calling_line_id=hop.line_id,
                normalised=number.e164 or number.national,
                number_class=number.number_class.value,
            )
            leg.forwarded_from = hop.from_number
            call.legs.append(call.record)
            call.record = leg
        pc.hops = hops

    def _forward(self, call: Call, kind: ForwardKind) -> list[Target] | tuple[Cause, int] | None:
        """The Call's forward hook: the callee's ``kind`` forward, decided again as the callee's own call."""
        pc = call.ctx
        ps = self.policy_service
        if not isinstance(pc, PolicyLeg) or pc.callee is None or ps is None:
            return None
        now = ps.now()
        callee = pc.callee
        d = policy_engine.decide_forward(
            callee, kind, pc.hops, tuple(pc.seen), pc.trail, self.snapshot(), ps.state, ps.live, now,
            incoming_hops=pc.incoming_hops,
        )
        if d is None:
            return None
        if pc.occupancy is not None:
            ps.drop_line(pc.occupancy, callee.line_id)  # it stops ringing there
        targets = self._apply_forward(call, d, now)
        if isinstance(d, Refuse):
            return d.cause, d.code
        return targets or (Cause.UNREGISTERED, 0)

    def _apply_forward(self, call: Call, d: Refuse | Route, now: Instant) -> list[Target]:
        pc = call.ctx
        assert isinstance(pc, PolicyLeg)
        self._add_hops(call, pc, d.hops)
        pc.trail = d.trail
        ps = self.policy_service
        assert ps is not None
        if isinstance(d, Refuse):
            if d.attempts:
                ps.record_attempts(d.attempts, now.epoch)
            if d.trip is not None:
                ps.tripped(d.trip)
            return []
        pc.seen = d.seen or pc.seen
        route = d.route
        if d.attempts:
            ps.record_attempts(d.attempts, now.epoch)
        customers = [c for c in (ps.customer_of(h.line_id) for h in d.hops) if c is not None]
        lines: list[int] = []
        if isinstance(route, OnNet):
            lines.append(route.line.line_id)
            cid = ps.customer_of(route.line.line_id)
            if cid is not None:
                customers.append(cid)
        if pc.occupancy is None:
            pc.occupancy = ps.hold(lines, customers)
        else:
            ps.add(pc.occupancy, lines, customers)
        targets: list[Target]
        if isinstance(route, OnNet):
            pc.callee = route.line
            call.forward_on = d.forward_on
            call.ring_time = d.ring_time
            targets = self._line_targets(route.line)
            call.record.called_line_id = route.line.line_id
        elif isinstance(route, Trunks):
            pc.callee = None
            targets = _trunk_targets(route.trunks, route.number, route.route_id, route.prefix)
        else:
            pc.callee = None
            targets = _trunk_targets(route.trunks, route.number, None, None)
        return targets

    def _emergency_caller(self, req: Request, source: Peer) -> LineInfo | None:
        """For 110/112/113 only: the line registered from exactly this address, when digest failed.

        Authentication can fail for reasons that are not the caller's: a
        neighbour behind the same NAT guessing passwords gets the whole source
        address throttled. An emergency call must still go through, so a
        caller whose claimed line has a live registration from this very
        IP:port (the adapter's NAT binding) is taken to be that line.
        """
        number = normalise(dialled_of(req), self.settings.country_code)
        if number.number_class is not NumberClass.EMERGENCY:
            return None
        users: list[str] = []
        for value in req.headers.get_lines("Proxy-Authorization"):
            try:
                users.append(digest.parse_credentials(value).username)
            except digest.DigestError:
                continue
        try:
            from_user = _uri_user(req.from_.uri)
        except SipError:
            from_user = None
        if from_user:
            users.append(from_user)
        for user in users:
            line = self.lines.credential(user) or self.lines.line_for_number(user)
            if line is None:
                continue
            for b in self.location.bindings(line.line_id):
                if b.received_host == source.host and b.received_port == source.port:
                    log.warning("emergency call from %s accepted without digest (registered from %s:%d)",
                                line.number, source.host, source.port)
                    return line
        return None

    def _route(self, call: Call, decision: RouteDecision) -> None:
        if isinstance(decision, Reject):
            call.reject(decision.cause, decision.code)
        elif isinstance(decision, OnNet):
            targets = self._line_targets(decision.line)
            if not targets:
                call.record.called_line_id = decision.line.line_id
                call.reject(Cause.UNREGISTERED)
            else:
                call.start(targets)
        elif isinstance(decision, Trunks):
            call.start(_trunk_targets(decision.trunks, decision.number, decision.route_id, decision.prefix))
        else:
            log.info("emergency call to %s via %s", decision.number, decision.trunk.name)
            call.start(_trunk_targets(decision.trunks, decision.number, None, None))

    def _line_targets(self, line: LineInfo) -> list[Target]:
        bindings = sorted(self.location.bindings(line.line_id), key=lambda b: (-b.q, -b.registered_at))
        shown = national_form(line.number, self.settings.country_code)
        to_uri = f"sip:{shown}@{self.settings.domain}"
        return [
            Target(
                ruri=b.contact,
                peer=Peer(b.transport, b.received_host, b.received_port, b.conn),
                number=shown,
                to_uri=to_uri,
                line=line,
            )
            for b in bindings
        ]

    def _new_b_leg(self, presented: str | None, privacy: bool, call: Call, target: Target) -> UacLeg:
        identity = identity_for(presented, target, privacy, self.settings.domain, self.settings.country_code)
        pc = call.ctx
        if isinstance(pc, PolicyLeg) and pc.hops:
            extra = forward_headers(pc.dialled, pc.hops, self.settings.domain, trunk=target.trunk is not None,
                                    country_code=self.settings.country_code)
            identity = Identity(identity.from_, identity.headers + extra)
        digest = self.trunks.digest_client(target.trunk) if target.trunk is not None else None
        return UacLeg(self.env, call, target, identity, digest)

    def _reroute(self, caller: Caller, original: Normalised, call: Call, contact: str) -> list[Target] | None:
        """Targets for a 3xx Contact, only through our own routing (never the Contact's host)."""
        try:
            user = _uri_user(NameAddr.parse(contact).uri if "<" in contact else parse_uri(contact.strip()))
        except SipError:
            return None
        if not user:
            return None
        number = normalise(user, self.settings.country_code)
        if number.number_class in (NumberClass.INVALID, NumberClass.EMERGENCY):
            return None
        ps = self.policy_service
        if ps is not None:
            # A redirect is a new call of the same caller: suspension, fraud guard and barring apply again.
            verdict = policy_engine.decide(caller, number, self.snapshot(), ps.state, ps.live, ps.now())
            if not isinstance(verdict, Route) or verdict.hops:
                return None
            route = verdict.route
            if isinstance(route, Emergency):
                return None
            decision: RouteDecision = route
        else:
            decision = decide(caller, number, self.snapshot())
        if isinstance(decision, OnNet):
            return self._line_targets(decision.line) or None
        if isinstance(decision, Trunks) and (
            number.number_class in _REDIRECT_OK or number.number_class is original.number_class
        ):
            return _trunk_targets(decision.trunks, decision.number, decision.route_id, decision.prefix)
        return None

    def _ended(self, call: Call) -> None:
        self.calls.discard(call)
        pc = call.ctx
        if isinstance(pc, PolicyLeg):
            trail = json.dumps(list(pc.trail), ensure_ascii=False) if pc.trail else None
            chain = json.dumps([h.as_json() for h in pc.hops], ensure_ascii=False) if pc.hops else None
            for r in [*call.legs, call.record]:
                r.decision_trail, r.forward_chain = trail, chain
            if pc.occupancy is not None and self.policy_service is not None:
                self.policy_service.release(pc.occupancy)
            call.ctx = None
        if self.cdr is not None:
            for earlier in call.legs:
                self.cdr.submit(earlier)
        rec = call.record
        stats = self.stats
        if rec.answer_at is not None:
            stats.answered += 1
        cause = rec.cause or "?"
        stats.by_cause[cause] = stats.by_cause.get(cause, 0) + 1
        talked = (rec.end_at or rec.answer_at or 0.0) - rec.answer_at if rec.answer_at is not None else 0.0
        log.info("call ended: %s -> %s cause=%s code=%s answered=%s duration=%.0fs call-id=%s",
                 rec.calling_number, rec.normalised or rec.dialled, cause, rec.final_code,
                 "yes" if rec.answer_at is not None else "no", talked, rec.call_id)
        for hook in self.end_hooks:
            hook(call)
        if self.cdr is not None:
            self.cdr.submit(rec)

    # -- in-dialog ----------------------------------------------------------------------------
    def on_dialog_request(self, ev: RequestReceived) -> None:
        req = ev.request
        tag = req.to.tag
        if tag is not None:
            leg = self.env.dialogs.get((req.call_id, tag))
            if leg is not None:
                if ev.tid is not None and not self._from_dialog_peer(leg, ev):
                    self._answer(ev.tid, req, 481)  # not this dialog's peer: the call goes on
                    return
                leg.on_request(ev)
                return
        if ev.tid is None:
            return  # a stray ACK
        if tag is None:
            if req.method in ("OPTIONS", "NOTIFY", "REFER"):
                self.endpoint.default_answer(ev)
                return
        self._answer(ev.tid, req, 481)

    def _from_dialog_peer(self, leg: Any, ev: RequestReceived) -> bool:
        """An in-dialog request must carry the dialog's remote tag (§12.2.2) and come from
        the leg's peer: the same host, or for a trunk any address of the same trunk.
        A BYE guessed or sniffed by someone else must not end the call."""
        dialog = leg.dialog
        if dialog is not None and (ev.request.from_.tag or "") != dialog.remote_tag:
            return False
        peer_host = leg.peer.host
        host = ev.source.host
        if host == peer_host:
            return True
        table = self.trunks.table
        trunk = table.trunk_for_source(host)
        return trunk is not None and trunk is table.trunk_for_source(peer_host)

    def on_late_answer(self, ev: LateAnswer) -> None:
        """Another fork's 2xx after its B-leg was handed over: ACK it and BYE it (uac_leg.LateForks)."""
        self._late_forks(ev)

    def on_cancel(self, ev: CancelReceived) -> None:
        leg = self.env.server_tids.get(ev.tid)
        if leg is not None:
            leg.on_cancel(ev)
        else:
            request = self.endpoint.server_request(ev.tid)
            if request is not None:
                self._answer(ev.tid, request, 487)


def _rfc3261(req: Request) -> bool:
    """The request comes from an RFC 3261 client: its branch has the magic cookie (§8.1.1.7)."""
    branch = req.top_via.branch
    return branch is not None and branch.startswith(MAGIC_COOKIE)


def _trunk_targets(trunks: tuple[TrunkInfo, ...], number: str, route_id: int | None, prefix: str | None) -> list[Target]:
    return [
        Target(
            ruri=t.request_uri(number),
            peer=t.peer,
            number=number,
            to_uri=f"sip:{number}@{t.host}",
            trunk=t,
            route_id=route_id,
            route_prefix=prefix,
        )
        for t in trunks
    ]


def _language(caller: Caller, decision: RouteDecision) -> str:
    """Of the caller's announcements: the calling line's (its customer's by default); from a trunk, the called line's."""
    if isinstance(caller, FromLine):
        return caller.line.language
    if isinstance(decision, OnNet):
        return decision.line.language
    return "nb"


def _onnet_marker(hop: Hop) -> RouteDecision:
    """The first leg of a forwarded call went to one of our lines (the forwarder's)."""
    return OnNet(LineInfo(hop.line_id, "", hop.from_number, "", "", None, 0))


def _direction(caller: Caller, decision: RouteDecision) -> CallDirection:
    if isinstance(caller, FromTrunk):
        return CallDirection.INCOMING
    if isinstance(decision, OnNet):
        return CallDirection.ONNET
    return CallDirection.OUTGOING
