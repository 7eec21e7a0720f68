"""REGISTER handling (RFC 3261 §10.3), with write-through bindings.

Order of checks, as the RFC lists them: our domain (else 403), Require (done
by the transaction layer), authentication (401 / 403), the To AOR must belong
to the authenticated line (403), Contact / Expires validation (400 / 423),
Call-ID and CSeq ordering (§10.3 step 7), then the binding change is committed
*before* the 200 goes out. The 200 lists every current contact with its
remaining expiry.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from switch.sip.errors import ParseError
from switch.sip.message import Request, Response, new_tag, response_for, stateless_tag
from switch.sip.transaction.events import RequestReceived
from switch.sip.uri import SipUri

from .auth import AuthChallenge, AuthOk, AuthRejected, Authenticator
from .lines import LineDirectory, LineInfo, normalise_aor_user
from .location import Binding, LocationService

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RegistrarConfig:
    domains: frozenset[str]
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600
    max_contacts: int = 3


class RegistrarReject(Exception):
    def __init__(self, status: int, reason: str | None = None, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(reason or str(status))
        self.status = status
        self.reason = reason
        self.headers = headers or []


class Registrar:
    def __init__(
        self,
        *,
        config: RegistrarConfig,
        auth: Authenticator,
        lines: LineDirectory,
        location: LocationService,
        reply: Callable[[str, Response], None],
        challenge_reply: Callable[[str, Response], None] | None = None,
        clock: Callable[[], float] = time.time,
        observers: Sequence[Callable[[LineInfo | None, str, int], None]] = (),
        latency_hook: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self.auth = auth
        self.lines = lines
        self.location = location
        self.reply = reply
        #: how 401 challenges go out: statelessly in the switch (Endpoint.reply_and_forget), so a
        #: REGISTER without credentials leaves no transaction behind (RFC 3261 §8.2.7)
        self.challenge_reply = challenge_reply or reply
        self.clock = clock
        self.registered = 0
        #: called after every REGISTER outcome: (line or None, source host, status)
        self.observers: list[Callable[[LineInfo | None, str, int], None]] = list(observers)
        #: called with the seconds from an authenticated REGISTER to its stored binding's 200 (``/metrics``)
        self.latency_hook = latency_hook

    _date_cache: tuple[int, str] = (0, "")

    def _date(self, now: float) -> str:
        """RFC 3261 §20.17 Date (adapters without NTP set their clock from it); formatted once a second."""
        sec = int(now)
        if self._date_cache[0] != sec:
            self._date_cache = (sec, email.utils.formatdate(sec, usegmt=True))
        return self._date_cache[1]

    # -- entry point -------------------------------------------------------------
    def on_register(self, ev: RequestReceived) -> None:
        req = ev.request
        tid = ev.tid
        if tid is None:
            return
        try:
            self._register(req, tid, ev.source.host, ev.source.port, ev.source.transport, ev.source.conn)
        except RegistrarReject as rej:
            self._answer(tid, req, rej.status, rej.reason, rej.headers)
        except ParseError as err:
            self._answer(tid, req, err.status, err.reason)

    def _answer(
        self, tid: str, req: Request, status: int, reason: str | None = None, headers: list[tuple[str, str]] | None = None
    ) -> None:
        resp = response_for(req, status, reason, to_tag=new_tag())
        for name, value in headers or ():
            resp.headers.add(name, value)
        self.reply(tid, resp)

    def _register(self, req: Request, tid: str, host: str, port: int, transport: str, conn: int | None) -> None:
        ruri = req.ruri
        if not isinstance(ruri, SipUri) or ruri.host.lower() not in self.config.domains and (
            ruri.hostport.lower() not in self.config.domains
        ):
            raise RegistrarReject(403, "Domain Not Served")
        now = self.clock()
        result = self.auth.check(req, host, now, port=port)
        if isinstance(result, AuthChallenge):
            resp = response_for(req, 401, to_tag=stateless_tag(req))
            for value in result.challenges:
                resp.headers.add("WWW-Authenticate", value)
            self.challenge_reply(tid, resp)
            return
        if isinstance(result, AuthRejected):
            if result.status == 400:
                raise RegistrarReject(400, "Authorization URI Does Not Match Request-URI")
            for obs in self.observers:
                obs(result.credential if isinstance(result.credential, LineInfo) else None, host, 403)
            raise RegistrarReject(403)
        assert isinstance(result, AuthOk)
        line = result.credential
        assert isinstance(line, LineInfo)
        to_uri = req.to.uri
        to_user = to_uri.user if isinstance(to_uri, SipUri) else getattr(to_uri, "digits", None)
        if not to_user or (to_user != line.auth_user and normalise_aor_user(to_user) != line.number):
            raise RegistrarReject(403, "Not Allowed To Register This AOR")
        self._apply(req, tid, line, host, port, transport, conn, now)

    def _apply(
        self, req: Request, tid: str, line: LineInfo, host: str, port: int, transport: str, conn: int | None, now: float
    ) -> None:
        cfg = self.config
        contacts = req.contacts
        call_id = req.call_id
        cseq = req.cseq.seq
        current = {b.key: b for b in self.location.bindings(line.line_id)}
        header_expires = req.expires
        if any(c.wildcard for c in contacts):
            # §10.3 step 6: '*' only alone and with Expires: 0
            if len(contacts) != 1 or header_expires != 0:
                raise RegistrarReject(400, "Wildcard Contact Needs Expires: 0")
            for b in current.values():
                if b.call_id == call_id and cseq <= b.cseq:
                    raise RegistrarReject(500, "Out Of Order CSeq")
            new: dict[str, Binding] | None = {}
        elif not contacts:
            new = None  # a query: answer with the current bindings
        else:
            new = dict(current)
            ua = req.headers.get("User-Agent") or ""
            for c in contacts:
                exp = c.expires if c.params.get("expires") is not None else header_expires
                if exp is None:
                    exp = cfg.default_expires
                if 0 < exp < cfg.min_expires:
                    raise RegistrarReject(423, None, [("Min-Expires", str(cfg.min_expires))])
                exp = min(exp, cfg.max_expires)
                instance = (c.params.get("+sip.instance") or "").strip('"')
                reg_id_s = c.params.get("reg-id") or "0"
                b_contact = str(c.uri)
                key = instance or b_contact
                old = current.get(key)
                if old is not None and old.call_id == call_id and cseq <= old.cseq:
                    raise RegistrarReject(500, "Out Of Order CSeq")
                if exp == 0:
                    new.pop(key, None)
                    continue
                q_s = c.params.get("q")
                try:
                    q = float(q_s) if q_s else 1.0
                except ValueError:
                    raise RegistrarReject(400, "Bad q Value") from None
                new[key] = Binding(
                    line_id=line.line_id,
                    contact=b_contact,
                    expires_at=now + exp,
                    call_id=call_id,
                    cseq=cseq,
                    received_host=host,
                    received_port=port,
                    transport=transport,
                    user_agent=ua[:200],
                    instance=instance,
                    reg_id=int(reg_id_s) if reg_id_s.isdigit() else 0,
                    q=q,
                    registered_at=old.registered_at if old else now,
                    last_seen=now,
                    conn=conn,
                )
            if len(new) > cfg.max_contacts:
                # per-line limit: the oldest registrations give way
                keep = sorted(new.values(), key=lambda b: b.registered_at)[-cfg.max_contacts :]
                new = {b.key: b for b in keep}
        if new is None:
            self._ok(tid, req, list(current.values()), now, line)
            return
        bindings = list(new.values())

        def committed(exc: BaseException | None) -> None:
            if exc is not None:
                self._answer(tid, req, 500, "Binding Not Stored")
                return
            done = self.clock()
            self._ok(tid, req, bindings, done, line)
            if not current and bindings:
                log.info("line %s registered from %s:%s (%s)", line.number, host, port,
                         (req.headers.get("User-Agent") or "no User-Agent")[:80])
            elif current and not bindings:
                log.info("line %s unregistered (from %s:%s)", line.number, host, port)
            if self.latency_hook is not None:
                self.latency_hook(done - now)

        self.location.replace(line.line_id, bindings, committed)

    def _ok(self, tid: str, req: Request, bindings: list[Binding], now: float, line: LineInfo) -> None:
        resp = response_for(req, 200, to_tag=new_tag())
        for b in bindings:
            resp.headers.add("Contact", f"<{b.contact}>;expires={b.remaining(now)}")
        resp.headers.add("Date", self._date(now))
        self.registered += 1
        self.reply(tid, resp)
        for obs in self.observers:
            obs(line, req.vias[0].received or "", 200)
