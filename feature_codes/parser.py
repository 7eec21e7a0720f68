"""GSM-style forwarding codes as dialled on a line: a pure parser (no I/O, no clock).

A customer used to a mobile phone dials ``*21*22000002#`` to forward and
``#21#`` to stop; the adapter sends the digits as the Request-URI user part,
with ``#`` either literal or escaped as ``%23`` (RFC 3261 §25.1 does not allow
a bare ``#`` in a user part, many adapters send it anyway). The B2BUA asks
:func:`parse` *before* numbering: ``None`` means "not a feature code, go on
with the numbering plan"; anything with ``*`` or ``#`` in it is either a
:class:`FeatureRequest` or an :class:`InvalidCode` (the numbering plan calls
such strings INVALID, and an unknown code must not be routed anywhere).

Codes (3GPP TS 22.030 §6.5.2 / 22.082 service codes, as the operator lists them)::

    *21*N#   #21#   *#21#     unconditional
    *61*N#   *61*N*T#   #61#   *#61#   no answer (T = ring time, 5-120 s)
    *62*N#   #62#   *#62#     not reachable
    *67*N#   #67#   *#67#     busy
    ##002#                    cancel every forwarding

Also accepted, because GSM phones taught people them: ``**SC*N#``
(registration, the same as activation here), ``##SC#`` (erasure, the same
as deactivation), and ``*61*N**T#`` (the full 22.030 form with an empty
basic-service group). ``N`` is digits with an optional leading ``+``; it
is only checked for shape here: the policy service validates the target
with the same function the operator API uses.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Action",
    "Condition",
    "FeatureRequest",
    "InvalidCode",
    "ParseResult",
    "RING_TIME_MAX",
    "RING_TIME_MIN",
    "CODES",
    "parse",
    "policy_key",
]


class Action(enum.StrEnum):
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    STATUS = "status"
    CANCEL_ALL = "cancel_all"


class Condition(enum.StrEnum):
    """When a forwarding applies; the values are ``switch.store.models.ForwardKind``'s."""

    UNCONDITIONAL = "unconditional"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNREACHABLE = "unreachable"


#: GSM service code → condition.
SERVICE_CODES: Final[dict[str, Condition]] = {
    "21": Condition.UNCONDITIONAL,
    "61": Condition.NO_ANSWER,
    "62": Condition.UNREACHABLE,
    "67": Condition.BUSY,
}
_CONDITION_CODES: Final = {cond: sc for sc, cond in SERVICE_CODES.items()}

#: Ring time before a no-answer forwarding, seconds (``*61*N*T#``).
RING_TIME_MIN: Final = 5
RING_TIME_MAX: Final = 120
_MAX_TARGET_DIGITS: Final = 20
_MAX_INPUT: Final = 64


def policy_key(action: Action, condition: Condition | None) -> str:
    """The code's prefix as dialled, the key of ``feature_code_policies`` (``*21*``, ``#21#``, ``##002#``)."""
    if action is Action.CANCEL_ALL:
        return "##002#"
    assert condition is not None
    sc = _CONDITION_CODES[condition]
    if action is Action.ACTIVATE:
        return f"*{sc}*"
    if action is Action.DEACTIVATE:
        return f"#{sc}#"
    return f"*#{sc}#"


#: Every policy key, in the order the operator's tables list them.
CODES: Final[tuple[str, ...]] = (
    *(policy_key(a, c) for c in SERVICE_CODES.values() for a in (Action.ACTIVATE, Action.DEACTIVATE, Action.STATUS)),
    policy_key(Action.CANCEL_ALL, None),
)


@dataclass(frozen=True, slots=True)
class FeatureRequest:
    """A well-formed code. ``target`` and ``ring_time_s`` only for activation."""

    action: Action
    condition: Condition | None
    """None for ``##002#`` (every condition)."""
    target: str | None = None
    ring_time_s: int | None = None
    dialled: str = ""

    @property
    def key(self) -> str:
        return policy_key(self.action, self.condition)


@dataclass(frozen=True, slots=True)
class InvalidCode:
    """Contains ``*`` or ``#`` but is no code we know; ``reason`` says why (for logs and tests)."""

    dialled: str
    reason: str


ParseResult = FeatureRequest | InvalidCode

_SC: Final = r"(?P<sc>[0-9]{2})"
_TARGET: Final = r"(?P<target>\+?[0-9]+)"
# Order matters only for readability: the forms do not overlap.
_FORMS: Final[tuple[tuple[re.Pattern[str], Action], ...]] = (
    (re.compile(r"##002#"), Action.CANCEL_ALL),
    (re.compile(rf"\*#{_SC}#"), Action.STATUS),
    (re.compile(rf"##?{_SC}#"), Action.DEACTIVATE),
    (re.compile(rf"\*\*?{_SC}\*{_TARGET}(?:\*\*?(?P<time>[0-9]+))?#"), Action.ACTIVATE),
)
_ESCAPE_RE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_ESCAPES: Final = {"23": "#", "2a": "*", "2b": "+"}


def _unescape(text: str) -> str | None:
    """``%23`` → ``#`` (and ``%2A`` → ``*``, ``%2B`` → ``+``); None for any other escape."""
    bad = False

    def one(m: re.Match[str]) -> str:
        nonlocal bad
        char = _ESCAPES.get(m.group(1).lower())
        if char is None:
            bad = True
            return ""
        return char

    out = _ESCAPE_RE.sub(one, text)
    if bad or "%" in out:
        return None
    return out


def parse(user_part: str) -> ParseResult | None:
    """Parse a Request-URI user part; None when it is not a feature code at all (no ``*``/``#``)."""
    if "*" not in user_part and "#" not in user_part and "%" not in user_part:
        return None  # an ordinary number: the B2BUA asks for every line's INVITE
    text = user_part.split(";", 1)[0].strip()  # RFC 3966 parameters (";phone-context=…")
    unescaped = _unescape(text)
    if unescaped is None:
        if "*" in text or "#" in text or "%23" in text.lower() or "%2a" in text.lower():
            return InvalidCode(user_part, "unknown %-escape")
        return None
    if "*" not in unescaped and "#" not in unescaped:
        return None
    if len(unescaped) > _MAX_INPUT:
        return InvalidCode(user_part, "too long")
    for pattern, action in _FORMS:
        m = pattern.fullmatch(unescaped)
        if m is None:
            continue
        if action is Action.CANCEL_ALL:
            return FeatureRequest(Action.CANCEL_ALL, None, dialled=unescaped)
        condition = SERVICE_CODES.get(m.group("sc"))
        if condition is None:
            return InvalidCode(user_part, f"unknown service code {m.group('sc')}")
        if action is not Action.ACTIVATE:
            return FeatureRequest(action, condition, dialled=unescaped)
        target = m.group("target")
        if len(target.lstrip("+")) > _MAX_TARGET_DIGITS:
            return InvalidCode(user_part, "forward-to number too long")
        time = m.group("time")
        if time is None:
            return FeatureRequest(action, condition, target, None, unescaped)
        if condition is not Condition.NO_ANSWER:
            return InvalidCode(user_part, "a ring time is only for *61* (no answer)")
        seconds = int(time)
        if not RING_TIME_MIN <= seconds <= RING_TIME_MAX:
            return InvalidCode(user_part, f"ring time must be {RING_TIME_MIN}-{RING_TIME_MAX} s")
        return FeatureRequest(action, condition, target, seconds, unescaped)
    return InvalidCode(user_part, "not a known code form")
