"""Why a call ended: one vocabulary for the A-leg answer, the CDR and announcements.

Support staff read the cause in a line's call history while the customer
repeats what the announcement said, so both must come from the same value.
Each cause carries the SIP status the caller gets and the Q.850 cause value
we put in a ``Reason`` header (RFC 3326), chosen with RFC 3398's ISUP/SIP
mapping so that carriers and adapters interpret it the usual way.

Failure mapping from a B-leg's final response to the A-leg answer lives here
too (``map_failure``), together with the rule for when a failure means "try
the next target" rather than "tell the caller" (``should_hunt``).

Decisions worth knowing:

* **No answer is 480, not 408.** RFC 3398 maps Q.850 19 (no answer from user,
  user alerted) to 480; 408 would tell the adapter our *server* timed out.
  Busy (486), unregistered (480, Q.850 20) and no answer (480, Q.850 19) stay
  distinct through the Reason header and the CDR cause.
* **A carrier's 503 is never relayed.** RFC 3261 §16.7 step 6: a 503 from
  downstream means *that* server is overloaded; passed on, it would tell the
  adapter that *we* are, and many adapters then fail over or back off for
  every call. All trunks failing becomes our own 503 (Q.850 34, no circuit
  available) without Retry-After, which blames no single server.
* **Challenges are never relayed.** A 401/407 from a carrier is answered by
  the trunk's credentials or treated as a trunk failure; passing it to the
  adapter would invite it to answer a carrier's challenge with its password.
"""

from __future__ import annotations

import enum

__all__ = ["Cause", "map_failure", "should_hunt", "TRUNK_HUNT_CODES"]


class Cause(enum.Enum):
    """Stable lower-case values: they are stored in ``call_records.cause``."""

    NORMAL = "normal"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNREGISTERED = "unregistered"
    UNAVAILABLE = "unavailable"
    NUMBER_NOT_IN_USE = "number_not_in_use"
    NUMBER_CHANGED = "number_changed"
    INVALID_NUMBER = "invalid_number"
    INCOMPLETE_NUMBER = "incomplete_number"
    NO_ROUTE = "no_route"
    BARRED = "barred"
    """Outgoing barring of a category without a cause of its own (the trail names it)."""
    BARRED_INTERNATIONAL = "barred_international"
    BARRED_MOBILE = "barred_mobile"
    BARRED_PREMIUM = "barred_premium"
    BARRED_DIRECTORY = "barred_directory"
    BARRED_SHARED_COST = "barred_shared_cost"
    BARRED_SPECIAL = "barred_special"
    """5-digit business numbers and other special services (the numbering plan's own classes)."""
    BARRED_ALL_OUTGOING = "barred_all_outgoing"
    SUSPENDED = "suspended"
    """The caller's line or customer is suspended for a reason other than an unpaid invoice."""
    SUSPENDED_UNPAID = "suspended_unpaid"
    CALLEE_SUSPENDED = "callee_suspended"
    """The called line or its customer is hard-suspended: incoming calls are refused too."""
    CREDIT_LIMIT = "credit_limit"
    FRAUD = "fraud"
    """The fraud guard refused the call (attempt limits crossed: the customer is soft-suspended)."""
    CALL_LIMIT = "call_limit"
    """Too many concurrent calls on the line or the customer."""
    FORWARD_LOOP = "forward_loop"
    FORWARD_HOPS = "forward_hops"
    FORWARD_NOT_ALLOWED = "forward_not_allowed"
    """The forward target is not allowed for the forwarding line (its barring, suspension, class)."""
    DECLINED = "declined"
    REJECTED = "rejected"
    MEDIA_NOT_ACCEPTABLE = "media_not_acceptable"
    CONGESTION = "congestion"
    EMERGENCY_UNAVAILABLE = "emergency_unavailable"
    LOOP = "loop"
    TOO_MANY_HOPS = "too_many_hops"
    CANCELLED = "cancelled"
    CALLER_AUTH_FAILED = "caller_auth_failed"
    FORBIDDEN_SOURCE = "forbidden_source"
    REDIRECT_REFUSED = "redirect_refused"
    MAX_DURATION = "max_duration"
    ACK_TIMEOUT = "ack_timeout"
    SHUTDOWN = "shutdown"
    INTERNAL_ERROR = "internal_error"
    FEATURE_CODE = "feature_code"
    """A star code (``*21*N#``, ``#21#``, ``*#21#`` …) was carried out and its result spoken.
    No call is set up: the final response (480, Q.850 16 normal clearing) follows the prompt."""
    FEATURE_CODE_REFUSED = "feature_code_refused"
    """The operator's policy refuses this star code (``feature_code_policies``)."""

    @property
    def code(self) -> int:
        """SIP status for the A-leg when this cause ends the call before answer."""
        return _INFO[self][0]

    @property
    def q850(self) -> int:
        """Q.850 cause value for the Reason header (RFC 3326, RFC 3398 §8.2.6.1)."""
        return _INFO[self][1]

    @property
    def reason_header(self) -> str:
        """``Reason`` header value, e.g. ``Q.850;cause=17;text="busy"``."""
        return f'Q.850;cause={self.q850};text="{self.value}"'


# cause -> (SIP status to the caller, Q.850 value)
_INFO: dict[Cause, tuple[int, int]] = {
    Cause.NORMAL: (200, 16),
    Cause.BUSY: (486, 17),
    Cause.NO_ANSWER: (480, 19),
    Cause.UNREGISTERED: (480, 20),
    Cause.UNAVAILABLE: (480, 18),
    Cause.NUMBER_NOT_IN_USE: (404, 1),
    Cause.NUMBER_CHANGED: (410, 22),
    Cause.INVALID_NUMBER: (404, 28),
    Cause.INCOMPLETE_NUMBER: (484, 28),
    Cause.NO_ROUTE: (404, 3),
    Cause.BARRED: (403, 21),
    Cause.BARRED_INTERNATIONAL: (403, 21),
    Cause.BARRED_MOBILE: (403, 21),
    Cause.BARRED_PREMIUM: (403, 21),
    Cause.BARRED_DIRECTORY: (403, 21),
    Cause.BARRED_SHARED_COST: (403, 21),
    Cause.BARRED_SPECIAL: (403, 21),
    Cause.BARRED_ALL_OUTGOING: (403, 21),
    Cause.SUSPENDED: (403, 21),
    Cause.SUSPENDED_UNPAID: (403, 21),
    Cause.CALLEE_SUSPENDED: (480, 20),
    Cause.CREDIT_LIMIT: (403, 21),
    Cause.FRAUD: (403, 21),
    Cause.CALL_LIMIT: (403, 21),
    Cause.FORWARD_LOOP: (482, 25),
    Cause.FORWARD_HOPS: (483, 25),
    Cause.FORWARD_NOT_ALLOWED: (403, 21),
    Cause.DECLINED: (603, 21),
    Cause.REJECTED: (403, 21),
    Cause.MEDIA_NOT_ACCEPTABLE: (488, 65),
    Cause.CONGESTION: (503, 34),
    Cause.EMERGENCY_UNAVAILABLE: (503, 34),
    Cause.LOOP: (482, 25),
    Cause.TOO_MANY_HOPS: (483, 25),
    Cause.CANCELLED: (487, 16),
    Cause.CALLER_AUTH_FAILED: (403, 21),
    Cause.FORBIDDEN_SOURCE: (403, 21),
    Cause.REDIRECT_REFUSED: (480, 23),
    Cause.MAX_DURATION: (200, 102),
    Cause.ACK_TIMEOUT: (200, 102),
    Cause.SHUTDOWN: (503, 41),
    Cause.INTERNAL_ERROR: (500, 41),
    Cause.FEATURE_CODE: (480, 16),
    Cause.FEATURE_CODE_REFUSED: (403, 21),
}
assert set(_INFO) == set(Cause), "every cause needs a code"

#: Final responses from a *carrier trunk* after which the next trunk is tried:
#: the trunk (not the callee) failed or refused us. 3xx and 5xx are added by
#: ``should_hunt``. 404/486/480/603... are the callee's answer: another carrier
#: would say the same, so they stop the hunt.
TRUNK_HUNT_CODES = frozenset({401, 403, 407, 408, 420, 421, 423, 429, 481, 491, 494})

#: Hop-by-hop failures of our own B-leg request that mean nothing to the caller.
_HOP_BY_HOP = frozenset({401, 407, 420, 421, 423, 429, 481, 491, 494})


def should_hunt(code: int, *, trunk: bool) -> bool:
    """Try the next target after this final response?

    Trunk targets hunt on the codes that blame the trunk (timeouts, 5xx
    including 503, refused credentials, 3xx the switch did not follow). For a
    line's contacts only "this contact did not work" hunts: 408 and 5xx.
    """
    if trunk:
        return code in TRUNK_HUNT_CODES or 300 <= code < 400 or 500 <= code < 600
    return code == 408 or 500 <= code < 600


def map_failure(code: int, *, trunk: bool) -> tuple[Cause, int]:
    """The cause and A-leg status for a B-leg final failure ``code``.

    Used for the last failure once hunting stops. For trunks, failures that
    hunt become CONGESTION (503) when no trunk is left.
    """
    if trunk and should_hunt(code, trunk=True):
        return Cause.CONGESTION, Cause.CONGESTION.code
    if code in (486, 600):
        return Cause.BUSY, 486
    if code in (404, 604):
        return Cause.NUMBER_NOT_IN_USE, 404
    if code == 410:
        return Cause.NUMBER_CHANGED, 410
    if code == 484:
        return Cause.INCOMPLETE_NUMBER, 484
    if code == 603:
        return Cause.DECLINED, 603
    if code in (488, 606, 415):
        return Cause.MEDIA_NOT_ACCEPTABLE, 488
    if code == 487:
        return Cause.CANCELLED, 487
    if code == 482:
        return Cause.LOOP, 482
    if code == 483:
        return Cause.TOO_MANY_HOPS, 483
    if code == 403:
        return Cause.REJECTED, 403
    if code in (480, 408) or code in _HOP_BY_HOP or 500 <= code < 600 or 300 <= code < 400:
        # The line's adapter did not answer, refused for its own reasons or
        # said it is out of order: to the caller, that person is unavailable.
        return Cause.UNAVAILABLE, 480
    if 400 <= code < 500:
        return Cause.REJECTED, code
    if 600 <= code < 700:
        return Cause.DECLINED, 603
    return Cause.INTERNAL_ERROR, 500
