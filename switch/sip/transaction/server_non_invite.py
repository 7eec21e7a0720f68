"""Non-INVITE server transaction (NIST): RFC 3261 §17.2.2, figure 8.

Never retransmits on its own: it answers each retransmitted request with the
last response it sent (nothing while still in Trying) and lingers in
Completed for Timer J (64*T1 on UDP, zero on reliable transports).
"""

from __future__ import annotations

from ..message import Message, Response
from .base import Context, Input, ServerTransaction, State, Transition, report_transport_error
from .events import Peer

__all__ = ["ServerNonInviteTransaction"]

S, I = State, Input


class ServerNonInviteTransaction(ServerTransaction):
    __slots__ = ()

    INITIAL = State.TRYING
    NAME = "NIST"
    START_DOC = "request / pass to TU"


def _send_provisional(t: ServerNonInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    assert isinstance(msg, Response)
    ctx.txn_send(t, t.store_response(msg), retransmission=False)


def _send_final(t: ServerNonInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    assert isinstance(msg, Response)
    data = t.store_response(msg)
    ctx.txn_send(t, data, retransmission=False)
    j = t.timers.j
    if j > 0 and ctx.txn_linger(t, data, j, now):
        # COMPLETED kept as a record of its bytes (linger.py): the same answers to the same
        # retransmissions until Timer J, without this object.
        return
    ctx.txn_arm(t, Input.TIMER_J, j, now)
    # COMPLETED only re-sends the stored bytes for Timer J's 32 s. Letting go of the
    # parsed request (~5 KB with its cached header objects) keeps a registration
    # burst's worth of completed transactions from holding hundreds of MB.
    t.request = None  # type: ignore[assignment]


def _resend(t: ServerNonInviteTransaction, ctx: Context, msg: Message | None, src: Peer | None, now: float) -> None:
    assert t.response_bytes is not None
    ctx.txn_send(t, t.response_bytes, retransmission=True)


ServerNonInviteTransaction.TABLE = {
    (S.TRYING, I.RECV_REQUEST): Transition(None, S.TRYING, "absorb"),
    (S.TRYING, I.SEND_1XX): Transition(_send_provisional, S.PROCEEDING, "send response"),
    (S.TRYING, I.SEND_2XX): Transition(_send_final, S.COMPLETED, "send response, start J"),
    (S.TRYING, I.SEND_300_699): Transition(_send_final, S.COMPLETED, "send response, start J"),
    (S.PROCEEDING, I.RECV_REQUEST): Transition(_resend, S.PROCEEDING, "send last provisional again"),
    (S.PROCEEDING, I.SEND_1XX): Transition(_send_provisional, S.PROCEEDING, "send response"),
    (S.PROCEEDING, I.SEND_2XX): Transition(_send_final, S.COMPLETED, "send response, start J"),
    (S.PROCEEDING, I.SEND_300_699): Transition(_send_final, S.COMPLETED, "send response, start J"),
    (S.PROCEEDING, I.TRANSPORT_ERROR): Transition(report_transport_error, S.TERMINATED, "inform TU"),
    (S.COMPLETED, I.RECV_REQUEST): Transition(_resend, S.COMPLETED, "send final response again"),
    (S.COMPLETED, I.TIMER_J): Transition(None, S.TERMINATED, "-"),
    (S.COMPLETED, I.TRANSPORT_ERROR): Transition(report_transport_error, S.TERMINATED, "inform TU"),
}
