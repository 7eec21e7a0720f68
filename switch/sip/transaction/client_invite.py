"""INVITE client transaction (ICT): RFC 3261 §17.1.1, figure 5, as amended by RFC 6026 §8.4.

The RFC 6026 change: a 2xx no longer terminates the transaction; it moves to
Accepted, where further 2xx (retransmissions, other forks) still reach the TU
so it can ACK each of them, until Timer M (64*T1) ends it.

The ACK for a non-2xx final response is built here (§17.1.1.3) from the INVITE
and the response's To tag, sent once on entering Completed and again for every
retransmitted final response.

§9.1: a CANCEL may only be sent once a provisional response has arrived; if the
TU asks earlier the request is remembered (``cancel_pending``) and the CANCEL
goes out with the first 1xx. When it is sent, Timer B is re-armed in Proceeding
so that an INVITE which never receives a final response is given up after 64*T1.
"""

from __future__ import annotations

from ..message import Message, Request, Response
from ..timers import TransportTimers
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
from .events import Peer, TransactionTerminated, TransactionTimeout

__all__ = ["ClientInviteTransaction"]

S, I = State, Input


class ClientInviteTransaction(ClientTransaction):
    __slots__ = ("ack_bytes", "cancel_tid", "cancel_pending")

    INITIAL = State.CALLING
    NAME = "ICT"
    START_DOC = "INVITE from TU / send INVITE, start A (UDP) and B"

    def __init__(self, tid: str, request: Request, peer: Peer, timers: TransportTimers) -> None:
        super().__init__(tid, request, peer, timers)
        self.ack_bytes: bytes | None = None
        self.cancel_tid: str | None = None
        """Set once the TU asked to cancel (the CANCEL's tid, whether sent yet or not)."""
        self.cancel_pending = False
        """True while a requested CANCEL waits for the first provisional response (§9.1)."""

    def start(self, ctx: Context, now: float) -> None:
        ctx.txn_send(self, self.request_bytes, retransmission=False)
        self.interval = self.timers.t1
        ctx.txn_arm(self, Input.TIMER_A, self.timers.a, now)
        ctx.txn_arm(self, Input.TIMER_B, self.timers.b, now)


def _retransmit(t: ClientInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    # §17.1.1.2: Timer A doubles each time, with no T2 cap for INVITE.
    ctx.txn_send(t, t.request_bytes, retransmission=True)
    t.interval *= 2
    ctx.txn_arm(t, Input.TIMER_A, t.interval, now)


def _timeout(t: ClientInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    disarm_all(t, ctx)
    ctx.txn_emit(TransactionTimeout(tid=t.tid, timer="B"))
    _drop_pending_cancel(t, ctx)


def _drop_pending_cancel(t: ClientInviteTransaction, ctx: Context) -> None:
    """The INVITE ended before any provisional: the remembered CANCEL is never sent."""
    if t.cancel_pending:
        t.cancel_pending = False
        assert t.cancel_tid is not None
        ctx.txn_emit(TransactionTerminated(tid=t.cancel_tid))


def _first_provisional(t: ClientInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    ctx.txn_disarm(t, Input.TIMER_A)
    ctx.txn_disarm(t, Input.TIMER_B)
    emit_response(t, ctx, msg, src, now)
    if t.cancel_pending:
        ctx.txn_send_cancel(t, now)


def _accept(t: ClientInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    disarm_all(t, ctx)
    emit_response(t, ctx, msg, src, now)
    _drop_pending_cancel(t, ctx)
    ctx.txn_arm(t, Input.TIMER_M, t.timers.m, now)
    # ACCEPTED only hands 2xx retransmissions to the TU for Timer M's 32 s: no CANCEL, no
    # ACK of ours, no retransmission. Letting go of the parsed INVITE (a few KB of header
    # objects) keeps a call burst's accepted transactions from holding it that long.
    t.request = None  # type: ignore[assignment]
    t.request_bytes = b""


def _reject(t: ClientInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    disarm_all(t, ctx)
    assert isinstance(msg, Response)
    t.ack_bytes = ctx.txn_build_ack(t, msg)
    ctx.txn_send(t, t.ack_bytes, retransmission=False)
    emit_response(t, ctx, msg, src, now)
    _drop_pending_cancel(t, ctx)
    ctx.txn_arm(t, Input.TIMER_D, t.timers.d, now)


def _resend_ack(t: ClientInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    assert t.ack_bytes is not None
    ctx.txn_send(t, t.ack_bytes, retransmission=True)


def _cancel_timeout(t: ClientInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    # §9.1: no final response 64*T1 after the CANCEL: consider the INVITE cancelled.
    disarm_all(t, ctx)
    ctx.txn_emit(TransactionTimeout(tid=t.tid, timer="B"))


def _transport_error(t: ClientInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    disarm_all(t, ctx)
    report_transport_error(t, ctx, msg, src, now)
    _drop_pending_cancel(t, ctx)


ClientInviteTransaction.TABLE = {
    (S.CALLING, I.TIMER_A): Transition(_retransmit, S.CALLING, "send INVITE, double A"),
    (S.CALLING, I.TIMER_B): Transition(_timeout, S.TERMINATED, "inform TU (timeout)"),
    (S.CALLING, I.RECV_1XX): Transition(_first_provisional, S.PROCEEDING, "1xx to TU, stop A and B, send pending CANCEL"),
    (S.CALLING, I.RECV_2XX): Transition(_accept, S.ACCEPTED, "2xx to TU, start M"),
    (S.CALLING, I.RECV_300_699): Transition(_reject, S.COMPLETED, "send ACK, response to TU, start D"),
    (S.CALLING, I.TRANSPORT_ERROR): Transition(_transport_error, S.TERMINATED, "inform TU"),
    (S.PROCEEDING, I.RECV_1XX): Transition(emit_response, S.PROCEEDING, "1xx to TU"),
    (S.PROCEEDING, I.RECV_2XX): Transition(_accept, S.ACCEPTED, "2xx to TU, start M"),
    (S.PROCEEDING, I.RECV_300_699): Transition(_reject, S.COMPLETED, "send ACK, response to TU, start D"),
    (S.PROCEEDING, I.TIMER_B): Transition(_cancel_timeout, S.TERMINATED, "(re-armed by CANCEL, §9.1) inform TU"),
    (S.PROCEEDING, I.TRANSPORT_ERROR): Transition(_transport_error, S.TERMINATED, "inform TU"),
    (S.COMPLETED, I.RECV_300_699): Transition(_resend_ack, S.COMPLETED, "send ACK again (absorb)"),
    (S.COMPLETED, I.TIMER_D): Transition(None, S.TERMINATED, "-"),
    (S.COMPLETED, I.TRANSPORT_ERROR): Transition(_transport_error, S.TERMINATED, "inform TU"),
    (S.ACCEPTED, I.RECV_2XX): Transition(emit_response, S.ACCEPTED, "2xx to TU (TU re-ACKs)"),
    (S.ACCEPTED, I.TIMER_M): Transition(None, S.TERMINATED, "-"),
}
