"""Every (state, input) pair of the four transaction machines, driven through the real layer.

The expected outcome of each pair is written here from RFC 3261 §17 figures
5-8 and RFC 6026, independently of the implementation's tables: the next
state, the messages put on the wire and the events the TU sees. A pair marked
REFUSED must leave the state unchanged, send nothing and emit nothing (the
layer counts a network input as dropped; a TU response is refused; a timer
raises TransactionError). Finally the implementation's table must contain
exactly the non-refused pairs, so nothing slips in untested.

Network inputs and TU responses go through the public API; timers are injected
into the machine directly (their *timing* is tested in test_txn_timers.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from switch.sip.errors import TransactionError
from switch.sip.message import response_for
from switch.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Input,
    Peer,
    RequestReceived,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    TransactionLayer,
)
from switch.sip.transaction.base import Transaction

from .txn_helpers import (
    drain_events,
    event_names,
    make_layer,
    make_request,
    response_bytes,
    short,
    wire_request,
)

I, S = Input, State
REFUSED = None
RR, TT, TO, TE, REQ = "ResponseReceived", "TransactionTerminated", "TransactionTimeout", "TransportError", "RequestReceived"


@dataclass(frozen=True)
class Outcome:
    state: State
    sent: tuple[str, ...] = ()
    events: tuple[str, ...] = ()


def O(state: State, sent: tuple[str, ...] = (), events: tuple[str, ...] = ()) -> Outcome:  # noqa: N802
    return Outcome(state, sent, events)


# ---------------------------------------------------------------------------- expectations (UDP)

ICT_INPUTS = [I.RECV_1XX, I.RECV_2XX, I.RECV_300_699, I.TIMER_A, I.TIMER_B, I.TIMER_D, I.TIMER_M, I.TRANSPORT_ERROR]
ICT_EXPECT: dict[tuple[State, Input], Outcome | None] = {
    (S.CALLING, I.RECV_1XX): O(S.PROCEEDING, (), (RR,)),
    (S.CALLING, I.RECV_2XX): O(S.ACCEPTED, (), (RR,)),
    (S.CALLING, I.RECV_300_699): O(S.COMPLETED, ("ACK",), (RR,)),
    (S.CALLING, I.TIMER_A): O(S.CALLING, ("INVITE",)),
    (S.CALLING, I.TIMER_B): O(S.TERMINATED, (), (TO, TT)),
    (S.CALLING, I.TIMER_D): REFUSED,
    (S.CALLING, I.TIMER_M): REFUSED,
    (S.CALLING, I.TRANSPORT_ERROR): O(S.TERMINATED, (), (TE, TT)),
    (S.PROCEEDING, I.RECV_1XX): O(S.PROCEEDING, (), (RR,)),
    (S.PROCEEDING, I.RECV_2XX): O(S.ACCEPTED, (), (RR,)),
    (S.PROCEEDING, I.RECV_300_699): O(S.COMPLETED, ("ACK",), (RR,)),
    (S.PROCEEDING, I.TIMER_A): REFUSED,
    (S.PROCEEDING, I.TIMER_B): O(S.TERMINATED, (), (TO, TT)),  # only armed after a CANCEL (§9.1)
    (S.PROCEEDING, I.TIMER_D): REFUSED,
    (S.PROCEEDING, I.TIMER_M): REFUSED,
    (S.PROCEEDING, I.TRANSPORT_ERROR): O(S.TERMINATED, (), (TE, TT)),
    (S.COMPLETED, I.RECV_1XX): REFUSED,
    (S.COMPLETED, I.RECV_2XX): REFUSED,
    (S.COMPLETED, I.RECV_300_699): O(S.COMPLETED, ("ACK",)),  # retransmission: ACK again, not to TU
    (S.COMPLETED, I.TIMER_A): REFUSED,
    (S.COMPLETED, I.TIMER_B): REFUSED,
    (S.COMPLETED, I.TIMER_D): O(S.TERMINATED, (), (TT,)),
    (S.COMPLETED, I.TIMER_M): REFUSED,
    (S.COMPLETED, I.TRANSPORT_ERROR): O(S.TERMINATED, (), (TE, TT)),
    (S.ACCEPTED, I.RECV_1XX): REFUSED,
    (S.ACCEPTED, I.RECV_2XX): O(S.ACCEPTED, (), (RR,)),  # RFC 6026: every 2xx to the TU
    (S.ACCEPTED, I.RECV_300_699): REFUSED,
    (S.ACCEPTED, I.TIMER_A): REFUSED,
    (S.ACCEPTED, I.TIMER_B): REFUSED,
    (S.ACCEPTED, I.TIMER_D): REFUSED,
    (S.ACCEPTED, I.TIMER_M): O(S.TERMINATED, (), (TT,)),
    (S.ACCEPTED, I.TRANSPORT_ERROR): REFUSED,
}

NICT_INPUTS = [I.RECV_1XX, I.RECV_2XX, I.RECV_300_699, I.TIMER_E, I.TIMER_F, I.TIMER_K, I.TRANSPORT_ERROR]
NICT_EXPECT: dict[tuple[State, Input], Outcome | None] = {
    (S.TRYING, I.RECV_1XX): O(S.PROCEEDING, (), (RR,)),
    # Completed on UDP is a lingering record (linger.py): TransactionTerminated comes with the
    # response, the record absorbs the copies below, and has no TU to tell of Timer K.
    (S.TRYING, I.RECV_2XX): O(S.COMPLETED, (), (RR, TT)),
    (S.TRYING, I.RECV_300_699): O(S.COMPLETED, (), (RR, TT)),
    (S.TRYING, I.TIMER_E): O(S.TRYING, ("OPTIONS",)),
    (S.TRYING, I.TIMER_F): O(S.TERMINATED, (), (TO, TT)),
    (S.TRYING, I.TIMER_K): REFUSED,
    (S.TRYING, I.TRANSPORT_ERROR): O(S.TERMINATED, (), (TE, TT)),
    (S.PROCEEDING, I.RECV_1XX): O(S.PROCEEDING, (), (RR,)),
    (S.PROCEEDING, I.RECV_2XX): O(S.COMPLETED, (), (RR, TT)),
    (S.PROCEEDING, I.RECV_300_699): O(S.COMPLETED, (), (RR, TT)),
    (S.PROCEEDING, I.TIMER_E): O(S.PROCEEDING, ("OPTIONS",)),
    (S.PROCEEDING, I.TIMER_F): O(S.TERMINATED, (), (TO, TT)),
    (S.PROCEEDING, I.TIMER_K): REFUSED,
    (S.PROCEEDING, I.TRANSPORT_ERROR): O(S.TERMINATED, (), (TE, TT)),
    (S.COMPLETED, I.RECV_1XX): O(S.COMPLETED),
    (S.COMPLETED, I.RECV_2XX): O(S.COMPLETED),
    (S.COMPLETED, I.RECV_300_699): O(S.COMPLETED),
    (S.COMPLETED, I.TIMER_E): REFUSED,
    (S.COMPLETED, I.TIMER_F): REFUSED,
    (S.COMPLETED, I.TIMER_K): O(S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): REFUSED,
}

IST_INPUTS = [
    I.RECV_REQUEST, I.RECV_ACK, I.SEND_1XX, I.SEND_2XX, I.SEND_300_699,
    I.TIMER_G, I.TIMER_H, I.TIMER_I, I.TIMER_L, I.TIMER_2XX, I.TRANSPORT_ERROR,
]
IST_EXPECT: dict[tuple[State, Input], Outcome | None] = {
    (S.PROCEEDING, I.RECV_REQUEST): O(S.PROCEEDING, ("100",)),  # last provisional again
    (S.PROCEEDING, I.RECV_ACK): REFUSED,
    (S.PROCEEDING, I.SEND_1XX): O(S.PROCEEDING, ("180",)),
    (S.PROCEEDING, I.SEND_2XX): O(S.ACCEPTED, ("200",)),
    (S.PROCEEDING, I.SEND_300_699): O(S.COMPLETED, ("486",)),
    (S.PROCEEDING, I.TIMER_G): REFUSED,
    (S.PROCEEDING, I.TIMER_H): REFUSED,
    (S.PROCEEDING, I.TIMER_I): REFUSED,
    (S.PROCEEDING, I.TIMER_L): REFUSED,
    (S.PROCEEDING, I.TIMER_2XX): REFUSED,
    (S.PROCEEDING, I.TRANSPORT_ERROR): O(S.TERMINATED, (), (TE, TT)),
    (S.COMPLETED, I.RECV_REQUEST): O(S.COMPLETED, ("486",)),
    (S.COMPLETED, I.RECV_ACK): O(S.CONFIRMED),
    (S.COMPLETED, I.SEND_1XX): REFUSED,
    (S.COMPLETED, I.SEND_2XX): REFUSED,
    (S.COMPLETED, I.SEND_300_699): REFUSED,
    (S.COMPLETED, I.TIMER_G): O(S.COMPLETED, ("486",)),
    (S.COMPLETED, I.TIMER_H): O(S.TERMINATED, (), (TO, TT)),
    (S.COMPLETED, I.TIMER_I): REFUSED,
    (S.COMPLETED, I.TIMER_L): REFUSED,
    (S.COMPLETED, I.TIMER_2XX): REFUSED,
    (S.COMPLETED, I.TRANSPORT_ERROR): O(S.TERMINATED, (), (TE, TT)),
    (S.CONFIRMED, I.RECV_REQUEST): O(S.CONFIRMED),
    (S.CONFIRMED, I.RECV_ACK): O(S.CONFIRMED),
    (S.CONFIRMED, I.SEND_1XX): REFUSED,
    (S.CONFIRMED, I.SEND_2XX): REFUSED,
    (S.CONFIRMED, I.SEND_300_699): REFUSED,
    (S.CONFIRMED, I.TIMER_G): REFUSED,
    (S.CONFIRMED, I.TIMER_H): REFUSED,
    (S.CONFIRMED, I.TIMER_I): O(S.TERMINATED, (), (TT,)),
    (S.CONFIRMED, I.TIMER_L): REFUSED,
    (S.CONFIRMED, I.TIMER_2XX): REFUSED,
    (S.CONFIRMED, I.TRANSPORT_ERROR): REFUSED,
    (S.ACCEPTED, I.RECV_REQUEST): O(S.ACCEPTED),  # RFC 6026: absorbed, not a new request
    (S.ACCEPTED, I.RECV_ACK): O(S.ACCEPTED, (), (REQ, TT)),  # an ACK matching the transaction goes to the TU;
    # then the IST is a lingering record for its last T4 (linger.py), and the TU is told it ended
    (S.ACCEPTED, I.SEND_1XX): REFUSED,
    (S.ACCEPTED, I.SEND_2XX): O(S.ACCEPTED, ("200",)),
    (S.ACCEPTED, I.SEND_300_699): REFUSED,
    (S.ACCEPTED, I.TIMER_G): REFUSED,
    (S.ACCEPTED, I.TIMER_H): REFUSED,
    (S.ACCEPTED, I.TIMER_I): REFUSED,
    (S.ACCEPTED, I.TIMER_L): O(S.TERMINATED, (), (TO, TT)),  # no ACK came for the 2xx
    (S.ACCEPTED, I.TIMER_2XX): O(S.ACCEPTED, ("200",)),
    (S.ACCEPTED, I.TRANSPORT_ERROR): O(S.TERMINATED, (), (TE, TT)),
}

NIST_INPUTS = [I.RECV_REQUEST, I.SEND_1XX, I.SEND_2XX, I.SEND_300_699, I.TIMER_J, I.TRANSPORT_ERROR]
NIST_EXPECT: dict[tuple[State, Input], Outcome | None] = {
    (S.TRYING, I.RECV_REQUEST): O(S.TRYING),  # nothing to resend yet
    (S.TRYING, I.SEND_1XX): O(S.PROCEEDING, ("100",)),
    # Completed on UDP is kept as a lingering record (linger.py), not as this object: the TU
    # hears TransactionTerminated with the final response, and the record (which answers the
    # retransmissions below) has no TU to tell of a transport error or of Timer J.
    (S.TRYING, I.SEND_2XX): O(S.COMPLETED, ("200",), (TT,)),
    (S.TRYING, I.SEND_300_699): O(S.COMPLETED, ("404",), (TT,)),
    (S.TRYING, I.TIMER_J): REFUSED,
    (S.TRYING, I.TRANSPORT_ERROR): REFUSED,  # nothing was sent yet
    (S.PROCEEDING, I.RECV_REQUEST): O(S.PROCEEDING, ("100",)),
    (S.PROCEEDING, I.SEND_1XX): O(S.PROCEEDING, ("100",)),
    (S.PROCEEDING, I.SEND_2XX): O(S.COMPLETED, ("200",), (TT,)),
    (S.PROCEEDING, I.SEND_300_699): O(S.COMPLETED, ("404",), (TT,)),
    (S.PROCEEDING, I.TIMER_J): REFUSED,
    (S.PROCEEDING, I.TRANSPORT_ERROR): O(S.TERMINATED, (), (TE, TT)),
    (S.COMPLETED, I.RECV_REQUEST): O(S.COMPLETED, ("200",)),
    (S.COMPLETED, I.SEND_1XX): REFUSED,
    (S.COMPLETED, I.SEND_2XX): REFUSED,  # §17.2.2: further finals from the TU are discarded
    (S.COMPLETED, I.SEND_300_699): REFUSED,
    (S.COMPLETED, I.TIMER_J): O(S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): O(S.TERMINATED),  # the object's own table; the record ignores it
}

# ---------------------------------------------------------------------------- harnesses

REMOTE = Peer("udp", "10.0.0.9", 5060)
STATUS_FOR = {I.RECV_1XX: 180, I.RECV_2XX: 200, I.RECV_300_699: 486, I.SEND_1XX: 180, I.SEND_2XX: 200, I.SEND_300_699: 486}


class Harness:
    layer: TransactionLayer
    txn: Transaction
    peer: Peer
    now = 1.0

    def observe(self, inp: Input) -> tuple[Outcome, bool]:
        """Apply ``inp``; returns what happened and whether it was refused."""
        layer, txn = self.layer, self.txn
        layer.datagrams_to_send()
        drain_events(layer)
        dropped_before = sum(layer.stats.dropped.values())
        refused = False
        if inp.is_timer:
            layer.txn_disarm(txn, inp)  # as if the heap had popped it
            try:
                txn.process(inp, layer, None, None, self.now)
            except TransactionError:
                refused = True
        elif inp is I.TRANSPORT_ERROR and layer.transaction(txn.tid) is None:
            try:  # a lingering record's object: straight in
                txn.process(inp, layer, None, None, self.now)
            except TransactionError:
                refused = True
        elif inp is I.TRANSPORT_ERROR:
            layer.transport_error(self.peer, self.now)
            refused = sum(layer.stats.dropped.values()) > dropped_before
        elif inp.from_tu:
            refused = not self.respond(STATUS_FOR[inp])
        else:
            self.network(inp)
            refused = sum(layer.stats.dropped.values()) > dropped_before
        sent = tuple(short(d) for d, _ in layer.datagrams_to_send())
        events = tuple(event_names(drain_events(layer)))
        return Outcome(txn.state, sent, events), refused

    def respond(self, status: int) -> bool:
        raise NotImplementedError

    def network(self, inp: Input) -> None:
        raise NotImplementedError


class ClientHarness(Harness):
    def __init__(self, method: str, transport: str = "udp") -> None:
        self.layer = make_layer("10.0.0.1", 5060, transport)
        self.peer = REMOTE._replace(transport=transport)
        tid = self.layer.send_request(make_request(method), self.peer, 0.0)
        self.request_data = self.layer.datagrams_to_send()[0][0]
        txn = self.layer.transaction(tid)
        assert txn is not None
        self.txn = txn

    def network(self, inp: Input) -> None:
        self.layer.receive(response_bytes(self.request_data, STATUS_FOR[inp]), self.peer, self.now)


class ServerHarness(Harness):
    def __init__(self, method: str, transport: str = "udp") -> None:
        self.layer = make_layer("10.0.0.2", 5060, transport)
        self.peer = Peer(transport, "10.0.0.1", 5060)
        self.method = method
        self.request_data = wire_request(method)
        self.layer.receive(self.request_data, self.peer, 0.0)
        events = drain_events(self.layer)
        assert isinstance(events[0], RequestReceived) and events[0].tid is not None
        self.tid = events[0].tid
        self.request = events[0].request
        txn = self.layer.transaction(self.tid)
        assert txn is not None
        self.txn = txn

    def respond(self, status: int) -> bool:
        if self.method != "INVITE" and status == 180:
            status = 100
        if self.method != "INVITE" and status == 486:
            status = 404
        if self.layer.server_request(self.tid) is not None:
            response = self.layer.create_response(self.tid, status)
        else:  # a completed NIST keeps no request: the TU's late response is built from its own copy
            response = response_for(self.request, status, to_tag="late")
        return self.layer.send_response(self.tid, response, self.now)

    def network(self, inp: Input) -> None:
        if inp is I.RECV_REQUEST:
            data = self.request_data
        else:  # ACK in the INVITE's transaction: same branch, our To tag (§17.1.1.3)
            data = wire_request("ACK", to_tag=self.txn.to_tag or "none")  # type: ignore[attr-defined]
        self.layer.receive(data, self.peer, self.now)


def reach(machine: str, state: State) -> Harness:
    """Bring a fresh transaction into ``state`` through ordinary traffic."""
    if machine == "ICT":
        h: Harness = ClientHarness("INVITE")
        steps = {S.CALLING: [], S.PROCEEDING: [I.RECV_1XX], S.COMPLETED: [I.RECV_300_699], S.ACCEPTED: [I.RECV_2XX]}
    elif machine == "NICT":
        h = ClientHarness("OPTIONS")
        steps = {S.TRYING: [], S.PROCEEDING: [I.RECV_1XX], S.COMPLETED: [I.RECV_2XX]}
    elif machine == "IST":
        h = ServerHarness("INVITE")
        steps = {
            S.PROCEEDING: [],
            S.COMPLETED: [I.SEND_300_699],
            S.CONFIRMED: [I.SEND_300_699, I.RECV_ACK],
            S.ACCEPTED: [I.SEND_2XX],
        }
    else:
        h = ServerHarness("OPTIONS")
        steps = {S.TRYING: [], S.PROCEEDING: [I.SEND_1XX], S.COMPLETED: [I.SEND_2XX]}
    for inp in steps[state]:
        h.observe(inp)
    assert h.txn.state is state
    return h


MACHINES = {
    "ICT": (ClientInviteTransaction, ICT_INPUTS, ICT_EXPECT),
    "NICT": (ClientNonInviteTransaction, NICT_INPUTS, NICT_EXPECT),
    "IST": (ServerInviteTransaction, IST_INPUTS, IST_EXPECT),
    "NIST": (ServerNonInviteTransaction, NIST_INPUTS, NIST_EXPECT),
}

CASES = [
    pytest.param(name, state, inp, id=f"{name}-{state.name}-{inp.name}")
    for name, (_, _, expect) in MACHINES.items()
    for (state, inp) in expect
]


@pytest.mark.parametrize("machine,state,inp", CASES)
def test_state_input_pair(machine: str, state: State, inp: Input) -> None:
    expected = MACHINES[machine][2][(state, inp)]
    h = reach(machine, state)
    outcome, refused = h.observe(inp)
    if expected is REFUSED:
        assert refused, f"{machine} {state.name} + {inp.name} should be refused"
        assert outcome == Outcome(state), "a refused input must change nothing"
        # a record now, not the object
        lingering = (machine, state) in (("NIST", S.COMPLETED), ("NICT", S.COMPLETED))
        assert h.layer.transaction(h.txn.tid) is (None if lingering else h.txn)
    else:
        assert not refused
        assert outcome == expected
        if expected.state is S.TERMINATED:
            assert h.layer.transaction(h.txn.tid) is None
            assert h.txn.armed == {}


@pytest.mark.parametrize("machine", list(MACHINES))
def test_expectations_cover_every_state_and_input(machine: str) -> None:
    """The expectation table is the full cross product of the machine's live states and inputs."""
    cls, inputs, expect = MACHINES[machine]
    states = [s for s in cls.states() if s is not S.TERMINATED]
    assert set(expect) == {(s, i) for s in states for i in inputs}
    assert set(cls.inputs()) <= set(inputs)


@pytest.mark.parametrize("machine", list(MACHINES))
def test_implementation_table_is_exactly_the_allowed_pairs(machine: str) -> None:
    cls, _, expect = MACHINES[machine]
    allowed = {pair for pair, outcome in expect.items() if outcome is not REFUSED}
    assert set(cls.TABLE) == allowed
    for (state, inp), outcome in expect.items():
        if outcome is not REFUSED:
            assert cls.TABLE[(state, inp)].target is outcome.state


@pytest.mark.parametrize("machine", list(MACHINES))
def test_terminated_is_final(machine: str) -> None:
    """No transition leaves Terminated (figures 5-8)."""
    cls = MACHINES[machine][0]
    assert not any(state is S.TERMINATED for state, _ in cls.TABLE)
