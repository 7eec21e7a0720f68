"""The sans-IO SIP core: messages, URIs, SDP and (below) transactions.

No module in this package does I/O or reads a clock (tests/test_architecture.py
enforces it); time enters as a ``now: float`` argument.
"""

from __future__ import annotations

# --- message layer (owned by the message-layer maintainer) -------------------
from .errors import (
    BadExtension,
    MessageTooLarge,
    ParseError,
    SipError,
    TransactionError,
    UnsupportedScheme,
    VersionNotSupported,
)
from .headers import CSeq, Headers, NameAddr, Via, quote_string, split_commas, unquote_string
from .message import (
    MAGIC_COOKIE,
    Message,
    Request,
    Response,
    new_branch,
    new_call_id,
    new_tag,
    response_for,
)
from .parser import (
    KEEPALIVE_PING,
    KEEPALIVE_PONG,
    Limits,
    StreamParser,
    check_require,
    parse_message,
    validate_request,
    validate_response,
)
from .status import reason_phrase
from .uri import AbsoluteUri, SipUri, TelUri, Uri, format_host, parse_uri, split_hostport, uri_equal

_MESSAGE_LAYER = [
    "SipError",
    "ParseError",
    "VersionNotSupported",
    "UnsupportedScheme",
    "MessageTooLarge",
    "BadExtension",
    "TransactionError",
    "Headers",
    "Via",
    "NameAddr",
    "CSeq",
    "split_commas",
    "quote_string",
    "unquote_string",
    "Message",
    "Request",
    "Response",
    "response_for",
    "new_tag",
    "new_branch",
    "new_call_id",
    "MAGIC_COOKIE",
    "Limits",
    "parse_message",
    "validate_request",
    "validate_response",
    "check_require",
    "StreamParser",
    "KEEPALIVE_PING",
    "KEEPALIVE_PONG",
    "reason_phrase",
    "SipUri",
    "TelUri",
    "AbsoluteUri",
    "Uri",
    "parse_uri",
    "uri_equal",
    "split_hostport",
    "format_host",
]

# --- transaction layer (owned by the transaction-layer maintainer) -----------
# Add the transaction exports here and list them in _TRANSACTION_LAYER.
_TRANSACTION_LAYER: list[str] = []

__all__ = _MESSAGE_LAYER + _TRANSACTION_LAYER
