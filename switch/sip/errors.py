"""Errors raised by the SIP core.

Each error knows the SIP status a server should answer with, so the code that
catches it never has to guess (the h11 ``error_status_hint`` idea)::

    SipError
    ├── ParseError               malformed bytes from the peer (default 400)
    │   ├── VersionNotSupported  505
    │   ├── UnsupportedScheme    416
    │   └── MessageTooLarge      513
    ├── BadExtension             420, carries the unsupported option-tags
    └── TransactionError         local misuse of the transaction layer
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - import cycle only for the type checker
    from .message import Request

__all__ = [
    "SipError",
    "ParseError",
    "VersionNotSupported",
    "UnsupportedScheme",
    "MessageTooLarge",
    "BadExtension",
    "TransactionError",
]


class SipError(Exception):
    """Base class. ``status`` and ``reason`` are what a UAS should answer."""

    status: int = 400
    default_reason: str = "Bad Request"

    def __init__(self, reason: str | None = None, *, status: int | None = None) -> None:
        self.reason = reason or self.default_reason
        if status is not None:
            self.status = status
        super().__init__(self.reason)


class ParseError(SipError):
    """The peer sent bytes that are not a valid SIP message.

    ``partial`` is the request as far as it could be read (start line and
    header lines), so a server can still answer statelessly; it is None for
    responses (which are dropped, never answered) and for unreadable heads.
    """

    status = 400
    partial: Request | None = None


class VersionNotSupported(ParseError):
    status = 505
    default_reason = "Version Not Supported"


class UnsupportedScheme(ParseError):
    status = 416
    default_reason = "Unsupported URI Scheme"


class MessageTooLarge(ParseError):
    status = 513
    default_reason = "Message Too Large"


class BadExtension(SipError):
    """RFC 3261 §8.2.2.3: a Require option we do not support (answer 420 + Unsupported)."""

    status = 420
    default_reason = "Bad Extension"

    def __init__(self, options: list[str]) -> None:
        self.options = options
        super().__init__(f"Bad Extension: {', '.join(options)}")


class TransactionError(SipError):
    """The transaction user asked for something illegal in the current state."""

    status = 500
    default_reason = "Server Internal Error"
