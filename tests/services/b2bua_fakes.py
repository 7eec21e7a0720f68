"""Fakes for the pure B2BUA tests: legs that record events, a clock whose timers are fired by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from switch.services.b2bua.call import Call, CallConfig, Target
from switch.services.b2bua.events import Event, Try
from switch.services.cdr import CdrDraft
from switch.services.lines import LineInfo
from switch.services.trunks import TrunkInfo
from switch.sip.transaction.events import Peer
from switch.store.models import CallDirection


class FakeLeg:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Event] = []
        self.detached = False

    def send(self, event: Event) -> None:
        self.sent.append(event)

    def detach(self) -> None:
        self.detached = True

    def __repr__(self) -> str:
        return f"<FakeLeg {self.name}>"


@dataclass
class _Timer:
    at: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeClock:
    t: float = 1000.0
    wall_offset: float = 1_700_000_000.0
    timers: list[_Timer] = field(default_factory=list)

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t + self.wall_offset

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self.t + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, firing due timers in order."""
        end = self.t + seconds
        while True:
            due = sorted((t for t in self.timers if not t.cancelled and t.at <= end), key=lambda t: t.at)
            if not due:
                break
            timer = due[0]
            self.timers.remove(timer)
            self.t = timer.at
            timer.callback()
        self.t = end

    def live(self) -> list[_Timer]:
        return [t for t in self.timers if not t.cancelled]


def line(n: int = 2) -> LineInfo:
    return LineInfo(
        line_id=n, auth_user=f"2200000{n}", number=f"+472200000{n}", ha1_md5="", ha1_sha256="", adapter_id=1, port=n
    )


def trunk(i: int, name: str | None = None, emergency: bool = False) -> TrunkInfo:
    return TrunkInfo(trunk_id=i, name=name or f"carrier{i}", host=f"192.0.2.{i}", emergency=emergency)


def trunk_target(i: int, number: str = "+4791234567") -> Target:
    t = trunk(i)
    return Target(ruri=t.request_uri(number), peer=t.peer, number=number, trunk=t, route_id=7, route_prefix="+47")


def line_target(n: int = 2, port: int = 5062) -> Target:
    li = line(n)
    return Target(ruri=f"sip:{li.auth_user}@10.0.0.{n}:{port}", peer=Peer("udp", "198.51.100.9", port), number=li.number[3:], line=li)


@dataclass
class Harness:
    call: Call
    a: FakeLeg
    clock: FakeClock
    b_legs: list[tuple[FakeLeg, Target]]
    ended: list[Call]

    @property
    def b(self) -> FakeLeg:
        return self.b_legs[-1][0]

    @property
    def record(self) -> CdrDraft:
        return self.call.record


def make_call(
    *,
    config: CallConfig | None = None,
    reroute: Callable[[Call, str], list[Target] | None] | None = None,
    emergency: bool = False,
    trying: Try | None = None,
    failing_factory: bool = False,
    forward: Callable[..., object] | None = None,
    budget: Callable[[Call], None] | None = None,
) -> Harness:
    clock = FakeClock()
    a = FakeLeg("A")
    b_legs: list[tuple[FakeLeg, Target]] = []
    ended: list[Call] = []

    def new_leg(call: Call, target: Target) -> FakeLeg:
        if failing_factory and not b_legs:
            b_legs.append((FakeLeg("broken"), target))
            raise OSError("no route to host")
        leg = FakeLeg(f"B{len(b_legs) + 1}")
        b_legs.append((leg, target))
        return leg

    record = CdrDraft(
        call_id="a-call@test",
        direction=CallDirection.OUTGOING,
        calling_number="+4722000001",
        dialled="91234567",
        setup_at=clock.wall(),
        calling_line_id=1,
    )
    call = Call(
        a=a,
        trying=trying or Try(body=b"v=0\r\n", content_type="application/sdp", max_forwards=70),
        record=record,
        clock=clock,
        config=config or CallConfig(no_answer_timeout=60.0, max_duration=3600.0),
        new_leg=new_leg,
        on_end=ended.append,
        reroute=reroute,
        emergency=emergency,
        forward=forward,  # type: ignore[arg-type]
        budget=budget,
    )
    return Harness(call, a, clock, b_legs, ended)


