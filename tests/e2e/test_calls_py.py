"""Calls end to end over real loopback UDP: the switch in-process, small scripted Python UAs.

The switch is the real composition (``switch.app.start`` on a fresh SQLite
database, lines and trunks imported with the real importer, the call manager it builds),
and every message crosses a real socket. The UAs are deliberately dumb: each
test scripts every message, so what the switch sends is checked field by field.

Addresses: adapters live on 127.0.0.1, carriers on 127.0.0.2 / 127.0.0.3 and the
emergency gateway on 127.0.0.4, so the trunk ACL (by source address) can tell
them apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from switch import app
from switch.services.b2bua.manager import CallManager
from switch.services.numbering import normalise
from switch.settings import Settings
from switch.sip import digest, nonces
from switch.sip.headers import Headers
from switch.sip.message import Message, Request, Response, new_branch, new_call_id, new_tag, response_for
from switch.sip.parser import parse_message
from switch.store import importer
from switch.store.crypto import generate_key
from switch.store.models import CallRecord
from harness.ports import free_port

pytestmark = pytest.mark.e2e

ALICE = ("22000001", "alice-secret-1")
BOB = ("22000002", "bob-secret-2")
CAROL = ("22000003", "carol-secret-3")  # never registers
SDP_A = b"v=0\r\no=alice 100 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
SDP_B = b"v=0\r\no=bob 200 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\n"
SDP_C = b"v=0\r\no=carrier 300 5 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 42000 RTP/AVP 0\r\n"


# ============================================================================ a scripted UA


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, ua: UA) -> None:
        self.ua = ua

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = parse_message(data)
        if isinstance(msg, Request) and msg.method == "OPTIONS" and msg.to.tag is None and self.ua.answer_options:
            self.ua.send(response_for(msg, 200, to_tag=new_tag()), addr)  # trunk liveness pings
            return
        self.ua.queue.put_nowait((msg, addr))


@dataclass
class UA:
    host: str
    switch: tuple[str, int]
    user: str = "ua"
    answer_options: bool = True
    port: int = 0
    queue: asyncio.Queue[tuple[Message, tuple[str, int]]] = field(default_factory=asyncio.Queue)
    transport: asyncio.DatagramTransport | None = None

    async def start(self) -> UA:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Proto(self), local_addr=(self.host, 0))
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def contact(self) -> str:
        return f"<sip:{self.user}@{self.host}:{self.port}>"

    def send(self, msg: Message, dest: tuple[str, int] | None = None) -> None:
        assert self.transport is not None
        self.transport.sendto(msg.to_bytes(), dest or self.switch)

    async def expect(self, want: str | int, timeout: float = 3.0) -> Any:
        """The next message that is ``want`` (a method or a status); others (100, retransmissions) are skipped."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            remaining = end - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{self.user}@{self.host}: no {want} within {timeout}s")
            try:
                msg, _ = await asyncio.wait_for(self.queue.get(), remaining)
            except asyncio.TimeoutError:
                continue
            if isinstance(want, str) and isinstance(msg, Request) and msg.method == want:
                return msg
            if isinstance(want, int) and isinstance(msg, Response) and msg.status == want:
                return msg

    async def quiet(self, want: str | int, within: float = 0.4) -> None:
        """Assert that no ``want`` arrives for a while."""
        try:
            msg = await self.expect(want, within)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {msg!r}")

    def request(
        self,
        method: str,
        ruri: str,
        *,
        to: str,
        call_id: str,
        from_tag: str,
        cseq: int,
        to_tag: str | None = None,
        body: bytes = b"",
        headers: tuple[tuple[str, str], ...] = (),
        from_uri: str | None = None,
        branch: str | None = None,
    ) -> Request:
        h = Headers.of(
            [
                ("Via", f"SIP/2.0/UDP {self.host}:{self.port};branch={branch or new_branch()};rport"),
                ("Max-Forwards", "70"),
                ("From", f"<{from_uri or f'sip:{self.user}@{self.switch[0]}'}>;tag={from_tag}"),
                ("To", f"<{to}>" + (f";tag={to_tag}" if to_tag else "")),
                ("Call-ID", call_id),
                ("CSeq", f"{cseq} {method}"),
                ("Contact", self.contact),
                *headers,
            ]
        )
        if body:
            h.add("Content-Type", "application/sdp")
        return Request(method, ruri, h, body)

    def answer(self, req: Request, status: int, tag: str, body: bytes = b"") -> Response:
        resp = response_for(req, status, to_tag=tag)
        if 100 < status < 300:
            resp.headers.add("Contact", self.contact)
        if body:
            resp.headers.add("Content-Type", "application/sdp")
            resp.body = body
        self.send(resp)
        return resp


@dataclass
class Dlg:
    """The UA's side of one dialog: enough to send ACK, BYE, re-INVITE."""

    ua: UA
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    target: str
    cseq: int

    @classmethod
    def as_callee(cls, ua: UA, invite: Request, tag: str) -> Dlg:
        return cls(ua, invite.call_id, tag, invite.from_.tag or "", str(invite.to.uri), str(invite.from_.uri), str(invite.contacts[0].uri), 0)

    def request(self, method: str, body: bytes = b"", cseq: int | None = None, headers: tuple[tuple[str, str], ...] = ()) -> Request:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        return self.ua.request(
            method, self.target, to=self.remote_uri, call_id=self.call_id, from_tag=self.local_tag, cseq=cseq,
            to_tag=self.remote_tag, body=body, from_uri=self.local_uri, headers=headers,
        )


async def register(ua: UA, user: str, password: str) -> None:
    host = ua.switch[0]
    call_id, tag = new_call_id(), new_tag()
    headers = (("Expires", "300"),)
    ua.send(ua.request("REGISTER", f"sip:{host}", to=f"sip:{user}@{host}", call_id=call_id, from_tag=tag, cseq=1, headers=headers, from_uri=f"sip:{user}@{host}"))
    challenge: Response = await ua.expect(401)
    ch = digest.choose_challenge([c for v in challenge.headers.get_lines("WWW-Authenticate") for c in digest.parse_challenges(v)])
    auth = digest.DigestClient(user, password).authorize(ch, "REGISTER", f"sip:{host}")
    ua.send(ua.request("REGISTER", f"sip:{host}", to=f"sip:{user}@{host}", call_id=call_id, from_tag=tag, cseq=2, headers=(*headers, ("Authorization", auth)), from_uri=f"sip:{user}@{host}"))
    await ua.expect(200)


@dataclass
class Outgoing:
    """A call the UA placed: the INVITE as finally sent (after the 407) and its dialog once answered."""

    ua: UA
    invite: Request
    dialog: Dlg | None = None

    def ack_for(self, resp: Response, body: bytes = b"") -> Request:
        self.dialog = Dlg(self.ua, self.invite.call_id, self.invite.from_.tag or "", resp.to.tag or "",
                          str(self.invite.from_.uri), str(self.invite.to.uri), str(resp.contacts[0].uri), self.invite.cseq.seq)
        return self.dialog.request("ACK", body=body, cseq=self.invite.cseq.seq)

    def cancel(self) -> Request:
        inv = self.invite
        h = Headers.of([("Via", inv.headers.values("Via")[0]), ("Max-Forwards", "70"), ("From", inv.headers.get("From") or ""),
                        ("To", inv.headers.get("To") or ""), ("Call-ID", inv.call_id), ("CSeq", f"{inv.cseq.seq} CANCEL")])
        return Request("CANCEL", inv.uri, h)

    def non2xx_ack(self, resp: Response) -> Request:
        inv = self.invite
        h = Headers.of([("Via", inv.headers.values("Via")[0]), ("Max-Forwards", "70"), ("From", inv.headers.get("From") or ""),
                        ("To", resp.headers.get("To") or ""), ("Call-ID", inv.call_id), ("CSeq", f"{inv.cseq.seq} ACK")])
        return Request("ACK", inv.uri, h)


async def dial(ua: UA, user: str, password: str, number: str, *, body: bytes = SDP_A,
               headers: tuple[tuple[str, str], ...] = (), max_forwards: int = 70) -> Outgoing:
    """INVITE ``number`` as a line: the first attempt gets 407, the second carries credentials."""
    host = ua.switch[0]
    ruri = f"sip:{number}@{host}"
    call_id, tag = new_call_id(), new_tag()
    first = ua.request("INVITE", ruri, to=ruri, call_id=call_id, from_tag=tag, cseq=1, body=body, headers=headers, from_uri=f"sip:{user}@{host}")
    first.headers.set("Max-Forwards", str(max_forwards))
    ua.send(first)
    challenge: Response = await ua.expect(407)
    ua.send(Outgoing(ua, first).non2xx_ack(challenge))
    ch = digest.choose_challenge([c for v in challenge.headers.get_lines("Proxy-Authenticate") for c in digest.parse_challenges(v)])
    auth = digest.DigestClient(user, password).authorize(ch, "INVITE", ruri)
    second = ua.request("INVITE", ruri, to=ruri, call_id=call_id, from_tag=tag, cseq=2, body=body,
                        headers=(*headers, ("Proxy-Authorization", auth)), from_uri=f"sip:{user}@{host}")
    second.headers.set("Max-Forwards", str(max_forwards))
    ua.send(second)
    return Outgoing(ua, second)


# ============================================================================ the switch


@dataclass
class Net:
    services: app.Switch
    manager: CallManager
    alice: UA
    bob: UA
    carrier_a: UA
    carrier_b: UA
    emergency: UA
    stray: UA

    async def cdrs(self, count: int = 1, timeout: float = 3.0) -> list[CallRecord]:
        """The call records, once ``count`` of them are committed (the writer batches)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            async with self.services.session_factory() as s:
                rows = list((await s.execute(select(CallRecord).order_by(CallRecord.id))).scalars())
            if len(rows) >= count or loop.time() > end:
                return rows
            await asyncio.sleep(0.02)


def _doc(carrier_a: UA, carrier_b: UA, emergency: UA) -> dict[str, Any]:
    line = lambda port, cred: {"port": port, "number": cred[0], "password": cred[1]}  # noqa: E731
    return {
        "customers": [
            {"id": "C1", "name": "Alice", "adapters": [{"mac": "00:0E:08:00:00:01", "model": "spa112",
                                                          "lines": [line(1, ALICE), line(2, CAROL)]}]},
            {"id": "C2", "name": "Bob", "adapters": [{"mac": "00:0E:08:00:00:02", "model": "spa112", "lines": [line(1, BOB)]}]},
        ],
        "trunks": [
            {"name": "carrierA", "host": carrier_a.host, "port": carrier_a.port, "username": "acct-a", "password": "trunk-pw-a"},
            {"name": "carrierB", "host": carrier_b.host, "port": carrier_b.port},
            {"name": "nodnett", "host": emergency.host, "port": emergency.port, "emergency": True},
        ],
        "routes": [{"prefix": "+47", "trunks": ["carrierA", "carrierB"]}],
    }


StartSwitch = Callable[..., Awaitable[Net]]


@pytest.fixture
async def start_switch(tmp_path: Path) -> AsyncIterator[StartSwitch]:
    started: list[tuple[app.Switch, CallManager, list[UA]]] = []

    async def start(**overrides: Any) -> Net:
        port = free_port()
        sw = ("127.0.0.1", port)
        uas = [UA("127.0.0.1", sw, "22000001"), UA("127.0.0.1", sw, "22000002"), UA("127.0.0.2", sw, "carrier"),
               UA("127.0.0.3", sw, "carrier"), UA("127.0.0.4", sw, "psap"), UA("127.0.0.9", sw, "stranger")]
        for ua in uas:
            await ua.start()
        # Announcements off unless a test turns them on: these tests check SIP responses
        # (tests/e2e/test_announcements.py plays prompts).
        options: dict[str, Any] = {"announcements": False, **overrides}
        settings = Settings(
            sip_listen=[sw],
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}",
            key=generate_key().encode(),
            qualify_interval=0.0,
            rate_limit=0.0,
            **options,
        )
        services = await app.start(settings)
        doc = importer.parse_import_document(_doc(uas[2], uas[3], uas[4]), source="test")
        await importer.import_document(services.session_factory, doc, services.secret_box, settings.effective_realm())
        await services.lines.reload()
        manager = services.calls
        await manager.trunks.reload()  # the import ran after the switch had loaded its (empty) table
        started.append((services, manager, uas))
        net = Net(services, manager, *uas)
        await register(net.alice, *ALICE)
        await register(net.bob, *BOB)
        return net

    yield start
    for services, manager, uas in started:
        await manager.close()
        await app.stop(services)
        for ua in uas:
            ua.close()


# ============================================================================ tests


async def test_on_net_call_ring_answer_hangup_and_cdr(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = await dial(net.alice, *ALICE, "22000002")
    inv: Request = await net.bob.expect("INVITE")
    assert inv.body == SDP_A
    assert inv.uri == net.bob.contact[1:-1]
    assert str(inv.from_.uri) == "sip:22000001@127.0.0.1"
    assert inv.headers.get("P-Asserted-Identity") == "<sip:22000001@127.0.0.1>"
    assert inv.max_forwards == 69
    assert inv.call_id != call.invite.call_id  # a B2BUA: a dialog of its own
    bob_tag = new_tag()
    net.bob.answer(inv, 180, bob_tag)
    ringing: Response = await net.alice.expect(180)
    net.bob.answer(inv, 200, bob_tag, SDP_B)
    ok: Response = await net.alice.expect(200)
    assert ok.body == SDP_B and ok.to.tag == ringing.to.tag
    net.alice.send(call.ack_for(ok))
    ack: Request = await net.bob.expect("ACK")
    assert ack.body == b"" and ack.cseq.seq == inv.cseq.seq
    assert call.dialog is not None
    net.alice.send(call.dialog.request("BYE"))
    bye: Request = await net.bob.expect("BYE")
    assert 'cause=16' in (bye.headers.get("Reason") or "")
    net.bob.send(response_for(bye, 200))
    await net.alice.expect(200)
    (cdr,) = await net.cdrs()
    assert (cdr.direction.value, cdr.calling_number, cdr.dialled, cdr.normalised, cdr.number_class) == (
        "onnet", "+4722000001", "22000002", "+4722000002", "fixed")
    assert (cdr.final_code, cdr.cause, cdr.trunk_name) == (200, "normal", None)
    assert cdr.called_line_id is not None and cdr.answer_at is not None and cdr.end_at is not None
    assert cdr.call_id == call.invite.call_id
    # rated as it was written: a private line's Norwegian call is included in the subscription
    assert (cdr.charge_ore, cdr.zone, cdr.tariff_version) == (0, "norway_fixed", 1)
    # /metrics saw both registrations, the ringing and the answer, and the call's end
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(x.name, tuple(sorted(x.labels.items()))): x.value
               for fam in text_string_to_metric_families(net.services.metrics.render().decode()) for x in fam.samples}
    assert samples[("softswitch_register_outcomes_total", (("status", "200"),))] >= 2
    assert samples[("softswitch_register_latency_seconds_count", ())] >= 2
    assert samples[("softswitch_post_dial_delay_seconds_count", ())] == 1
    assert samples[("softswitch_call_setup_seconds_count", ())] == 1
    assert samples[("softswitch_calls_ended_total", (("cause", "normal"),))] == 1
    assert samples[("softswitch_calls_in_progress", ())] == 0


async def test_callee_busy_unregistered_and_unknown_numbers_are_distinct(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = await dial(net.alice, *ALICE, "22000002")
    inv = await net.bob.expect("INVITE")
    net.bob.answer(inv, 486, new_tag())
    busy: Response = await net.alice.expect(486)
    assert busy.headers.get("Reason") == 'Q.850;cause=17;text="busy"'
    net.alice.send(call.non2xx_ack(busy))

    call = await dial(net.alice, *ALICE, "22000003")
    unreg: Response = await net.alice.expect(480)
    assert unreg.headers.get("Reason") == 'Q.850;cause=20;text="unregistered"'
    net.alice.send(call.non2xx_ack(unreg))

    call = await dial(net.alice, *ALICE, "2200")
    short: Response = await net.alice.expect(484)
    net.alice.send(call.non2xx_ack(short))
    causes = [(c.cause, c.final_code) for c in await net.cdrs(3)]
    assert causes == [("busy", 486), ("unregistered", 480), ("incomplete_number", 484)]


async def test_cancel_while_ringing(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = await dial(net.alice, *ALICE, "22000002")
    inv = await net.bob.expect("INVITE")
    tag = new_tag()
    net.bob.answer(inv, 180, tag)
    await net.alice.expect(180)
    net.alice.send(call.cancel())
    await net.alice.expect(200)  # the CANCEL itself
    cancel: Request = await net.bob.expect("CANCEL")
    net.bob.send(response_for(cancel, 200))
    net.bob.answer(inv, 487, tag)
    terminated: Response = await net.alice.expect(487)
    net.alice.send(call.non2xx_ack(terminated))
    await net.bob.expect("ACK")  # the switch ACKs Bob's 487
    (cdr,) = await net.cdrs()
    assert (cdr.cause, cdr.final_code, cdr.duration_s) == ("cancelled", 487, 0)


async def test_outgoing_call_fails_over_and_the_carrier_hangs_up(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = await dial(net.alice, *ALICE, "91234567")
    first: Request = await net.carrier_a.expect("INVITE")
    assert first.uri == f"sip:+4791234567@127.0.0.2:{net.carrier_a.port}"
    assert first.headers.get("P-Asserted-Identity") == "<sip:+4722000001@127.0.0.1;user=phone>"
    assert str(first.from_.uri) == "sip:+4722000001@127.0.0.1;user=phone"
    net.carrier_a.answer(first, 503, new_tag())
    await net.carrier_a.expect("ACK")
    second: Request = await net.carrier_b.expect("INVITE")
    assert second.body == SDP_A and second.uri.startswith("sip:+4791234567@127.0.0.3")
    tag = new_tag()
    net.carrier_b.answer(second, 183, tag, SDP_C)
    early: Response = await net.alice.expect(183)
    assert early.body == SDP_C
    net.carrier_b.answer(second, 200, tag, SDP_C)
    ok = await net.alice.expect(200)
    net.alice.send(call.ack_for(ok))
    await net.carrier_b.expect("ACK")
    carrier_dialog = Dlg.as_callee(net.carrier_b, second, tag)
    net.carrier_b.send(carrier_dialog.request("BYE"))
    await net.carrier_b.expect(200)
    bye: Request = await net.alice.expect("BYE")
    net.alice.send(response_for(bye, 200))
    (cdr,) = await net.cdrs()
    assert (cdr.direction.value, cdr.trunk_name, cdr.route_prefix, cdr.cause, cdr.final_code) == (
        "outgoing", "carrierB", "+47", "normal", 200)
    assert cdr.number_class == "mobile" and cdr.normalised == "+4791234567"
    assert (cdr.charge_ore, cdr.zone, cdr.tariff_version) == (0, "norway_mobile", 1)


async def test_all_trunks_failing_is_our_503_not_theirs(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = await dial(net.alice, *ALICE, "91234567")
    net.carrier_a.answer(await net.carrier_a.expect("INVITE"), 500, new_tag())
    net.carrier_b.answer(await net.carrier_b.expect("INVITE"), 503, new_tag())
    resp: Response = await net.alice.expect(503)
    assert resp.headers.get("Reason") == 'Q.850;cause=34;text="congestion"'
    assert resp.headers.get("Retry-After") is None
    net.alice.send(call.non2xx_ack(resp))


async def test_carrier_challenge_is_answered_with_the_trunk_credentials(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = await dial(net.alice, *ALICE, "91234567")
    first: Request = await net.carrier_a.expect("INVITE")
    carrier_nonces = nonces.NonceManager(b"carrier-secret-0123456789", 60)
    ch = digest.challenges_for("carrier.example", carrier_nonces, 0.0, algorithms=("MD5",))[0]
    resp = response_for(first, 407, to_tag=new_tag())
    resp.headers.add("Proxy-Authenticate", ch.to_header())
    net.carrier_a.send(resp)
    again: Request = await net.carrier_a.expect("INVITE")
    creds = digest.parse_credentials(again.headers.get("Proxy-Authorization") or "")
    assert creds.username == "acct-a"
    assert digest.verify(creds, "INVITE", digest.ha1("acct-a", "carrier.example", "trunk-pw-a", "MD5"))
    assert again.call_id == first.call_id and again.cseq.seq == first.cseq.seq + 1 and again.from_.tag == first.from_.tag
    net.carrier_a.answer(again, 200, new_tag(), SDP_C)
    ok = await net.alice.expect(200)
    net.alice.send(call.ack_for(ok))
    await net.carrier_a.expect("ACK")


async def test_late_offer_answer_travels_in_the_ack(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = await dial(net.alice, *ALICE, "22000002", body=b"")
    inv: Request = await net.bob.expect("INVITE")
    assert inv.body == b"" and inv.headers.get("Content-Type") is None
    net.bob.answer(inv, 200, new_tag(), SDP_B)  # Bob's offer
    ok: Response = await net.alice.expect(200)
    assert ok.body == SDP_B
    await net.bob.quiet("ACK", 0.3)  # the switch must wait for Alice's answer
    net.alice.send(call.ack_for(ok, body=SDP_A))
    ack: Request = await net.bob.expect("ACK")
    assert ack.body == SDP_A and ack.headers.get("Content-Type") == "application/sdp"


async def test_hold_by_reinvite_and_info_are_relayed(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = await dial(net.alice, *ALICE, "22000002")
    inv = await net.bob.expect("INVITE")
    bob_tag = new_tag()
    net.bob.answer(inv, 200, bob_tag, SDP_B)
    ok = await net.alice.expect(200)
    net.alice.send(call.ack_for(ok))
    await net.bob.expect("ACK")
    assert call.dialog is not None
    hold = SDP_A.replace(b"o=alice 100 1", b"o=alice 100 2") + b"a=sendonly\r\n"
    net.alice.send(call.dialog.request("INVITE", body=hold))
    reinv: Request = await net.bob.expect("INVITE")
    assert reinv.body == hold and reinv.call_id == inv.call_id and reinv.to.tag == bob_tag
    held = SDP_B.replace(b"o=bob 200 1", b"o=bob 200 2") + b"a=recvonly\r\n"
    net.bob.answer(reinv, 200, bob_tag, held)
    ok2: Response = await net.alice.expect(200)
    assert ok2.body == held and ok2.cseq.method == "INVITE"
    net.alice.send(call.dialog.request("ACK", cseq=ok2.cseq.seq))
    await net.bob.expect("ACK")
    bob_dialog = Dlg.as_callee(net.bob, inv, bob_tag)
    info = bob_dialog.request("INFO", headers=(("Content-Type", "application/dtmf-relay"),))
    info.body = b"Signal=5\r\nDuration=160\r\n"
    net.bob.send(info)
    relayed: Request = await net.alice.expect("INFO")
    assert relayed.body == info.body and relayed.headers.get("Content-Type") == "application/dtmf-relay"
    net.alice.send(response_for(relayed, 200))
    await net.bob.expect(200)


async def test_incoming_call_from_a_trunk_needs_no_password_but_the_right_address(start_switch: StartSwitch) -> None:
    net = await start_switch()
    carrier = net.carrier_b
    ruri = "sip:+4722000002@127.0.0.1"
    inv = carrier.request("INVITE", ruri, to=ruri, call_id=new_call_id(), from_tag=new_tag(), cseq=1, body=SDP_C,
                          from_uri="sip:+4798765432@127.0.0.3")
    carrier.send(inv)
    at_bob: Request = await net.bob.expect("INVITE")
    assert str(at_bob.from_.uri) == "sip:98765432@127.0.0.1"  # national form on the phone's display
    assert at_bob.body == SDP_C
    net.bob.answer(at_bob, 486, new_tag())
    busy: Response = await carrier.expect(486)
    carrier.send(Outgoing(carrier, inv).non2xx_ack(busy))
    # The same INVITE from an address outside every trunk ACL is just an unauthenticated line.
    stray_inv = net.stray.request("INVITE", ruri, to=ruri, call_id=new_call_id(), from_tag=new_tag(), cseq=1, body=SDP_C)
    net.stray.send(stray_inv)
    await net.stray.expect(407)
    cdrs = await net.cdrs()
    assert [(c.direction.value, c.calling_number, c.cause) for c in cdrs] == [("incoming", "+4798765432", "busy")]


async def test_emergency_call_goes_to_the_emergency_trunk(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = await dial(net.alice, *ALICE, "112")
    inv: Request = await net.emergency.expect("INVITE")
    assert inv.uri == f"sip:112@127.0.0.4:{net.emergency.port}"
    assert inv.headers.get("P-Asserted-Identity") == "<sip:+4722000001@127.0.0.1;user=phone>"
    net.emergency.answer(inv, 200, new_tag(), SDP_C)
    ok = await net.alice.expect(200)
    net.alice.send(call.ack_for(ok))
    await net.emergency.expect("ACK")
    await net.carrier_a.quiet("INVITE", 0.2)
    assert normalise("112").is_emergency


async def test_a_call_that_comes_back_to_the_switch_is_stopped(start_switch: StartSwitch) -> None:
    net = await start_switch()
    await dial(net.alice, *ALICE, "91234567")
    out: Request = await net.carrier_a.expect("INVITE")
    token = out.headers.get("X-Switch-Loop")
    assert token
    # The carrier routes it straight back to us, keeping our header.
    ruri = "sip:+4722000002@127.0.0.1"
    back = net.carrier_a.request("INVITE", ruri, to=ruri, call_id=new_call_id(), from_tag=new_tag(), cseq=1, body=SDP_A,
                                 headers=(("X-Switch-Loop", token),))
    net.carrier_a.send(back)
    looped: Response = await net.carrier_a.expect(482)
    assert looped.headers.get("Reason") == 'Q.850;cause=25;text="loop"'
    await net.bob.quiet("INVITE", 0.2)


async def test_max_forwards_is_decremented_across_legs(start_switch: StartSwitch) -> None:
    net = await start_switch()
    await dial(net.alice, *ALICE, "22000002", max_forwards=1)
    inv: Request = await net.bob.expect("INVITE")
    assert inv.max_forwards == 0


async def test_no_answer_timeout_cancels_the_callee_and_answers_480(start_switch: StartSwitch) -> None:
    net = await start_switch(no_answer_timeout=1.0)
    call = await dial(net.alice, *ALICE, "22000002")
    inv = await net.bob.expect("INVITE")
    tag = new_tag()
    net.bob.answer(inv, 180, tag)
    await net.alice.expect(180)
    cancel: Request = await net.bob.expect("CANCEL", timeout=3.0)
    net.bob.send(response_for(cancel, 200))
    net.bob.answer(inv, 487, tag)
    resp: Response = await net.alice.expect(480)
    assert resp.headers.get("Reason") == 'Q.850;cause=19;text="no_answer"'
    net.alice.send(call.non2xx_ack(resp))
    (cdr,) = await net.cdrs()
    assert (cdr.cause, cdr.final_code) == ("no_answer", 480)


async def test_shutdown_ends_live_calls_with_bye_and_writes_their_cdrs(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = await dial(net.alice, *ALICE, "22000002")
    inv = await net.bob.expect("INVITE")
    net.bob.answer(inv, 200, new_tag(), SDP_B)
    ok = await net.alice.expect(200)
    net.alice.send(call.ack_for(ok))
    await net.bob.expect("ACK")
    closing = asyncio.get_running_loop().create_task(net.manager.close())
    bye_a: Request = await net.alice.expect("BYE")
    bye_b: Request = await net.bob.expect("BYE")
    net.alice.send(response_for(bye_a, 200))
    net.bob.send(response_for(bye_b, 200))
    await closing
    async with net.services.session_factory() as s:
        (cdr,) = (await s.execute(select(CallRecord))).scalars()
    assert (cdr.cause, cdr.final_code) == ("shutdown", 200)
    # New calls are refused while shutting down.
    ruri = "sip:22000002@127.0.0.1"
    net.alice.send(net.alice.request("INVITE", ruri, to=ruri, call_id=new_call_id(), from_tag=new_tag(), cseq=1, body=SDP_A))
    refused: Response = await net.alice.expect(503)
    assert refused.headers.get("Retry-After") == "30"


async def idle(net: Net, timeout: float = 2.0) -> None:
    """Every call, dialog and pending INVITE of the switch is gone (nothing leaks per call)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    env = net.manager.env
    while net.manager.calls or env.dialogs or env.server_tids:
        if loop.time() > end:
            raise AssertionError(f"left behind: calls={net.manager.calls} dialogs={env.dialogs} invites={env.server_tids}")
        await asyncio.sleep(0.02)


async def test_nothing_is_left_behind_after_answered_failed_and_cancelled_calls(start_switch: StartSwitch) -> None:
    net = await start_switch()
    # answered, hung up by the callee
    call = await dial(net.alice, *ALICE, "22000002")
    inv = await net.bob.expect("INVITE")
    tag = new_tag()
    net.bob.answer(inv, 200, tag, SDP_B)
    net.alice.send(call.ack_for(await net.alice.expect(200)))
    await net.bob.expect("ACK")
    net.bob.send(Dlg.as_callee(net.bob, inv, tag).request("BYE"))
    await net.bob.expect(200)
    net.alice.send(response_for(await net.alice.expect("BYE"), 200))
    # failed over to a trunk that answers busy
    call = await dial(net.alice, *ALICE, "91234567")
    net.carrier_a.answer(await net.carrier_a.expect("INVITE"), 486, new_tag())
    net.alice.send(call.non2xx_ack(await net.alice.expect(486)))
    # ended by BYE in the early dialog (an adapter that hangs up that way)
    call = await dial(net.alice, *ALICE, "22000002")
    inv = await net.bob.expect("INVITE")
    tag = new_tag()
    net.bob.answer(inv, 180, tag)
    ringing: Response = await net.alice.expect(180)
    early = Dlg(net.alice, call.invite.call_id, call.invite.from_.tag or "", ringing.to.tag or "",
                str(call.invite.from_.uri), str(call.invite.to.uri), str(ringing.contacts[0].uri), call.invite.cseq.seq)
    net.alice.send(early.request("BYE"))
    await net.alice.expect(200)
    terminated: Response = await net.alice.expect(487)
    net.alice.send(call.non2xx_ack(terminated))
    cancel = await net.bob.expect("CANCEL")
    net.bob.send(response_for(cancel, 200))
    net.bob.answer(inv, 487, tag)
    await net.bob.expect("ACK")
    await idle(net)
    assert [c.cause for c in await net.cdrs(3)] == ["normal", "busy", "cancelled"]


async def test_extensions_a_call_cannot_honour_are_refused(start_switch: StartSwitch) -> None:
    net = await start_switch()
    ruri = "sip:22000002@127.0.0.1"
    invite = net.alice.request("INVITE", ruri, to=ruri, call_id=new_call_id(), from_tag=new_tag(), cseq=1, body=SDP_A,
                               headers=(("Require", "100rel, timer"),))
    net.alice.send(invite)
    resp: Response = await net.alice.expect(420)
    assert resp.headers.get("Unsupported") == "100rel, timer"
    net.alice.send(Outgoing(net.alice, invite).non2xx_ack(resp))
    await net.bob.quiet("INVITE", 0.2)


async def test_redirects_are_followed_only_through_our_own_routing(start_switch: StartSwitch) -> None:
    net = await start_switch()
    carol = await UA("127.0.0.1", net.alice.switch, "22000003").start()
    try:
        await register(carol, *CAROL)
        # A 302 without a Contact leads nowhere.
        call = await dial(net.alice, *ALICE, "22000002")
        net.bob.answer(await net.bob.expect("INVITE"), 302, new_tag())
        refused: Response = await net.alice.expect(480)
        assert refused.headers.get("Reason") == 'Q.850;cause=23;text="redirect_refused"'
        net.alice.send(call.non2xx_ack(refused))
        await carol.quiet("INVITE", 0.2)

        # Bob's adapter forwards to Carol with a 302: followed, to Carol's registered contact.
        call = await dial(net.alice, *ALICE, "22000002")
        inv = await net.bob.expect("INVITE")
        moved = response_for(inv, 302, to_tag=new_tag())
        moved.headers.add("Contact", "<sip:22000003@203.0.113.66>")
        net.bob.send(moved)
        at_carol = await carol.expect("INVITE")
        assert at_carol.uri == carol.contact[1:-1]  # Carol's registered contact, not 203.0.113.66
        carol.answer(at_carol, 486, new_tag())
        busy: Response = await net.alice.expect(486)
        net.alice.send(call.non2xx_ack(busy))

        # A redirect to a premium-rate number somewhere else is not followed.
        call = await dial(net.alice, *ALICE, "22000002")
        inv = await net.bob.expect("INVITE")
        moved = response_for(inv, 302, to_tag=new_tag())
        moved.headers.add("Contact", "<sip:+4782012345@203.0.113.66>")
        net.bob.send(moved)
        refused = await net.alice.expect(480)
        net.alice.send(call.non2xx_ack(refused))
        await net.carrier_a.quiet("INVITE", 0.2)
        await idle(net)
    finally:
        carol.close()


async def test_anonymous_calls_hide_the_number_from_adapters_but_not_from_carriers(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = await dial(net.alice, *ALICE, "91234567", headers=(("Privacy", "id"),))
    out: Request = await net.carrier_a.expect("INVITE")
    assert str(out.from_.uri) == "sip:anonymous@anonymous.invalid" and out.from_.display == "Anonymous"
    assert out.headers.get("P-Asserted-Identity") == "<sip:+4722000001@127.0.0.1;user=phone>"
    assert out.headers.get("Privacy") == "id"
    net.carrier_a.answer(out, 603, new_tag())
    declined: Response = await net.alice.expect(603)
    net.alice.send(call.non2xx_ack(declined))

    call = await dial(net.alice, *ALICE, "22000002", headers=(("Privacy", "id"),))
    inv: Request = await net.bob.expect("INVITE")
    assert str(inv.from_.uri) == "sip:anonymous@anonymous.invalid"
    assert inv.headers.get("P-Asserted-Identity") is None and inv.headers.get("Privacy") is None
    net.bob.answer(inv, 486, new_tag())
    net.alice.send(call.non2xx_ack(await net.alice.expect(486)))
    rows = await net.cdrs(2)
    assert [(r.calling_number, r.cause) for r in rows] == [("+4722000001", "declined"), ("+4722000001", "busy")]


async def test_a_silent_trunk_is_abandoned_after_the_setup_timeout(start_switch: StartSwitch) -> None:
    net = await start_switch()
    net.manager.env.setup_timeout = 0.5
    call = await dial(net.alice, *ALICE, "91234567")
    first: Request = await net.carrier_a.expect("INVITE")  # ... and carrier A never answers
    second: Request = await net.carrier_b.expect("INVITE", timeout=2.0)
    assert second.body == first.body
    net.carrier_b.answer(second, 200, new_tag(), SDP_C)
    ok = await net.alice.expect(200)
    net.alice.send(call.ack_for(ok))
    await net.carrier_b.expect("ACK")
    # Carrier A wakes up late and answers the abandoned INVITE: the switch ACKs it and hangs up at once.
    tag = new_tag()
    net.carrier_a.answer(first, 200, tag, SDP_C)
    await net.carrier_a.expect("ACK")
    bye: Request = await net.carrier_a.expect("BYE")
    assert bye.to.tag == tag
    net.carrier_a.send(response_for(bye, 200))
    # Its 200 retransmitted: ACKed again, but no second BYE.
    net.carrier_a.answer(first, 200, tag, SDP_C)
    await net.carrier_a.expect("ACK")
    await net.carrier_a.quiet("BYE", 0.3)
    await net.alice.quiet("BYE", 0.1)


async def test_update_from_the_callee_reaches_the_caller(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = await dial(net.alice, *ALICE, "22000002")
    inv = await net.bob.expect("INVITE")
    tag = new_tag()
    net.bob.answer(inv, 200, tag, SDP_B)
    net.alice.send(call.ack_for(await net.alice.expect(200)))
    await net.bob.expect("ACK")
    update = Dlg.as_callee(net.bob, inv, tag).request("UPDATE", body=SDP_B.replace(b"200 1", b"200 2"))
    net.bob.send(update)
    at_alice: Request = await net.alice.expect("UPDATE")
    assert at_alice.body == update.body
    answer = response_for(at_alice, 200)
    answer.headers.add("Content-Type", "application/sdp")
    answer.body = SDP_A
    net.alice.send(answer)
    back: Response = await net.bob.expect(200)
    assert back.cseq.method == "UPDATE" and back.body == SDP_A


async def test_max_forwards_zero_is_too_many_hops(start_switch: StartSwitch) -> None:
    net = await start_switch()
    ruri = "sip:22000002@127.0.0.1"
    inv = net.alice.request("INVITE", ruri, to=ruri, call_id=new_call_id(), from_tag=new_tag(), cseq=1, body=SDP_A)
    inv.headers.set("Max-Forwards", "0")
    net.alice.send(inv)
    await net.alice.expect(483)
    await net.bob.quiet("INVITE", 0.2)


async def test_emergency_calls_survive_a_failed_digest_from_a_registered_adapter(start_switch: StartSwitch) -> None:
    net = await start_switch()
    # A wrong password (the adapter's config is broken, or its address is throttled): still routed,
    # because this exact address holds Alice's registration.
    call = await dial(net.alice, ALICE[0], "not-the-password", "112")
    inv: Request = await net.emergency.expect("INVITE")
    assert inv.headers.get("P-Asserted-Identity") == "<sip:+4722000001@127.0.0.1;user=phone>"
    net.emergency.answer(inv, 486, new_tag())
    net.alice.send(call.non2xx_ack(await net.alice.expect(486)))
    # Not for other numbers, and not from an address without the registration.
    call = await dial(net.alice, ALICE[0], "not-the-password", "22000002")
    net.alice.send(call.non2xx_ack(await net.alice.expect(403)))
    stray = UA("127.0.0.9", net.alice.switch, "22000001")
    await stray.start()
    try:
        call = await dial(stray, ALICE[0], "not-the-password", "112")
        stray.send(call.non2xx_ack(await stray.expect(403)))
    finally:
        stray.close()
    await net.emergency.quiet("INVITE", 0.2)
