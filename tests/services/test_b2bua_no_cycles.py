"""Finished calls are freed by reference counting alone, never by the cyclic garbage collector.

Why this matters: at a few hundred calls/s the collector's pauses were the
post-dial-delay p99 (bench/bench_calls_inproc.py reports them). ``tune_gc``
can only make collections rare if calls leave no reference cycles behind:
a cycle is memory that only a collection frees. So every way a call ends is
driven here with the collector *off*, and after the last SIP timer has run
the Call and its legs must already be gone (a dead ``weakref``, no
``gc.collect()``), and a collection afterwards must find nothing at all.

The parts are the real ones: CallManager, Call, legs, dialogs, the
Endpoint and its transaction layer, with real SIP messages fed in as
datagrams; only the socket send is replaced by a capture, and the database
by in-memory lines and bindings. Time is virtual: the event loop's clock is
moved past every transaction and dialog timer (Timer D, L and M are 32 s),
so a scenario takes a fraction of a second, not a minute.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from switch import gcstats
from switch.services.auth import Authenticator
from switch.services.b2bua.call import Call, Target
from switch.services.b2bua.uac_leg import UacLeg
from switch.services.b2bua.manager import CallManager, CallSettings
from switch.services.cdr import CdrWriter
from switch.services.lines import LineDirectory, LineInfo
from switch.services.location import Binding, LocationService
from switch.services.trunks import TrunkService
from switch.sip import digest
from switch.sip.headers import Headers
from switch.sip.message import Message, Request, Response, new_branch, new_call_id, new_tag, response_for
from switch.sip.parser import parse_message
from switch.transport.endpoint import Dispatch, Endpoint

REALM = "127.0.0.1"
CALLER = ("22000001", "caller-secret-1", 5061)
CALLEE = ("22000002", "callee-secret-2", 5062)
SDP_A = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
SDP_B = b"v=0\r\no=b 2 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\n"
#: Longer than every timer a finished call leaves running: Timer D/L/M (32 s) and the BYE guard (33 s).
AFTERMATH = 40.0


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock can be moved forward, so 40 s of SIP timers run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = 0.0

    def time(self) -> float:
        return super().time() + self.offset

    async def advance(self, seconds: float, step: float = 0.05) -> None:
        """Move the clock forward in small steps, running every timer that falls due on the way."""
        end = self.time() + seconds
        while self.time() < end:
            self.offset += step
            for _ in range(3):
                await asyncio.sleep(0)


def _ha1(user: str, password: str) -> str:
    return hashlib.md5(f"{user}:{REALM}:{password}".encode()).hexdigest()


def _line(line_id: int, user: str, password: str) -> LineInfo:
    return LineInfo(line_id=line_id, auth_user=user, number=f"+47{user}", ha1_md5=_ha1(user, password), ha1_sha256="",
                    adapter_id=1, port=line_id)


@dataclass
class Rig:
    """The switch's B2BUA on a capturing endpoint, and what the test keeps of its calls (weak references only)."""

    loop: VirtualTimeLoop
    endpoint: Endpoint
    manager: CallManager
    sent: list[tuple[bytes, int]] = field(default_factory=list)
    calls: list[weakref.ref[Call]] = field(default_factory=list)
    legs: list[weakref.ref[Any]] = field(default_factory=list)

    def rx(self, msg: Message, port: int) -> None:
        """A datagram from 127.0.0.1:``port`` reaches the switch."""
        self.endpoint.udp_received(msg.to_bytes(), "127.0.0.1", port)

    def take(self, port: int) -> list[Message]:
        """Everything the switch sent to ``port`` since the last look, parsed."""
        got = [parse_message(d) for d, p in self.sent if p == port]
        self.sent[:] = [(d, p) for d, p in self.sent if p != port]
        return got

    def expect(self, port: int, want: str | int) -> Any:
        """The last message to ``port`` that is ``want`` (a method or a status)."""
        for msg in reversed(self.take(port)):
            if isinstance(want, str) and isinstance(msg, Request) and msg.method == want:
                return msg
            if isinstance(want, int) and isinstance(msg, Response) and msg.status == want:
                return msg
        raise AssertionError(f"the switch sent no {want} to port {port}")

    def record(self, call: Call) -> None:
        self.calls.append(weakref.ref(call))
        self.legs.append(weakref.ref(call.a))

    def live(self) -> list[object]:
        """Calls and legs of this test that are still alive."""
        return [o for ref in (*self.calls, *self.legs) if (o := ref()) is not None]


class _RecordingSet(set[Call]):
    """``CallManager.calls`` that tells the rig about every call it is given (and keeps nothing more)."""

    def __init__(self, on_add: Callable[[Call], None]) -> None:
        super().__init__()
        self._on_add = on_add

    def add(self, call: Call) -> None:
        self._on_add(call)
        super().add(call)


async def _start(loop: VirtualTimeLoop) -> Rig:
    endpoint = Endpoint()
    callee_user, _, callee_port = CALLEE
    lines = LineDirectory(_load_lines)
    await lines.reload()
    location = LocationService(_no_write)
    location.start([Binding(line_id=2, contact=f"sip:{callee_user}@127.0.0.1:{callee_port}", expires_at=4e9, call_id="reg",
                            cseq=1, received_host="127.0.0.1", received_port=callee_port, transport="udp")])
    trunks = TrunkService(_no_trunks)
    await trunks.reload()
    cdr = CdrWriter(_no_rows, window=0.05, retry_interval=0)
    cdr.start()
    auth = Authenticator(realm=REALM, secret=b"k" * 32, lookup=lines.credential, algorithms=("MD5",))  # type: ignore[arg-type]
    manager = CallManager(endpoint=endpoint, auth=auth, lines=lines, location=location, trunks=trunks, cdr=cdr,
                          settings=CallSettings(domain=REALM))
    await endpoint.start([("127.0.0.1", 0)], Dispatch(handlers=manager.handlers, on_cancel=manager.on_cancel,
                                                                on_late_answer=manager.on_late_answer))
    rig = Rig(loop, endpoint, manager)
    for udp in endpoint.udp:
        udp.send = _capture(rig.sent)  # type: ignore[method-assign,assignment]
    manager.calls = _RecordingSet(rig.record)
    new_b_leg = manager._new_b_leg

    def recorded_b_leg(presented: str | None, privacy: bool, call: Call, target: Target) -> UacLeg:
        leg = new_b_leg(presented, privacy, call, target)
        rig.legs.append(weakref.ref(leg))
        return leg

    manager._new_b_leg = recorded_b_leg  # type: ignore[method-assign]
    return rig


async def _load_lines() -> list[LineInfo]:
    return [_line(1, CALLER[0], CALLER[1]), _line(2, CALLEE[0], CALLEE[1])]


async def _no_write(changes: object) -> None:
    return None


async def _no_trunks() -> tuple[list[Any], list[Any]]:
    return [], []


async def _no_rows(rows: object) -> None:
    return None


def _capture(sent: list[tuple[bytes, int]]) -> Callable[[bytes, str, int], None]:
    def send(data: bytes, host: str, port: int) -> None:
        sent.append((data, port))

    return send


async def _stop(rig: Rig) -> None:
    await rig.manager.close()
    await rig.manager.location.close()
    await rig.endpoint.stop()


# ============================================================================ the two phones


def _request(method: str, ruri: str, port: int, *, from_: str, to: str, call_id: str, cseq: int,
             extra: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Request:
    """A request from the phone at 127.0.0.1:``port``, with a fresh branch."""
    h = Headers.of([
        ("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch={new_branch()};rport"),
        ("Max-Forwards", "70"),
        ("From", from_),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", f"<sip:phone@127.0.0.1:{port}>"),
        *extra,
    ])
    if body:
        h.add("Content-Type", "application/sdp")
    return Request(method, ruri, h, body)


def _answer(rig: Rig, req: Request, status: int, tag: str, body: bytes = b"") -> Response:
    """The callee answers a request the switch sent it."""
    resp = response_for(req, status, to_tag=tag)
    if 100 < status < 300:
        resp.headers.add("Contact", f"<sip:{CALLEE[0]}@127.0.0.1:{CALLEE[2]}>")
    if body:
        resp.headers.add("Content-Type", "application/sdp")
        resp.body = body
    rig.rx(resp, CALLEE[2])
    return resp


def _non2xx_ack(invite: Request, resp: Response) -> Request:
    """The ACK for a non-2xx final response: the INVITE's branch, the response's To (§17.1.1.3)."""
    h = Headers.of([("Via", invite.headers.values("Via")[0]), ("Max-Forwards", "70"), ("From", invite.headers.get("From") or ""),
                    ("To", resp.headers.get("To") or ""), ("Call-ID", invite.call_id), ("CSeq", f"{invite.cseq.seq} ACK")])
    return Request("ACK", invite.uri, h)


@dataclass
class Placed:
    """The caller's side of one call: the INVITE as finally sent and, once answered, the dialog."""

    invite: Request
    to: str = ""
    target: str = ""
    cseq: int = 2

    def in_dialog(self, method: str, cseq: int | None = None) -> Request:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        return _request(method, self.target, CALLER[2], from_=self.invite.headers.get("From") or "", to=self.to,
                        call_id=self.invite.call_id, cseq=cseq)


def _dial(rig: Rig) -> Placed:
    """INVITE the callee: 407, the ACK for it, and the INVITE again with credentials (RFC 3261 §22.3)."""
    user, password, port = CALLER
    ruri = f"sip:{CALLEE[0]}@{REALM}"
    call_id, tag = new_call_id(), new_tag()
    from_ = f"<sip:{user}@{REALM}>;tag={tag}"
    first = _request("INVITE", ruri, port, from_=from_, to=f"<{ruri}>", call_id=call_id, cseq=1, body=SDP_A)
    rig.rx(first, port)
    challenge: Response = rig.expect(port, 407)
    rig.rx(_non2xx_ack(first, challenge), port)
    ch = digest.choose_challenge([c for v in challenge.headers.get_lines("Proxy-Authenticate") for c in digest.parse_challenges(v)])
    auth = digest.DigestClient(user, password).authorize(ch, "INVITE", ruri)
    second = _request("INVITE", ruri, port, from_=from_, to=f"<{ruri}>", call_id=call_id, cseq=2, body=SDP_A,
                      extra=(("Proxy-Authorization", auth),))
    rig.rx(second, port)
    return Placed(second)


def _ringing(rig: Rig) -> tuple[Placed, Request, str]:
    """A call dialled and the callee answering 180: (caller's side, the callee's INVITE, the callee's tag)."""
    placed = _dial(rig)
    inv: Request = rig.expect(CALLEE[2], "INVITE")
    tag = new_tag()
    _answer(rig, inv, 180, tag)
    return placed, inv, tag


def _answered_and_acked(rig: Rig) -> tuple[Placed, Request, str]:
    """A call rung and answered, the caller's ACK in; the switch's ACK to the callee is still in ``rig.sent``."""
    placed, inv, tag = _ringing(rig)
    rig.expect(CALLER[2], 180)
    _answer(rig, inv, 200, tag, SDP_B)
    ok: Response = rig.expect(CALLER[2], 200)
    placed.to = ok.headers.get("To") or ""
    placed.target = str(ok.contacts[0].uri)
    rig.rx(placed.in_dialog("ACK", cseq=2), CALLER[2])
    return placed, inv, tag


def _answered(rig: Rig) -> tuple[Placed, Request, str]:
    """A call rung and answered, both ACKs through: (caller's side, the callee's INVITE, the callee's tag)."""
    placed, inv, tag = _answered_and_acked(rig)
    rig.expect(CALLEE[2], "ACK")
    return placed, inv, tag


# ============================================================================ the scenarios


async def _bye_from_caller(rig: Rig) -> None:
    placed, inv, tag = _answered(rig)
    bye = placed.in_dialog("BYE")
    rig.rx(bye, CALLER[2])
    b_bye: Request = rig.expect(CALLEE[2], "BYE")
    rig.rx(response_for(b_bye, 200), CALLEE[2])
    rig.expect(CALLER[2], 200)
    # Late traffic the legs must still absorb after the call is gone: a retransmitted
    # BYE (the server transaction re-sends its 200) and a retransmitted 2xx (re-ACKed).
    rig.rx(bye, CALLER[2])
    rig.expect(CALLER[2], 200)
    _answer(rig, inv, 200, tag, SDP_B)
    rig.expect(CALLEE[2], "ACK")


async def _bye_from_callee(rig: Rig) -> None:
    placed, inv, tag = _answered(rig)
    bye = _request("BYE", str(inv.contacts[0].uri), CALLEE[2], from_=f"{inv.headers.get('To')};tag={tag}",
                   to=inv.headers.get("From") or "", call_id=inv.call_id, cseq=1)
    rig.rx(bye, CALLEE[2])
    rig.expect(CALLEE[2], 200)
    a_bye: Request = rig.expect(CALLER[2], "BYE")
    rig.rx(response_for(a_bye, 200), CALLER[2])


async def _cancelled(rig: Rig) -> None:
    placed, inv, tag = _ringing(rig)
    rig.expect(CALLER[2], 180)
    h = Headers.of([("Via", placed.invite.headers.values("Via")[0]), ("Max-Forwards", "70"),
                    ("From", placed.invite.headers.get("From") or ""), ("To", placed.invite.headers.get("To") or ""),
                    ("Call-ID", placed.invite.call_id), ("CSeq", f"{placed.invite.cseq.seq} CANCEL")])
    rig.rx(Request("CANCEL", placed.invite.uri, h), CALLER[2])
    cancel: Request = rig.expect(CALLEE[2], "CANCEL")
    rig.rx(response_for(cancel, 200), CALLEE[2])
    _answer(rig, inv, 487, tag)
    rig.expect(CALLEE[2], "ACK")
    a487: Response = rig.expect(CALLER[2], 487)
    rig.rx(_non2xx_ack(placed.invite, a487), CALLER[2])
    _answer(rig, inv, 487, tag)  # a retransmitted 487: the client transaction re-sends its ACK
    rig.expect(CALLEE[2], "ACK")


async def _rejected(rig: Rig) -> None:
    placed = _dial(rig)
    inv: Request = rig.expect(CALLEE[2], "INVITE")
    _answer(rig, inv, 486, new_tag())
    rig.expect(CALLEE[2], "ACK")
    busy: Response = rig.expect(CALLER[2], 486)
    rig.rx(placed.invite, CALLER[2])  # a retransmitted INVITE: the server transaction re-sends the 486
    rig.expect(CALLER[2], 486)
    rig.rx(_non2xx_ack(placed.invite, busy), CALLER[2])


async def _challenged_only(rig: Rig) -> None:
    """The caller gets its 407 and gives up: no call at all, only the challenge transaction."""
    user, _, port = CALLER
    ruri = f"sip:{CALLEE[0]}@{REALM}"
    invite = _request("INVITE", ruri, port, from_=f"<sip:{user}@{REALM}>;tag={new_tag()}", to=f"<{ruri}>",
                      call_id=new_call_id(), cseq=1, body=SDP_A)
    rig.rx(invite, port)
    challenge: Response = rig.expect(port, 407)
    rig.rx(_non2xx_ack(invite, challenge), port)


async def _mid_call_requests(rig: Rig) -> None:
    """A re-INVITE (hold) from the caller and an INFO from the callee are relayed, then the caller hangs up.

    Each relayed request waits for its answer in a closure held by the endpoint.
    """
    placed, inv, tag = _answered(rig)
    reinvite = placed.in_dialog("INVITE")
    reinvite.headers.add("Content-Type", "application/sdp")
    reinvite.body = SDP_A.replace(b"1 1 IN", b"1 2 IN") + b"a=sendonly\r\n"
    rig.rx(reinvite, CALLER[2])
    b_reinvite: Request = rig.expect(CALLEE[2], "INVITE")
    _answer(rig, b_reinvite, 200, tag, SDP_B)
    rig.expect(CALLEE[2], "ACK")
    rig.expect(CALLER[2], 200)
    rig.rx(placed.in_dialog("ACK", cseq=reinvite.cseq.seq), CALLER[2])
    info = _request("INFO", str(inv.contacts[0].uri), CALLEE[2], from_=f"{inv.headers.get('To')};tag={tag}",
                    to=inv.headers.get("From") or "", call_id=inv.call_id, cseq=1)
    rig.rx(info, CALLEE[2])
    a_info: Request = rig.expect(CALLER[2], "INFO")
    rig.rx(response_for(a_info, 200), CALLER[2])
    rig.expect(CALLEE[2], 200)
    rig.rx(placed.in_dialog("BYE"), CALLER[2])
    b_bye: Request = rig.expect(CALLEE[2], "BYE")
    rig.rx(response_for(b_bye, 200), CALLEE[2])


async def _no_ack_from_caller(rig: Rig) -> None:
    """The caller never ACKs the 200: after 64*T1 the call ends with a BYE each way (§13.3.1.4)."""
    _dial(rig)
    inv: Request = rig.expect(CALLEE[2], "INVITE")
    tag = new_tag()
    _answer(rig, inv, 200, tag, SDP_B)
    rig.expect(CALLER[2], 200)
    await rig.loop.advance(33.0)
    b_bye: Request = rig.expect(CALLEE[2], "BYE")
    rig.rx(response_for(b_bye, 200), CALLEE[2])
    a_bye: Request = rig.expect(CALLER[2], "BYE")
    rig.rx(response_for(a_bye, 200), CALLER[2])


async def _no_answer(rig: Rig) -> None:
    """The callee rings until the no-answer timer: CANCEL towards it, 480 to the caller."""
    placed, inv, tag = _ringing(rig)
    await rig.loop.advance(61.0)
    cancel: Request = rig.expect(CALLEE[2], "CANCEL")
    rig.rx(response_for(cancel, 200), CALLEE[2])
    _answer(rig, inv, 487, tag)
    rig.expect(CALLEE[2], "ACK")
    unanswered: Response = rig.expect(CALLER[2], 480)
    rig.rx(_non2xx_ack(placed.invite, unanswered), CALLER[2])


async def _callee_silent(rig: Rig) -> None:
    """The callee's contact never answers at all: the setup timer gives up on it, the caller gets 480."""
    placed = _dial(rig)
    rig.expect(CALLEE[2], "INVITE")
    await rig.loop.advance(5.0)
    failed: Response = rig.expect(CALLER[2], 480)
    rig.rx(_non2xx_ack(placed.invite, failed), CALLER[2])


#: The five ways a call ends that every call takes, then the less common ones.
SCENARIOS: dict[str, Callable[[Rig], Awaitable[None]]] = {
    "bye_from_caller": _bye_from_caller,
    "bye_from_callee": _bye_from_callee,
    "cancel_before_answer": _cancelled,
    "rejected_486": _rejected,
    "challenged_407_only": _challenged_only,
    "mid_call_reinvite_and_info": _mid_call_requests,
    "no_ack_from_caller": _no_ack_from_caller,
    "no_answer_timeout": _no_answer,
    "callee_silent_setup_timeout": _callee_silent,
}


# ============================================================================ the checks


def _ours(obj: object) -> bool:
    """Does this object belong to the switch's code (its types, functions, bound methods, frames)?"""
    t = type(obj)
    if t.__module__.startswith("switch."):
        return True
    code = getattr(obj, "__code__", None) or getattr(getattr(obj, "__func__", None), "__code__", None) or getattr(obj, "f_code", None)
    if code is not None and "/switch/" in code.co_filename:
        return True
    owner = getattr(obj, "__self__", None)
    return owner is not None and type(owner).__module__.startswith("switch.")


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The cyclic GC is off for the test: whatever it would have freed stays for us to find.

    Everything older than the test is frozen, so a collection looks only at
    what the test created (not at an earlier test's leftovers). Warnings are
    not recorded: pytest keeps every log record of a test, and a record's
    arguments (``log.warning("%r: no ACK", leg)``) would keep a leg alive.
    """
    switch_log = logging.getLogger("switch")
    level = switch_log.level
    switch_log.setLevel(logging.ERROR)
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        switch_log.setLevel(level)


@dataclass
class Outcome:
    alive: list[object]
    """Calls and legs still alive after every timer expired, without any collection."""
    unreachable: list[object]
    """What a full collection then found (reference cycles), anything's."""
    leftovers: dict[str, int]
    """Transactions, dialog index entries and endpoint callbacks still registered."""

    @property
    def ours(self) -> list[object]:
        return [o for o in self.unreachable if _ours(o)]


def _collections() -> int:
    return sum(s["collections"] for s in gc.get_stats())


def _run(scenario: Callable[[Rig], Awaitable[None]], calls: int = 3) -> Outcome:
    """Run ``scenario`` ``calls`` times, let every timer expire, then look at what is left."""
    loop = VirtualTimeLoop()

    async def main() -> Outcome:
        rig = await _start(loop)
        try:
            collections = _collections()
            for _ in range(calls):
                await scenario(rig)
            await loop.advance(1.0)
            assert rig.calls or scenario is _challenged_only
            assert not rig.manager.calls, "the calls did not end"
            await loop.advance(AFTERMATH)
            alive = rig.live()
            assert _collections() == collections, "a collection ran: reference counting alone must free the calls"
            leftovers = {
                "transactions": rig.endpoint.layer.live_transactions,
                "dialogs": len(rig.manager.env.dialogs),
                "server_tids": len(rig.manager.env.server_tids),
                "client_callbacks": len(rig.endpoint._clients),
            }
            return Outcome(alive, gcstats.unreachable_objects(), leftovers)
        finally:
            await _stop(rig)

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_finished_call_is_freed_without_the_cycle_collector(name: str, collector_off: None) -> None:
    out = _run(SCENARIOS[name])
    assert out.leftovers == {"transactions": 0, "dialogs": 0, "server_tids": 0, "client_callbacks": 0}
    assert out.alive == [], f"kept alive after every timer expired (a cycle, or a reference nobody drops): {out.alive!r}"
    assert out.ours == [], f"only the cycle collector could free: {sorted({type(o).__qualname__ for o in out.ours})}"
    # Nothing else either: the calls' path through asyncio and the endpoint makes no cycles at all.
    assert out.unreachable == [], sorted({type(o).__qualname__ for o in out.unreachable})


def test_a_finished_b_leg_is_freed_before_timer_m_and_its_invite_is_still_acked(collector_off: None) -> None:
    """After BYE the B-leg INVITE's Timer M (32 s) must not keep the leg, nor any object of the call.

    The leg hands the INVITE to the layer as a lingering record (transaction/linger.py).
    What it must still do (RFC 3261 §13.2.2.4, RFC 6026): re-send our ACK, byte for
    byte, for a retransmitted 2xx, and ACK then BYE a 2xx from another fork.
    """
    loop = VirtualTimeLoop()

    async def main() -> None:
        rig = await _start(loop)
        try:
            placed, inv, tag = _answered_and_acked(rig)
            acks = [d for d, p in rig.sent if p == CALLEE[2] and d.startswith(b"ACK ")]
            assert len(acks) == 1
            rig.sent.clear()
            rig.rx(placed.in_dialog("BYE"), CALLER[2])
            b_bye: Request = rig.expect(CALLEE[2], "BYE")
            rig.rx(response_for(b_bye, 200), CALLEE[2])
            rig.expect(CALLER[2], 200)
            await loop.advance(1.0)

            assert not rig.manager.calls
            assert rig.endpoint._clients == {}, "no callback is kept for the INVITE's Timer M"
            layer = rig.endpoint.layer
            assert [t for t in layer._client.values() if t.tid.endswith("|INVITE")] == [] and layer.lingering >= 1
            assert rig.live() == [], f"Timer M keeps {rig.live()!r}"

            _answer(rig, inv, 200, tag, SDP_B)  # a retransmitted 2xx: the same ACK again
            assert [d for d, p in rig.sent if p == CALLEE[2]] == acks
            rig.sent.clear()

            other = new_tag()  # a second fork answers late: ACK it, then BYE it (§13.2.2.4)
            _answer(rig, inv, 200, other, SDP_B)
            ack, bye = rig.take(CALLEE[2])
            assert isinstance(ack, Request) and ack.method == "ACK" and ack.to.tag == other and ack.cseq.seq == inv.cseq.seq
            assert isinstance(bye, Request) and bye.method == "BYE" and bye.to.tag == other
            assert bye.call_id == inv.call_id and bye.from_.tag == inv.from_.tag and bye.cseq.seq == inv.cseq.seq + 1
            assert str(bye.uri) == f"sip:{CALLEE[0]}@127.0.0.1:{CALLEE[2]}" and "cause=" in (bye.headers.get("Reason") or "")
            rig.rx(response_for(bye, 200), CALLEE[2])
            _answer(rig, inv, 200, other, SDP_B)  # its retransmission: the same ACK, no second BYE
            (again,) = rig.take(CALLEE[2])
            assert again.to_bytes() == ack.to_bytes()

            await loop.advance(AFTERMATH)
            assert rig.endpoint._clients == {} and rig.endpoint.layer.live_transactions == 0
        finally:
            await _stop(rig)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
