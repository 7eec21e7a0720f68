"""Call legs: SIP dialogs and transactions on one side, call-control events on the other.

This module holds what both kinds of leg share (the environment, the
mid-dialog machinery, SDP origin keeping); ``uas_leg.UasLeg`` answers the
caller's INVITE, ``uac_leg.UacLeg`` sends one to a target.

Theory of operation
-------------------
A leg owns one dialog with one SIP peer (the caller's adapter, a callee's
adapter, or a carrier trunk) and translates in both directions:

* SIP from the peer → an event for the call (``Call.event(leg, ev)``);
* an event from the call (``leg.send(ev)``) → SIP to the peer.

:class:`UasLeg` is the A-leg: it answers the caller's INVITE. :class:`UacLeg`
is a B-leg: it sends an INVITE to one target. Both share the mid-dialog
machinery of :class:`LegBase` (re-INVITE, UPDATE, INFO, OPTIONS, NOTIFY relay,
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
from switch.sip.errors import TransactionError
from switch.sip.message import Request, Response, response_for
from switch.sip.transaction.events import Peer, RequestReceived, ResponseReceived, TransactionTimeout
from switch.sip.uri import format_host

from .bodies import refuse_body
from .causes import Cause
from .events import Ack, Disconnect, Event, Info, Reply, Update

if TYPE_CHECKING:
    from .announce import Announcer
    from .call import Call, Clock, Handle
    from .uas_leg import UasLeg

__all__ = [
    "ALLOW",
    "LOOP_HEADER",
    "RELAYED_HEADERS",
    "SDP",
    "AckState",
    "Identity",
    "LegBase",
    "LegEnv",
    "LegState",
    "OriginKeeper",
    "SipPort",
    "body_of",
]

log = logging.getLogger(__name__)

#: What we accept inside a call (Allow in INVITEs and 2xx we send).
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY"
#: Method-specific headers worth carrying with a relayed INFO / NOTIFY / OPTIONS.
RELAYED_HEADERS = ("Event", "Subscription-State", "Info-Package", "Content-Disposition", "Accept")
#: Our own loop marker on every B-leg INVITE: an INVITE that arrives carrying our
#: token was sent by this switch (a carrier routed it back) and is refused with 482.
LOOP_HEADER = "X-Switch-Loop"
SDP = "application/sdp"


class SipPort(Protocol):
    """The part of ``switch.transport.endpoint.Endpoint`` legs use."""

    user_agent: str

    def reply(self, tid: str, response: Response) -> None: ...

    def request(
        self, request: Request, dest: Peer, callback: Callable[[ResponseReceived | TransactionTimeout], None] | None = None
    ) -> str: ...

    def cancel(self, tid: str) -> str | None: ...

    def send_stateless(self, message: Request | Response, dest: Peer) -> None: ...

    def send_raw(self, data: bytes, dest: Peer) -> None: ...

    def rebind_client(self, tid: str, callback: Callable[[ResponseReceived | TransactionTimeout], None]) -> bool: ...

    def linger_invite(self, tid: str, ack: bytes, remote_tag: str, note: bytes) -> bool: ...


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
        "announcer",
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
        announcer: Announcer | None = None,
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
        self.dialogs: dict[tuple[str, str], LegBase] = {}
        #: INVITE server transaction -> A-leg, for CANCEL
        self.server_tids: dict[str, UasLeg] = {}
        self.ack_timeout = ack_timeout
        """64*T1: how long to wait for the ACK of a 2xx before giving up on the dialog (§13.3.1.4)."""
        self.setup_timeout = setup_timeout
        """No response at all to a B-leg INVITE within this time: that target is dead, fail over."""
        self.loop_token = loop_token
        self.announcer = announcer
        """Plays the refusal prompt before an A-leg's final response (None: plain responses only)."""

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

    @property
    def sent(self) -> bool:
        """Has an SDP with an origin gone to the peer yet?"""
        return self._user is not None

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
class AckState:
    """The 2xx-ACK bookkeeping for one INVITE we sent (initial or re-INVITE)."""

    cseq: int
    ack: Request | None = None
    """The ACK once sent (re-sent for every 2xx retransmission)."""
    deferred: bool = False
    """Late offer: the ACK waits for the other leg's answer."""
    extra: list[str] = field(default_factory=list)


class LegBase:
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
        self._ack_state: AckState | None = None
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
        refused = refuse_body(req.body, req.headers.get("Content-Type"))
        if refused is not None:
            self._reply(tid, req, *refused)
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
            resp.headers.add("Content-Type", ev.content_type or SDP)
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
        req = dialog.create_request(ev.method, body=ev.body, content_type=ev.content_type or (SDP if ev.body else None), headers=headers)
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
        body, ctype = body_of(resp)
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
        self._ack_state = AckState(resp.cseq.seq)
        if out.request.body:
            self._send_ack(b"", None)
        else:
            self._ack_state.deferred = True
        out.answered = True
        self._reinvite_out = None
        body, ctype = body_of(resp)
        self._emit(Reply(seq=out.seq, code=resp.status, reason=resp.reason, body=body, content_type=ctype))

    def _send_ack(self, body: bytes, content_type: str | None) -> None:
        dialog = self.dialog
        state = self._ack_state
        assert dialog is not None and state is not None
        ack = dialog.create_request("ACK", body=body, content_type=content_type or (SDP if body else None))
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


def body_of(resp: Response | None) -> tuple[bytes, str | None]:
    """A response's body and its Content-Type (b"", None when there is none)."""
    if resp is None or not resp.body:
        return b"", None
    return resp.body, resp.headers.get("Content-Type")
