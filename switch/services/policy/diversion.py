"""Diversion (RFC 5806) and History-Info (RFC 7044) for forwarded legs, both ways.

Outgoing: a forwarded B-leg carries both, newest diversion first in
Diversion (RFC 5806 §3: each diverting hop adds its own header value on
top) and the whole retarget history in History-Info, the original target at
index 1 and each forward target below it, with the RFC 4458 ``cause`` URI
parameter saying why (302 unconditional, 486 busy, 408 no answer, 503
unreachable) and the Reason of the retargeted entry embedded as RFC 7044
§9.1 shows it. Carriers read one or the other; the target adapter shows
neither, the caller's number stays in From.

Incoming (from carrier trunks only): the numbers a call was already
diverted from, to stop loops a carrier builds by bouncing a call we
forwarded back to us, and the hop count toward the cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from switch.sip.errors import SipError
from switch.sip.headers import Headers, NameAddr
from switch.sip.uri import SipUri, TelUri
from switch.store.models import ForwardKind

from ..numbering import NumberClass, normalise
from .engine import DIVERSION_REASON, Hop

__all__ = ["forward_headers", "incoming_diversions", "Diverted", "RFC4458_CAUSE"]

#: RFC 4458 §3: the ``cause`` URI parameter of the new target, per forward kind.
RFC4458_CAUSE: dict[ForwardKind, int] = {
    ForwardKind.UNCONDITIONAL: 302,
    ForwardKind.BUSY: 486,
    ForwardKind.NO_ANSWER: 408,
    ForwardKind.UNREACHABLE: 503,
}
_REASON_TEXT = {302: "Moved Temporarily", 486: "Busy Here", 408: "Request Timeout", 503: "Service Unavailable"}
_MAX_ENTRIES = 20


def _national(number: str, country_code: str) -> str:
    prefix = "+" + country_code
    return number[len(prefix):] if number.startswith(prefix) else number


def forward_headers(
    original: str, hops: Sequence[Hop], domain: str, *, trunk: bool, country_code: str = "47"
) -> tuple[tuple[str, str], ...]:
    """Diversion + History-Info for a B-leg after ``hops`` (oldest first); ``original`` is the dialled number.

    Towards a carrier numbers are E.164 with ``user=phone``; towards one of our
    adapters the national form, as everything else it sees.
    """
    if not hops:
        return ()

    def uri(number: str) -> str:
        if trunk:
            return f"sip:{number}@{domain};user=phone"
        return f"sip:{_national(number, country_code)}@{domain}"

    out: list[tuple[str, str]] = []
    for hop in reversed(hops):
        out.append(("Diversion", f"<{uri(hop.from_number)}>;reason={DIVERSION_REASON[hop.kind]};counter=1;privacy=off"))
    entries = []
    index = "1"
    targets = [hops[0].from_number or original] + [h.to_number for h in hops]
    for i, number in enumerate(targets):
        text = uri(number)
        if i > 0:
            text += f";cause={RFC4458_CAUSE[hops[i - 1].kind]}"
        if i + 1 < len(targets):
            code = RFC4458_CAUSE[hops[i].kind]
            text += f"?Reason=SIP%3Bcause%3D{code}%3Btext%3D%22{_REASON_TEXT[code].replace(' ', '%20')}%22"
        entry = f"<{text}>;index={index}"
        if i > 0:
            entry += f";mp={index.rsplit('.', 1)[0]}"
        entries.append(entry)
        index += ".1"
    out.append(("History-Info", ", ".join(entries)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Diverted:
    numbers: tuple[str, ...]
    """Numbers (E.164) the call was diverted from before it reached us, oldest first, no duplicates."""
    hops: int
    """Forwards the headers count."""


def _number(value: str, country_code: str) -> str | None:
    try:
        uri = NameAddr.parse(value).uri
    except SipError:
        return None
    if isinstance(uri, TelUri):
        user = str(uri)
    elif isinstance(uri, SipUri):
        user = uri.user or ""
    else:
        return None
    n = normalise(user, country_code)
    if n.number_class is NumberClass.INVALID:
        return None
    return n.e164 or n.national


def incoming_diversions(headers: Headers, dialled_e164: str | None, country_code: str = "47") -> Diverted:
    """What Diversion and History-Info say about earlier forwards of an incoming call.

    Diversion values are diverting numbers (newest first). History-Info lists
    every target including the current one: its last entry is the number
    being called now, so it does not count as "seen" when it is ``dialled``.
    """
    seen: list[str] = []
    diversion_hops = 0
    for value in headers.values("Diversion")[:_MAX_ENTRIES]:
        number = _number(value, country_code)
        counter = 1
        for param in value.split(">", 1)[-1].split(";"):
            name, _, v = param.strip().partition("=")
            if name.lower() == "counter" and v.strip().isdigit():
                counter = max(1, min(int(v.strip()), _MAX_ENTRIES))
        diversion_hops += counter
        if number is not None:
            seen.insert(0, number)
    hi = headers.values("History-Info")[:_MAX_ENTRIES]
    hi_numbers = [n for n in (_number(v, country_code) for v in hi) if n is not None]
    if hi_numbers and hi_numbers[-1] == dialled_e164:
        hi_numbers = hi_numbers[:-1]
    for n in hi_numbers:
        if n not in seen:
            seen.append(n)
    return Diverted(tuple(dict.fromkeys(seen)), max(diversion_hops, max(0, len(hi) - 1)))
