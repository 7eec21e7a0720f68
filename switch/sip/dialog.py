"""Dialog state (RFC 3261 §12) for the user agents the B2BUA is made of.

A dialog is the peer-to-peer relationship a 2xx (or a 1xx with a To tag:
an early dialog) to an INVITE creates. It remembers what every later request
in the dialog needs: Call-ID, both tags, both URIs, both CSeq counters, the
route set and the remote target. Nothing here sends anything: ``create_request``
returns a Request for the transaction layer, ``receive_request`` says whether
an incoming one is in order. A dialog is a plain mutable value owned by one
call leg; it is not shared between coroutines.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .errors import ParseError, TransactionError
from .headers import Headers, NameAddr
from .message import Request, Response
from .uri import SipUri, Uri

__all__ = ["Dialog", "TARGET_REFRESH", "uas_dialog_id", "uac_dialog_id"]

#: Requests whose Contact replaces the remote target (§12.2; RFC 3311 UPDATE; RFC 6665 SUBSCRIBE/NOTIFY).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})

DialogId = tuple[str, str, str]


def uas_dialog_id(request: Request) -> DialogId:
    """The id of the dialog an incoming request belongs to, seen from our side: (Call-ID, To tag, From tag)."""
    return request.call_id, request.to.tag or "", request.from_.tag or ""


def uac_dialog_id(response: Response) -> DialogId:
    """The id of the dialog a response to our request belongs to: (Call-ID, From tag, To tag)."""
    return response.call_id, response.from_.tag or "", response.to.tag or ""


def _without_tag(addr: NameAddr) -> NameAddr:
    if "tag" not in addr.params:
        return addr
    return replace(addr, params={k: v for k, v in addr.params.items() if k != "tag"})


def _contact_uri(msg: Request | Response) -> Uri | None:
    contacts = msg.contacts
    if not contacts or contacts[0].wildcard:
        return None
    return contacts[0].uri


def _rfc3261_branch(request: Request) -> bool:
    branch = request.top_via.branch
    return branch is not None and branch.startswith("z9hG4bK")


@dataclass(slots=True, kw_only=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    """Empty for an RFC 2543 peer that sent no From tag (§12.1.1: "null")."""
    local_uri: NameAddr
    """Our From (as UAC) / To (as UAS) name-addr, without the tag."""
    remote_uri: NameAddr
    local_cseq: int | None
    """Last CSeq number we used; None until we send a request (§12.1.1 "empty")."""
    remote_cseq: int | None
    """Last CSeq number the peer used; None until it sends one (§12.1.2 "empty")."""
    route_set: list[str] = field(default_factory=list)
    """Route header values in the order they go into requests (§12.1.1/§12.1.2)."""
    remote_target: Uri
    secure: bool = False
    local_contact: str | None = None
    """Contact header value we send in target refresh requests."""
    early: bool = False
    """Created by a provisional response; a 2xx confirms it (§12.1)."""
    invite_cseq: int | None = None
    """CSeq number of the last INVITE we sent in this dialog; the ACK for its 2xx reuses it (§13.2.2.4)."""

    @property
    def id(self) -> DialogId:
        return self.call_id, self.local_tag, self.remote_tag

    # -- creation ----------------------------------------------------------------

    @classmethod
    def from_uas(cls, request: Request, response: Response, *, secure_transport: bool = False) -> Dialog:
        """The dialog a UAS creates when it answers ``request`` with ``response`` (§12.1.1).

        ``response`` must carry our To tag (101-299). Raises ParseError when the
        request has no usable Contact (the UAS should answer 400).
        """
        local_tag = response.to.tag
        if local_tag is None:
            raise TransactionError("a dialog-creating response needs a To tag (§12.1.1)")
        target = _contact_uri(request)
        if target is None and not request.contacts and not _rfc3261_branch(request):
            # RFC 2543 clients need not send a Contact (RFC 4475 §3.4.1): requests in the
            # dialog then go to the From URI, as RFC 2543 §6.13 had it.
            target = request.from_.uri
        if target is None:
            raise ParseError("Missing Contact in dialog-creating request")
        contact = response.headers.get("Contact")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(request.from_),
            local_cseq=None,
            remote_cseq=request.cseq.seq,
            route_set=request.headers.values("Record-Route"),
            remote_target=target,
            secure=secure_transport and request.ruri.scheme == "sips",
            local_contact=contact,
            early=response.status < 200,
        )

    @classmethod
    def from_uac(cls, request: Request, response: Response, *, secure_transport: bool = False) -> Dialog:
        """The dialog a UAC creates from a 1xx-with-tag or 2xx to its ``request`` (§12.1.2)."""
        remote_tag = response.to.tag
        local_tag = request.from_.tag
        if remote_tag is None or local_tag is None:
            raise TransactionError("a dialog needs both a From tag and a To tag (§12.1.2)")
        # A provisional without Contact still creates an early dialog; requests go to the
        # original Request-URI until a Contact arrives.
        target = _contact_uri(response) or request.ruri
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.from_),
            remote_uri=_without_tag(response.to),
            local_cseq=request.cseq.seq,
            remote_cseq=None,
            route_set=list(reversed(response.headers.values("Record-Route"))),
            remote_target=target,
            secure=secure_transport and request.ruri.scheme == "sips",
            local_contact=request.headers.get("Contact"),
            early=response.status < 200,
            invite_cseq=request.cseq.seq if request.method == "INVITE" else None,
        )

    # -- UAC behaviour -------------------------------------------------------------

    def create_request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
    ) -> Request:
        """A request within the dialog (§12.2.1.1). The transaction layer adds the Via.

        CSeq: incremented for every request except ACK, which reuses the CSeq
        number of the INVITE it acknowledges (§13.2.2.4). CANCEL is never built
        here: it belongs to the INVITE's client transaction (§9.1).
        """
        if method == "CANCEL":
            raise TransactionError("CANCEL is built by the transaction layer from the INVITE (§9.1)")
        if method == "ACK":
            if self.invite_cseq is None:
                raise TransactionError("no INVITE to acknowledge in this dialog")
            seq = self.invite_cseq
        else:
            # §12.2.1.1: an empty local sequence number gets an initial value (§8.1.1.5: any < 2**31).
            seq = 1 if self.local_cseq is None else self.local_cseq + 1
            self.local_cseq = seq
            if method == "INVITE":
                self.invite_cseq = seq
        ruri, routes = self.request_target()
        h = Headers()
        for route in routes:
            h.add("Route", route)
        h.add("Max-Forwards", "70")
        h.add("From", str(self.local_uri.with_params(tag=self.local_tag)))
        to = self.remote_uri.with_params(tag=self.remote_tag) if self.remote_tag else self.remote_uri
        h.add("To", str(to))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{seq} {method}")
        if self.local_contact and method in TARGET_REFRESH:
            h.add("Contact", self.local_contact)
        for name, value in headers:
            h.add(name, value)
        if body and content_type:
            h.add("Content-Type", content_type)
        return Request(method, ruri, h, body)

    def request_target(self) -> tuple[str, list[str]]:
        """Request-URI and Route values for the next request (§12.2.1.1, §16.12.1.2).

        Loose routing (first route has ``lr``): Request-URI = remote target, Route =
        route set. Strict routing: the first route becomes the Request-URI (without
        the parameters a Request-URI may not carry) and the remote target goes last.
        """
        target = str(self.remote_target)
        if not self.route_set:
            return target, []
        first = NameAddr.parse(self.route_set[0]).uri
        if not isinstance(first, SipUri) or "lr" in first.params:
            return target, list(self.route_set)
        # §19.1.1 table 1: "method" and headers are not allowed in a Request-URI.
        ruri = replace(first, headers={}, params={k: v for k, v in first.params.items() if k != "method"})
        return str(ruri), [*self.route_set[1:], f"<{target}>"]

    def update_from_response(self, request: Request, response: Response) -> None:
        """Apply a response to a request we sent in this dialog (§12.1.2, §12.2.1.2, §13.2.2.4).

        A 2xx to the INVITE confirms an early dialog and recomputes the route set;
        a 2xx (or, while early, a 1xx) to a target refresh request with a Contact
        replaces the remote target.
        """
        status = response.status
        if status >= 300 or status < 101:
            return
        contact = _contact_uri(response)
        if self.early and status >= 200 and request.method == "INVITE":
            self.early = False
            self.route_set = list(reversed(response.headers.values("Record-Route")))
            if contact is not None:
                self.remote_target = contact
            return
        if contact is not None and request.method in TARGET_REFRESH and (status >= 200 or self.early):
            self.remote_target = contact

    # -- UAS behaviour -------------------------------------------------------------

    def receive_request(self, request: Request) -> bool:
        """Check and record an incoming in-dialog request (§12.2.2).

        False means the request is out of order: answer 500 (§12.2.2). ACK carries
        the INVITE's CSeq number and is never refused here. A target refresh
        request with a Contact replaces the remote target.
        """
        if request.method == "ACK":
            return True
        seq = request.cseq.seq
        if self.remote_cseq is not None and seq < self.remote_cseq:
            return False
        self.remote_cseq = seq
        if request.method in TARGET_REFRESH:
            contact = _contact_uri(request)
            if contact is not None:
                self.remote_target = contact
        return True
