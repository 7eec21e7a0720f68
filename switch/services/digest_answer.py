"""Answering a digest challenge as a client: the one place the switch retries a request with credentials.

Used by B-legs towards carriers that challenge our INVITE and by the resync
NOTIFY that adapters challenge. RFC 3261 §22.2 and §8.1.3.5: the retry is
the same request (same Call-ID, From tag and To) with CSeq + 1 and an
``Authorization`` (401) or ``Proxy-Authorization`` (407) answering the
strongest challenge we support (RFC 8760: SHA-256 before MD5). Challenges
we cannot parse are skipped, so one odd header does not spoil a good one.
"""

from __future__ import annotations

from switch.sip.digest import Challenge, DigestClient, DigestError, choose_challenge, parse_challenges
from switch.sip.message import Request, Response

__all__ = ["answer_challenge", "challenges_in"]


def challenges_in(response: Response) -> list[Challenge]:
    """Every Digest challenge of a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate)."""
    header = "Proxy-Authenticate" if response.status == 407 else "WWW-Authenticate"
    found: list[Challenge] = []
    for value in response.headers.get_lines(header):
        try:
            found.extend(parse_challenges(value))
        except DigestError:
            continue
    return found


def answer_challenge(client: DigestClient, request: Request, response: Response) -> Request:
    """``request`` again, CSeq + 1, with credentials answering ``response`` (a 401 or 407).

    Raises ``DigestError`` when no challenge can be answered (none, or only
    unsupported algorithms or qop) and ``SipError`` when ``request`` has no
    usable CSeq.
    """
    chosen = choose_challenge(challenges_in(response))
    value = client.authorize(chosen, request.method, request.uri, request.body)
    headers = request.headers.copy()
    headers.remove("Via")  # the transaction layer puts a new branch on the retry
    headers.set("CSeq", f"{request.cseq.seq + 1} {request.method}")
    headers.add("Proxy-Authorization" if response.status == 407 else "Authorization", value)
    return Request(request.method, request.uri, headers, request.body)
