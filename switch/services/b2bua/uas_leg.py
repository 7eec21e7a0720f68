"""The A-leg: answers the caller's INVITE with what the B side does.

Why apart from the B-leg: the UAS side owns the server transaction of the
initial INVITE (provisional and final responses, CANCEL, the wait for the ACK
of our 2xx, RFC 3261 §13.3.1.4), none of which a B-leg has. The mid-dialog
behaviour both share lives in ``leg.LegBase``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from switch.sip.dialog import Dialog
from switch.sip.errors import TransactionError
from switch.sip.message import Request, Response, new_tag, response_for
from switch.sip.transaction.events import CancelReceived, RequestReceived

from .causes import Cause
from .events import Ack, Answer, Disconnect, Event, Fail, Progress, Ring
from .leg import ALLOW, SDP, LegBase, LegEnv, LegState, OriginKeeper

if TYPE_CHECKING:
    from .announce import Playing
    from .call import Call, Handle

__all__ = ["UasLeg"]

log = logging.getLogger(__name__)


class UasLeg(LegBase):
    """The caller's side: answers the initial INVITE with what the B side does."""

    __slots__ = ("invite", "tid", "local_tag", "_ack_timer", "_origin", "language", "_announcement", "_pending")

    def __init__(self, env: LegEnv, ev: RequestReceived) -> None:
        super().__init__(env, None, ev.source)
        assert ev.tid is not None
        self.invite = ev.request
        self.tid = ev.tid
        self.local_tag: str | None = None
        self._ack_timer: Handle | None = None
        self._origin = OriginKeeper()
        self.language = "nb"
        """Of the announcements this caller hears (set by the manager: the line's, else Norwegian)."""
        self._announcement: Playing | None = None
        self._pending: Fail | None = None
        env.server_tids[ev.tid] = self

    def attach(self, call: Call) -> None:
        self.call = call

    def _respond(self, status: int, reason: str | None = None, *, body: bytes = b"", content_type: str | None = None) -> Response:
        try:
            resp = self.env.create_response(self.tid, status, reason)
        except TransactionError:
            # The transaction is gone (transport error): build it ourselves; sending will be a no-op.
            resp = response_for(self.invite, status, reason, to_tag=self.local_tag or new_tag())
        if self.local_tag is None:
            self.local_tag = resp.to.tag
        if 100 < status < 300:
            resp.headers.add("Contact", self.env.contact(self.peer.transport))
            if status >= 200:
                resp.headers.add("Allow", ALLOW)
        if body:
            ctype = content_type or SDP
            if ctype.split(";", 1)[0].strip().lower() == SDP:
                body = self._origin.outgoing(body)
            resp.headers.add("Content-Type", ctype)
            resp.body = body
        return resp

    def _dialog_from(self, resp: Response) -> None:
        if self.dialog is None:
            self.dialog = Dialog.from_uas(self.invite, resp)
            self._bind(self.dialog.call_id, self.dialog.local_tag)
        elif resp.status >= 200:
            self.dialog.early = False

    def _send_other(self, event: Event) -> None:
        if isinstance(event, (Ring, Progress)):
            if self.state not in (LegState.CALLING, LegState.EARLY):
                return
            status = 180 if isinstance(event, Ring) else event.code
            resp = self._respond(status, body=event.body, content_type=event.content_type)
            self._dialog_from(resp)
            self.state = LegState.EARLY
            self.env.port.reply(self.tid, resp)
        elif isinstance(event, Answer):
            if self.state not in (LegState.CALLING, LegState.EARLY):
                return
            resp = self._respond(200, body=event.body, content_type=event.content_type)
            self._dialog_from(resp)
            self.state = LegState.ANSWERED
            self._expect_ack = self.invite.cseq.seq
            self.env.server_tids.pop(self.tid, None)
            self._ack_timer = self.env.clock.call_later(self.env.ack_timeout, self._no_ack)
            self.env.port.reply(self.tid, resp)
        elif isinstance(event, Fail):
            if not self._announce(event):
                self._fail(event.code, event.reason, event.cause, event.retry_after)

    def _announce(self, event: Fail) -> bool:
        """183 + the prompt as early media, the final response once it has played (docs/announcements.md)."""
        announcer = self.env.announcer
        if announcer is None or self._announcement is not None:
            return False
        # After a 180 without SDP we may still answer the offer; after early media, the
        # caller has heard the far end (its own announcement, say), so the final goes plain.
        if self.state is not LegState.CALLING and not (self.state is LegState.EARLY and not self._origin.sent):
            return False
        code = announcer.support_code(event)
        if code is not None and self.call is not None:
            self.call.record.support_code = code
        ctype = self.invite.headers.get("Content-Type") or ""
        if not self.invite.body or ctype.split(";", 1)[0].strip().lower() != SDP:
            return False
        playing = announcer.begin(
            offer=self.invite.body, source_host=self.peer.host, fail=event, language=self.language, on_end=self._announced
        )
        if playing is None:
            return False
        self._announcement = playing
        self._pending = event
        resp = self._respond(183, body=playing.answer, content_type=SDP)
        self._dialog_from(resp)
        self.state = LegState.EARLY
        self.env.port.reply(self.tid, resp)
        return True

    def _announced(self) -> None:
        """The prompt has played (or the switch is stopping): now the final response."""
        self._announcement = None
        event, self._pending = self._pending, None
        if event is not None:
            try:
                self._fail(event.code, event.reason, event.cause, event.retry_after)
            except Exception:  # noqa: BLE001
                self._internal_error("final response after the announcement")

    def _fail(self, code: int, reason: str | None, cause: Cause, retry_after: int | None = None) -> None:
        if self.state not in (LegState.CALLING, LegState.EARLY):
            return
        resp = self._respond(code, reason)
        resp.headers.add("Reason", cause.reason_header)
        if retry_after is not None:
            resp.headers.add("Retry-After", str(retry_after))
        self.env.server_tids.pop(self.tid, None)
        self._terminate()
        self.state = LegState.FAILED
        self.env.port.reply(self.tid, resp)

    def _disconnect(self, cause: Cause) -> None:
        if self.state in (LegState.CALLING, LegState.EARLY):
            self._fail(cause.code if cause.code >= 300 else 480, None, cause)
        elif self.state is LegState.ANSWERED:
            # RFC 3261 §15: no BYE before the ACK for our 2xx (or its timeout).
            self._bye_cause = cause
            self.call = None
        elif self.state is LegState.CONFIRMED:
            self._send_bye(cause)

    def _on_bye(self, tid: str, req: Request) -> None:
        if self.state in (LegState.CALLING, LegState.EARLY):
            # BYE in the early dialog: the caller gave up. §15.1.2: still answer the INVITE (487).
            self._reply(tid, req, 200)
            self._emit(Disconnect(cause=Cause.CANCELLED))
            if self.state in (LegState.CALLING, LegState.EARLY):
                self._fail(487, None, Cause.CANCELLED)
            return
        super()._on_bye(tid, req)

    def _on_ack(self, req: Request) -> None:
        if self.state is LegState.ANSWERED and req.cseq.seq == self.invite.cseq.seq:
            self.state = LegState.CONFIRMED
            self._expect_ack = None
            if self._ack_timer is not None:
                self._ack_timer.cancel()
                self._ack_timer = None
            self._emit(Ack(body=req.body, content_type=req.headers.get("Content-Type") if req.body else None))
            if self._bye_cause is not None:
                self._send_bye(self._bye_cause)
            return
        super()._on_ack(req)

    def _no_ack(self) -> None:
        self._ack_timer = None
        if self.state is not LegState.ANSWERED:
            return
        try:
            log.warning("%r: no ACK for our 2xx; ending the call", self)
            self.state = LegState.CONFIRMED
            self._emit(Disconnect(cause=Cause.ACK_TIMEOUT))
            if self.state is LegState.CONFIRMED:
                self._send_bye(self._bye_cause or Cause.ACK_TIMEOUT)
        except Exception:  # noqa: BLE001
            self._internal_error("ACK timeout")

    def on_cancel(self, ev: CancelReceived) -> None:
        """The caller gave up; the layer already answered the CANCEL with 200."""
        try:
            if self.state not in (LegState.CALLING, LegState.EARLY):
                return
            if self.call is None:
                self._fail(487, None, Cause.CANCELLED)
                return
            self._emit(Disconnect(cause=Cause.CANCELLED))
            if self.state in (LegState.CALLING, LegState.EARLY):  # the call did not answer 487 itself
                self._fail(487, None, Cause.CANCELLED)
        except Exception:  # noqa: BLE001
            self._internal_error("CANCEL")

    def _terminate(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        if self._announcement is not None:  # CANCEL or an early BYE while the prompt plays
            playing, self._announcement = self._announcement, None
            self._pending = None
            playing.stop()
        self.env.server_tids.pop(self.tid, None)
        super()._terminate()
