"""Call legs: SIP dialogs and transactions on one side, call-control events on the other.

Theory of operation
-------------------
A leg owns one dialog with one SIP peer (the caller's adapter, a callee's
adapter, or a carrier trunk) and translates in both directions:

* SIP from the peer → an event for the call (``Call.event(leg, ev)``);
* an event from the call (``leg.send(ev)``) → SIP to the peer.

:class:`UasLeg` is the A-leg: it answers the caller's INVITE. :class:`UacLeg`
is a B-leg: it sends an INVITE to one target. Both share the mid-dialog
machinery of :class:`_Leg` (re-INVITE, UPDATE, INFO, OPTIONS, NOTIFY relay,
BYE, the ACK for a 2xx).

Offer/answer across the legs (RFC 3264, RFC 3261 §13.2.1) with bodies passed
through unchanged:

* Offer in the INVITE: the B-leg INVITE carries it, the B side's 18x/2xx
  carry the answer back, and the B-leg ACKs its 2xx at once (no body).
* No offer in the INVITE (late offer): the B side's 2xx carries the offer,
  the A side's ACK carries the answer. So the B-leg does *not* ACK its 2xx
  until the call hands it the A-leg's ``Ack``, whose body goes into the ACK.
  The same rule applies to every re-INVITE a leg sends.
* Early media from several B-leg attempts (failover after a 183) reaches one
  A-leg dialog. ``OriginKeeper`` rewrites the SDP ``o=`` line the caller sees
  so that it stays one session whose version only grows (RFC 3264 §8), even
  though each carrier's SDP has its own origin.

Where requests go: every request of a leg goes to one fixed address, the
leg's ``peer`` -- for the A-leg the address the INVITE came from (the NAT
binding of the adapter, or its TCP connection), for a B-leg the registered
contact's received address or the trunk. Request-URIs and Route sets still
follow the dialog (RFC 3261 §12.2.1.1); only the next hop is pinned, which
is what reaches adapters behind NAT.

Robustness: a leg never lets an exception from the call or from a malformed
message escape into the endpoint. On an internal error the call is shut down
(cause ``internal_error``), so a CDR is written and both sides are released.
"""

from __future__ import annotations

import enum
import logging
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from switch.sip.dialog import Dialog
from switch.sip.digest import DigestClient, DigestError, choose_challenge, parse_challenges
from switch.sip.errors import ParseError, SipError, TransactionError
from switch.sip.headers import Headers
from switch.sip.message import Request, Response, new_call_id, new_tag, response_for
from switch.sip.uri import format_host
from switch.sip.transaction.events import (
    CancelReceived,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionTimeout,
)

from .causes import Cause
from .events import Ack, Answer, Disconnect, Event, Fail, Info, Progress, Redirect, Reply, Ring, Try, Update

if TYPE_CHECKING:
    from .call import Call, Clock, Handle, Target

__all__ = [
    "LegEnv",
    "SipPort",
    "Identity",
    "UasLeg",
    "UacLeg",
    "OriginKeeper",
    "LegState",
    "RELAYED_HEADERS",
    "LOOP_HEADER",
]

log = logging.getLogger(__name__)

#: What we accept inside a call (Allow in INVITEs and 2xx we send).
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY"
#: Method-specific headers worth carrying with a relayed INFO / NOTIFY / OPTIONS.
RELAYED_HEADERS = ("Event", "Subscription-State", "Info-Package", "Content-Disposition", "Accept")
#: Our own loop marker on every B-leg INVITE: an INVITE that arrives carrying our
#: token was sent by this switch (a carrier routed it back) and is refused with 482.
LOOP_HEADER = "X-Switch-Loop"
_SDP = "application/sdp"


class SipPort(Protocol):
    """The part of ``switch.transport.endpoint.Endpoint`` legs use."""

    user_agent: str

    def reply(self, tid: str, response: Response) -> None: ...

    def request(
        self, request: Request, dest: Peer, callback: Callable[[ResponseReceived | TransactionTimeout], None] | None = None
    ) -> str: ...

    def cancel(self, tid: str) -> str | None: ...

    def send_stateless(self, message: Request | Response, dest: Peer) -> None: ...


class LegEnv:
    """What every leg of every call shares: the endpoint, our addresses, the dialog index."""

    __slots__ = (
        "port",
        "clock",
        "create_response",
        "addresses",
        "_contact_cache",
        "domain",
        "dialogs",
        "server_tids",
        "ack_timeout",
        "setup_timeout",
        "loop_token",
    )

    def __init__(
        self,
        *,
        port: SipPort,
        clock: Clock,
        create_response: Callable[[str, int, str | None], Response],
        addresses: Mapping[str, tuple[str, int]],
        domain: str,
        ack_timeout: float = 32.0,
        setup_timeout: float = 4.0,
        loop_token: str = "",
    ) -> None:
        self.port = port
        self.clock = clock
        #: layer.create_response: every response to one INVITE carries the same To tag,
        #: including the layer's own 200 to a CANCEL (RFC 3261 §9.2).
        self.create_response = create_response
        #: transport -> our (host, port), as the endpoint put them in the layer's Via config
        self.addresses = addresses
        self._contact_cache: dict[str, str] = {}
        self.domain = domain
        #: (Call-ID, our tag) -> leg: where in-dialog requests are dispatched
        self.dialogs: dict[tuple[str, str], _Leg] = {}
        #: INVITE server transaction -> A-leg, for CANCEL
        self.server_tids: dict[str, UasLeg] = {}
        self.ack_timeout = ack_timeout
        """64*T1: how long to wait for the ACK of a 2xx before giving up on the dialog (§13.3.1.4)."""
        self.setup_timeout = setup_timeout
        """No response at all to a B-leg INVITE within this time: that target is dead, fail over."""
        self.loop_token = loop_token

    def contact(self, transport: str) -> str:
        """Our Contact for a dialog on ``transport`` (where the peer sends in-dialog requests)."""
        cached = self._contact_cache.get(transport)
        if cached is not None:
            return cached
        addr = self.addresses.get(transport) or self.addresses.get("udp")
        if addr is None:
            raise TransactionError("the endpoint has no listening address yet")
        host, port = addr
        value = f"<sip:{format_host(host)}:{port}" + ("" if transport == "udp" else f";transport={transport}") + ">"
        self._contact_cache[transport] = value
        return value


@dataclass(frozen=True, slots=True)
class Identity:
    """How the caller is presented on a B-leg (built by the manager per target)."""

    from_: str
    """From header value without tag."""
    headers: tuple[tuple[str, str], ...] = ()
    """P-Asserted-Identity, Privacy, ... as the target may see them."""


class LegState(enum.Enum):
    CALLING = "calling"  # INVITE sent / received, no final response
    EARLY = "early"  # 1xx with a tag exchanged
    ANSWERED = "answered"  # 2xx exchanged, ACK not yet
    CONFIRMED = "confirmed"
    CANCELLING = "cancelling"  # UAC: CANCEL sent, waiting for the INVITE's final response
    TERMINATING = "terminating"  # BYE sent
    FAILED = "failed"  # non-2xx final
    TERMINATED = "terminated"


_ORIGIN = re.compile(rb"^o=(\S+) (\S+) (\d+) (\S+ \S+ \S+)(?=\r?$)", re.M)


class OriginKeeper:
    """Keep the SDP origin the peer sees stable across bodies from different sources.

    The first SDP passes unchanged. If a later one carries another session
    (a different carrier answered after failover), its ``o=`` line is rewritten
    to the first session's user and id; the version is bumped whenever the
    content changes, so the peer sees one session evolving (RFC 3264 §8).
    """

    __slots__ = ("_user", "_sess", "_version", "_last", "_rewriting")

    def __init__(self) -> None:
        self._user: bytes | None = None
        self._sess = b""
        self._version = 0
        self._last = b""
        self._rewriting = False

    def outgoing(self, body: bytes) -> bytes:
        m = _ORIGIN.search(body)
        if m is None:
            return body
        user, sess, version, rest = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        if self._user is None:
            self._user, self._sess, self._version, self._last = user, sess, version, body
            return body
        if not self._rewriting and (user, sess) == (self._user, self._sess):
            self._version, self._last = version, body
            return body
        self._rewriting = True
        if body != self._last:
            self._version += 1
            self._last = body
        line = b"o=" + self._user + b" " + self._sess + b" " + str(self._version).encode() + b" " + rest
        return body[: m.start()] + line + body[m.end() :]


@dataclass(slots=True)
class _Outgoing:
    """A mid-dialog request we sent for the other leg, waiting for its final answer."""

    seq: int
    request: Request
    answered: bool = False


@dataclass(slots=True)
class _AckState:
    """The 2xx-ACK bookkeeping for one INVITE we sent (initial or re-INVITE)."""

    cseq: int
    ack: Request | None = None
    """The ACK once sent (re-sent for every 2xx retransmission)."""
    deferred: bool = False
    """Late offer: the ACK waits for the other leg's answer."""
    extra: list[str] = field(default_factory=list)


class _Leg:
    """Shared mid-dialog behaviour. Subclasses handle the initial INVITE."""

    __slots__ = (
        "env",
        "call",
        "peer",
        "dialog",
        "state",
        "_next_seq",
        "_incoming",
        "_reinvite_in",
        "_reinvite_out",
        "_expect_ack",
        "_ack_state",
        "_keys",
        "_bye_cause",
        "_guard",
        "__weakref__",  # tests prove a finished leg is freed by reference counting alone
    )

    def __init__(self, env: LegEnv, call: Call | None, peer: Peer) -> None:
        self.env = env
        self.call = call
        self.peer = peer
        self.dialog: Dialog | None = None
        self.state = LegState.CALLING
        self._next_seq = 1
        #: seq -> (server tid, request) waiting for the other leg's Reply
        self._incoming: dict[int, tuple[str, Request]] = {}
        self._reinvite_in: int | None = None
        self._reinvite_out: str | None = None
        #: CSeq of an INVITE we answered 2xx, whose ACK we still expect
        self._expect_ack: int | None = None
        self._ack_state: _AckState | None = None
        self._keys: list[tuple[str, str]] = []
        self._bye_cause: Cause | None = None
        #: forgets the dialog if our BYE's transaction never reports back (e.g. a transport error)
        self._guard: Handle | None = None

    # -- plumbing ---------------------------------------------------------------
    def detach(self) -> None:
        self.call = None

    def _emit(self, ev: Event) -> None:
        call = self.call
        if call is None:
            return
        try:
            call.event(self, ev)
        except Exception:  # noqa: BLE001 - the call failed: release both sides, keep the CDR
            log.exception("call failed handling %s from %r", type(ev).__name__, self)
            call.shutdown(Cause.INTERNAL_ERROR)

    def _internal_error(self, where: str) -> None:
        log.exception("%r: internal error in %s", self, where)
        call = self.call
        if call is not None:
            call.shutdown(Cause.INTERNAL_ERROR)
        elif self.state not in (LegState.TERMINATED, LegState.FAILED):
            self._terminate()

    def _bind(self, call_id: str, tag: str) -> None:
        key = (call_id, tag)
        if key not in self._keys:
            self._keys.append(key)
            self.env.dialogs[key] = self

    def _terminate(self) -> None:
        """Forget the dialog: later requests for it get 481 from the manager."""
        self.state = LegState.TERMINATED
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None
        dialogs = self.env.dialogs
        for key in self._keys:
            if dialogs.get(key) is self:
                del dialogs[key]
        self._keys.clear()
        for tid, req in self._incoming.values():
            self.env.port.reply(tid, response_for(req, 487 if req.method == "INVITE" else 481))
        self._incoming.clear()

    @property
    def terminated(self) -> bool:
        return self.state is LegState.TERMINATED

    def _seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def _reply(self, tid: str, req: Request, status: int, reason: str | None = None, headers: tuple[tuple[str, str], ...] = ()) -> None:
        resp = response_for(req, status, reason)
        for name, value in headers:
            resp.headers.add(name, value)
        self.env.port.reply(tid, resp)

    # -- requests from our peer ---------------------------------------------------------
    def on_request(self, ev: RequestReceived) -> None:
        """An in-dialog request from our peer (dispatched by the manager)."""
        try:
            self._on_request(ev)
        except Exception:  # noqa: BLE001
            if ev.tid is not None:
                self._reply(ev.tid, ev.request, 500)
            self._internal_error(f"{ev.request.method} handling")

    def _on_request(self, ev: RequestReceived) -> None:
        req = ev.request
        method = req.method
        if method == "ACK":
            self._on_ack(req)
            return
        tid = ev.tid
        assert tid is not None
        dialog = self.dialog
        if dialog is None or self.state in (LegState.TERMINATED, LegState.FAILED):
            self._reply(tid, req, 481)
            return
        if not dialog.receive_request(req):
            self._reply(tid, req, 500, "CSeq Out Of Order")
            return
        if method == "BYE":
            self._on_bye(tid, req)
        elif method in ("INVITE", "UPDATE"):
            self._on_offer(tid, req)
        elif method in ("INFO", "OPTIONS", "NOTIFY"):
            seq = self._seq()
            self._incoming[seq] = (tid, req)
            headers = tuple((n, v) for n in RELAYED_HEADERS for v in req.headers.get_lines(n))
            ctype = req.headers.get("Content-Type") if req.body else None
            self._emit(Info(method=method, seq=seq, body=req.body, content_type=ctype, headers=headers))
        elif method == "PRACK":
            # We never send reliable provisionals (no 100rel towards either side).
            self._reply(tid, req, 481, "No Reliable Provisional Pending")
        elif method == "REFER":
            # Transfer would send the call somewhere routing never approved.
            self._reply(tid, req, 403, "Transfer Not Supported")
        else:
            self._reply(tid, req, 405, headers=(("Allow", ALLOW),))

    def _on_offer(self, tid: str, req: Request) -> None:
        """re-INVITE or UPDATE from our peer: relay the offer (RFC 3261 §14.2, RFC 3311 §5.2)."""
        method = req.method
        if self._reinvite_out is not None:
            self._reply(tid, req, 491)  # glare: both sides offered
            return
        if self._reinvite_in is not None or self.state not in (LegState.CONFIRMED, LegState.ANSWERED, LegState.EARLY):
            self._reply(tid, req, 500, "Offer Pending", (("Retry-After", str(random.randint(1, 5))),))
            return
        if method == "INVITE" and self.state is not LegState.CONFIRMED:
            self._reply(tid, req, 500, "Offer Pending", (("Retry-After", str(random.randint(1, 5))),))
            return
        seq = self._seq()
        self._incoming[seq] = (tid, req)
        if method == "INVITE":
            self._reinvite_in = seq
        self._emit(Update(method=method, seq=seq, body=req.body, content_type=req.headers.get("Content-Type") if req.body else None))

    def _on_bye(self, tid: str, req: Request) -> None:
        self._reply(tid, req, 200)
        was = self.state
        self._terminate()
        if was is not LegState.TERMINATING:
            self._emit(Disconnect(cause=Cause.NORMAL))

    def _on_ack(self, req: Request) -> None:
        """ACK for a 2xx we sent to an INVITE (the initial one is handled by UasLeg)."""
        if self._expect_ack is not None and req.cseq.seq == self._expect_ack:
            self._expect_ack = None
            self._emit(Ack(body=req.body, content_type=req.headers.get("Content-Type") if req.body else None))

    # -- events from the call -------------------------------------------------------------
    def send(self, event: Event) -> None:
        if isinstance(event, Reply):
            self._send_reply(event)
        elif isinstance(event, (Update, Info)):
            self._send_request(event)
        elif isinstance(event, Ack):
            self._send_deferred_ack(event)
        elif isinstance(event, Disconnect):
            self._disconnect(event.cause)
        else:
            self._send_other(event)

    def _send_other(self, event: Event) -> None:
        log.debug("%r: no use for %s", self, type(event).__name__)

    def _send_reply(self, ev: Reply) -> None:
        entry = self._incoming.pop(ev.seq, None)
        if entry is None:
            return
        tid, req = entry
        resp = response_for(req, ev.code, ev.reason)
        if req.method in ("INVITE", "UPDATE") and 200 <= ev.code < 300:
            resp.headers.add("Contact", self.env.contact(self.peer.transport))
        if ev.body:
            resp.headers.add("Content-Type", ev.content_type or _SDP)
            resp.body = ev.body
        if req.method == "INVITE":
            self._reinvite_in = None
            if 200 <= ev.code < 300:
                self._expect_ack = req.cseq.seq
        self.env.port.reply(tid, resp)

    def _send_request(self, ev: Update | Info) -> None:
        dialog = self.dialog
        if dialog is None or self.state not in (LegState.EARLY, LegState.ANSWERED, LegState.CONFIRMED):
            self._emit(Reply(seq=ev.seq, code=481 if dialog is None else 500, reason="No Dialog"))
            return
        if isinstance(ev, Update):
            if self._reinvite_out is not None or self._reinvite_in is not None:
                self._emit(Reply(seq=ev.seq, code=491))
                return
            if ev.method == "INVITE" and self.state is not LegState.CONFIRMED:
                self._emit(Reply(seq=ev.seq, code=500, reason="Offer Pending"))
                return
        headers = ev.headers if isinstance(ev, Info) else ()
        req = dialog.create_request(ev.method, body=ev.body, content_type=ev.content_type or (_SDP if ev.body else None), headers=headers)
        if ev.method == "INVITE":
            req.headers.add("Allow", ALLOW)
        out = _Outgoing(ev.seq, req)
        tid = self.env.port.request(req, self.peer, lambda r: self._guarded_out(out, r))
        if ev.method == "INVITE":
            self._reinvite_out = tid

    def _guarded_out(self, out: _Outgoing, ev: ResponseReceived | TransactionTimeout) -> None:
        try:
            self._on_out_response(out, ev)
        except Exception:  # noqa: BLE001
            self._internal_error(f"response to {out.request.method}")

    def _on_out_response(self, out: _Outgoing, ev: ResponseReceived | TransactionTimeout) -> None:
        req = out.request
        method = req.method
        if isinstance(ev, TransactionTimeout):
            status, resp = 408, None
        else:
            resp = ev.response
            status = resp.status
            if status < 200:
                return
        if method == "INVITE" and resp is not None and 200 <= status < 300:
            self._on_reinvite_2xx(out, resp)
            return
        if out.answered:
            return
        out.answered = True
        if method == "INVITE":
            self._reinvite_out = None
        body, ctype = _body_of(resp)
        self._emit(Reply(seq=out.seq, code=status, reason=resp.reason if resp else "Request Timeout", body=body, content_type=ctype))
        if status == 481 or (status == 408 and method in ("INVITE", "UPDATE")):
            # RFC 3261 §12.2.1.2: the dialog is gone at the other end.
            if not self.terminated:
                self._terminate()
                self._emit(Disconnect(cause=Cause.UNAVAILABLE))

    def _on_reinvite_2xx(self, out: _Outgoing, resp: Response) -> None:
        dialog = self.dialog
        assert dialog is not None
        ack_state = self._ack_state
        if ack_state is not None and ack_state.cseq == resp.cseq.seq:
            if ack_state.ack is not None:
                self.env.port.send_stateless(ack_state.ack, self.peer)  # 2xx retransmission
            return
        dialog.update_from_response(out.request, resp)
        self._ack_state = _AckState(resp.cseq.seq)
        if out.request.body:
            self._send_ack(b"", None)
        else:
            self._ack_state.deferred = True
        out.answered = True
        self._reinvite_out = None
        body, ctype = _body_of(resp)
        self._emit(Reply(seq=out.seq, code=resp.status, reason=resp.reason, body=body, content_type=ctype))

    def _send_ack(self, body: bytes, content_type: str | None) -> None:
        dialog = self.dialog
        state = self._ack_state
        assert dialog is not None and state is not None
        ack = dialog.create_request("ACK", body=body, content_type=content_type or (_SDP if body else None))
        self.env.port.request(ack, self.peer)
        state.ack = ack
        state.deferred = False

    def _send_deferred_ack(self, ev: Ack) -> None:
        state = self._ack_state
        if state is not None and state.deferred:
            self._send_ack(ev.body, ev.content_type)

    def _disconnect(self, cause: Cause) -> None:
        if self.state in (LegState.CONFIRMED, LegState.ANSWERED, LegState.EARLY):
            self._send_bye(cause)

    def _send_bye(self, cause: Cause) -> None:
        dialog = self.dialog
        if dialog is None:
            self._terminate()
            return
        state = self._ack_state
        if state is not None and state.deferred:
            self._send_ack(b"", None)  # a 2xx must be ACKed even when we hang up at once
        bye = dialog.create_request("BYE", headers=(("Reason", cause.reason_header),))
        self.state = LegState.TERMINATING
        self.call = None

        def done(ev: ResponseReceived | TransactionTimeout) -> None:
            if isinstance(ev, TransactionTimeout) or ev.response.status >= 200:
                if self.state is LegState.TERMINATING:
                    self._terminate()

        self.env.port.request(bye, self.peer, done)
        self._guard = self.env.clock.call_later(self.env.ack_timeout + 1.0, self._bye_unanswered)

    def _bye_unanswered(self) -> None:
        self._guard = None
        if self.state is LegState.TERMINATING:
            self._terminate()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.peer.host}:{self.peer.port} {self.state.value}>"


def _body_of(resp: Response | None) -> tuple[bytes, str | None]:
    """A response's body and its Content-Type (b"", None when there is none)."""
    if resp is None or not resp.body:
        return b"", None
    return resp.body, resp.headers.get("Content-Type")


# ====================================================================== A-leg


class UasLeg(_Leg):
    """The caller's side: answers the initial INVITE with what the B side does."""

    __slots__ = ("invite", "tid", "local_tag", "_ack_timer", "_origin")

    def __init__(self, env: LegEnv, ev: RequestReceived) -> None:
        super().__init__(env, None, ev.source)
        assert ev.tid is not None
        self.invite = ev.request
        self.tid = ev.tid
        self.local_tag: str | None = None
        self._ack_timer: Handle | None = None
        self._origin = OriginKeeper()
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
            ctype = content_type or _SDP
            if ctype.split(";", 1)[0].strip().lower() == _SDP:
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
            self._fail(event.code, event.reason, event.cause, event.retry_after)

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
        self.env.server_tids.pop(self.tid, None)
        super()._terminate()


# ====================================================================== B-leg


class UacLeg(_Leg):
    """One attempt towards one target: sends the INVITE, reports what comes back."""

    __slots__ = ("target", "identity", "digest", "invite", "tid", "local_tag", "_auth_tries", "_setup_timer", "_heard", "_stray")

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
            h.add("Content-Type", ev.content_type or _SDP)
        invite = Request("INVITE", target.ruri, h, ev.body)
        self._bind(call_id, self.local_tag)
        self._send_invite(invite)
        if env.setup_timeout > 0:
            self._setup_timer = env.clock.call_later(env.setup_timeout, self._setup_timeout)

    def _send_invite(self, invite: Request) -> None:
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
        body, ctype = _body_of(resp)
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
        self._ack_state = _AckState(self.invite.cseq.seq)
        if self.invite.body:
            self._send_ack(b"", None)
            self.state = LegState.CONFIRMED
        else:
            self._ack_state.deferred = True  # late offer: the caller's ACK carries the answer
        body, ctype = _body_of(resp)
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
        proxy = resp.status == 407
        header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        try:
            challenges = [c for v in resp.headers.get_lines(header) for c in parse_challenges(v)]
            challenge = choose_challenge(challenges)
            old = self.invite
            value = self.digest.authorize(challenge, "INVITE", old.uri, old.body)
        except (DigestError, SipError) as exc:
            log.warning("%r: cannot answer the %d challenge: %s", self, resp.status, exc)
            return False
        h = old.headers.copy()
        h.remove("Via")
        h.set("CSeq", f"{old.cseq.seq + 1} INVITE")
        h.add("Proxy-Authorization" if proxy else "Authorization", value)
        self._send_invite(Request("INVITE", old.uri, h, old.body))
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
        tag = resp.to.tag or ""
        if self._stray is None:
            self._stray = {}
        ack = self._stray.get(tag)
        if ack is not None:
            self.env.port.send_stateless(ack, self.peer)  # a retransmission: the BYE is already out
            return
        try:
            d = Dialog.from_uac(self.invite, resp)
        except (ParseError, TransactionError):
            return
        ack = d.create_request("ACK")
        self.env.port.request(ack, self.peer)
        self._stray[tag] = ack
        self.env.port.request(d.create_request("BYE", headers=(("Reason", Cause.CANCELLED.reason_header),)), self.peer)

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


def _contacts(resp: Response) -> list:  # type: ignore[type-arg]
    try:
        return [c for c in resp.contacts if not c.wildcard]
    except ParseError:
        return []
