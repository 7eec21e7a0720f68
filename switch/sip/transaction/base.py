"""Shared machinery of the four transaction state machines (RFC 3261 §17).

Theory of operation
-------------------
Each machine (ICT, NICT, IST, NIST) is a class with one table::

    (state, input) -> Transition(action, target, doc)

``process`` looks the pair up, moves to ``target`` and then runs ``action``,
which does the side effects (send, emit an event, arm or disarm a timer)
through a :class:`Context` -- in practice the :class:`TransactionLayer`. A pair
that is not in the table raises :class:`TransactionError` and leaves the state
unchanged; the layer turns that into a counted drop (an odd message from the
network, a late response from the TU), never into a crash. The tables are the
single source of truth: ``docs/transactions.md`` is generated from them
(``python -m switch.sip.transaction.diagram``) and the tests enumerate them.

Inputs are of three kinds: messages from the network (``RECV_*``), responses
from the TU (``SEND_*``, server side only; client requests are sent when the
transaction is created) and timers (``TIMER_*``), plus ``TRANSPORT_ERROR``.

Timers live in the layer's heap. A transaction only records which timers are
armed (``armed``: input -> heap sequence number); disarming forgets the entry and
the stale heap item is skipped when it surfaces (lazy deletion). A timer whose
duration is zero (D, I, J, K on reliable transports) is not put in the heap: it
fires as soon as the current transition has finished, so the machine passes
through the state exactly as the RFC's figures show.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, ClassVar, NamedTuple, Protocol

from ..errors import TransactionError
from ..message import Message, Request, Response
from ..timers import TransportTimers
from .events import Event, Peer, ResponseReceived, TransportError

__all__ = [
    "State",
    "Input",
    "Transition",
    "Transaction",
    "ClientTransaction",
    "ServerTransaction",
    "Context",
    "Action",
    "response_input",
]


class State(enum.Enum):
    # Members are singletons compared by identity, so identity hashing is consistent;
    # Enum's own __hash__ is Python code, and every transition hashes two of them
    # (the (state, input) table key) plus timers in ``armed``: 2 % of a REGISTER.
    __hash__ = object.__hash__

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"  # RFC 6026
    TERMINATED = "Terminated"


class Input(enum.Enum):
    __hash__ = object.__hash__  # see State

    # from the network
    RECV_1XX = "1xx"
    RECV_2XX = "2xx"
    RECV_300_699 = "300-699"
    RECV_REQUEST = "request retransmission"
    RECV_ACK = "ACK"
    # from the TU (server transactions)
    SEND_1XX = "1xx from TU"
    SEND_2XX = "2xx from TU"
    SEND_300_699 = "300-699 from TU"
    # timers
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TIMER_2XX = "2xx retransmit timer"  # §13.3.1.4, run by the layer for the UAS core
    TRANSPORT_ERROR = "transport error"

    @property
    def is_timer(self) -> bool:
        return self.name.startswith("TIMER_")

    @property
    def from_network(self) -> bool:
        return self.name.startswith("RECV_")

    @property
    def from_tu(self) -> bool:
        return self.name.startswith("SEND_")


def response_input(status: int, *, sending: bool) -> Input:
    """Classify a status code into the input a transaction understands."""
    if status < 200:
        return Input.SEND_1XX if sending else Input.RECV_1XX
    if status < 300:
        return Input.SEND_2XX if sending else Input.RECV_2XX
    return Input.SEND_300_699 if sending else Input.RECV_300_699


class Context(Protocol):
    """What a transaction may ask of its layer (implemented by TransactionLayer)."""

    retransmit_2xx: bool

    def txn_send(self, txn: Transaction, data: bytes, *, retransmission: bool) -> None: ...

    def txn_emit(self, event: Event) -> None: ...

    def txn_arm(self, txn: Transaction, timer: Input, delay: float | None, now: float) -> None: ...

    def txn_disarm(self, txn: Transaction, timer: Input) -> None: ...

    def txn_terminated(self, txn: Transaction) -> None: ...

    def txn_linger(self, txn: Transaction, data: bytes, delay: float, now: float) -> bool: ...

    def txn_send_cancel(self, txn: Any, now: float) -> None: ...

    def txn_build_ack(self, txn: Any, response: Response) -> bytes: ...

    def txn_ack_pending(self, txn: Any, waiting: bool) -> None: ...


#: action(txn, context, message or None, source or None, now)
Action = Callable[[Any, Context, Message | None, Peer | None, float], None]


class Transition(NamedTuple):
    action: Action | None
    target: State
    doc: str
    """What the action does, in the RFC's words; used for the generated diagrams."""


class Transaction:
    """State, timers and the bytes to retransmit; subclasses add the table."""

    __slots__ = ("tid", "state", "peer", "timers", "armed", "interval", "pending_zero", "request", "tu_knows")

    TABLE: ClassVar[dict[tuple[State, Input], Transition]]
    INITIAL: ClassVar[State]
    NAME: ClassVar[str]
    START_DOC: ClassVar[str]
    """What happens when the transaction is created (the arrow into the initial state)."""

    def __init__(self, tid: str, request: Request, peer: Peer, timers: TransportTimers) -> None:
        self.tid = tid
        self.request = request
        self.peer = peer
        """Client: where the request goes. Server: where responses go (§18.2.2)."""
        self.timers = timers
        self.state = self.INITIAL
        self.armed: dict[Input, int] = {}
        self.interval = 0.0
        """Current retransmit interval (A, E, G or the 2xx timer)."""
        self.pending_zero: Input | None = None
        self.tu_knows = True
        """The TU was given this tid. The layer's own server transactions (a 483, 482, 420 or 481
        it sent, a CANCEL it answered) end without TransactionTerminated or TransportError events."""

    def process(self, inp: Input, ctx: Context, msg: Message | None, source: Peer | None, now: float) -> None:
        """Apply one input. Raises TransactionError (state unchanged) for pairs not in the table."""
        tr = self.TABLE.get((self.state, inp))
        if tr is None:
            raise TransactionError(f"{self.NAME}: {inp.value} not allowed in state {self.state.value}")
        self.state = tr.target
        if tr.action is not None:
            tr.action(self, ctx, msg, source, now)
        if tr.target is State.TERMINATED:
            ctx.txn_terminated(self)
            return
        zero = self.pending_zero
        if zero is not None:
            # A zero-duration timer (reliable transport) fires right after the transition that armed it.
            self.pending_zero = None
            self.process(zero, ctx, None, None, now)

    @classmethod
    def states(cls) -> list[State]:
        """States in the order they are reached (for docs and exhaustive tests)."""
        seen: list[State] = [cls.INITIAL]
        for (src, _), tr in cls.TABLE.items():
            for s in (src, tr.target):
                if s not in seen:
                    seen.append(s)
        return seen

    @classmethod
    def inputs(cls) -> list[Input]:
        """Every input this machine has at least one transition for."""
        seen: list[Input] = []
        for _, inp in cls.TABLE:
            if inp not in seen:
                seen.append(inp)
        return seen

    def __repr__(self) -> str:
        return f"<{self.NAME} {self.tid} {self.state.value}>"


class ClientTransaction(Transaction):
    """ICT and NICT: keep the request's bytes for retransmission."""

    __slots__ = ("request_bytes",)

    def __init__(self, tid: str, request: Request, peer: Peer, timers: TransportTimers) -> None:
        super().__init__(tid, request, peer, timers)
        self.request_bytes = request.to_bytes()

    def start(self, ctx: Context, now: float) -> None:
        raise NotImplementedError


class ServerTransaction(Transaction):
    """IST and NIST: keep the last response to answer retransmissions with."""

    __slots__ = ("response_bytes", "status", "to_tag", "merge_key", "rfc2543")

    def __init__(self, tid: str, request: Request, peer: Peer, timers: TransportTimers) -> None:
        super().__init__(tid, request, peer, timers)
        self.response_bytes: bytes | None = None
        self.status = 0
        """Status of the last response sent (0: none yet)."""
        self.to_tag: str | None = None
        """Our To tag: chosen on demand (create_response); the IST also takes it from its responses."""
        self.merge_key: tuple[str | None, str, int, str] | None = None
        self.rfc2543 = False
        """Matched by the RFC 2543 rules (no magic cookie in the branch, §17.2.3)."""
        self.tu_knows = False

    def store_response(self, response: Response) -> bytes:
        data = response.to_bytes()
        self.response_bytes = data
        self.status = response.status
        return data


# -- actions shared by several machines ------------------------------------------


def emit_response(txn: Transaction, ctx: Context, msg: Message | None, source: Peer | None, now: float) -> None:
    """Pass a response up to the TU."""
    assert isinstance(msg, Response) and source is not None
    ctx.txn_emit(ResponseReceived(tid=txn.tid, response=msg, source=source))


def report_transport_error(txn: Transaction, ctx: Context, msg: Message | None, source: Peer | None, now: float) -> None:
    """§17.1.4 / §17.2.4: inform the TU, then the transaction is terminated."""
    if txn.tu_knows:
        ctx.txn_emit(TransportError(tid=txn.tid))


def disarm_all(txn: Transaction, ctx: Context) -> None:
    for timer in list(txn.armed):
        ctx.txn_disarm(txn, timer)
