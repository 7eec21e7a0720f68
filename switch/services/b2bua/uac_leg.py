"""A B-leg: one INVITE towards one target (a line's contact or a carrier trunk).

Why apart from the A-leg: the UAC side builds the INVITE, answers digest
challenges from carriers, fails over on a setup timeout, handles forked 2xx
it did not want (ACK and BYE) and the late-offer ACK, none of which the A-leg
does. The mid-dialog behaviour both share lives in ``leg.LegBase``.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING

from switch.sip.dialog import Dialog
from switch.sip.digest import DigestClient, DigestError
from switch.sip.errors import ParseError, SipError, TransactionError
from switch.sip.headers import Headers
from switch.sip.message import Request, Response, new_call_id, new_tag
from switch.sip.transaction.events import LateAnswer, Peer, ResponseReceived, TransactionTimeout

from ..digest_answer import answer_challenge
from .causes import Cause
from .events import Ack, Answer, Event, Fail, Progress, Redirect, Ring, Try
from .leg import ALLOW, LOOP_HEADER, SDP, AckState, Identity, LegBase, LegEnv, LegState, SipPort, body_of

if TYPE_CHECKING:
    from .call import Call, Handle, Target

__all__ = ["LateForks", "UacLeg"]

log = logging.getLogger(__name__)


class UacLeg(LegBase):
    """One attempt towards one target: sends the INVITE, reports what comes back."""

    __slots__ = (
        "target",
        "identity",
        "digest",
        "invite",
        "tid",
        "local_tag",
        "_auth_tries",
        "_setup_timer",
        "_heard",
        "_stray",
        "_earlier_tids",
    )

    def __init__(self, env: LegEnv, call: Call, target: Target, identity: Identity, digest: DigestClient | None = None) -> None:
        super().__init__(env, call, target.peer)
        self.target = target
        self.identity = identity
        self.digest = digest
        self.invite: Request | None = None
        self.tid = ""
        self.local_tag = ""
        self._auth_tries = 0
        self._setup_timer: Handle | None = None
        self._heard = False
        #: To tag -> ACK we sent for a 2xx we did not want (re-sent for its retransmissions)
        self._stray: dict[str, Request] | None = None
        #: INVITEs this one replaced (a digest retry): their callbacks still point at us
        self._earlier_tids: tuple[str, ...] = ()

    def _send_other(self, event: Event) -> None:
        if isinstance(event, Try):
            self._start(event)

    def _start(self, ev: Try) -> None:
        env = self.env
        target = self.target
        self.local_tag = new_tag()
        call_id = new_call_id(env.domain)
        h = Headers()
        h.add("Max-Forwards", str(max(0, ev.max_forwards - 1)))
        h.add("From", f"{self.identity.from_};tag={self.local_tag}")
        h.add("To", f"<{target.to_uri or target.ruri}>")
        h.add("Call-ID", call_id)
        h.add("CSeq", "1 INVITE")
        h.add("Contact", env.contact(target.peer.transport))
        for name, value in self.identity.headers:
            h.add(name, value)
        h.add("Allow", ALLOW)
        if env.loop_token:
            h.add(LOOP_HEADER, env.loop_token)
        h.add("User-Agent", env.port.user_agent)
        if ev.body:
            h.add("Content-Type", ev.content_type or SDP)
        invite = Request("INVITE", target.ruri, h, ev.body)
        self._bind(call_id, self.local_tag)
        self._send_invite(invite)
        if env.setup_timeout > 0:
            self._setup_timer = env.clock.call_later(env.setup_timeout, self._setup_timeout)

    def _send_invite(self, invite: Request) -> None:
        if self.tid:
            self._earlier_tids += (self.tid,)
        self.invite = invite
        self.tid = self.env.port.request(invite, self.peer, self._guarded_invite)

    def _guarded_invite(self, ev: ResponseReceived | TransactionTimeout) -> None:
        try:
            self._on_invite_event(ev)
        except Exception:  # noqa: BLE001
            self._internal_error("INVITE response")

    def _setup_timeout(self) -> None:
        self._setup_timer = None
        if self._heard or self.state is not LegState.CALLING:
            return
        log.info("%r: no response within %.1fs", self, self.env.setup_timeout)
        try:
            self._emit(Fail(code=408, reason="No Response"))  # first: abandoning detaches us from the call
            self._abandon()
        except Exception:  # noqa: BLE001
            self._internal_error("setup timeout")

    def _abandon(self) -> None:
        """Give up on the INVITE: CANCEL (once a 1xx arrives), ACK+BYE a late 2xx."""
        self.state = LegState.CANCELLING
        self.call = None
        # The layer sends the CANCEL now, or with the first 1xx (§9.1); the INVITE's
        # final response (487, a late 2xx, or Timer B) then ends this leg.
        self.env.port.cancel(self.tid)

    def _on_invite_event(self, ev: ResponseReceived | TransactionTimeout) -> None:
        if isinstance(ev, TransactionTimeout):
            if ev.tid != self.tid:
                return
            if self.state in (LegState.CALLING, LegState.EARLY):
                self._stop_setup_timer()
                self._terminate()
                self.state = LegState.FAILED
                self._emit(Fail(code=408, reason="Request Timeout"))
            elif self.state is LegState.CANCELLING:
                self._terminate()
            return
        resp = ev.response
        status = resp.status
        if status >= 300 and ev.tid != self.tid:
            return  # the final answer of an INVITE we replaced (authentication retry)
        self._heard = True
        self._stop_setup_timer()
        if self.state in (LegState.CANCELLING, LegState.TERMINATED, LegState.FAILED):
            if 200 <= status < 300:
                self._late_2xx(resp)
            if status >= 200 and self.state is LegState.CANCELLING:
                self._terminate()
            return
        if status < 200:
            self._provisional(resp)
        elif status < 300:
            self._answered(resp)
        else:
            self._failed(resp)

    def _stop_setup_timer(self) -> None:
        if self._setup_timer is not None:
            self._setup_timer.cancel()
            self._setup_timer = None

    def _provisional(self, resp: Response) -> None:
        status = resp.status
        if status == 100 or self.state not in (LegState.CALLING, LegState.EARLY):
            return
        assert self.invite is not None
        tag = resp.to.tag
        if tag:
            if self.dialog is None or self.dialog.remote_tag != tag:
                self.dialog = Dialog.from_uac(self.invite, resp)
            else:
                self.dialog.update_from_response(self.invite, resp)
            self.state = LegState.EARLY
        body, ctype = body_of(resp)
        if status == 180:
            self._emit(Ring(body=body, content_type=ctype))
        else:
            self._emit(Progress(code=status, body=body, content_type=ctype))

    def _answered(self, resp: Response) -> None:
        assert self.invite is not None
        tag = resp.to.tag or ""
        if self.state in (LegState.ANSWERED, LegState.CONFIRMED, LegState.TERMINATING):
            if self.dialog is not None and tag == self.dialog.remote_tag:
                state = self._ack_state
                if state is not None and state.ack is not None and state.cseq == resp.cseq.seq:
                    self.env.port.send_stateless(state.ack, self.peer)
            else:
                self._ack_and_bye(resp)  # another fork answered too (§13.2.2.4)
            return
        if self.dialog is not None and self.dialog.remote_tag == tag:
            self.dialog.update_from_response(self.invite, resp)
        else:
            self.dialog = Dialog.from_uac(self.invite, resp)
        self.state = LegState.ANSWERED
        self._ack_state = AckState(self.invite.cseq.seq)
        if self.invite.body:
            self._send_ack(b"", None)
            self.state = LegState.CONFIRMED
        else:
            self._ack_state.deferred = True  # late offer: the caller's ACK carries the answer
        body, ctype = body_of(resp)
        self._emit(Answer(body=body, content_type=ctype))

    def _send_deferred_ack(self, ev: Ack) -> None:
        state = self._ack_state
        if state is not None and state.deferred:
            self._send_ack(ev.body, ev.content_type)
            if self.state is LegState.ANSWERED:
                self.state = LegState.CONFIRMED

    def _failed(self, resp: Response) -> None:
        status = resp.status
        if status in (401, 407) and self._retry_with_credentials(resp):
            return
        self._terminate()
        self.state = LegState.FAILED
        if 300 <= status < 400:
            self._emit(Redirect(code=status, contacts=tuple(str(c.uri) for c in _contacts(resp))))
        else:
            self._emit(Fail(code=status, reason=resp.reason))

    def _retry_with_credentials(self, resp: Response) -> bool:
        """Answer a carrier's challenge once (RFC 3261 §22.2): same Call-ID and tags, CSeq + 1."""
        if self.digest is None or self._auth_tries >= 1 or self.invite is None:
            return False
        self._auth_tries += 1
        try:
            again = answer_challenge(self.digest, self.invite, resp)
        except (DigestError, SipError) as exc:
            log.warning("%r: cannot answer the %d challenge: %s", self, resp.status, exc)
            return False
        self._send_invite(again)
        return True

    def _late_2xx(self, resp: Response) -> None:
        """A 2xx after we gave up or finished: every one must still be ACKed (§13.2.2.4)."""
        tag = resp.to.tag or ""
        state = self._ack_state
        if self.dialog is not None and tag == self.dialog.remote_tag and state is not None and state.ack is not None:
            self.env.port.send_stateless(state.ack, self.peer)
        else:
            self._ack_and_bye(resp)

    def _ack_and_bye(self, resp: Response) -> None:
        """A 2xx we do not want (after CANCEL, or from a second fork): ACK it, then BYE, once (§15)."""
        assert self.invite is not None
        if self._stray is None:
            self._stray = {}
        _ack_and_bye(self.env.port, self.peer, self.invite, self._stray, resp)

    def _disconnect(self, cause: Cause) -> None:
        if self.state in (LegState.CALLING, LegState.EARLY):
            self._stop_setup_timer()
            self._abandon()
        else:
            super()._disconnect(cause)

    def _on_bye(self, tid: str, req: Request) -> None:
        if self.state is LegState.EARLY:
            # Only the caller may end an early dialog with BYE (§15); the callee's
            # INVITE still owes us a final response, which decides.
            self._reply(tid, req, 200)
            return
        super()._on_bye(tid, req)

    def _terminate(self) -> None:
        self._stop_setup_timer()
        super()._terminate()
        self._hand_over()

    def _hand_over(self) -> None:
        """Leave the INVITE's last 32 s (Timer M / D) to a small record instead of this leg.

        Past this point the INVITE's transaction only ever asks us to ACK a 2xx
        (re-send our ACK, or ACK+BYE another fork's), which ``_Finished`` does
        the same way; the leg, its call, INVITE and dialog can then go at once.
        Once only: a second ``_terminate`` finds no INVITE and leaves the record be.
        """
        if self.invite is None:
            return
        state = self._ack_state
        dialog = self.dialog
        ack = state.ack if state is not None else None
        if (ack is not None and dialog is not None and not self._stray and not self._earlier_tids
                and self.env.port.linger_invite(self.tid, ack.to_bytes(), dialog.remote_tag or "",
                                                _pack_seed(_dialog_seed(self.invite)))):
            # The usual end of an answered call: the layer re-sends our ACK for the 2xx's
            # retransmissions itself and keeps no object for it (transaction/linger.py);
            # another fork's 2xx comes to LateForks.
            self.invite = None
            return
        finished = _Finished(
            self.env.port,
            self.peer,
            dialog.remote_tag if dialog is not None else None,
            state.ack.to_bytes() if state is not None and state.ack is not None else None,
            _dialog_seed(self.invite),
            self._stray,
        )
        for tid in (*self._earlier_tids, self.tid):
            self.env.port.rebind_client(tid, finished)
        self.invite = None  # only the INVITE's callback read it, and that is ``finished`` now


class _Finished:
    """A terminated B-leg's INVITE transaction: every 2xx still gets its ACK (RFC 3261 §13.2.2.4).

    Behaves as ``UacLeg._on_invite_event`` does in TERMINATED/FAILED: a 2xx
    from our dialog's peer gets the ACK we sent re-sent; a 2xx from any other
    fork is ACKed and BYEd once (its retransmissions get the same ACK again);
    everything else is ignored.
    """

    __slots__ = ("port", "peer", "remote_tag", "ack", "seed", "stray")

    def __init__(self, port: SipPort, peer: Peer, remote_tag: str | None, ack: bytes | None, seed: _Seed,
                 stray: dict[str, Request] | None) -> None:
        self.port = port
        self.peer = peer
        self.remote_tag = remote_tag
        self.ack = ack
        """Our ACK to the dialog's 2xx, as sent."""
        self.seed = seed
        """What ``Dialog.from_uac`` reads of our INVITE, nothing more (built into a request only if needed)."""
        self.stray = stray

    def __call__(self, ev: ResponseReceived | TransactionTimeout) -> None:
        if isinstance(ev, TransactionTimeout):
            return
        resp = ev.response
        if not 200 <= resp.status < 300:
            return
        try:
            if self.ack is not None and (resp.to.tag or "") == self.remote_tag:
                self.port.send_raw(self.ack, self.peer)
            else:
                if self.stray is None:
                    self.stray = {}
                _ack_and_bye(self.port, self.peer, _seed_request(self.seed), self.stray, resp)
        except Exception:  # noqa: BLE001 - never into the endpoint
            log.exception("finished B-leg towards %s:%d: internal error on a late 2xx", self.peer.host, self.peer.port)


class LateForks:
    """ACK and BYE the 2xx of another fork that comes after a B-leg handed its INVITE to the layer.

    What ``_Finished`` does for the 2xx it sees, for the legs that left no object behind
    (``UacLeg._hand_over``): once per INVITE and To tag, its retransmissions get the same
    ACK again. The memory of those is bounded: past 1,024 INVITEs it starts over (a 2xx
    retransmitted after that gets a second BYE, which its UAS answers 481).
    """

    def __init__(self, port: SipPort) -> None:
        self.port = port
        self._strays: dict[str, dict[str, Request]] = {}

    def __call__(self, ev: LateAnswer) -> None:
        try:
            seed = _unpack_seed(ev.note)
        except ValueError:
            log.warning("late 2xx for %s: unreadable note", ev.tid)
            return
        if len(self._strays) >= 1024 and ev.tid not in self._strays:
            self._strays.clear()
        try:
            _ack_and_bye(self.port, ev.peer, _seed_request(seed), self._strays.setdefault(ev.tid, {}), ev.response)
        except Exception:  # noqa: BLE001 - never into the endpoint
            log.exception("late 2xx from another fork towards %s:%d", ev.peer.host, ev.peer.port)


def _ack_and_bye(port: SipPort, peer: Peer, invite: Request, stray: dict[str, Request], resp: Response) -> None:
    """ACK a 2xx we do not want, then BYE its dialog, once per To tag (§13.2.2.4, §15)."""
    tag = resp.to.tag or ""
    ack = stray.get(tag)
    if ack is not None:
        port.send_stateless(ack, peer)  # a retransmission: the BYE is already out
        return
    try:
        d = Dialog.from_uac(invite, resp)
    except (ParseError, TransactionError):
        return
    ack = d.create_request("ACK")
    port.request(ack, peer)
    stray[tag] = ack
    port.request(d.create_request("BYE", headers=(("Reason", Cause.CANCELLED.reason_header),)), peer)


_SEED_HEADERS = ("From", "Call-ID", "CSeq", "Contact")
# (method, Request-URI, *values of _SEED_HEADERS): one small object per finished leg
_Seed = tuple[str | None, ...]


def _dialog_seed(invite: Request) -> _Seed:
    """The INVITE cut to what a dialog is built from: Request-URI, From, Call-ID, CSeq, Contact (§12.1.2).

    A tuple of what the INVITE already holds, not a new Request: each finished B-leg keeps it
    for Timer M's 32 s, and almost none ever needs it (a late 2xx from another fork).
    """
    return (invite.method, invite.uri, *(invite.headers.get(name) for name in _SEED_HEADERS))


_NONE = 0xFFFFFFFF


def _pack_seed(seed: _Seed) -> bytes:
    """A seed as bytes for ``linger_invite`` (each value length-prefixed; None kept apart from "")."""
    out = bytearray()
    for value in seed:
        if value is None:
            out += struct.pack("!I", _NONE)
        else:
            b = value.encode("utf-8", "surrogateescape")
            out += struct.pack("!I", len(b))
            out += b
    return bytes(out)


def _unpack_seed(data: bytes) -> _Seed:
    values: list[str | None] = []
    at = 0
    while at < len(data):
        if at + 4 > len(data):
            raise ValueError("truncated seed")
        (n,) = struct.unpack_from("!I", data, at)
        at += 4
        if n == _NONE:
            values.append(None)
            continue
        if at + n > len(data):
            raise ValueError("truncated seed")
        values.append(data[at : at + n].decode("utf-8", "surrogateescape"))
        at += n
    if len(values) != 2 + len(_SEED_HEADERS):
        raise ValueError("not a seed")
    return tuple(values)


def _seed_request(seed: _Seed) -> Request:
    h = Headers()
    for name, value in zip(_SEED_HEADERS, seed[2:]):
        if value is not None:
            h.add(name, value)
    method, uri = seed[0], seed[1]
    assert method is not None and uri is not None
    return Request(method, uri, h)


def _contacts(resp: Response) -> list:  # type: ignore[type-arg]
    try:
        return [c for c in resp.contacts if not c.wildcard]
    except ParseError:
        return []
