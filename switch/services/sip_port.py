"""What the services see of the SIP endpoint: two small protocols instead of ``switch.transport``.

The services never import the transport (tests/test_architecture.py): the
composition root hands them the endpoint typed as one of these, so each
service states the few operations it uses and a test can see the seam.

* ``SipPort``: send requests and responses (qualify, trunk pings, resync
  NOTIFY, call legs).
* ``CallPort``: what the B2BUA needs besides: the endpoint's own answer, the
  responses of server transactions and our own addresses. (Which requests
  reach the calls is the composition root's business: it gives the endpoint
  ``CallManager.handlers`` when it opens the sockets.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from switch.sip.message import Message, Request, Response
from switch.sip.transaction.events import Peer, RequestReceived, ResponseReceived, TransactionTimeout

__all__ = ["CallPort", "ClientCallback", "RequestHandler", "SipPort"]

ClientCallback = Callable[[ResponseReceived | TransactionTimeout], None]
RequestHandler = Callable[[RequestReceived], None]


class SipPort(Protocol):
    """Sending: the part of ``switch.transport.endpoint.Endpoint`` most services use."""

    user_agent: str

    def reply(self, tid: str, response: Response) -> None: ...

    def request(self, request: Request, dest: Peer, callback: ClientCallback | None = None) -> str: ...

    def cancel(self, tid: str) -> str | None: ...

    def send_stateless(self, message: Message, dest: Peer) -> None: ...

    def forget_client(self, tid: str) -> None:
        """Drop the callback of a client transaction we gave up on (its late answer is ignored)."""
        ...

    @property
    def via_addresses(self) -> Mapping[str, tuple[str, int]]:
        """transport -> our (host, port); empty until the sockets are open."""
        ...


class CallPort(SipPort, Protocol):
    """Receiving too: what the call manager asks of server transactions."""

    def default_answer(self, ev: RequestReceived) -> None: ...

    def reply_and_forget(self, tid: str, response: Response) -> None:
        """A final response that leaves no transaction behind (stateless challenges, RFC 3261 §8.2.7)."""
        ...

    def send_raw(self, data: bytes, dest: Peer) -> None:
        """Send bytes serialized earlier (an ACK re-sent for a retransmitted 2xx)."""
        ...

    def rebind_client(self, tid: str, callback: ClientCallback) -> bool:
        """Give a client transaction's remaining events to ``callback``; False if it has no callback."""
        ...

    def linger_invite(self, tid: str, ack: bytes, remote_tag: str, note: bytes) -> bool:
        """Leave an accepted INVITE's Timer M to the transaction layer: it re-sends ``ack`` for the
        2xx's retransmissions and passes another fork's 2xx (with ``note``) to ``on_late_answer``.
        False (nothing changed) when the INVITE is not in that state."""
        ...

    def create_response(self, tid: str, status: int, reason: str | None = None) -> Response: ...

    def server_request(self, tid: str) -> Request | None: ...
