"""A tariff (price list) as validated data: zones with prices, reached by prefixes.

The file format is documented at the top of ``tariffs/*.yaml``. A tariff is
loaded once, checked as a whole (every problem reported with its place, as
the customer import does), and stored in the database as its normalised
document (``Tariff.document()``), so a call rated months later can be
re-rated by exactly the price list that was valid when it started.

Country names go through ``countries.yaml`` (the price list names countries,
the switch sees E.164 digits). A prefix claimed by two zones is an error,
unless both claims resolve to the same zone: the price list must say which
zone a number is in, never the order of the file.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

__all__ = [
    "CustomerPrices",
    "Price",
    "Tariff",
    "TariffError",
    "Zone",
    "bundled_tariff_paths",
    "countries",
    "load_tariff",
    "parse_tariff",
    "tariff_from_document",
]

_MAX_ORE: Final = 10_000_000  # 100,000 NOK: a typo guard, not a business rule


class TariffError(ValueError):
    """A tariff file that cannot be used; ``problems`` lists each with its place."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Price:
    """Start fee and per-minute price in øre; billed per second, rounded up to a whole øre."""

    start_ore: int
    per_minute_ore: int

    def for_seconds(self, seconds: int) -> int:
        """The price of an answered call of ``seconds`` (0 s: not answered, nothing)."""
        if seconds <= 0:
            return 0
        # ceil(per_minute * seconds / 60) in integers: exact, no float rounding.
        return self.start_ore + -(-self.per_minute_ore * seconds // 60)

    def seconds_for(self, budget_ore: int) -> float:
        """How long a call may last before it costs more than ``budget_ore`` (inf when free)."""
        if self.per_minute_ore <= 0:
            return math.inf
        return max(0.0, (budget_ore - self.start_ore) * 60.0 / self.per_minute_ore)


@dataclass(frozen=True, slots=True)
class CustomerPrices:
    private: Price
    business: Price

    def for_kind(self, kind: str) -> Price:
        return self.business if kind == "business" else self.private


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    name: str
    prices: CustomerPrices
    prefixes: tuple[str, ...]
    """Every prefix this zone claims (country names already resolved), sorted."""
    countries: tuple[str, ...] = ()
    assumed: bool = False
    """Not in the published price list: an operator decision (see the file's comments)."""


@dataclass(frozen=True, slots=True)
class Tariff:
    version: int
    name: str
    valid_from: datetime
    currency: str
    zones: tuple[Zone, ...]
    by_prefix: Mapping[str, str] = field(default_factory=dict)
    """prefix → zone id, the table the rater compiles."""

    def zone(self, zone_id: str) -> Zone:
        for z in self.zones:
            if z.id == zone_id:
                return z
        raise KeyError(zone_id)

    def document(self) -> dict[str, Any]:
        """The normalised form stored in the database (prefixes resolved, no country lookup needed)."""
        return {
            "version": self.version,
            "name": self.name,
            "valid_from": self.valid_from.isoformat(),
            "currency": self.currency,
            "zones": [
                {
                    "id": z.id,
                    "name": z.name,
                    "start_ore": z.prices.private.start_ore,
                    "per_minute_ore": z.prices.private.per_minute_ore,
                    "business": {
                        "start_ore": z.prices.business.start_ore,
                        "per_minute_ore": z.prices.business.per_minute_ore,
                    },
                    "prefixes": list(z.prefixes),
                    "listed_countries": list(z.countries),
                    "assumed": z.assumed,
                }
                for z in self.zones
            ],
        }


@functools.lru_cache(maxsize=1)
def countries() -> dict[str, tuple[str, ...]]:
    """Country name (as the price list spells it) → E.164 prefixes, from ``countries.yaml``."""
    text = resources.files(__package__).joinpath("countries.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return {str(name): tuple(str(p) for p in prefixes) for name, prefixes in data.items()}


def bundled_tariff_paths() -> list[Path]:
    """The tariff files shipped with the switch, oldest version first."""
    folder = resources.files(__package__).joinpath("tariffs")
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_tariff(path: str | Path) -> Tariff:
    """Read and validate a tariff file (YAML or JSON)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TariffError([f"{path}: not YAML/JSON: {exc}"]) from None
    return parse_tariff(data)


def _int(raw: object, where: str, problems: list[str]) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        problems.append(f"{where}: must be a whole number of øre, got {raw!r}")
        return 0
    if not 0 <= raw <= _MAX_ORE:
        problems.append(f"{where}: must be 0..{_MAX_ORE} øre, got {raw}")
        return 0
    return raw


def _price(raw: Mapping[str, Any], where: str, problems: list[str]) -> Price:
    return Price(
        _int(raw.get("start_ore"), f"{where}.start_ore", problems),
        _int(raw.get("per_minute_ore"), f"{where}.per_minute_ore", problems),
    )


def parse_tariff(data: object, country_table: Mapping[str, tuple[str, ...]] | None = None) -> Tariff:
    """Validate a parsed tariff document; raise ``TariffError`` listing every problem."""
    table = countries() if country_table is None else country_table
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise TariffError(["the tariff must be a mapping with version, valid_from and zones"])
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(f"version: must be a positive integer, got {version!r}")
        version = 0
    raw_from = data.get("valid_from")
    valid_from = datetime.min
    if isinstance(raw_from, datetime):
        valid_from = raw_from
    elif isinstance(raw_from, str):
        try:
            valid_from = datetime.fromisoformat(raw_from)
        except ValueError:
            problems.append(f"valid_from: must be an ISO 8601 time with zone, got {raw_from!r}")
    else:
        problems.append(f"valid_from: must be an ISO 8601 time with zone, got {raw_from!r}")
    if valid_from is not datetime.min and valid_from.tzinfo is None:
        problems.append(f"valid_from: needs a time zone (e.g. +01:00), got {raw_from!r}")
    name = str(data.get("name") or f"tariff {version}")
    currency = str(data.get("currency") or "NOK")
    raw_zones = data.get("zones")
    if not isinstance(raw_zones, list) or not raw_zones:
        problems.append("zones: must be a non-empty list")
        raw_zones = []

    zones: list[Zone] = []
    owner: dict[str, str] = {}
    seen_ids: set[str] = set()
    for i, rz in enumerate(raw_zones):
        where = f"zones[{i}]"
        if not isinstance(rz, Mapping):
            problems.append(f"{where}: must be a mapping")
            continue
        zid = rz.get("id")
        if not isinstance(zid, str) or not zid or len(zid) > 32:
            problems.append(f"{where}.id: must be a name of 1-32 characters, got {zid!r}")
            continue
        where = f"zones[{i}] ({zid})"
        if zid in seen_ids:
            problems.append(f"{where}.id: used twice")
        seen_ids.add(zid)
        private = _price(rz, where, problems)
        business = private
        raw_business = rz.get("business")
        if raw_business is not None:
            if isinstance(raw_business, Mapping):
                business = _price(raw_business, f"{where}.business", problems)
            else:
                problems.append(f"{where}.business: must be a mapping with start_ore and per_minute_ore")
        prefixes: set[str] = set()
        raw_prefixes = rz.get("prefixes", [])
        if not isinstance(raw_prefixes, list):
            problems.append(f"{where}.prefixes: must be a list of digit strings")
            raw_prefixes = []
        for p in raw_prefixes:
            if not isinstance(p, str) or not (p == "" or (p.isascii() and p.isdigit())) or len(p) > 15:
                problems.append(f"{where}.prefixes: {p!r} is not a string of digits (quote it in YAML)")
                continue
            prefixes.add(p)
        listed = rz.get("countries", [])
        if not isinstance(listed, list):
            problems.append(f"{where}.countries: must be a list of country names")
            listed = []
        for c in listed:
            found = table.get(str(c))
            if found is None:
                problems.append(f"{where}.countries: {c!r} is not in countries.yaml")
                continue
            prefixes.update(found)
        if not prefixes:
            problems.append(f"{where}: reaches no number (give prefixes or countries)")
        for p in sorted(prefixes):
            other = owner.get(p)
            if other is not None and other != zid:
                problems.append(f"{where}: prefix {p!r} is already in zone {other!r}")
            owner[p] = zid
        zones.append(
            Zone(
                id=zid,
                name=str(rz.get("name") or zid),
                prices=CustomerPrices(private, business),
                prefixes=tuple(sorted(prefixes)),
                countries=tuple(str(c) for c in listed) or tuple(str(c) for c in rz.get("listed_countries", ())),
                assumed=bool(rz.get("assumed", False)),
            )
        )
    if problems:
        raise TariffError(problems)
    return Tariff(
        version=int(version),
        name=name,
        valid_from=valid_from,
        currency=currency,
        zones=tuple(zones),
        by_prefix=dict(owner),
    )


def tariff_from_document(doc: Mapping[str, Any]) -> Tariff:
    """The inverse of ``Tariff.document()`` (what the database holds)."""
    return parse_tariff(doc, country_table={})
