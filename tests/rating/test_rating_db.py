"""Rating on real databases: CDRs priced as they are written, totals kept, tariffs imported, periods re-rated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select, update

from switch.services.cdr import CdrDraft, CdrWriter
from switch.store.hot_store import make_hot_store
from switch.services.rating.admin import ensure_bundled_tariffs, import_tariff, load_book, rerate
from switch.services.rating.periods import MonthlyPeriods
from switch.services.rating.service import RatingService
from switch.services.rating.tariff import bundled_tariff_paths
from switch.store import models as m
from switch.store.crypto import SecretBox
from switch.store.repo_billing import TariffConflict, period_totals
from tests.conftest_db import MigratedDb
from tests.store.helpers import add_line

T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC).timestamp()


def draft(n: int, number: str, cls: str, seconds: float | None, line_id: int | None,
          direction: m.CallDirection = m.CallDirection.OUTGOING, at: float = T0) -> CdrDraft:
    d = CdrDraft(call_id=f"c{n}", direction=direction, calling_number="+4722000001", dialled=number,
                 setup_at=at + n, calling_line_id=line_id, normalised=number, number_class=cls)
    if seconds is None:
        d.end_at, d.end_mono, d.final_code, d.cause = at + n + 5, 5.0, 486, "busy"
    else:
        d.answer_at, d.answer_mono = at + n + 3, 3.0
        d.end_at, d.end_mono, d.final_code, d.cause = at + n + 3 + seconds, 3.0 + seconds, 200, "normal"
    return d


async def _lines(db: MigratedDb, box: SecretBox) -> tuple[int, int, int]:
    sf = db.session_factory
    private = await add_line(sf, box, "realm", customer="C1")
    business = await add_line(sf, box, "realm", customer="C2", mac="000e08abcd02", number="+4722000003",
                              auth_user="22000003")
    async with sf() as s, s.begin():
        await s.execute(update(m.Customer).where(m.Customer.external_id == "C2").values(kind=m.CustomerKind.BUSINESS))
        ids = dict((await s.execute(select(m.Customer.external_id, m.Customer.id))).all())
    return private, business, ids["C2"]


async def _records(db: MigratedDb) -> dict[str, m.CallRecord]:
    async with db.session_factory() as s:
        return {r.call_id: r for r in (await s.execute(select(m.CallRecord))).scalars()}


async def test_cdrs_are_priced_when_written_and_totals_follow(migrated_db: MigratedDb, secret_box: SecretBox) -> None:
    sf = migrated_db.session_factory
    await ensure_bundled_tariffs(sf)
    private, business, business_customer = await _lines(migrated_db, secret_box)
    service = RatingService(await load_book(sf), session_factory=sf)  # accounts come with the first batch
    hot = make_hot_store(migrated_db.url)
    await hot.open()
    writer = CdrWriter(service.wrap_write(hot.insert_call_records), rate=service.rate_rows, window=0.02,
                       retry_interval=0)
    writer.start()
    writer.submit(draft(1, "+46812345678", "international", 61, private))      # Nordic: 0.59 + 61 s of 1.79/min
    writer.submit(draft(2, "+46812345678", "international", None, private))    # busy: nothing
    writer.submit(draft(3, "+4722334455", "fixed", 61, private))               # private: included
    writer.submit(draft(4, "+4722334455", "fixed", 61, business))              # business: 0.15/min → 15.25 → 16
    writer.submit(draft(5, "1881", "service", 60, business))                   # 10.00 + 18.53
    writer.submit(draft(6, "112", "emergency", 600, business))                 # free
    writer.submit(draft(7, "+4722000001", "fixed", 60, None, m.CallDirection.INCOMING))  # a carrier's call: nobody billed
    await writer.close()
    await hot.close()
    rows = await _records(migrated_db)
    got = {k: (r.charge_ore, r.zone, r.tariff_version) for k, r in rows.items()}
    assert got == {
        "c1": (241, "nordic", 1),
        "c2": (0, "nordic", 1),
        "c3": (0, "norway_fixed", 1),
        "c4": (16, "norway_fixed", 1),
        "c5": (2853, "service_1881", 1),
        "c6": (0, "emergency", 1),
        "c7": (None, None, None),
    }
    period = MonthlyPeriods().start_of(T0)
    assert period == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # 1 November, Oslo time
    totals = await period_totals(sf, period)
    assert totals[business_customer] == 16 + 2853
    assert sum(totals.values()) == 241 + 16 + 2853


async def test_a_tariff_imports_once_and_a_changed_version_is_refused(migrated_db: MigratedDb, tmp_path: Path) -> None:
    sf = migrated_db.session_factory
    assert await ensure_bundled_tariffs(sf) == [1]
    assert await ensure_bundled_tariffs(sf) == []
    [path] = bundled_tariff_paths()
    _t, created = await import_tariff(sf, path, "operator:test")
    assert not created
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["zones"][0]["per_minute_ore"] = 1
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(TariffConflict, match="version 1 is already imported"):
        await import_tariff(sf, changed, "operator:test")
    assert (await load_book(sf)).versions == [1]


async def test_rerate_applies_a_corrected_tariff_from_its_valid_from_and_is_idempotent(
    migrated_db: MigratedDb, secret_box: SecretBox, tmp_path: Path
) -> None:
    sf = migrated_db.session_factory
    await ensure_bundled_tariffs(sf)
    private, _business, _c2 = await _lines(migrated_db, secret_box)
    service = RatingService(await load_book(sf), session_factory=sf)
    hot = make_hot_store(migrated_db.url)
    await hot.open()
    writer = CdrWriter(service.wrap_write(hot.insert_call_records), rate=service.rate_rows, window=0.02, retry_interval=0)
    writer.start()
    writer.submit(draft(1, "+46812345678", "international", 60, private))
    writer.submit(draft(2, "+46812345678", "international", 60, private, at=T0 + 86400))
    await writer.close()
    await hot.close()
    # A corrected price list (Nordic 1.00/min) valid from the day between the two calls.
    [path] = bundled_tariff_paths()
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["version"] = 2
    data["valid_from"] = datetime.fromtimestamp(T0 + 3600, UTC).isoformat()
    data["zones"][0]["per_minute_ore"] = 100
    fixed = tmp_path / "v2.yaml"
    fixed.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    await import_tariff(sf, fixed, "operator:test")
    start = datetime.fromtimestamp(T0 - 86400, UTC)
    end = start + timedelta(days=5)
    first = await rerate(sf, start, end, batch=1)  # one record per transaction: the paging by id is used
    assert (first.examined, first.changed, first.difference_ore) == (2, 1, (59 + 100) - (59 + 179))
    rows = await _records(migrated_db)
    assert (rows["c1"].charge_ore, rows["c1"].tariff_version) == (238, 1)
    assert (rows["c2"].charge_ore, rows["c2"].tariff_version) == (159, 2)
    again = await rerate(sf, start, end)
    assert (again.examined, again.changed) == (2, 0)
    totals = await period_totals(sf, MonthlyPeriods().start_of(T0))
    assert list(totals.values()) == [238 + 159]


async def test_rerate_refuses_a_backwards_or_zoneless_period(migrated_db: MigratedDb) -> None:
    sf = migrated_db.session_factory
    t = datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="--to must be after --from"):
        await rerate(sf, t, t)
    with pytest.raises(ValueError, match="time zone"):
        await rerate(sf, datetime(2026, 11, 1), datetime(2026, 12, 1))


async def test_the_periodic_reload_keeps_what_did_not_change_and_picks_up_a_new_tariff(
    migrated_db: MigratedDb, secret_box: SecretBox, tmp_path: Path
) -> None:
    """Rebuilding the price list and every account each 30 s moved them into the memory a burst of
    calls had just used, keeping it from going back (bench/README.md, call-ladder memory)."""
    sf = migrated_db.session_factory
    await ensure_bundled_tariffs(sf)
    await _lines(migrated_db, secret_box)
    service = RatingService(await load_book(sf), session_factory=sf)
    await service.reload()
    book, accounts = service.book, service.accounts
    assert len(accounts) == 2
    await service.reload()
    assert service.book is book and service.accounts is accounts
    [path] = bundled_tariff_paths()
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["version"] = 2
    data["valid_from"] = datetime.fromtimestamp(T0 + 3600, UTC).isoformat()
    v2 = tmp_path / "v2.yaml"
    v2.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    await import_tariff(sf, v2, "operator:test")
    await service.reload()
    assert service.book is not book and service.book.versions == [1, 2]
    async with sf() as s, s.begin():
        await s.execute(update(m.Customer).values(credit_limit_ore=12_345))
    await service.reload()
    assert service.accounts is not accounts
    assert {a.credit_limit_ore for a in service.accounts.values()} == {12_345}
