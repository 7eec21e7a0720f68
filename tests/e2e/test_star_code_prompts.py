"""What a caller hears after dialling a star code: 183, the spoken result as RTP, then the final response.

The real composition in-process (as test_announcements.py) with announcements on; the caller's
RTP port is a raw UDP socket, and what arrives is compared byte for byte with the shipped
prompt clips of the result ("use Min side"; "forwarding is on to" + the number digit by digit).
"""

from __future__ import annotations

import asyncio

import pytest

from feature_codes import CodePolicy
from switch.media.catalogue import digit_keys
from switch.sip.message import Response
from tests.e2e.test_announcements import RtpSink, _cdr, _check_stream, _expected, _offer, _start
from tests.e2e.test_calls_py import ALICE, StartSwitch, dial, start_switch  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e


async def _hear(net: object, number: str, status: int) -> tuple[bytes, Response, str]:
    sink = RtpSink()
    try:
        call = await dial(net.alice, *ALICE, number, body=_offer(sink.port))  # type: ignore[attr-defined]
        await net.alice.expect(183)  # type: ignore[attr-defined]
        final: Response = await net.alice.expect(status, timeout=20)  # type: ignore[attr-defined]
        net.alice.send(call.non2xx_ack(final))  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        return _check_stream(sink.packets, 8), final, call.invite.call_id
    finally:
        sink.close()


async def test_star_code_results_are_spoken(start_switch: StartSwitch) -> None:
    net = await _start(start_switch)

    # The FAQ's default: "you cannot dial *21* to forward; use Min side", then 403.
    heard, final, call_id = await _hear(net, "*21*22000002%23", 403)
    assert final.headers.get("Reason") == 'Q.850;cause=21;text="feature_code_refused"'
    expected = _expected("fwd_use_web", "nb", "PCMA")
    assert heard == expected + b"\xd5" * ((-len(expected)) % 160)
    cdr = await _cdr(net, call_id)
    assert (cdr.cause, cdr.final_code, cdr.support_code) == ("feature_code_refused", 403, "66")

    # Allowed by the operator: "forwarding is on to 2 2 0 0 0 0 0 2", then 480 (normal clearing).
    await net.services.star_codes.set_policy(CodePolicy("*21*", True), "operator:test")
    heard, final, call_id = await _hear(net, "*21*22000002#", 480)
    assert final.headers.get("Reason") == 'Q.850;cause=16;text="feature_code"'
    expected = _expected(("fwd_on", *digit_keys("22000002")), "nb", "PCMA")
    assert heard == expected + b"\xd5" * ((-len(expected)) % 160)
    cdr = await _cdr(net, call_id)
    assert (cdr.cause, cdr.final_code, cdr.support_code, cdr.number_class) == ("feature_code", 480, "61", "feature_code")
    line = net.services.lines.line_for_number("+4722000001")
    assert [(r.kind.value, r.target) for r in net.services.policy.forwarding(line.line_id)] == [
        ("unconditional", "+4722000002")
    ]
