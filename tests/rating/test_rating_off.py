"""``softswitch run --rating off``: call records without a price, no credit limit checked or cut.

The same call both ways on the real switch in process (tests/e2e/test_calls_py.py's harness): a
customer with a 60 øre limit calls an 815 number. With rating on the switch cuts the call and
refuses the next one (credit_limit); with rating off the call lasts, its record has no price, zone
or tariff version, and the next call goes out.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from switch.cli import common, parser, run
from switch.sip.message import Request, Response, new_tag, response_for
from switch.store import models as m
from tests.e2e.test_calls_py import ALICE, SDP_C, StartSwitch, dial, start_switch  # noqa: F401  (fixture)


@pytest.mark.parametrize("rating", [True, False], ids=["rating-on", "rating-off"])
async def test_a_call_over_the_credit_limit_is_cut_and_refused_only_with_rating_on(
    start_switch: StartSwitch, rating: bool,  # noqa: F811
) -> None:
    net = await start_switch(credit_cut_margin_ore=0, rating=rating)
    assert (net.services.rating.credit is not None) is rating
    async with net.services.session_factory() as s, s.begin():
        await s.execute(update(m.Customer).where(m.Customer.external_id == "C1").values(credit_limit_ore=60))
    await net.services.rating.reload_accounts()
    await net.services.calls.policy_service.load()

    call = await dial(net.alice, *ALICE, "81549100")  # 0.52 + 2.41/min: past 60 øre after about a second
    inv: Request = await net.carrier_a.expect("INVITE")
    net.carrier_a.answer(inv, 200, new_tag(), SDP_C)
    ok: Response = await net.alice.expect(200)
    net.alice.send(call.ack_for(ok))
    await net.carrier_a.expect("ACK")
    if rating:
        bye: Request = await net.alice.expect("BYE", timeout=5.0)  # cut by the switch
        net.alice.send(response_for(bye, 200))
    else:
        await net.alice.quiet("BYE", 3.0)  # nobody cuts it
        assert call.dialog is not None
        net.alice.send(call.dialog.request("BYE"))
        await net.alice.expect(200)
    carrier_bye: Request = await net.carrier_a.expect("BYE")
    net.carrier_a.send(response_for(carrier_bye, 200))
    (cdr,) = await net.cdrs()
    if rating:
        assert cdr.cause == "credit_limit" and cdr.zone == "special_815_5digit" and cdr.charge_ore is not None
    else:
        assert cdr.cause == "normal" and cdr.duration_s >= 3
        assert (cdr.charge_ore, cdr.zone, cdr.tariff_version) == (None, None, None)

    if rating:  # the suspension is written by a task after the CDR is priced
        for _ in range(100):
            await net.alice.quiet("BYE", 0.05)
            async with net.services.session_factory() as s:
                if (await s.execute(select(m.Suspension))).first() is not None:
                    break
    await dial(net.alice, *ALICE, "81549100")
    if rating:
        refused: Response = await net.alice.expect(403)
        assert "cause=21" in (refused.headers.get("Reason") or "")
        await net.carrier_a.quiet("INVITE", 0.2)
    else:
        await net.carrier_a.expect("INVITE")  # not refused: the limit is not checked
        async with net.services.session_factory() as s:
            assert (await s.execute(select(m.Suspension))).first() is None


@pytest.mark.parametrize(("argv", "want"), [([], True), (["--rating", "on"], True), (["--rating", "off"], False)])
def test_run_takes_rating_on_or_off(argv: list[str], want: bool) -> None:
    args = parser().parse_args(["run", *argv])
    settings = common.settings_from(args)
    run.configure(args, settings)
    assert settings.rating is want


def test_run_refuses_another_rating_value() -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["run", "--rating", "maybe"])
