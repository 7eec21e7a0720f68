"""The transaction layer: bytes and TU calls in, datagrams and events out (RFC 3261 §17, §18).

Theory of operation
-------------------
The layer never reads a clock or touches a socket (aioquic's shape). The
transport calls ``receive(data, source, now)``, then drains ``next_event()``
and ``datagrams_to_send()``, and keeps one timer at ``get_timer()`` which ends
in ``handle_timer(now)``. The TU answers with ``send_response``, starts client
transactions with ``send_request`` and cancels INVITEs with ``cancel``.

Incoming requests (§17.2.3, §8.2, RFC 3581):

1. Parse and validate. A broken request that was readable enough gets a
   stateless error response (400, 416, 505, ...); anything else is dropped.
2. Stamp the top Via with ``received``/``rport`` (RFC 3581 §4).
3. Match a server transaction: branch + sent-by + method (ACK and CANCEL look
   for the INVITE), or the RFC 2543 rules when the branch lacks the magic
   cookie. A match is a retransmission: the machine absorbs it (and resends
   its last response).
4. A new request is screened before the TU sees it: Max-Forwards 0 → 483
   (OPTIONS excepted, so "Max-Forwards: 0" pings still get an answer from the
   TU), our own Via and branch in the Via list → 482 (loop), no To tag but
   the From tag, Call-ID and CSeq of a live transaction → 482 (merged
   request, §8.2.2.2), unknown Require option-tags → 420 with Unsupported.
   These answers go through a real server transaction, so retransmissions
   and the ACK are absorbed like any other.
5. Otherwise a server transaction is created (an INVITE gets 100 Trying at
   once) and the TU gets ``RequestReceived``.

ACK: to a non-2xx it matches the INVITE server transaction and is absorbed.
An ACK to a 2xx carries a new branch and reaches the TU with ``tid=None``; on
the way it stops the layer's 2xx retransmission (see server_invite.py).

CANCEL (§9.2): it gets its own non-INVITE server transaction. If it matches
an INVITE server transaction it is answered 200 and, while the INVITE has no
final response yet, the TU gets ``CancelReceived`` (it should answer the
INVITE with 487). Otherwise it is answered 481.

Incoming responses (§18.1.2, §17.1.3): the top Via must carry one of our
sent-by addresses, then branch + CSeq method find the client transaction. A
2xx to an INVITE whose transaction has already gone (after Timer M) is still
passed to the TU with ``tid=""`` so that it can re-send its ACK; every other
unmatched response is dropped.

Server transaction ids are ``branch|host:port|METHOD`` (``2543|...`` for the
fallback); client transaction ids are ``branch|METHOD``.

Timers: one heap of (deadline, seq, transaction, timer) for all transactions.
Disarming only forgets the sequence number in the transaction; stale entries
are skipped when they reach the top, and the heap is rebuilt when stale
entries outnumber live ones.

Lingering (linger.py): transactions that only absorb from then on become records
(key, bytes to send, peer): a non-INVITE server transaction that has sent its
final response on UDP (Timer J), an INVITE server transaction after the ACK of
its 2xx (T4), a completed non-INVITE client transaction on UDP (Timer K), and an
INVITE client transaction whose 2xx the TU has ACKed and handed over
(``linger_client``, Timer M). A retransmission matching one gets those bytes
again (or nothing), as the transaction would have sent them; the transaction
object itself is terminated at once (its TU hears ``TransactionTerminated``
then, not at the timer).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from ..errors import ParseError, TransactionError
from ..headers import Headers, Via
from ..message import MAGIC_COOKIE, Message, Request, Response, new_branch, new_tag, response_for
from ..parser import Limits, parse_message, validate_request
from ..timers import TimerConfig, TransportTimers, is_reliable
from ..uri import format_host
from .base import (
    ClientTransaction,
    Input,
    ServerTransaction,
    State,
    Transaction,
    response_input,
)
from .client_invite import ClientInviteTransaction
from .client_non_invite import ClientNonInviteTransaction
from .events import (
    CancelReceived,
    Event,
    LateAnswer,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
)
from .linger import Lingering, Record
from .server_invite import ServerInviteTransaction
from .server_non_invite import ServerNonInviteTransaction

__all__ = ["LayerConfig", "LayerStats", "TransactionLayer", "Drop"]


class Drop:
    """Reasons a message is dropped (keys of ``LayerStats.dropped``)."""

    MALFORMED: Final = "malformed"  # unreadable request (no answer possible) or garbage
    MALFORMED_RESPONSE: Final = "malformed_response"
    MALFORMED_ACK: Final = "malformed_ack"
    FOREIGN_VIA: Final = "foreign_via"  # response whose top Via is not ours (§18.1.2)
    UNMATCHED_RESPONSE: Final = "unmatched_response"
    OUT_OF_STATE: Final = "out_of_state"  # network input the state machine has no transition for
    LATE_TU_RESPONSE: Final = "late_tu_response"  # TU response the state machine does not accept (§17.2.2: discarded)
    UNKNOWN_TRANSACTION: Final = "unknown_transaction"  # send_response for a tid that is gone


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerConfig:
    timers: TimerConfig = field(default_factory=TimerConfig)
    via_addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    """transport ("udp"/"tcp"/"tls") -> (host, port) for our Via sent-by. The transport fills it after binding."""
    supported: frozenset[str] = frozenset()
    """Option-tags we support: a Require with any other tag is answered 420 (§8.2.2.3)."""
    server_header: str = ""
    """Server header for the responses the layer makes itself (user_agent if empty)."""
    user_agent: str = ""
    """User-Agent header for the requests the layer makes itself (CANCEL, ACK for non-2xx)."""
    auto_100: bool = True
    """Send 100 Trying as soon as an INVITE server transaction is created (§17.2.1)."""
    retransmit_2xx: bool = True
    """Retransmit 2xx to INVITE until the ACK arrives, for the UAS core (§13.3.1.4)."""
    max_forwards_exempt: frozenset[str] = frozenset({"OPTIONS"})
    """Methods passed to the TU even with Max-Forwards: 0 (the TU may answer OPTIONS itself)."""
    limits: Limits = field(default_factory=Limits)


@dataclass(slots=True)
class LayerStats:
    """Monitoring counters; plain ints so reading them costs nothing."""

    received: int = 0
    sent: int = 0
    retransmissions: int = 0
    """Retransmitted requests, responses and ACKs we sent."""
    absorbed: int = 0
    """Received messages matched to a transaction and not passed to the TU."""
    rejected: dict[int, int] = field(default_factory=dict)
    """Responses the layer made on its own, by status (400, 420, 481, 482, 483, ...)."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Dropped messages by reason (see :class:`Drop`)."""


_ServerKey = str
_MergeKey = tuple[str | None, str, int, str]
_AckKey = tuple[str, int, str | None, str | None]
# message.py caches parsed headers under these keys; the Via stamp keeps them (see _stamp_via).
_UNCHANGED_BY_VIA = ("call-id", "cseq", "from", "to", "max-forwards", "contact")
_COOKIE_LEN = len(MAGIC_COOKIE)


class TransactionLayer:
    def __init__(self, config: LayerConfig) -> None:
        self.config = config
        self.retransmit_2xx = config.retransmit_2xx
        self.stats = LayerStats()
        self._timers_udp = config.timers.for_transport(False)
        self._timers_reliable = config.timers.for_transport(True)
        self._client: dict[str, ClientTransaction] = {}
        self._server: dict[_ServerKey, ServerTransaction] = {}
        self._merge: dict[_MergeKey, str] = {}
        self._acks: dict[_AckKey, ServerInviteTransaction] = {}
        self._heap: list[tuple[float, int, Transaction, Input]] = []
        self._seq = itertools.count()
        self._live_timers = 0
        self._events: deque[Event] = deque()
        self._out: list[tuple[bytes, Peer]] = []
        #: the transaction send_response_and_forget is answering: its timers are not armed
        self._forgetting: Transaction | None = None
        #: automatic 100 Trying still waiting in ``_out``, by server tid: a stateless
        #: final answer given before the flush takes its place (one datagram, not two)
        self._trying: dict[str, tuple[bytes, Peer]] = {}
        #: transactions that only absorb, as records (see "Lingering" above)
        self._lingering = Lingering()

    # ------------------------------------------------------------------ public API

    def receive(self, data: bytes, source: Peer, now: float) -> None:
        """Feed one datagram (UDP) or one framed message (stream transports)."""
        self.stats.received += 1
        try:
            msg = parse_message(data, limits=self.config.limits, stream=source.transport != "udp")
        except ParseError as err:
            partial = getattr(err, "partial", None)
            if isinstance(partial, Request):
                self._answer_malformed(partial, source, err)
            else:
                self._drop(Drop.MALFORMED)
            return
        self._dispatch(msg, source, now)

    def receive_message(self, msg: Message, source: Peer, now: float) -> None:
        """Feed a message the transport has already parsed (TCP framing, StreamParser)."""
        self.stats.received += 1
        self._dispatch(msg, source, now)

    def send_request(self, request: Request, dest: Peer, now: float) -> str:
        """Start a client transaction; returns its tid ("" for ACK, which has none).

        Prepends our Via (fresh branch, ``rport``) and adds Max-Forwards: 70 if
        missing (§8.1.1.6). CANCEL must go through :meth:`cancel`, which reuses
        the INVITE's branch (§9.1).
        """
        method = request.method
        if method == "CANCEL":
            raise TransactionError("send CANCEL with cancel(tid): it must reuse the INVITE's branch (§9.1)")
        branch = new_branch()
        self._push_via(request, dest.transport, branch)
        if request.headers.get("Max-Forwards") is None:
            request.headers.add("Max-Forwards", "70")
        if method == "ACK":
            # ACK for a 2xx is its own one-message transaction, owned by the TU (§13.2.2.4, §17).
            self._queue(request.to_bytes(), dest)
            return ""
        tid = f"{branch}|{method}"
        timers = self._timers_for(dest.transport)
        txn: ClientTransaction
        if method == "INVITE":
            txn = ClientInviteTransaction(tid, request, dest, timers)
        else:
            txn = ClientNonInviteTransaction(tid, request, dest, timers)
        self._client[tid] = txn
        txn.start(self, now)
        return tid

    def cancel(self, tid: str, now: float) -> str | None:
        """Cancel an INVITE client transaction (§9.1); returns the CANCEL's tid.

        The CANCEL is sent at once if a provisional response has arrived, else
        when the first one does. None if there is nothing to cancel (unknown
        tid, not an INVITE, or a final response already arrived). Asking twice
        returns the same tid.
        """
        txn = self._client.get(tid)
        if not isinstance(txn, ClientInviteTransaction):
            return None
        if txn.cancel_tid is not None:
            return txn.cancel_tid
        if txn.state is State.CALLING:
            txn.cancel_tid = _cancel_tid(txn)
            txn.cancel_pending = True
            return txn.cancel_tid
        if txn.state is State.PROCEEDING:
            txn.cancel_tid = _cancel_tid(txn)
            self.txn_send_cancel(txn, now)
            return txn.cancel_tid
        return None

    def send_response(self, tid: str, response: Response, now: float) -> bool:
        """Send a response through its server transaction.

        Returns False (and counts a drop) when the transaction is gone or its
        state does not take this response -- e.g. a second final response,
        which §17.2.2 says to discard. A 2xx to an INVITE moves the IST to
        Accepted (RFC 6026) where the layer retransmits it until the ACK.
        """
        txn = self._server.get(tid)
        if txn is None:
            # a completed (lingering) transaction discards it (§17.2.2); anything else is gone
            late = self._lingering.find(tid, now) is not None
            self._drop(Drop.LATE_TU_RESPONSE if late else Drop.UNKNOWN_TRANSACTION)
            return False
        return self._feed(txn, response_input(response.status, sending=True), response, None, now)

    def send_response_and_forget(self, tid: str, response: Response, now: float) -> bool:
        """Answer a request once and drop its server transaction (RFC 3261 §8.2.7).

        An INVITE may be answered this way with a 300-699 only (a challenge): the
        response is sent once, never retransmitted by Timer G, and its ACK, finding
        no transaction, reaches the TU as a stray ACK. The automatic 100 Trying,
        when it has not left yet, is not sent at all.

        For challenges to requests without credentials, the textbook case of a
        stateless UAS: no Timer J, no state kept for 32 s per unauthenticated
        request (a registration storm or a REGISTER flood costs no memory), and
        a retransmitted request simply gets a fresh challenge. The response is
        routed exactly as a stateful one (§18.2.2). Its To tag must be one the
        same request always gets (see ``message.stateless_tag``).
        """
        txn = self._server.get(tid)
        invite = isinstance(txn, ServerInviteTransaction)
        if txn is None or response.status < 200 or (invite and response.status < 300):
            raise TransactionError("only final non-2xx responses (or any final one to a non-INVITE) can be sent statelessly")
        # The table still decides (sends the response, or refuses it), but the Timer J it
        # arms is skipped: a heap entry would keep the forgotten transaction alive for
        # 32 s anyway, which is the state this method exists not to keep.
        self._forgetting = txn
        try:
            if not self._feed(txn, response_input(response.status, sending=True), response, None, now):
                return False
        finally:
            self._forgetting = None
        txn.tu_knows = False
        self.txn_terminated(txn)
        trying = self._trying.pop(tid, None)
        if trying is not None:
            try:
                self._out.remove(trying)
            except ValueError:  # pragma: no cover - already handed to the transport
                pass
        return True

    def send_stateless(self, message: Message, dest: Peer) -> None:
        """Send a message outside any transaction, as it is.

        A request without a Via (e.g. an ACK the TU rebuilt) gets ours with a
        fresh branch; one that has a Via (an ACK being re-sent) is untouched.
        """
        if isinstance(message, Request) and message.headers.get("Via") is None:
            self._push_via(message, dest.transport, new_branch())
        self._queue(message.to_bytes(), dest)

    def abandon(self, tid: str) -> bool:
        """Forget a client transaction now, without its remaining timers or events.

        For requests whose outcome the TU stops caring about before Timer F, such
        as a qualify OPTIONS past its own deadline: without this a dead contact
        costs eleven retransmissions over 32 s per ping.
        """
        txn = self._client.get(tid)
        if txn is None:
            return False
        txn.tu_knows = False
        self.txn_terminated(txn)
        return True

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def datagrams_to_send(self) -> list[tuple[bytes, Peer]]:
        out = self._out
        self._out = []
        if self._trying:
            self._trying.clear()
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline over all transactions (and lingering records), or None."""
        heap = self._heap
        linger = self._lingering.next_deadline()
        while heap:
            _, seq, txn, timer = heap[0]
            if txn.armed.get(timer) == seq:
                first = heap[0][0]
                return first if linger is None or first < linger else linger
            heapq.heappop(heap)
        return linger

    def handle_timer(self, now: float) -> None:
        """Fire every timer whose deadline is not after ``now``."""
        linger = self._lingering.next_deadline()
        if linger is not None and linger <= now:
            self._lingering.expire(now)
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, txn, timer = heapq.heappop(heap)
            if txn.armed.get(timer) != seq:
                continue  # disarmed: lazy deletion
            del txn.armed[timer]
            self._live_timers -= 1
            try:
                txn.process(timer, self, None, None, now)
            except TransactionError:  # pragma: no cover - armed timers always have a transition
                self._drop(Drop.OUT_OF_STATE)

    def response_destination(self, request: Request, source: Peer) -> Peer:
        """Where responses to ``request`` go (§18.2.2, RFC 3581 §4)."""
        transport = source.transport
        if transport != "udp" and source.conn is not None:
            return Peer(transport, source.host, source.port, source.conn)
        # Always the address the request came from: ``received`` is ours (stamped from
        # the source, see _stamp_via), and a sender's ``maddr`` is never obeyed -- both
        # would let a spoofed request aim our answers (and their retransmissions) at a
        # third party. Only the port follows the Via (§18.2.2), unless rport asks for
        # the source port (RFC 3581 §4).
        via = request.top_via
        if "rport" in via.params:
            return Peer(transport, source.host, source.port)
        default_port = 5061 if transport == "tls" else 5060
        return Peer(transport, source.host, via.port or default_port)

    # additions ---------------------------------------------------------------

    def create_response(self, tid: str, status: int, reason: str | None = None) -> Response:
        """A response to the server transaction's request (§8.2.6), with the transaction's To tag.

        Every response built here for one transaction carries the same To tag,
        which is also the tag of the layer's 200 to a CANCEL (§9.2).
        """
        txn = self._server.get(tid)
        if txn is None:
            raise TransactionError(f"no server transaction {tid!r}")
        if txn.request is None:
            # a completed non-INVITE transaction keeps only its response bytes
            raise TransactionError(f"server transaction {tid!r} already has its final response")
        return response_for(txn.request, status, reason, to_tag=_local_tag(txn))

    def server_request(self, tid: str) -> Request | None:
        """The request that created a server transaction (e.g. the INVITE for a CANCEL);
        None once a non-INVITE transaction has sent its final response."""
        txn = self._server.get(tid)
        return None if txn is None else txn.request

    def transaction_state(self, tid: str) -> State | None:
        txn = self._client.get(tid) or self._server.get(tid)
        return None if txn is None else txn.state

    def transaction(self, tid: str) -> Transaction | None:
        """The transaction object itself (read-only use: state, peer, armed timers)."""
        return self._client.get(tid) or self._server.get(tid)

    def transport_error(self, dest: Peer, now: float) -> int:
        """The transport failed to reach ``dest``: every transaction using it ends (§17.1.4, §17.2.4).

        ``dest.conn`` None matches any connection to that address. Returns how
        many transactions were told.
        """
        victims = [
            t
            for t in itertools.chain(self._client.values(), self._server.values())
            if _same_peer(t.peer, dest)
        ]
        for txn in victims:
            self._feed(txn, Input.TRANSPORT_ERROR, None, None, now)
        return len(victims)

    @property
    def live_transactions(self) -> int:
        return len(self._client) + len(self._server)

    @property
    def lingering(self) -> int:
        """Finished transactions kept as records for their last Timer J / M (see linger.py)."""
        return len(self._lingering)

    @property
    def lingering_bytes(self) -> int:
        return self._lingering.buffered_bytes

    def linger_client(self, tid: str, ack: bytes, remote_tag: str, note: bytes, now: float) -> bool:
        """Hand an accepted INVITE client transaction's last Timer M to a record (False: not possible).

        From now on every retransmission of the 2xx with To tag ``remote_tag`` gets
        ``ack`` re-sent to the INVITE's destination by the layer; a 2xx with any other
        To tag (another fork) reaches the TU as :class:`LateAnswer` with ``note``. The
        TU drops its own state for the INVITE; the transaction ends now. Only an INVITE
        in Accepted (RFC 6026) qualifies: one in Completed ACKs by itself, and one whose
        Timer M has run has nothing left to do.
        """
        txn = self._client.get(tid)
        if not isinstance(txn, ClientInviteTransaction) or txn.state is not State.ACCEPTED or txn.timers.m <= 0:
            return False
        self._lingering.add(tid, ack, txn.peer, now + txn.timers.m,
                            remote_tag.encode("utf-8", "surrogateescape") + b"\x00" + note)
        txn.tu_knows = False
        self.txn_terminated(txn)
        return True

    @property
    def live_client_transactions(self) -> int:
        return len(self._client)

    @property
    def live_server_transactions(self) -> int:
        return len(self._server)

    # ------------------------------------------------------------------ Context (called by machines)

    def txn_send(self, txn: Transaction, data: bytes, *, retransmission: bool) -> None:
        self._out.append((data, txn.peer))
        self.stats.sent += 1
        if retransmission:
            self.stats.retransmissions += 1

    def txn_emit(self, event: Event) -> None:
        self._events.append(event)

    def txn_arm(self, txn: Transaction, timer: Input, delay: float | None, now: float) -> None:
        if delay is None or txn is self._forgetting:
            return  # not used on this transport (A, E, G on reliable transports), or answered statelessly
        if delay <= 0:
            txn.pending_zero = timer
            return
        seq = next(self._seq)
        if timer not in txn.armed:
            self._live_timers += 1
        txn.armed[timer] = seq
        heap = self._heap
        heapq.heappush(heap, (now + delay, seq, txn, timer))
        if len(heap) > self._live_timers + (self._live_timers >> 2) + 1024:
            # Stale entries (disarmed, or re-armed sooner) hold their transaction until their
            # deadline: a finished BYE's Timer F or an ACKed INVITE's first Timer L, 32 s each.
            # Dropping them once they are a fifth of the heap costs at most ~5 entry checks per
            # stale entry and lets those transactions go right after they end.
            self._compact()

    def txn_linger(self, txn: Transaction, data: bytes, delay: float, now: float) -> bool:
        """A transaction that only absorbs from now on becomes a record until ``now + delay``:
        a completed NIST (answering with ``data``), an ACKed IST and a completed NICT (silent).
        See "Lingering" above."""
        if txn is self._forgetting:
            return False  # answered statelessly: nothing is kept at all
        if isinstance(txn, ServerTransaction):
            # the To tag: the 200 for a CANCEL that comes after an ACKed INVITE carries it (§9.2)
            tag = txn.to_tag.encode("utf-8", "surrogateescape") if txn.to_tag else b""
            self._lingering.add(txn.tid, data, txn.peer, now + delay, tag)
            mk = txn.merge_key
            if mk is not None:
                self._lingering.add(_merge_text(mk), b"", txn.peer, now + delay)
        else:
            self._lingering.add(txn.tid, data, txn.peer, now + delay)
        self.txn_terminated(txn)
        txn.tu_knows = False  # told now; the object's own Timer J (if anyone fires it) ends silently
        return True

    def _resend_lingering(self, rec: Record) -> None:
        """A retransmission matched a record: its bytes again, or (none) silence."""
        self.stats.absorbed += 1
        if rec.payload:
            self._out.append((rec.payload, rec.peer))
            self.stats.sent += 1
            self.stats.retransmissions += 1

    def txn_disarm(self, txn: Transaction, timer: Input) -> None:
        if txn.armed.pop(timer, None) is not None:
            self._live_timers -= 1

    def txn_terminated(self, txn: Transaction) -> None:
        self._live_timers -= len(txn.armed)
        txn.armed.clear()
        txn.pending_zero = None
        tid = txn.tid
        if isinstance(txn, ClientTransaction):
            if self._client.get(tid) is txn:
                del self._client[tid]
        else:
            if self._server.get(tid) is txn:
                del self._server[tid]
            assert isinstance(txn, ServerTransaction)
            mk = txn.merge_key
            if mk is not None and self._merge.get(mk) == tid:
                del self._merge[mk]
            if isinstance(txn, ServerInviteTransaction) and txn.ack_key is not None:
                self.txn_ack_pending(txn, False)
        if txn.tu_knows:
            self._events.append(TransactionTerminated(tid=tid))

    def txn_send_cancel(self, txn: ClientInviteTransaction, now: float) -> None:
        """Build and send the CANCEL for an INVITE (§9.1), then guard the INVITE with Timer B."""
        txn.cancel_pending = False
        assert txn.cancel_tid is not None
        inv = txn.request
        h = Headers()
        h.add("Via", inv.headers.values("Via")[0])
        h.add("Max-Forwards", "70")
        for line in inv.headers.get_lines("Route"):
            h.add("Route", line)
        h.add("From", inv.headers.get("From") or "")
        h.add("To", inv.headers.get("To") or "")
        h.add("Call-ID", inv.call_id)
        h.add("CSeq", f"{inv.cseq.seq} CANCEL")
        if self.config.user_agent:
            h.add("User-Agent", self.config.user_agent)
        cancel = Request("CANCEL", inv.uri, h)
        nict = ClientNonInviteTransaction(txn.cancel_tid, cancel, txn.peer, txn.timers)
        self._client[txn.cancel_tid] = nict
        nict.start(self, now)
        self.txn_arm(txn, Input.TIMER_B, txn.timers.b, now)

    def txn_build_ack(self, txn: ClientInviteTransaction, response: Response) -> bytes:
        """The ACK for a non-2xx final response (§17.1.1.3)."""
        inv = txn.request
        h = Headers()
        h.add("Via", inv.headers.values("Via")[0])  # only the top Via, same branch
        h.add("Max-Forwards", "70")
        for line in inv.headers.get_lines("Route"):
            h.add("Route", line)
        h.add("From", inv.headers.get("From") or "")
        h.add("To", response.headers.get("To") or "")  # with the response's tag
        h.add("Call-ID", inv.call_id)
        h.add("CSeq", f"{inv.cseq.seq} ACK")
        if self.config.user_agent:
            h.add("User-Agent", self.config.user_agent)
        return Request("ACK", inv.uri, h).to_bytes()

    def txn_ack_pending(self, txn: ServerInviteTransaction, waiting: bool) -> None:
        if waiting:
            req = txn.request
            key = (req.call_id, req.cseq.seq, req.from_.tag, txn.to_tag)
            txn.ack_key = key
            self._acks[key] = txn
        else:
            key2 = txn.ack_key
            txn.ack_key = None
            if key2 is not None and self._acks.get(key2) is txn:
                del self._acks[key2]

    # ------------------------------------------------------------------ internals: requests

    def _dispatch(self, msg: Message, source: Peer, now: float) -> None:
        if isinstance(msg, Request):
            self._on_request(msg, source, now)
        elif isinstance(msg, Response):
            self._on_response(msg, source, now)
        else:  # pragma: no cover - parse_message returns one of the two
            self._drop(Drop.MALFORMED)

    def _on_request(self, req: Request, source: Peer, now: float) -> None:
        # Retransmissions first (§17.2.1/§17.2.2): a request whose top Via branch
        # matches a live server transaction is absorbed after parsing one Via,
        # without validating the rest. Under overload most arrivals are
        # retransmissions; absorbing them cheaply is what keeps the server
        # from collapsing when responses are late.
        lingering = self._lingering
        if (self._server or len(lingering)) and req.method not in ("ACK", "CANCEL"):
            try:
                via = req.top_via
                branch = via.branch
            except ParseError:
                branch = None
            if branch is not None and len(branch) > _COOKIE_LEN and branch.startswith(MAGIC_COOKIE):
                host = via.host.lower()
                sent_by = host if via.port is None else f"{host}:{via.port}"
                fast_key = f"{branch}|{sent_by}|{req.method}"
                txn = self._server.get(fast_key)
                if txn is not None:
                    self._feed(txn, Input.RECV_REQUEST, req, source, now)
                    return
                rec = lingering.find(fast_key, now)
                if rec is not None:
                    self._resend_lingering(rec)
                    return
        try:
            validate_request(req)
        except ParseError as err:
            self._answer_malformed(req, source, err)
            return
        self._stamp_via(req, source)
        method = req.method
        branch = req.top_via.branch
        # §17.2.3: the magic cookie followed by something unique; anything else is RFC 2543.
        rfc3261 = branch is not None and len(branch) > _COOKIE_LEN and branch.startswith(MAGIC_COOKIE)
        if method == "ACK":
            self._on_ack(req, source, now, rfc3261)
            return
        if method == "CANCEL":
            self._on_cancel(req, source, now, rfc3261)
            return
        key = _server_key(req, method, rfc3261)
        txn = self._server.get(key)
        if txn is not None:
            self._feed(txn, Input.RECV_REQUEST, req, source, now)
            return
        # (an RFC 3261 key was looked up by the fast path above already)
        rec = None if rfc3261 else lingering.find(key, now)
        if rec is not None:
            self._resend_lingering(rec)
            return
        try:
            rejection = self._screen(req, now)
        except ParseError as err:  # e.g. an unterminated quote in Require
            self._answer_malformed(req, source, err)
            return
        if rejection is not None:
            status, reason, extra = rejection
            self._reject(req, key, source, now, status, reason, extra, rfc3261)
            return
        txn = self._new_server(key, req, source, rfc3261)
        if req.to.tag is None:
            mk = (req.from_.tag, req.call_id, req.cseq.seq, method)
            txn.merge_key = mk
            self._merge[mk] = key
        txn.tu_knows = True
        if isinstance(txn, ServerInviteTransaction) and self.config.auto_100:
            queued = len(self._out)
            self._feed(txn, Input.SEND_1XX, self._own_response(req, 100, None), None, now)
            if len(self._out) > queued:
                self._trying[key] = self._out[-1]
        self._events.append(RequestReceived(tid=key, request=req, source=source))

    def _on_ack(self, req: Request, source: Peer, now: float, rfc3261: bool) -> None:
        txn = self._server.get(_server_key(req, "INVITE", rfc3261))
        if txn is not None and txn.rfc2543 and txn.to_tag is not None and req.to.tag != txn.to_tag:
            txn = None  # §17.2.3: with RFC 2543 matching the ACK's To tag must be our response's
        if txn is None and self._acks:
            txn = self._acks.get((req.call_id, req.cseq.seq, req.from_.tag, req.to.tag))
        if txn is not None:
            self._feed(txn, Input.RECV_ACK, req, source, now)
            return
        # ACK for a 2xx (or a stray one): the dialog layer decides.
        self._events.append(RequestReceived(tid=None, request=req, source=source))

    def _on_cancel(self, req: Request, source: Peer, now: float, rfc3261: bool) -> None:
        key = _server_key(req, "CANCEL", rfc3261)
        own = self._server.get(key)
        if own is not None:
            self._feed(own, Input.RECV_REQUEST, req, source, now)
            return
        rec = self._lingering.find(key, now)
        if rec is not None:
            self._resend_lingering(rec)
            return
        invite_key = _server_key(req, "INVITE", rfc3261)
        invite = self._server.get(invite_key)
        acked = self._lingering.find(invite_key, now) if invite is None else None
        nist = self._new_server(key, req, source, rfc3261)
        if acked is not None:
            # the INVITE was answered and ACKed (it lingers): 200, with its To tag, and nothing else
            resp = response_for(req, 200, to_tag=acked.note.decode("utf-8", "surrogateescape") or new_tag())
            self._add_server_header(resp)
            self._feed(nist, Input.SEND_2XX, resp, None, now)
        elif isinstance(invite, ServerInviteTransaction):
            # §9.2: the CANCEL itself is answered 200, with the INVITE's To tag.
            resp = response_for(req, 200, to_tag=_local_tag(invite))
            self._add_server_header(resp)
            self._feed(nist, Input.SEND_2XX, resp, None, now)
            if invite.state is State.PROCEEDING:
                self._events.append(CancelReceived(tid=invite.tid, cancel=req))
        else:
            self._count_rejected(481)
            self._feed(nist, Input.SEND_300_699, self._own_response(req, 481, None), None, now)

    def _screen(self, req: Request, now: float) -> tuple[int, str | None, tuple[tuple[str, str], ...]] | None:
        """Checks before a new request reaches the TU; returns (status, reason, headers) to refuse it."""
        method = req.method
        if req.max_forwards == 0 and method not in self.config.max_forwards_exempt:
            return 483, None, ()
        client = self._client
        if client:  # a loop means one of our live client transactions came back (§16.3 item 4)
            for via in req.vias:
                b = via.branch
                if b is not None and f"{b}|{method}" in client and self._is_our_sent_by(via):
                    return 482, "Loop Detected", ()
        if req.to.tag is None and (self._merge or len(self._lingering)):
            mk = (req.from_.tag, req.call_id, req.cseq.seq, method)
            other = self._merge.get(mk)
            if other is not None and other in self._server:
                return 482, "Merged Request", ()
            if self._lingering.find(_merge_text(mk), now) is not None:
                return 482, "Merged Request", ()  # its transaction completed, and lingers
        for name in ("Require", "Proxy-Require"):
            # Proxy-Require too: adapters use the switch as their outbound proxy (§16.3
            # item 5), and a B2BUA that forwarded it would promise what it cannot keep.
            if req.headers.get(name) is not None:
                supported = self.config.supported
                unknown = [t for t in req.headers.values(name) if t.lower() not in supported]
                if unknown:
                    return 420, None, (("Unsupported", ", ".join(unknown)),)
        return None

    def _reject(
        self,
        req: Request,
        key: str,
        source: Peer,
        now: float,
        status: int,
        reason: str | None,
        extra: tuple[tuple[str, str], ...],
        rfc3261: bool,
    ) -> None:
        """Answer a new request ourselves, through a server transaction so retransmissions are absorbed."""
        txn = self._new_server(key, req, source, rfc3261)
        resp = self._own_response(req, status, reason)
        for name, value in extra:
            resp.headers.add(name, value)
        self._count_rejected(status)
        self._feed(txn, Input.SEND_300_699, resp, None, now)

    def _new_server(self, key: str, req: Request, source: Peer, rfc3261: bool) -> ServerTransaction:
        peer = self.response_destination(req, source)
        timers = self._timers_for(source.transport)
        txn: ServerTransaction
        if req.method == "INVITE":
            txn = ServerInviteTransaction(key, req, peer, timers)
        else:
            txn = ServerNonInviteTransaction(key, req, peer, timers)
        txn.rfc2543 = not rfc3261
        self._server[key] = txn
        return txn

    def _answer_malformed(self, req: Request, source: Peer, err: ParseError) -> None:
        """Stateless error response to a request we cannot process (§8.2, §18.2.2)."""
        if req.method == "ACK":
            self._drop(Drop.MALFORMED_ACK)  # never answer an ACK
            return
        try:
            self._stamp_via(req, source)
            dest = self.response_destination(req, source)
        except ParseError:
            # No usable Via (RFC 4475 §3.1.2.1, §3.1.2.16): the 400/505 still goes back to
            # where the request came from, with its Via copied as it was.
            if req.headers.get("Via") is None:
                self._drop(Drop.MALFORMED)  # not even a Via to copy: no response can be built
                return
            dest = Peer(source.transport, source.host, source.port, source.conn)
        try:
            resp = response_for(req, err.status, err.reason, to_tag=new_tag())
        except ParseError:  # the To header itself is broken: answer without adding a tag
            resp = response_for(req, err.status, err.reason)
        self._add_server_header(resp)
        self._count_rejected(err.status)
        self._queue(resp.to_bytes(), dest)

    def _stamp_via(self, req: Request, source: Peer) -> None:
        """RFC 3261 §18.2.1 received, RFC 3581 §4 rport on the top Via."""
        vias = req.vias
        via = vias[0]
        params = via.params
        has_rport = "rport" in params
        if not has_rport and "received" not in params and via.host.strip("[]").lower() == source.host.lower():
            return
        # A ``received`` the sender wrote itself is overwritten: it is ours to say (§18.2.1).
        new_params = dict(params)
        new_params["received"] = source.host
        if has_rport:
            new_params["rport"] = str(source.port)
        new = Via(via.transport, via.host, via.port, new_params, via.protocol)
        _replace_top_via(req, new, vias)

    def _own_response(self, req: Request, status: int, reason: str | None) -> Response:
        resp = response_for(req, status, reason, to_tag=None if status == 100 else new_tag())
        self._add_server_header(resp)
        return resp

    def _add_server_header(self, resp: Response) -> None:
        server = self.config.server_header or self.config.user_agent
        if server:
            resp.headers.add("Server", server)

    # ------------------------------------------------------------------ internals: responses

    def _on_response(self, resp: Response, source: Peer, now: float) -> None:
        try:
            via = resp.top_via
            cseq = resp.cseq
            resp.call_id  # noqa: B018 - the TU will read these; refuse a response where they are broken
            resp.from_  # noqa: B018
            resp.to  # noqa: B018
        except ParseError:
            self._drop(Drop.MALFORMED_RESPONSE)
            return
        if not self._is_our_sent_by(via):
            self._drop(Drop.FOREIGN_VIA)
            return
        ckey = f"{via.branch}|{cseq.method}"
        txn = self._client.get(ckey)
        if txn is None:
            invite_2xx = cseq.method == "INVITE" and 200 <= resp.status < 300
            rec = self._lingering.find(ckey, now)
            if rec is not None:
                if not invite_2xx:
                    self.stats.absorbed += 1  # a completed NICT's response again (Timer K)
                    return
                tag, _, note = rec.note.partition(b"\x00")
                if rec.payload and (resp.to.tag or "").encode("utf-8", "surrogateescape") == tag:
                    self._resend_lingering(rec)  # our dialog's 2xx again: our ACK again (§13.2.2.4)
                else:
                    self._events.append(LateAnswer(tid=ckey, response=resp, source=source, peer=rec.peer, note=note))
                return
            if invite_2xx:
                # RFC 6026 §7.2 keeps the ICT for 64*T1; later 2xx still need an ACK from the TU.
                self._events.append(ResponseReceived(tid="", response=resp, source=source))
                return
            self._drop(Drop.UNMATCHED_RESPONSE)
            return
        self._feed(txn, response_input(resp.status, sending=False), resp, source, now)

    def _is_our_sent_by(self, via: Via) -> bool:
        host = via.host.strip("[]").lower()
        port = via.port
        for h, p in self.config.via_addresses.values():
            if p == port and h.strip("[]").lower() == host:
                return True
        return False

    # ------------------------------------------------------------------ internals: plumbing

    def _feed(self, txn: Transaction, inp: Input, msg: Message | None, source: Peer | None, now: float) -> bool:
        events_before = len(self._events)
        try:
            txn.process(inp, self, msg, source, now)
        except TransactionError:
            self._drop(Drop.LATE_TU_RESPONSE if inp.from_tu else Drop.OUT_OF_STATE)
            return False
        if inp.from_network and len(self._events) == events_before:
            self.stats.absorbed += 1
        return True

    def _push_via(self, request: Request, transport: str, branch: str) -> None:
        addr = self.config.via_addresses.get(transport)
        if addr is None:
            raise TransactionError(f"no Via address configured for transport {transport!r}")
        host, port = addr
        request.headers.add("Via", f"SIP/2.0/{transport.upper()} {format_host(host)}:{port};branch={branch};rport", first=True)

    def _queue(self, data: bytes, dest: Peer) -> None:
        self._out.append((data, dest))
        self.stats.sent += 1

    def _timers_for(self, transport: str) -> TransportTimers:
        return self._timers_reliable if is_reliable(transport) else self._timers_udp

    def _drop(self, reason: str) -> None:
        dropped = self.stats.dropped
        dropped[reason] = dropped.get(reason, 0) + 1

    def _count_rejected(self, status: int) -> None:
        rejected = self.stats.rejected
        rejected[status] = rejected.get(status, 0) + 1

    def _compact(self) -> None:
        """Drop stale heap entries once they outnumber the live ones.

        In place: handle_timer may be iterating over this very list when a fired
        timer arms the next one.
        """
        heap = self._heap
        heap[:] = [e for e in heap if e[2].armed.get(e[3]) == e[1]]
        heapq.heapify(heap)


# ---------------------------------------------------------------------- helpers


def _server_key(req: Request, method: str, rfc3261: bool) -> str:
    """§17.2.3 matching key; ACK and CANCEL pass method="INVITE" to find the INVITE."""
    via = req.top_via
    host = via.host.lower()
    sent_by = host if via.port is None else f"{host}:{via.port}"
    if rfc3261:
        return f"{via.branch}|{sent_by}|{method}"
    # RFC 2543 fallback: Request-URI, From tag, Call-ID, CSeq number and top Via.
    # The To tag is left out: it only differs for the ACK, which is checked separately.
    return f"2543|{req.uri}|{req.from_.tag}|{req.call_id}|{req.cseq.seq}|{via.transport} {sent_by}|{method}"


def _merge_text(mk: _MergeKey) -> str:
    """A merge key as a lingering record's key (NUL first: no transaction id starts so)."""
    from_tag, call_id, seq, method = mk
    return f"\x00{from_tag}|{call_id}|{seq}|{method}"


def _cancel_tid(txn: ClientInviteTransaction) -> str:
    return txn.tid.rpartition("|")[0] + "|CANCEL"


def _local_tag(txn: ServerTransaction) -> str:
    if txn.to_tag is None:
        txn.to_tag = txn.request.to.tag or new_tag()
    return txn.to_tag


def _same_peer(a: Peer, b: Peer) -> bool:
    if a.transport != b.transport or a.port != b.port or a.host.lower() != b.host.lower():
        return False
    return a.conn is None or b.conn is None or a.conn == b.conn


def _replace_top_via(msg: Message, new: Via, vias: list[Via]) -> None:
    """Swap the top Via without re-parsing the other headers.

    Local helper: message.py has no "set top Via" operation, and any header
    change clears the whole typed cache. We restore the entries the Via change
    cannot affect (and the Via list itself) so Call-ID, CSeq, From and To are
    not parsed twice for every request. Unknown cache keys are simply not
    restored, which is always safe.
    """
    headers = msg.headers
    saved = dict(headers.cache)
    headers.replace_first_element("Via", str(new))
    cache = headers.cache
    for key in _UNCHANGED_BY_VIA:
        if key in saved:
            cache[key] = saved[key]
    if saved.get("via") is vias:
        cache["via"] = [new, *vias[1:]]
