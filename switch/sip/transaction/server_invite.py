"""INVITE server transaction (IST): RFC 3261 §17.2.1, figure 7, as amended by RFC 6026 §8.7.

Created in Proceeding; the layer sends 100 Trying at once (the RFC allows
waiting 200 ms for the TU, but answering at once is simpler and stops the
client's Timer A retransmissions sooner).

A non-2xx final response moves to Completed: Timer G retransmits it (UDP)
until the ACK arrives (Confirmed, Timer I absorbs further ACKs) or Timer H
gives up and tells the TU.

A 2xx moves to Accepted (RFC 6026) for Timer L (64*T1): INVITE
retransmissions are absorbed instead of looking like new requests, and an ACK
that matches the transaction is handed to the TU. Once the ACK has come, L is
cut to T4 (Timer I's wait; 0 on reliable transports): see ``_ack_for_2xx``. The layer also does the UAS
core's 2xx retransmission (§13.3.1.4: T1 doubling to T2, even on reliable
transports) while waiting for the ACK, which arrives as a separate request
with its own branch; it finds this transaction through the dialog
(Call-ID, CSeq number, tags). If Timer L fires and no ACK came, the TU gets
``TransactionTimeout(timer="L")`` and should end the session with BYE.
"""

from __future__ import annotations

from ..message import Message, Request, Response
from ..timers import TransportTimers
from .base import (
    Context,
    Input,
    ServerTransaction,
    State,
    Transition,
    report_transport_error,
)
from .events import Peer, RequestReceived, TransactionTimeout

__all__ = ["ServerInviteTransaction"]

S, I = State, Input


class ServerInviteTransaction(ServerTransaction):
    __slots__ = ("ack_key", "acked")

    INITIAL = State.PROCEEDING
    NAME = "IST"
    START_DOC = "INVITE / pass to TU, send 100 Trying"

    def __init__(self, tid: str, request: Request, peer: Peer, timers: TransportTimers) -> None:
        super().__init__(tid, request, peer, timers)
        self.ack_key: tuple[str, int, str | None, str | None] | None = None
        """Dialog key under which the layer finds this transaction for the 2xx's ACK."""
        self.acked = False

    def store_response(self, response: Response) -> bytes:
        if response.status > 100:
            # The tag of our latest response: the ACK to a non-2xx must carry it (§17.2.3, RFC 2543
            # matching), the ACK to a 2xx is found by it, and the 200 to a CANCEL reuses it (§9.2).
            tag = response.to.tag
            if tag is not None:
                self.to_tag = tag
        return super().store_response(response)


def _resend_response(t: ServerInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    if t.response_bytes is not None:
        ctx.txn_send(t, t.response_bytes, retransmission=True)


def _send_response(t: ServerInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    assert isinstance(msg, Response)
    ctx.txn_send(t, t.store_response(msg), retransmission=False)


def _send_2xx(t: ServerInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    assert isinstance(msg, Response)
    ctx.txn_send(t, t.store_response(msg), retransmission=False)
    ctx.txn_arm(t, Input.TIMER_L, t.timers.l, now)
    if ctx.retransmit_2xx:
        t.interval = t.timers.t1
        ctx.txn_arm(t, Input.TIMER_2XX, t.interval, now)
        ctx.txn_ack_pending(t, True)


def _send_final(t: ServerInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    assert isinstance(msg, Response)
    ctx.txn_send(t, t.store_response(msg), retransmission=False)
    t.interval = t.timers.t1
    ctx.txn_arm(t, Input.TIMER_G, t.timers.g, now)
    ctx.txn_arm(t, Input.TIMER_H, t.timers.h, now)


def _retransmit_final(t: ServerInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    assert t.response_bytes is not None
    ctx.txn_send(t, t.response_bytes, retransmission=True)
    t.interval = min(2 * t.interval, t.timers.t2)
    ctx.txn_arm(t, Input.TIMER_G, t.interval, now)


def _no_ack(t: ServerInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    ctx.txn_emit(TransactionTimeout(tid=t.tid, timer="H"))


def _confirm(t: ServerInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    ctx.txn_disarm(t, Input.TIMER_G)
    ctx.txn_disarm(t, Input.TIMER_H)
    ctx.txn_arm(t, Input.TIMER_I, t.timers.i, now)
    t.request = None  # type: ignore[assignment]  # CONFIRMED only absorbs (Timer I)


def _ack_for_2xx(t: ServerInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    assert isinstance(msg, Request) and src is not None
    ctx.txn_emit(RequestReceived(tid=None, request=msg, source=src))
    if t.acked:
        return
    t.acked = True
    ctx.txn_disarm(t, Input.TIMER_2XX)
    ctx.txn_ack_pending(t, False)
    # From here ACCEPTED only absorbs retransmitted INVITEs and passes ACKs on for Timer
    # L's 32 s: neither the parsed INVITE (a few KB of header objects) nor the 2xx we
    # retransmitted (~0.5 KB with SDP) is needed any more.
    t.request = None  # type: ignore[assignment]
    t.response_bytes = None
    # And it need not wait the rest of Timer L's 64*T1 for them. L is that long because the
    # client retransmits its INVITE until a response reaches it (Timer B); an ACK for our
    # 2xx shows one has, so only copies already in the network can still come, and those
    # live at most T4 (§17: the wait of Timers I and K). Kamailio's tm likewise keeps a
    # finished transaction its wt_timer (5 s). At 500 calls/s this is 13,500 fewer
    # transactions in memory after a call burst. On UDP that wait is a lingering record
    # that absorbs the INVITE's copies (linger.py; later ACKs reach the TU as before).
    wait = t.timers.i
    if not (wait > 0 and ctx.txn_linger(t, b"", wait, now)):
        ctx.txn_arm(t, Input.TIMER_L, wait, now)


def _retransmit_2xx(t: ServerInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    assert t.response_bytes is not None
    ctx.txn_send(t, t.response_bytes, retransmission=True)
    t.interval = min(2 * t.interval, t.timers.t2)
    ctx.txn_arm(t, Input.TIMER_2XX, t.interval, now)


def _accepted_over(t: ServerInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    if ctx.retransmit_2xx and not t.acked:
        ctx.txn_emit(TransactionTimeout(tid=t.tid, timer="L"))


ServerInviteTransaction.TABLE = {
    (S.PROCEEDING, I.RECV_REQUEST): Transition(_resend_response, S.PROCEEDING, "send last provisional again"),
    (S.PROCEEDING, I.SEND_1XX): Transition(_send_response, S.PROCEEDING, "send response"),
    (S.PROCEEDING, I.SEND_2XX): Transition(_send_2xx, S.ACCEPTED, "send response, start L (+2xx retransmit)"),
    (S.PROCEEDING, I.SEND_300_699): Transition(_send_final, S.COMPLETED, "send response, start G (UDP) and H"),
    (S.PROCEEDING, I.TRANSPORT_ERROR): Transition(report_transport_error, S.TERMINATED, "inform TU"),
    (S.COMPLETED, I.RECV_REQUEST): Transition(_resend_response, S.COMPLETED, "send final response again"),
    (S.COMPLETED, I.TIMER_G): Transition(_retransmit_final, S.COMPLETED, "send final response, G = min(2G, T2)"),
    (S.COMPLETED, I.TIMER_H): Transition(_no_ack, S.TERMINATED, "inform TU (no ACK)"),
    (S.COMPLETED, I.RECV_ACK): Transition(_confirm, S.CONFIRMED, "stop G and H, start I"),
    (S.COMPLETED, I.TRANSPORT_ERROR): Transition(report_transport_error, S.TERMINATED, "inform TU"),
    (S.CONFIRMED, I.RECV_ACK): Transition(None, S.CONFIRMED, "absorb"),
    (S.CONFIRMED, I.RECV_REQUEST): Transition(None, S.CONFIRMED, "absorb"),
    (S.CONFIRMED, I.TIMER_I): Transition(None, S.TERMINATED, "-"),
    (S.ACCEPTED, I.RECV_REQUEST): Transition(None, S.ACCEPTED, "absorb"),
    (S.ACCEPTED, I.SEND_2XX): Transition(_send_response, S.ACCEPTED, "send response"),
    (S.ACCEPTED, I.RECV_ACK): Transition(_ack_for_2xx, S.ACCEPTED, "ACK to TU, stop 2xx retransmit, L = T4"),
    (S.ACCEPTED, I.TIMER_2XX): Transition(_retransmit_2xx, S.ACCEPTED, "send 2xx, interval = min(2x, T2)"),
    (S.ACCEPTED, I.TIMER_L): Transition(_accepted_over, S.TERMINATED, "inform TU if no ACK came"),
    (S.ACCEPTED, I.TRANSPORT_ERROR): Transition(report_transport_error, S.TERMINATED, "inform TU"),
}
