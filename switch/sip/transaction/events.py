"""What the transaction layer tells its user (the TU: dialogs, registrar, B2BUA).

Events queue up inside :class:`~switch.sip.transaction.layer.TransactionLayer`
and come out one at a time from ``next_event()`` (aioquic's shape). They are
small frozen values; the TU dispatches on their type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ..message import Request, Response

__all__ = [
    "Peer",
    "RequestReceived",
    "ResponseReceived",
    "CancelReceived",
    "TransactionTimeout",
    "TransactionTerminated",
    "TransportError",
    "LateAnswer",
    "Event",
]


class Peer(NamedTuple):
    """A transport address. ``conn`` identifies a stream connection (§18.2.2: responses reuse it)."""

    transport: str
    """"udp", "tcp" or "tls" (lower case)."""
    host: str
    """IP address or host name, IPv6 without brackets."""
    port: int
    conn: int | None = None
    """The transport's connection id for stream transports; None for UDP or "any connection"."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived:
    """A new request for the TU (retransmissions never produce this event)."""

    tid: str | None
    """The server transaction; None for an ACK (to a 2xx or stray): the dialog layer owns those."""
    request: Request
    """The request, top Via already stamped with received/rport (RFC 3581)."""
    source: Peer
    """Where it came from; pass it to ``response_destination`` or use it for NAT bookkeeping."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """A response for one of our client transactions.

    Includes every 2xx to an INVITE (the first and any retransmission, and 2xx
    from other forks): the TU must ACK each one (§13.2.2.4). ``tid`` is "" for a
    2xx to an INVITE whose client transaction is already gone (late retransmission).
    """

    tid: str
    response: Response
    source: Peer


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReceived:
    """A CANCEL matched a pending INVITE server transaction (§9.2).

    The layer has already answered the CANCEL with 200; the TU should now answer
    the INVITE (``tid``) with 487 Request Terminated.
    """

    tid: str
    cancel: Request


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTimeout:
    """A transaction timer ran out.

    ``timer`` says which: "B"/"F" (client: treat as 408, §8.1.3.1), "H" (server:
    no ACK for our non-2xx final), "L" (server: no ACK for our 2xx within 64*T1,
    §13.3.1.4: the TU should end the session with BYE), or "B" after a CANCEL
    (§9.1: the INVITE never got a final response).
    """

    tid: str
    timer: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTerminated:
    """The transaction is gone; its tid will not appear again."""

    tid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportError:
    """The transport reported that it could not deliver for this transaction (§17.1.4, §17.2.4)."""

    tid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LateAnswer:
    """A 2xx for an INVITE the TU handed to the layer with ``linger_client`` that is not the
    dialog's own retransmission (the layer re-sends the TU's ACK for those itself): another
    fork answered (§13.2.2.4). The TU must ACK it and end that dialog with BYE."""

    tid: str
    response: Response
    source: Peer
    peer: Peer
    """Where the INVITE went (send the ACK and BYE there)."""
    note: bytes
    """What the TU gave ``linger_client`` to build them from."""


Event = (
    RequestReceived | ResponseReceived | CancelReceived | TransactionTimeout | TransactionTerminated | TransportError
    | LateAnswer
)
