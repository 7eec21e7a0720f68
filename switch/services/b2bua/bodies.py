"""Which message bodies a leg relays to the other side: well-formed SDP only.

A B2BUA that passes any body through verbatim hands the callee whatever the
caller chose to send: another content type the callee's parser was never
meant to see, or SDP broken on purpose. An offer is relayed only when it is
``application/sdp`` and parses (RFC 4566 via ``switch.sip.sdp``); otherwise
the request is refused here: ``415`` with ``Accept: application/sdp`` for
another type (RFC 3261 §21.4.13), ``400`` for SDP that does not parse.
"""

from __future__ import annotations

from switch.sip.sdp import SdpError, parse_sdp

#: (status, reason, extra headers) of a refusal
Refusal = tuple[int, str, tuple[tuple[str, str], ...]]


def refuse_body(body: bytes, content_type: str | None) -> Refusal | None:
    """None when ``body`` may be relayed (no body at all, or SDP that parses)."""
    if not body:
        return None
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind != "application/sdp":
        return 415, "Unsupported Media Type", (("Accept", "application/sdp"),)
    try:
        parse_sdp(body)
    except (SdpError, UnicodeDecodeError, ValueError):
        return 400, "Malformed SDP", ()
    return None
