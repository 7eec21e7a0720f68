"""Credit limit: suspension through the real policy service, lifted at rollover or a raised limit;
long calls cut from their price per second, never emergency calls."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from switch.services.b2bua.call import CallState
from switch.services.b2bua.causes import Cause
from switch.services.b2bua.events import Answer, Disconnect
from switch.services.lines import LineDirectory
from switch.services.policy.service import PolicyService
from switch.services.rating.admin import ensure_bundled_tariffs, load_book
from switch.services.rating.credit import CreditControl
from switch.services.rating.rater import TariffBook
from switch.services.rating.service import Account, RatingService
from switch.services.rating.tariff import bundled_tariff_paths, load_tariff
from switch.store import models as m
from switch.store.crypto import SecretBox
from switch.store.models import SuspensionLevel, SuspensionReason
from tests.conftest_db import MigratedDb
from tests.services.b2bua_fakes import make_call, trunk_target
from tests.store.helpers import add_line

NOV = datetime(2026, 11, 10, 12, 0, tzinfo=UTC).timestamp()
DEC = datetime(2026, 12, 1, 0, 30, tzinfo=UTC).timestamp()  # 01:30 on 1 December in Oslo


class Wall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def nordic_row(line_id: int, seconds: int, at: float) -> dict[str, object]:
    return {"call_id": "x", "calling_line_id": line_id, "normalised": "+46812345678", "number_class": "international",
            "duration_s": seconds, "setup_at": datetime.fromtimestamp(at, UTC)}


async def _setup(db: MigratedDb, box: SecretBox, limit: int) -> tuple[RatingService, CreditControl, PolicyService, int, int, Wall]:
    sf = db.session_factory
    await ensure_bundled_tariffs(sf)
    line_id = await add_line(sf, box, "realm", customer="C1")
    async with sf() as s, s.begin():
        await s.execute(update(m.Customer).values(credit_limit_ore=limit))
        customer_id = (await s.execute(select(m.Customer.id))).scalar_one()

    async def no_lines() -> list[object]:
        return []

    policy = PolicyService(sf, LineDirectory(no_lines), reload_interval=0)  # type: ignore[arg-type]
    await policy.load()
    wall = Wall(NOV)
    service = RatingService(await load_book(sf), session_factory=sf,
                            credit=lambda s: CreditControl(s, margin_ore=100, suspender=lambda: policy, wall=wall))
    assert service.credit is not None
    credit = service.credit
    await service.reload_accounts()
    return service, credit, policy, customer_id, line_id, wall


def credit_suspensions(policy: PolicyService, customer_id: int) -> list[object]:
    return [s for s in policy.active_suspensions(customer_id) if s.reason is SuspensionReason.CREDIT_LIMIT]


async def test_crossing_the_limit_suspends_softly_and_a_raised_limit_lifts_it(
    migrated_db: MigratedDb, secret_box: SecretBox
) -> None:
    service, credit, policy, customer_id, line_id, _wall = await _setup(migrated_db, secret_box, limit=500)
    for _ in range(2):
        service.rate_row(nordic_row(line_id, 61, NOV))  # 241 øre each
    await credit.close()
    assert credit.totals[customer_id] == 482 and credit_suspensions(policy, customer_id) == []
    service.rate_row(nordic_row(line_id, 61, NOV))
    await credit.close()
    [s] = credit_suspensions(policy, customer_id)
    assert s.level is SuspensionLevel.SOFT and s.line_id is None  # type: ignore[attr-defined]
    async with migrated_db.session_factory() as session:
        row = (await session.execute(select(m.Suspension))).scalar_one()
    assert (row.created_by, row.reason) == ("system:credit_limit", SuspensionReason.CREDIT_LIMIT)
    service.rate_row(nordic_row(line_id, 61, NOV))  # more calls do not stack suspensions
    await credit.close()
    assert len(credit_suspensions(policy, customer_id)) == 1
    # The operator raises the limit above the total: lifted.
    async with migrated_db.session_factory() as session, session.begin():
        await session.execute(update(m.Customer).values(credit_limit_ore=5000))
    await service.reload_accounts()
    await credit.close()
    assert credit_suspensions(policy, customer_id) == []


async def test_the_new_month_resets_the_total_and_lifts_the_suspension(
    migrated_db: MigratedDb, secret_box: SecretBox
) -> None:
    service, credit, policy, customer_id, line_id, wall = await _setup(migrated_db, secret_box, limit=200)
    service.rate_row(nordic_row(line_id, 61, NOV))
    await credit.close()
    assert len(credit_suspensions(policy, customer_id)) == 1
    wall.t = DEC
    credit.tick()
    await credit.close()
    assert credit_suspensions(policy, customer_id) == [] and credit.totals == {}
    assert credit.period == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    # A late record from November does not count against December.
    service.rate_row(nordic_row(line_id, 61, NOV))
    assert credit.totals == {}


async def test_a_suspension_left_from_before_a_restart_is_lifted_when_no_longer_due(
    migrated_db: MigratedDb, secret_box: SecretBox
) -> None:
    service, credit, policy, customer_id, _line_id, _wall = await _setup(migrated_db, secret_box, limit=200)
    await policy.suspend(customer_id, None, SuspensionLevel.SOFT, SuspensionReason.CREDIT_LIMIT, "old", "system:credit_limit")
    await policy.suspend(customer_id, None, SuspensionLevel.SOFT, SuspensionReason.UNPAID, "unpaid", "operator:kari")
    await credit.adopt_existing(migrated_db.session_factory)
    reasons = {s.reason for s in policy.active_suspensions(customer_id)}
    assert reasons == {SuspensionReason.UNPAID}  # only our own kind is touched


def _rating(limit: int | None, margin: int = 100) -> tuple[RatingService, CreditControl]:
    [path] = bundled_tariff_paths()
    service = RatingService(TariffBook([load_tariff(path)]),  # the wall: the fake call clock's month
                            credit=lambda s: CreditControl(s, margin_ore=margin, wall=lambda: 1_700_001_000.0))
    service.set_accounts({1: Account(customer_id=7, kind="private", credit_limit_ore=limit)})
    assert service.credit is not None
    credit = service.credit
    return service, credit


def _answered_call(credit: CreditControl, number: str, *, emergency: bool = False):  # type: ignore[no-untyped-def]
    h = make_call(emergency=emergency, budget=credit.on_answer)
    h.record.normalised, h.record.number_class = number, "emergency" if emergency else "international"
    credit.mono = h.clock.now
    h.call.start([trunk_target(1, number)])
    h.call.event(h.b, Answer(body=b"v=0\r\n", content_type="application/sdp"))
    assert h.call.state is CallState.CONNECTED
    return h


def test_a_long_call_is_cut_when_it_passes_the_limit_by_the_margin() -> None:
    _service, credit = _rating(limit=1000, margin=100)
    h = _answered_call(credit, "+46812345678")  # Nordic: 0.59 + 1.79/min
    # 1000 + 100 øre of budget; the first second costs 62 øre; then 179/60 øre a second.
    expected = (1100 - 62) / (179 / 60)
    h.clock.advance(expected - 1)
    assert h.call.state is CallState.CONNECTED
    h.clock.advance(2)
    assert h.a.sent[-1] == Disconnect(cause=Cause.CREDIT_LIMIT) and h.b.sent[-1] == Disconnect(cause=Cause.CREDIT_LIMIT)
    assert h.record.cause == "credit_limit"


def test_a_second_call_shares_the_budget_and_a_priced_call_moves_the_cut() -> None:
    service, credit = _rating(limit=2000, margin=0)
    first = _answered_call(credit, "+46812345678")
    second = _answered_call(credit, "+46812345678")
    second.clock.t = first.clock.t  # one clock for both (the fakes start at the same time)
    credit.mono = first.clock.now
    credit._recompute(7, 2000)
    # Two calls of 179/60 øre a second from 2000 - 2 × 62 øre.
    both = [t for t in first.clock.live() + second.clock.live() if t.at > first.clock.t + 3000]
    assert not both  # neither keeps the one-hour limit
    service.rate_row({"call_id": "y", "calling_line_id": 1, "normalised": "+46812345678", "number_class": None,
                      "duration_s": 600, "setup_at": datetime.fromtimestamp(first.clock.wall(), UTC)})
    assert credit.totals[7] == 59 + 1790 and credit.cuts_armed >= 4
    # 1849 + 2 × 62 spent: 27 øre left for 2 × 179/60 øre a second, about 4.5 s.
    first.clock.advance(4)
    assert first.call.state is CallState.CONNECTED
    first.clock.advance(1)
    assert first.call.state is CallState.ENDED and first.record.cause == "credit_limit"


def test_emergency_calls_and_customers_without_a_limit_are_never_cut() -> None:
    _service, credit = _rating(limit=0, margin=0)
    h = _answered_call(credit, "112", emergency=True)
    h.clock.advance(7200)
    assert h.call.state is CallState.CONNECTED
    _service, credit = _rating(limit=None)
    h = _answered_call(credit, "+46812345678")
    h.clock.advance(3599)
    assert h.call.state is CallState.CONNECTED and credit.cuts_armed == 0


async def test_a_batch_retried_after_an_outage_is_priced_and_counted_once() -> None:
    service, credit = _rating(limit=10**6)
    row = {"call_id": "r", "calling_line_id": 1, "normalised": "+46812345678", "number_class": None,
           "duration_s": 61, "setup_at": datetime.fromtimestamp(1_700_001_000.0, UTC)}
    rows = [row]
    await service.rate_rows(rows)
    await service.rate_rows(rows)  # the CdrWriter's retry hands the same rows in again
    assert (row["charge_ore"], credit.totals[7], service.rated) == (241, 241, 1)
