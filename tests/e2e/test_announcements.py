"""Announcements end to end: a refused call hears its prompt as early media over real UDP.

The switch runs in-process (the real composition, as in test_calls_py.py) with
announcements on and an RTP port range of its own; the callers are scripted
UAs with a raw UDP socket as their RTP port. What arrives is decoded and
compared byte for byte with the shipped prompt files.
"""

from __future__ import annotations

import asyncio
import copy
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from switch.media.catalogue import PROMPT_DIR, load_catalogue
from switch.media.library import PromptLibrary, clip_path
from switch.media.rtp import Packetiser, RtpPacket, parse
from switch.sip.message import Request, Response, new_call_id, new_tag
from switch.sip.sdp import parse_sdp
from switch.store import importer
from switch.store.models import CallRecord
from tests.e2e.test_calls_py import ALICE, CAROL, Net, StartSwitch, _doc, dial, start_switch  # noqa: F401 (fixture)
from harness.ports import free_port

pytestmark = pytest.mark.e2e

CATALOGUE = load_catalogue()


def _offer(port: int, formats: str = "8 0 101", host: str = "127.0.0.1") -> bytes:
    return (
        f"v=0\r\no=ata 5 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {formats}\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    ).encode()


@dataclass
class RtpSink:
    """A caller's RTP port: collects every packet that arrives."""

    host: str = "127.0.0.1"
    sock: socket.socket = field(init=False)
    packets: list[RtpPacket] = field(default_factory=list)
    sources: set[tuple[str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.sock.setblocking(False)
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _read(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(2048)
            except BlockingIOError:
                return
            self.packets.append(parse(data))
            self.sources.add(addr)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


def _rtp_range() -> tuple[int, int]:
    base = free_port("udp")
    base -= base % 2
    return base, base + 40


async def _start(start_switch: StartSwitch, **overrides: object) -> Net:
    return await start_switch(announcements=True, rtp_ports=_rtp_range(), **overrides)


def _expected(keys: str | tuple[str, ...], language: str, encoding: str) -> bytes:
    selection = CATALOGUE.select(keys, language)
    assert selection is not None
    return PromptLibrary().audio(selection, encoding)


def _check_stream(packets: list[RtpPacket], payload_type: int) -> bytes:
    assert packets, "no RTP arrived"
    assert {p.ssrc for p in packets} == {packets[0].ssrc}
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert {p.payload_type for p in packets} == {payload_type}
    assert [(p.sequence - packets[0].sequence) & 0xFFFF for p in packets] == list(range(len(packets)))
    assert [(p.timestamp - packets[0].timestamp) & 0xFFFFFFFF for p in packets] == [160 * i for i in range(len(packets))]
    assert all(len(p.payload) == 160 for p in packets)
    return b"".join(p.payload for p in packets)


async def _cdr(net: Net, call_id: str) -> CallRecord:
    for _ in range(150):
        async with net.services.session_factory() as s:
            row = (await s.execute(select(CallRecord).where(CallRecord.call_id == call_id))).scalar_one_or_none()
        if row is not None:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"no CDR for {call_id}")


async def test_refused_call_hears_its_prompt_then_the_final_response(start_switch: StartSwitch) -> None:
    net = await _start(start_switch)
    sink = RtpSink()
    try:
        call = await dial(net.alice, *ALICE, "2200", body=_offer(sink.port))  # too short: incomplete_number
        early: Response = await net.alice.expect(183)
        answer = parse_sdp(early.body)
        (m,) = answer.media
        assert early.headers.get("Content-Type") == "application/sdp"
        assert m.formats == ("8",) and m.direction == "sendonly" and m.ptime == 20  # PCMA: the offer's first
        final: Response = await net.alice.expect(484, timeout=15)
        assert final.headers.get("Reason") == 'Q.850;cause=28;text="incomplete_number"'
        assert final.to.tag == early.to.tag
        net.alice.send(call.non2xx_ack(final))
        expected = _expected("incomplete_number", "nb", "PCMA")
        await asyncio.sleep(0.05)
        heard = _check_stream(sink.packets, 8)
        pad = (-len(expected)) % 160
        assert heard == expected + b"\xd5" * pad  # the prompt, byte for byte, and nothing after
        assert clip_path(PROMPT_DIR, "incomplete_number", "nb").read_bytes() in heard
        assert sink.sources == {("127.0.0.1", m.port)}  # from the port the answer named
        # it took as long as the prompt: paced, not blasted
        cdr = await _cdr(net, call.invite.call_id)
        assert (cdr.cause, cdr.final_code, cdr.support_code) == ("incomplete_number", 484, "14")
        player = net.manager.env.announcer.player  # type: ignore[union-attr]
        assert player.active == 0 and player.pool.in_use == 0  # type: ignore[union-attr]
    finally:
        sink.close()


async def test_a_carrier_call_to_one_of_our_lines_speaks_the_lines_language_in_pcmu(start_switch: StartSwitch) -> None:
    net = await _start(start_switch)
    doc = copy.deepcopy(_doc(net.carrier_a, net.carrier_b, net.emergency))
    doc["customers"][0]["adapters"][0]["lines"][1]["language"] = "en"  # Carol's line speaks English
    parsed = importer.parse_import_document(doc, source="test")
    await importer.import_document(net.services.session_factory, parsed, net.services.secret_box,
                                   net.services.settings.effective_realm())
    await net.services.lines.reload()
    sink = RtpSink("127.0.0.2")
    try:
        ruri = f"sip:+47{CAROL[0]}@127.0.0.1"
        invite = net.carrier_a.request("INVITE", ruri, to=ruri, call_id=new_call_id(), from_tag=new_tag(), cseq=1,
                                       body=_offer(sink.port, "0 8", host="127.0.0.2"), from_uri="sip:+4791234567@127.0.0.2")
        net.carrier_a.send(invite)
        early: Response = await net.carrier_a.expect(183)
        assert parse_sdp(early.body).media[0].formats == ("0",)
        final: Response = await net.carrier_a.expect(480, timeout=15)
        assert final.headers.get("Reason") == 'Q.850;cause=20;text="unregistered"'
        await asyncio.sleep(0.05)
        heard = _check_stream(sink.packets, 0)
        assert heard.startswith(_expected("unregistered", "en", "PCMU"))
        assert _expected("unregistered", "nb", "PCMU")[3000:6000] not in heard
    finally:
        sink.close()


async def test_rtp_latches_to_the_callers_nat_address_only_from_its_signalling_ip(start_switch: StartSwitch) -> None:
    net = await _start(start_switch)
    private = RtpSink()  # the address the adapter wrote into its SDP
    nat = RtpSink()  # where its packets really come from (same IP, another port)
    stranger = RtpSink("127.0.0.9")
    try:
        call = await dial(net.alice, *ALICE, "2200", body=_offer(private.port))
        early: Response = await net.alice.expect(183)
        our_port = parse_sdp(early.body).media[0].port
        for _ in range(100):
            if private.packets:
                break
            await asyncio.sleep(0.01)
        assert private.packets, "before latching RTP goes to the SDP address"
        hello = Packetiser(0, 1234, 1, 1).packet(b"\xff" * 160)
        stranger.sock.sendto(hello, ("127.0.0.1", our_port))
        await asyncio.sleep(0.1)
        nat.sock.sendto(hello, ("127.0.0.1", our_port))
        for _ in range(100):
            if len(nat.packets) >= 20:
                break
            await asyncio.sleep(0.02)
        assert len(nat.packets) >= 20, "after the caller's first packet RTP follows its source address"
        net.alice.send(call.cancel())  # heard enough: the caller hangs up
        ended: Response = await net.alice.expect(487)
        net.alice.send(call.non2xx_ack(ended))
        await asyncio.sleep(0.05)
        assert not stranger.packets
        before = len(private.packets)
        both = sorted(private.packets + nat.packets, key=lambda p: (p.sequence - private.packets[0].sequence) & 0xFFFF)
        heard = _check_stream(both, 8)  # one stream, no packet lost or doubled in the move
        assert heard == _expected("incomplete_number", "nb", "PCMA")[: len(heard)]
        assert both[:before] == private.packets  # first to the SDP address, then only to the NAT address
    finally:
        for s in (private, nat, stranger):
            s.close()


async def test_cancel_stops_the_prompt_and_frees_the_port(start_switch: StartSwitch) -> None:
    net = await _start(start_switch)
    sink = RtpSink()
    try:
        call = await dial(net.alice, *ALICE, "2200", body=_offer(sink.port))
        await net.alice.expect(183)
        await asyncio.sleep(0.3)
        net.alice.send(call.cancel())
        await net.alice.expect(200)
        terminated: Response = await net.alice.expect(487)
        net.alice.send(call.non2xx_ack(terminated))
        player = net.manager.env.announcer.player  # type: ignore[union-attr]
        assert player.active == 0 and player.pool.in_use == 0  # type: ignore[union-attr]
        count = len(sink.packets)
        assert 5 <= count <= 40
        await asyncio.sleep(0.2)
        assert len(sink.packets) == count  # nothing after the CANCEL
    finally:
        sink.close()


async def test_plain_final_response_without_g711_for_busy_and_past_the_limit(start_switch: StartSwitch) -> None:
    net = await _start(start_switch, max_announcements=1)
    sink = RtpSink()
    try:
        # G.729 only: nothing we can play
        call = await dial(net.alice, *ALICE, "2200", body=_offer(sink.port, "18"))
        final: Response = await net.alice.expect(484)
        net.alice.send(call.non2xx_ack(final))
        # busy stays the adapter's own tone
        call = await dial(net.alice, *ALICE, "22000002", body=_offer(sink.port))
        inv: Request = await net.bob.expect("INVITE")
        net.bob.answer(inv, 486, new_tag())
        busy: Response = await net.alice.expect(486)
        net.alice.send(call.non2xx_ack(busy))
        # one announcement allowed: the second refusal at the same time is plain
        first = await dial(net.alice, *ALICE, "2200", body=_offer(sink.port))
        await net.alice.expect(183)
        second = await dial(net.alice, *ALICE, "22", body=_offer(sink.port))
        plain: Response = await net.alice.expect(484, timeout=2)
        assert plain.call_id == second.invite.call_id
        net.alice.send(second.non2xx_ack(plain))
        net.alice.send(first.cancel())  # the caller hangs up during the prompt
        done: Response = await net.alice.expect(487)
        assert done.call_id == first.invite.call_id
        net.alice.send(first.non2xx_ack(done))
        cdr = await _cdr(net, second.invite.call_id)
        assert cdr.support_code == "14"  # the code is recorded even when the prompt could not be played
    finally:
        sink.close()
    await net.alice.quiet(183, within=0.2)


async def test_an_installed_recording_is_heard_on_the_next_call_without_a_restart(
    start_switch: StartSwitch, tmp_path: Path
) -> None:
    import subprocess

    from switch.media.install import install_prompt

    prompts = tmp_path / "operator-prompts"
    net = await _start(start_switch, prompt_dir=str(prompts))
    wav = tmp_path / "recording.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(wav), "synth", "0.6", "sine", "523", "vol", "0.4"],
                   check=True, capture_output=True)
    clip = install_prompt(prompts, "incomplete_number", "nb", wav).read_bytes()  # while the switch runs
    sink = RtpSink()
    try:
        call = await dial(net.alice, *ALICE, "2200", body=_offer(sink.port))
        await net.alice.expect(183)
        final: Response = await net.alice.expect(484, timeout=10)
        net.alice.send(call.non2xx_ack(final))
        await asyncio.sleep(0.05)
        heard = _check_stream(sink.packets, 8)
        assert clip in heard  # the operator's recording ...
        assert clip_path(PROMPT_DIR, "incomplete_number", "nb").read_bytes()[:4000] not in heard
        assert clip_path(PROMPT_DIR, "digit_4", "nb").read_bytes() in heard  # ... still ends with "kode 1 4"
    finally:
        sink.close()


async def test_a_barred_number_speaks_the_barring_in_the_callers_language(start_switch: StartSwitch) -> None:
    from switch.store.models import BarringCategory

    net = await _start(start_switch)
    doc = copy.deepcopy(_doc(net.carrier_a, net.carrier_b, net.emergency))
    doc["customers"][0]["language"] = "en"  # Alice's customer is English-speaking; her line follows it
    doc["customers"][0]["adapters"][0]["lines"][0]["language"] = "en"
    parsed = importer.parse_import_document(doc, source="test")
    await importer.import_document(net.services.session_factory, parsed, net.services.secret_box,
                                   net.services.settings.effective_realm())
    await net.services.lines.reload()
    alice = net.services.lines.by_number["+47" + ALICE[0]]
    assert alice.language == "en"
    await net.services.policy.set_line_barring(alice.line_id, frozenset({BarringCategory.INTERNATIONAL}), "operator:test")
    sink = RtpSink()
    try:
        call = await dial(net.alice, *ALICE, "004612345678", body=_offer(sink.port, "0 8"))
        early: Response = await net.alice.expect(183)
        assert parse_sdp(early.body).media[0].formats == ("0",)
        final: Response = await net.alice.expect(403, timeout=15)
        assert final.headers.get("Reason") == 'Q.850;cause=21;text="barred_international"'
        net.alice.send(call.non2xx_ack(final))
        await net.carrier_a.quiet("INVITE", within=0.1)  # never routed
        await asyncio.sleep(0.05)
        heard = _check_stream(sink.packets, 0)
        expected = _expected("barred_international", "en", "PCMU")
        assert heard[: len(expected)] == expected  # "International calls are barred on your line. Code 2 1."
        cdr = await _cdr(net, call.invite.call_id)
        assert (cdr.cause, cdr.final_code, cdr.support_code) == ("barred_international", 403, "21")
    finally:
        sink.close()


async def test_an_early_bye_or_a_shutdown_ends_the_prompt_at_once(start_switch: StartSwitch) -> None:
    net = await _start(start_switch)
    sink = RtpSink()
    try:
        call = await dial(net.alice, *ALICE, "2200", body=_offer(sink.port))
        early: Response = await net.alice.expect(183)
        call.ack_for(early)  # the early dialog, for the BYE
        assert call.dialog is not None
        net.alice.send(call.dialog.request("BYE"))  # RFC 3261 §15: the caller may end an early dialog
        await net.alice.expect(200)
        ended: Response = await net.alice.expect(487)
        net.alice.send(call.non2xx_ack(ended))
        player = net.manager.env.announcer.player  # type: ignore[union-attr]
        assert player.active == 0  # type: ignore[union-attr]

        call = await dial(net.alice, *ALICE, "2200", body=_offer(sink.port))
        await net.alice.expect(183)
        t0 = asyncio.get_running_loop().time()
        closing = asyncio.ensure_future(net.manager.close())
        final: Response = await net.alice.expect(484, timeout=2)  # not after the whole prompt
        assert asyncio.get_running_loop().time() - t0 < 1.0
        assert final.headers.get("Reason") == 'Q.850;cause=28;text="incomplete_number"'
        net.alice.send(call.non2xx_ack(final))
        await closing
        assert player.active == 0 and player.pool.in_use == 0  # type: ignore[union-attr]
    finally:
        sink.close()


async def test_after_ringing_without_sdp_a_decline_is_announced_but_not_after_early_media(start_switch: StartSwitch) -> None:
    net = await _start(start_switch)
    sink = RtpSink()
    try:
        call = await dial(net.alice, *ALICE, "22000002", body=_offer(sink.port))
        inv: Request = await net.bob.expect("INVITE")
        tag = new_tag()
        net.bob.answer(inv, 180, tag)
        ringing: Response = await net.alice.expect(180)
        net.bob.answer(inv, 603, tag)
        early: Response = await net.alice.expect(183)
        assert early.to.tag == ringing.to.tag and parse_sdp(early.body).media[0].direction == "sendonly"
        final: Response = await net.alice.expect(603, timeout=10)
        assert final.headers.get("Reason") == 'Q.850;cause=21;text="declined"'
        net.alice.send(call.non2xx_ack(final))
        await asyncio.sleep(0.05)
        assert _check_stream(sink.packets, 8).startswith(_expected("declined", "nb", "PCMA"))

        far_end = b"v=0\r\no=bob 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 8\r\n"
        call = await dial(net.alice, *ALICE, "22000002", body=_offer(sink.port))
        inv = await net.bob.expect("INVITE")
        tag = new_tag()
        net.bob.answer(inv, 183, tag, far_end)  # the callee's own early media
        relayed: Response = await net.alice.expect(183)
        assert relayed.body == far_end
        net.bob.answer(inv, 603, tag)
        plain: Response = await net.alice.expect(603, timeout=2)
        net.alice.send(call.non2xx_ack(plain))
        await net.alice.quiet(183, within=0.2)
    finally:
        sink.close()
