"""Resync: make an adapter fetch its configuration now, by a SIP NOTIFY to each registered contact.

The operator API (``POST /api/v1/adapters/{mac}/resync``) calls ``resync``
with the event the adapter's vendor understands ("resync" for Cisco/Linksys
and OBi, "check-sync" for Grandstream). Adapters challenge that NOTIFY
(Cisco always, Grandstream and OBi as our configs set them); the switch
answers the challenge with the line's own credentials, which is how the
adapter knows the NOTIFY comes from its switch.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from switch.sip.digest import DigestClient, DigestError
from switch.sip.errors import SipError
from switch.sip.transaction.events import ResponseReceived, TransactionTimeout
from switch.store import repo_lines
from switch.store.adapter_models import model_info
from switch.store.crypto import SecretBox
from switch.store.engine import SessionFactory, write_session
from switch.store.repo_adapters import AdapterInfo
from switch.store.repo_audit import add_audit_event

from .digest_answer import answer_challenge
from .location import Binding, LocationService
from .outbound import out_of_dialog_request, peer_of
from .sip_port import SipPort

__all__ = ["NotifyOutcome", "ResyncService"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class NotifyOutcome:
    """What became of one NOTIFY: ``result`` is pending | accepted | refused | timeout | error."""

    port: int
    contact: str
    target: str
    status: int | None = None
    result: str = "pending"
    challenged: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def as_json(self) -> dict[str, Any]:
        return {"port": self.port, "contact": self.contact, "target": self.target, "status": self.status,
                "result": self.result, "challenged": self.challenged}


class ResyncService:
    """Sends the NOTIFYs; the HTTP handler decides the event, waits and audits."""

    def __init__(
        self,
        port: SipPort,
        *,
        session_factory: SessionFactory,
        secret_box: SecretBox,
        location: LocationService,
        from_host: str,
    ) -> None:
        self.port = port
        self.session_factory = session_factory
        self.secret_box = secret_box
        self.location = location
        self.from_host = from_host

    async def resync_adapter(self, adapter: AdapterInfo, actor: str, wait: float) -> tuple[str, list[NotifyOutcome]]:
        """The operator's resync (API and web UI alike): the model's NOTIFY event, sent, audited when sent."""
        info = model_info(adapter.model)
        event = info.resync_event if info else "resync"  # each model's event: switch.store.adapter_models
        outcomes = await self.resync(adapter.adapter_id, event, wait)
        if outcomes:
            async with write_session(self.session_factory) as session:
                add_audit_event(session, actor=actor, action="adapter.resync", subject_type="adapter",
                                subject_id=adapter.mac, customer_id=adapter.customer_id,
                                details={"event": event, "contacts": [o.contact for o in outcomes]})
        return event, outcomes

    async def resync(self, adapter_id: int, event: str, wait: float) -> list[NotifyOutcome]:
        """NOTIFY every registered contact of the adapter's lines; return once all answered or after
        ``wait`` seconds (outcomes still pending then say so). Empty: no line is registered."""
        lines = await repo_lines.load_adapter_lines(self.session_factory, adapter_id, self.secret_box)
        targets = [(line, b) for line in lines for b in self.location.bindings(line.line_id)]
        outcomes = [self.notify(b, event, line.auth_user, line.secret, line.port) for line, b in targets]
        if outcomes and wait > 0:
            try:
                await asyncio.wait_for(asyncio.gather(*(o.done.wait() for o in outcomes)), wait)
            except TimeoutError:
                pass
        return outcomes

    def notify(self, binding: Binding, event: str, auth_user: str, password: str, port: int) -> NotifyOutcome:
        """Send one NOTIFY; answer one 401/407 with the line's credentials (RFC 3261 §22.2)."""
        sip = self.port
        extra = [("Event", event), ("Subscription-State", "terminated")]
        peer = peer_of(binding)
        outcome = NotifyOutcome(port=port, contact=binding.contact,
                                target=f"{binding.transport}:{binding.received_host}:{binding.received_port}")
        first = out_of_dialog_request("NOTIFY", binding.contact, self.from_host, sip.user_agent, extra)
        client = DigestClient(auth_user, password)

        def finish(status: int | None, result: str) -> None:
            if outcome.done.is_set():
                return
            outcome.status, outcome.result = status, result
            outcome.done.set()
            log.info("resync: NOTIFY %s to %s (%s) -> %s %s", event, binding.contact, outcome.target,
                     status if status is not None else "", result)

        def on_event(ev: ResponseReceived | TransactionTimeout) -> None:
            if isinstance(ev, TransactionTimeout):
                finish(None, "timeout")
                return
            status = ev.response.status
            if status < 200:
                return
            if status in (401, 407) and not outcome.challenged:
                # The retry is the same request with CSeq + 1 and credentials (§8.1.3.5).
                try:
                    again = answer_challenge(client, first, ev.response)
                except (DigestError, SipError) as exc:
                    log.warning("resync: cannot answer the %d from %s: %s", status, binding.contact, exc)
                else:
                    outcome.challenged = True
                    sip.request(again, peer, on_event)
                    return
            finish(status, "accepted" if 200 <= status < 300 else "refused")

        try:
            sip.request(first, peer, on_event)
        except Exception as exc:  # noqa: BLE001 - one unusable contact must not stop the others
            log.warning("resync: cannot send NOTIFY to %s: %s", binding.contact, exc)
            finish(None, "error")
        return outcome
