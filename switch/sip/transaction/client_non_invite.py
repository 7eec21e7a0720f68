"""Non-INVITE client transaction (NICT): RFC 3261 §17.1.2, figure 6.

On UDP, Timer E retransmits the request at T1, 2*T1, ... capped at T2; once a
provisional response has arrived the interval stays at T2 (§17.1.2.2). Timer F
(64*T1) gives up. After the final response the transaction lingers in
Completed for Timer K (T4; zero on reliable transports) to absorb response
retransmissions.
"""

from __future__ import annotations

from ..message import Message
from .base import (
    ClientTransaction,
    Context,
    Input,
    State,
    Transition,
    disarm_all,
    emit_response,
    report_transport_error,
)
from .events import Peer, TransactionTimeout

__all__ = ["ClientNonInviteTransaction"]

S, I = State, Input


class ClientNonInviteTransaction(ClientTransaction):
    __slots__ = ()

    INITIAL = State.TRYING
    NAME = "NICT"
    START_DOC = "request from TU / send request, start E (UDP) and F"

    def start(self, ctx: Context, now: float) -> None:
        ctx.txn_send(self, self.request_bytes, retransmission=False)
        self.interval = self.timers.t1
        ctx.txn_arm(self, Input.TIMER_E, self.timers.e, now)
        ctx.txn_arm(self, Input.TIMER_F, self.timers.f, now)


def _retransmit_trying(t: ClientNonInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    ctx.txn_send(t, t.request_bytes, retransmission=True)
    t.interval = min(2 * t.interval, t.timers.t2)
    ctx.txn_arm(t, Input.TIMER_E, t.interval, now)


def _retransmit_proceeding(t: ClientNonInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    ctx.txn_send(t, t.request_bytes, retransmission=True)
    t.interval = t.timers.t2
    ctx.txn_arm(t, Input.TIMER_E, t.interval, now)


def _timeout(t: ClientNonInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    ctx.txn_emit(TransactionTimeout(tid=t.tid, timer="F"))


def _final(t: ClientNonInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    disarm_all(t, ctx)
    emit_response(t, ctx, msg, src, now)
    k = t.timers.k
    if k > 0 and ctx.txn_linger(t, b"", k, now):
        return  # COMPLETED on UDP: a record absorbs the response's copies (linger.py)
    ctx.txn_arm(t, Input.TIMER_K, k, now)
    # COMPLETED only absorbs response retransmissions (Timer K): the request is not needed.
    t.request = None  # type: ignore[assignment]
    t.request_bytes = b""


ClientNonInviteTransaction.TABLE = {
    (S.TRYING, I.TIMER_E): Transition(_retransmit_trying, S.TRYING, "send request, E = min(2E, T2)"),
    (S.TRYING, I.TIMER_F): Transition(_timeout, S.TERMINATED, "inform TU (timeout)"),
    (S.TRYING, I.RECV_1XX): Transition(emit_response, S.PROCEEDING, "1xx to TU"),
    (S.TRYING, I.RECV_2XX): Transition(_final, S.COMPLETED, "response to TU, start K"),
    (S.TRYING, I.RECV_300_699): Transition(_final, S.COMPLETED, "response to TU, start K"),
    (S.TRYING, I.TRANSPORT_ERROR): Transition(report_transport_error, S.TERMINATED, "inform TU"),
    (S.PROCEEDING, I.TIMER_E): Transition(_retransmit_proceeding, S.PROCEEDING, "send request, E = T2"),
    (S.PROCEEDING, I.TIMER_F): Transition(_timeout, S.TERMINATED, "inform TU (timeout)"),
    (S.PROCEEDING, I.RECV_1XX): Transition(emit_response, S.PROCEEDING, "1xx to TU"),
    (S.PROCEEDING, I.RECV_2XX): Transition(_final, S.COMPLETED, "response to TU, start K"),
    (S.PROCEEDING, I.RECV_300_699): Transition(_final, S.COMPLETED, "response to TU, start K"),
    (S.PROCEEDING, I.TRANSPORT_ERROR): Transition(report_transport_error, S.TERMINATED, "inform TU"),
    (S.COMPLETED, I.RECV_1XX): Transition(None, S.COMPLETED, "absorb"),
    (S.COMPLETED, I.RECV_2XX): Transition(None, S.COMPLETED, "absorb"),
    (S.COMPLETED, I.RECV_300_699): Transition(None, S.COMPLETED, "absorb"),
    (S.COMPLETED, I.TIMER_K): Transition(None, S.TERMINATED, "-"),
}
