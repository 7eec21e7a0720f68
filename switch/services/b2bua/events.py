"""Call-control events: the only language between a call's two legs.

The shape is sippy's ``CCEvents`` (Try, Ring, PreConnect, Connect, Update,
Info, Disconnect, Fail, Redirect): each leg turns SIP into these events and
back, and the :class:`~switch.services.b2bua.call.Call` sees nothing else.
That keeps the call logic free of SIP syntax, lets the call be tested with
fake legs and no sockets, and makes "what does the caller hear when the
carrier says X" a decision in one place.

Direction is implied by who sends: a leg *emits* an event to the call when
its SIP peer did something, and *executes* an event the call gives it by
sending SIP to its peer. The same class serves both ways (a ``Ring`` from the
B-leg becomes a ``Ring`` the A-leg sends as 180).

Bodies (SDP) pass through unchanged; ``content_type`` travels with them so an
offer in an INVITE reaches the other side as the same offer. Mid-dialog
requests (re-INVITE, UPDATE, INFO, OPTIONS, NOTIFY) carry a ``seq`` the
emitting leg chose; the other leg's answer comes back as ``Reply`` with the
same ``seq`` so the first leg knows which of its transactions to answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from .causes import Cause

__all__ = [
    "Try",
    "Ring",
    "Progress",
    "Answer",
    "Ack",
    "Update",
    "Info",
    "Reply",
    "Disconnect",
    "Fail",
    "Redirect",
    "Event",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Try:
    """A new call from the A-leg (initial INVITE, authenticated)."""

    body: bytes = b""
    content_type: str | None = None
    max_forwards: int = 70
    """The A-leg INVITE's Max-Forwards; the B-leg gets one less (RFC 3261 §16.6 step 3 spirit)."""
    privacy: bool = False
    """The caller asked for anonymous presentation (RFC 3323 Privacy: id, or an anonymous From)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ring:
    """The callee is alerted (180), possibly with SDP."""

    body: bytes = b""
    content_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """Early media or other progress (183 Session Progress), normally with SDP."""

    body: bytes = b""
    content_type: str | None = None
    code: int = 183


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """The callee answered (2xx to the initial INVITE)."""

    body: bytes = b""
    content_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """ACK for a 2xx to an INVITE.

    Carries the SDP answer when the INVITE had no offer (RFC 3261 §13.2.1: the
    offer was in the 2xx, so the answer is in the ACK). The B-leg must not ACK
    its 2xx before the A-leg's ACK arrives in that case, or the answer is lost.
    """

    body: bytes = b""
    content_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """A mid-dialog session change: re-INVITE (hold, T.38 switch-over) or UPDATE (RFC 3311)."""

    method: str
    """"INVITE" or "UPDATE"."""
    seq: int
    body: bytes = b""
    content_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Info:
    """Another mid-dialog request to relay: INFO (DTMF relay), OPTIONS, NOTIFY."""

    method: str
    seq: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    """Method-specific headers worth relaying (Event, Subscription-State, Info-Package)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """The final answer to an ``Update`` or ``Info`` the other leg emitted."""

    seq: int
    code: int
    reason: str | None = None
    body: bytes = b""
    content_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnect:
    """End the leg: BYE when established, CANCEL before answer."""

    cause: Cause = Cause.NORMAL


@dataclass(frozen=True, slots=True, kw_only=True)
class Fail:
    """The call attempt failed before answer (a final non-2xx).

    From a B-leg: ``code`` is what the callee or carrier answered. To the
    A-leg: ``code`` is what the caller gets, already mapped through
    :func:`~switch.services.b2bua.causes.map_failure`.
    """

    code: int
    reason: str | None = None
    cause: Cause = Cause.REJECTED
    retry_after: int | None = None
    prompts: tuple[str, ...] = ()
    """Prompt keys the A-leg plays as early media before this response, instead of the
    cause's own prompt: a star code's result, e.g. ``("fwd_on", "digit_2", ...)``
    (``docs/announcements.md``). Empty: the cause's prompt, if it is announced."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect:
    """A 3xx from the callee side. The switch decides; it never follows blindly."""

    code: int
    contacts: tuple[str, ...] = ()
    """Contact URIs, in the order given."""


Event = Try | Ring | Progress | Answer | Ack | Update | Info | Reply | Disconnect | Fail | Redirect
