"""SIP transactions (RFC 3261 §17): four table-driven state machines and the layer that runs them.

The transport feeds :class:`TransactionLayer` and drains its events and
datagrams; the TU (registrar, dialogs, B2BUA) sends through it. See
``layer.py`` for the theory of operation and ``docs/transactions.md`` for the
state diagrams generated from the tables.
"""

from .base import Input, State, Transition
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
    TransactionTimeout,
    TransportError,
)
from .layer import Drop, LayerConfig, LayerStats, TransactionLayer
from .server_invite import ServerInviteTransaction
from .server_non_invite import ServerNonInviteTransaction

__all__ = [
    "CancelReceived",
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "Drop",
    "Event",
    "Input",
    "LateAnswer",
    "LayerConfig",
    "LayerStats",
    "Peer",
    "RequestReceived",
    "ResponseReceived",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "State",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimeout",
    "Transition",
    "TransportError",
]
