"""``softswitch tariff ...`` and ``softswitch rerate``: price lists and re-pricing a period.

``tariff import FILE`` validates a price list (every problem with its place)
and stores it with its version and valid-from time; importing the same file
again changes nothing, and a version already stored with other prices is
refused (a correction is a new version). ``tariff list`` shows what is stored.
``rerate --from T --to T`` prices every call that started in that time again
by the stored tariffs (idempotent) and rebuilds the months' totals. Run it for
a closed period, or while the switch is stopped: a batch the running switch
writes during the rebuild may be counted twice in that month's total.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from switch.operator_cli import OperatorError, guarded
from switch.settings import Settings

from .common import Subparsers, no_settings

__all__ = ["add"]


def add(sub: Subparsers, parents: list[argparse.ArgumentParser]) -> None:
    tariff = sub.add_parser("tariff", help="price lists (tariffs) for rating calls: import, list", parents=parents)
    tariff.set_defaults(configure=no_settings)
    verbs = tariff.add_subparsers(dest="tariff_command", required=True)
    ti = verbs.add_parser("import", help="validate and store a tariff file (YAML/JSON) with its version and valid_from",
                          parents=parents)
    ti.add_argument("file")
    ti.add_argument("--actor", default="operator:cli", help="who imports it (audit), default operator:cli")
    ti.set_defaults(handle=_import)
    verbs.add_parser("list", help="the stored tariff versions", parents=parents).set_defaults(handle=_list)

    rr = sub.add_parser("rerate", help="price the calls of a period again by the stored tariffs (idempotent)",
                        parents=parents)
    rr.add_argument("--from", dest="start", required=True, metavar="TIME",
                    help="ISO 8601 with a zone, e.g. 2026-11-01T00:00:00+01:00")
    rr.add_argument("--to", dest="end", required=True, metavar="TIME", help="end (exclusive), ISO 8601 with a zone")
    rr.add_argument("--billing-timezone", default=None, help="months for the totals (default Europe/Oslo)")
    rr.set_defaults(configure=no_settings, handle=_rerate)


def _import(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise OperatorError(f"tariff import: no such file: {path}")
    return guarded(import_tariff(settings, path, args.actor), settings)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    return guarded(list_tariffs(settings), settings)


def _rerate(args: argparse.Namespace, settings: Settings) -> int:
    times: list[datetime] = []
    for name, raw in (("--from", args.start), ("--to", args.end)):
        try:
            t = datetime.fromisoformat(raw)
        except ValueError:
            print(f"error: {name} must be an ISO 8601 time such as 2026-11-01T00:00:00+01:00, got {raw!r}")
            return 2
        if t.tzinfo is None:
            print(f"error: {name} needs a time zone (e.g. +01:00), got {raw!r}")
            return 2
        times.append(t)
    if times[1] <= times[0]:
        print("error: --to must be after --from")
        return 2
    return guarded(rerate(settings, times[0], times[1], args.billing_timezone or settings.billing_timezone), settings)


async def import_tariff(settings: Settings, path: Path, actor: str) -> int:
    from switch.database import open_database
    from switch.services.rating.admin import import_tariff as store
    from switch.services.rating.tariff import TariffError, load_tariff
    from switch.store.repo_billing import TariffConflict

    try:
        tariff = load_tariff(path)
    except TariffError as err:
        print(f"error: {path} is not a usable tariff, nothing was stored:")
        for problem in err.problems:
            print(f"  {problem}")
        return 1
    db = await open_database(settings)
    try:
        try:
            _t, created = await store(db.session_factory, tariff, actor)
        except TariffConflict as err:
            print(f"error: {err}")
            return 1
    finally:
        await db.close()
    what = "imported" if created else "already imported (unchanged)"
    print(f"tariff version {tariff.version} ({tariff.name}), valid from {tariff.valid_from.isoformat()}: {what}; "
          f"{len(tariff.zones)} zones, {len(tariff.by_prefix)} prefixes")
    return 0


async def list_tariffs(settings: Settings) -> int:
    from switch.database import open_database
    from switch.services.rating.tariff import tariff_from_document
    from switch.store.repo_billing import load_tariff_documents

    db = await open_database(settings)
    try:
        docs = await load_tariff_documents(db.session_factory)
    finally:
        await db.close()
    if not docs:
        print("no tariff stored (the switch imports its bundled price list when it starts)")
    for doc in docs:
        t = tariff_from_document(doc)
        print(f"version {t.version}  valid from {t.valid_from.isoformat()}  {len(t.zones)} zones  {t.name}")
    return 0


async def rerate(settings: Settings, start: datetime, end: datetime, tz: str) -> int:
    from switch.database import open_database
    from switch.services.rating.admin import rerate as run
    from switch.services.rating.periods import MonthlyPeriods

    db = await open_database(settings)
    try:
        result = await run(db.session_factory, start, end, periods=MonthlyPeriods(tz))
    finally:
        await db.close()
    print(f"re-rated {result.examined} calls from {start.isoformat()} to {end.isoformat()}: {result.changed} changed "
          f"({result.difference_ore / 100:+.2f} NOK); totals rebuilt for {result.months} month(s)")
    return 0
