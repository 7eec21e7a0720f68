"""The credit limit on real SIP: a call past the limit is cut, the next one refused with credit_limit,
while 112 still goes through. The switch is the real one in process (tests/e2e/test_calls_py.py's harness)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from switch.sip.message import Request, Response, new_tag, response_for
from switch.store import models as m
from switch.store.models import SuspensionReason
from tests.e2e.test_calls_py import ALICE, SDP_C, StartSwitch, dial, start_switch  # noqa: F401  (fixture)


async def _customer_of_alice(net) -> int:  # type: ignore[no-untyped-def]
    async with net.services.session_factory() as s:
        return (await s.execute(select(m.Customer.id).where(m.Customer.external_id == "C1"))).scalar_one()


async def test_crossing_the_limit_cuts_the_call_suspends_and_refuses_the_next_but_not_112(
    start_switch: StartSwitch,  # noqa: F811
) -> None:
    net = await start_switch(credit_cut_margin_ore=0)
    customer_id = await _customer_of_alice(net)
    async with net.services.session_factory() as s, s.begin():
        # 815 numbers cost 0.52 + 2.41/min: 60 øre last about 1 s past the start fee
        await s.execute(update(m.Customer).where(m.Customer.id == customer_id).values(credit_limit_ore=60))
    await net.services.rating.reload_accounts()
    # The harness imports the lines after the switch started; the policy service would notice
    # within its 5 s fingerprint reload, this test does not wait for it.
    await net.services.calls.policy_service.load()

    call = await dial(net.alice, *ALICE, "81549100")
    inv: Request = await net.carrier_a.expect("INVITE")
    tag = new_tag()
    net.carrier_a.answer(inv, 200, tag, SDP_C)
    ok: Response = await net.alice.expect(200)
    net.alice.send(call.ack_for(ok))
    await net.carrier_a.expect("ACK")
    bye: Request = await net.alice.expect("BYE", timeout=5.0)  # cut by the switch
    net.alice.send(response_for(bye, 200))
    carrier_bye: Request = await net.carrier_a.expect("BYE")
    net.carrier_a.send(response_for(carrier_bye, 200))
    (cdr,) = await net.cdrs()
    assert cdr.cause == "credit_limit" and 1 <= cdr.duration_s <= 3
    assert cdr.zone == "special_815_5digit" and cdr.charge_ore is not None and cdr.charge_ore >= 56

    policy = net.services.calls.policy_service
    for _ in range(100):  # the suspension is written by a task after the CDR is priced
        if any(s.reason is SuspensionReason.CREDIT_LIMIT for s in policy.active_suspensions(customer_id)):
            break
        await asyncio.sleep(0.05)
    async with net.services.session_factory() as s:
        (susp,) = (await s.execute(select(m.Suspension))).scalars()
    assert (susp.reason, susp.level.value, susp.created_by) == (SuspensionReason.CREDIT_LIMIT, "soft",
                                                                 "system:credit_limit")

    await dial(net.alice, *ALICE, "81549100")
    refused: Response = await net.alice.expect(403)
    assert "cause=21" in (refused.headers.get("Reason") or ""), refused.headers.get("Reason")  # credit_limit: Q.850 21
    await net.carrier_a.quiet("INVITE", 0.2)

    emergency = await dial(net.alice, *ALICE, "112")
    einv: Request = await net.emergency.expect("INVITE")
    net.emergency.answer(einv, 200, new_tag(), SDP_C)
    eok: Response = await net.alice.expect(200)
    net.alice.send(emergency.ack_for(eok))
    await net.emergency.expect("ACK")
