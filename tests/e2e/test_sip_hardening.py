"""What an outsider's odd or hostile SIP gets from a running switch, over real UDP.

The switch is the real composition (see ``test_calls_py``); the peers are the
same scripted UAs. Each test reproduces one finding of the hardening review:
reflection through a spoofed Via, state left by unauthenticated INVITEs, the
RFC 4475/5118 messages a server must still answer, and what ``Server`` tells.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from switch.sip import digest
from switch.sip.message import Request, Response, new_branch, new_call_id, new_tag, response_for

from .test_calls_py import ALICE, SDP_A, SDP_B, UA, Dlg, StartSwitch, dial, register, start_switch  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e


async def _collect(ua: UA, within: float) -> list[Response | Request]:
    """Everything ``ua`` receives for ``within`` seconds."""
    await asyncio.sleep(within)
    got = []
    while not ua.queue.empty():
        got.append(ua.queue.get_nowait()[0])
    return got  # type: ignore[return-value]


def _raw_invite(ua: UA, ruri: str, via_extra: str = "") -> bytes:
    return (
        f"INVITE {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {ua.host}:{ua.port};branch={new_branch()}{via_extra}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:intruder@{ua.host}>;tag={new_tag()}\r\nTo: <{ruri}>\r\n"
        f"Call-ID: {new_call_id()}\r\nCSeq: 1 INVITE\r\nContact: <sip:intruder@{ua.host}:{ua.port}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def test_an_unauthenticated_invite_gets_one_407_at_its_source_and_leaves_nothing(start_switch: StartSwitch) -> None:
    net = await start_switch()
    victim = await UA("127.0.0.5", net.stray.switch, "victim").start()
    try:
        layer = net.services.endpoint.layer
        before = layer.live_server_transactions
        # No rport; a received= and maddr= naming someone else: the reflection recipe.
        for extra in (f";received={victim.host}", f";maddr={victim.host}"):
            assert net.stray.transport is not None
            net.stray.transport.sendto(_raw_invite(net.stray, "sip:+4790000000@127.0.0.1", extra), net.stray.switch)
        got = await _collect(net.stray, 1.7)  # Timer G would have resent each 407 at 0.5 s and 1.5 s
        assert [m.status for m in got if isinstance(m, Response)] == [407, 407]
        assert all(m.headers.get("Server") == "softswitch" for m in got)  # no version for scanners
        assert await _collect(victim, 0.0) == []
        assert layer.live_server_transactions == before
    finally:
        victim.close()


def _torture(name: str) -> bytes:
    from pathlib import Path

    return (Path(__file__).parent.parent / "sip" / "data" / "torture" / f"{name}.dat").read_bytes()


@pytest.mark.parametrize("name, status", [("badinv01", 400), ("badvers", 505)])
async def test_a_request_with_a_malformed_via_still_gets_its_error_back(start_switch: StartSwitch, name: str, status: int) -> None:
    """RFC 4475 §3.1.2.1 and §3.1.2.16: the Via cannot be read, so the answer goes to the source."""
    net = await start_switch()
    assert net.stray.transport is not None
    net.stray.transport.sendto(_torture(name), net.stray.switch)
    resp = await net.stray.expect(status, 2.0)
    assert resp.status == status


async def test_an_rfc2543_invite_over_udp_is_accepted(start_switch: StartSwitch) -> None:
    """RFC 4475 §3.4.1: no branch, no From tag, no Max-Forwards, no Content-Length (and no Contact)."""
    net = await start_switch()
    carrier = net.carrier_a  # a trunk's address: no digest needed, the call is routed to Bob
    data = (
        _torture("inv2543")
        .replace(b"sip:UserB@example.com SIP/2.0", b"sip:22000002@127.0.0.1 SIP/2.0")
        .replace(b"iftgw.example.com\r\n", f"{carrier.host}:{carrier.port}\r\n".encode())
    )
    assert carrier.transport is not None
    carrier.transport.sendto(data, carrier.switch)
    invite: Request = await net.bob.expect("INVITE", 3.0)
    net.bob.answer(invite, 486, new_tag())
    busy: Response = await carrier.expect(486, 3.0)
    assert busy.call_id == "inv2543.1717@ift.client.example.com"


@pytest.mark.parametrize(
    "ruri",
    [
        "sip:22000002@[2001:db8::10",  # unterminated IPv6 reference
        "sip:22000002@[2001:db8:::192.0.2.1]",  # three colons (RFC 5118 §4.10)
        "sip:22000002@2001:db8::10",  # no brackets (RFC 5118 §4.2)
    ],
)
async def test_an_invalid_ipv6_reference_in_the_request_uri_is_400(start_switch: StartSwitch, ruri: str) -> None:
    net = await start_switch()
    assert net.alice.transport is not None
    net.alice.transport.sendto(_raw_invite(net.alice, ruri, ";rport"), net.alice.switch)
    got = await _collect(net.alice, 0.6)
    assert [m.status for m in got if isinstance(m, Response)] == [400]


async def test_an_unknown_proxy_require_option_is_420_not_forwarded(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call = net.alice.request("INVITE", "sip:22000002@127.0.0.1", to="sip:22000002@127.0.0.1", call_id=new_call_id(),
                             from_tag=new_tag(), cseq=1, body=SDP_A, headers=(("Proxy-Require", "x-no-such-thing"),))
    net.alice.send(call)
    resp: Response = await net.alice.expect(420)
    assert resp.headers.get("Unsupported") == "x-no-such-thing"
    await net.bob.quiet("INVITE")


async def _answered(net: object) -> tuple[object, Request, str]:
    n = net  # an answered call alice -> bob; returns (alice's call, bob's INVITE, bob's tag)
    call = await dial(n.alice, *ALICE, "22000002")  # type: ignore[attr-defined]
    inv: Request = await n.bob.expect("INVITE")  # type: ignore[attr-defined]
    tag = new_tag()
    n.bob.answer(inv, 200, tag, SDP_B)  # type: ignore[attr-defined]
    ok: Response = await n.alice.expect(200)  # type: ignore[attr-defined]
    n.alice.send(call.ack_for(ok))  # type: ignore[attr-defined]
    await n.bob.expect("ACK")  # type: ignore[attr-defined]
    return call, inv, tag


async def test_a_bye_from_elsewhere_or_with_the_wrong_from_tag_does_not_end_the_call(start_switch: StartSwitch) -> None:
    net = await start_switch()
    call, inv, bob_tag = await _answered(net)
    bob_dialog = Dlg.as_callee(net.bob, inv, bob_tag)
    # the same BYE bob would send, but from another address
    forged = Dlg.as_callee(net.stray, inv, bob_tag).request("BYE")
    forged.headers.set("Via", f"SIP/2.0/UDP {net.stray.host}:{net.stray.port};branch={new_branch()};rport")
    net.stray.send(forged)
    assert (await net.stray.expect(481)).status == 481
    # from bob's address, with a From tag that is not the dialog's
    wrong_tag = Dlg(net.bob, inv.call_id, "not-the-tag", inv.from_.tag or "", str(inv.to.uri), str(inv.from_.uri),
                    str(inv.contacts[0].uri), 0).request("BYE")
    net.bob.send(wrong_tag)
    assert (await net.bob.expect(481)).status == 481
    await net.alice.quiet("BYE", 0.5)
    # the real one still ends it
    net.bob.send(bob_dialog.request("BYE"))
    await net.bob.expect(200)
    bye: Request = await net.alice.expect("BYE")
    net.alice.send(response_for(bye, 200))


@pytest.mark.parametrize(
    "content_type, body, status",
    [
        ("text/html", b"<script>alert(1)</script>", 415),
        ("application/sdp", b"this is not sdp at all\r\n", 400),
    ],
)
async def test_bodies_that_are_not_well_formed_sdp_are_not_relayed(
    start_switch: StartSwitch, content_type: str, body: bytes, status: int
) -> None:
    net = await start_switch()
    ua = net.alice
    ruri = "sip:22000002@127.0.0.1"
    call_id, tag = new_call_id(), new_tag()

    def invite(cseq: int, *extra: tuple[str, str]) -> Request:
        req = ua.request("INVITE", ruri, to=ruri, call_id=call_id, from_tag=tag, cseq=cseq, headers=extra,
                         from_uri="sip:22000001@127.0.0.1")
        req.headers.add("Content-Type", content_type)
        req.body = body
        return req

    ua.send(invite(1))
    challenge: Response = await ua.expect(407)
    ch = digest.choose_challenge([c for v in challenge.headers.get_lines("Proxy-Authenticate") for c in digest.parse_challenges(v)])
    ua.send(invite(2, ("Proxy-Authorization", digest.DigestClient(*ALICE).authorize(ch, "INVITE", ruri))))
    resp: Response = await ua.expect(status)
    if status == 415:
        assert resp.headers.get("Accept") == "application/sdp"
    await net.bob.quiet("INVITE")


async def test_info_lines_for_registration_and_each_finished_call(start_switch: StartSwitch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    net = await start_switch()  # registers alice and bob
    call, inv, bob_tag = await _answered(net)
    net.bob.send(Dlg.as_callee(net.bob, inv, bob_tag).request("BYE"))
    await net.bob.expect(200)
    bye: Request = await net.alice.expect("BYE")
    net.alice.send(response_for(bye, 200))
    await asyncio.sleep(0.2)
    text = [r.getMessage() for r in caplog.records]
    assert any(t.startswith("line +4722000001 registered from 127.0.0.1:") for t in text), text
    ended = [t for t in text if t.startswith("call ended: ")]
    assert len(ended) == 1 and "+4722000001 -> +4722000002" in ended[0] and "cause=normal" in ended[0]
    # a refresh is not news; an unregistration is
    before = len(caplog.records)
    await register(net.alice, *ALICE)
    assert not any("registered from" in r.getMessage() for r in caplog.records[before:])
    host = net.alice.switch[0]
    cid, tag = new_call_id(), new_tag()
    net.alice.send(net.alice.request("REGISTER", f"sip:{host}", to=f"sip:22000001@{host}", call_id=cid, from_tag=tag,
                                     cseq=1, headers=(("Expires", "0"),), from_uri=f"sip:22000001@{host}"))
    ch: Response = await net.alice.expect(401)
    c = digest.choose_challenge([x for v in ch.headers.get_lines("WWW-Authenticate") for x in digest.parse_challenges(v)])
    auth = digest.DigestClient(*ALICE).authorize(c, "REGISTER", f"sip:{host}")
    net.alice.send(net.alice.request("REGISTER", f"sip:{host}", to=f"sip:22000001@{host}", call_id=cid, from_tag=tag,
                                     cseq=2, headers=(("Expires", "0"), ("Authorization", auth)), from_uri=f"sip:22000001@{host}"))
    await net.alice.expect(200)
    await asyncio.sleep(0.1)
    assert any(r.getMessage().startswith("line +4722000001 unregistered") for r in caplog.records[before:])
