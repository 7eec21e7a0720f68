"""Rating: a dialled number and a duration → zone and price, by the tariff valid at the call's start.

Pure and in memory (a ``PrefixTable`` per tariff version), so it costs a
few dict probes per finished call and can run wherever the CDR is built.
Emergency calls are free whatever a tariff file says.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from ..numbering import PrefixTable
from .tariff import Price, Tariff, Zone

__all__ = ["Rater", "Rating", "TariffBook", "rating_digits"]

_FREE = Price(0, 0)


@dataclass(frozen=True, slots=True)
class Rating:
    zone: str
    price_ore: int
    tariff_version: int
    price: Price
    """The zone's price for this customer kind (the credit limit derives a call's cost per second from it)."""


def rating_digits(number: str, country_code: str = "47") -> str:
    """E.164 digits the tariff's prefixes are written in: "+4722…" → "4722…", national "1881" → "471881"."""
    if number.startswith("+"):
        return number[1:]
    return country_code + number


class Rater:
    """One tariff version compiled into a prefix table."""

    __slots__ = ("tariff", "version", "_table", "_emergency")

    def __init__(self, tariff: Tariff) -> None:
        self.tariff = tariff
        self.version = tariff.version
        zones = {z.id: z for z in tariff.zones}
        self._table: PrefixTable[Zone] = PrefixTable((p, zones[zid]) for p, zid in tariff.by_prefix.items())
        self._emergency = zones.get("emergency")

    def zone_for(self, number: str, country_code: str = "47") -> Zone | None:
        return self._table.lookup(rating_digits(number, country_code))

    def entry_for(self, number: str, country_code: str = "47") -> tuple[str, Zone] | None:
        """The tariff entry ``rate`` prices ``number`` by: (the longest matching prefix, its zone)."""
        return self._table.lookup_with_prefix(rating_digits(number, country_code))

    def rate(
        self,
        number: str,
        duration_s: int,
        kind: str = "private",
        number_class: str | None = None,
        country_code: str = "47",
    ) -> Rating | None:
        """Zone and price of a call to ``number`` (E.164 or a national short code); None if no zone matches."""
        if number_class == "emergency":
            return Rating("emergency", 0, self.version, _FREE)
        zone = self._table.lookup(rating_digits(number, country_code))
        if zone is None:
            return None
        price = zone.prices.business if kind == "business" else zone.prices.private
        return Rating(zone.id, price.for_seconds(duration_s), self.version, price)


class TariffBook:
    """Every imported tariff version; picks the one valid when a call started."""

    def __init__(self, tariffs: Iterable[Tariff] = ()) -> None:
        self._starts: list[float] = []
        self._raters: list[Rater] = []
        for t in tariffs:
            self.add(t)

    def add(self, tariff: Tariff) -> None:
        """Add (or replace, by version) a tariff."""
        kept = [r.tariff for r in self._raters if r.version != tariff.version] + [tariff]
        kept.sort(key=lambda t: (t.valid_from.timestamp(), t.version))
        self._starts = [t.valid_from.timestamp() for t in kept]
        self._raters = [Rater(t) for t in kept]

    def __len__(self) -> int:
        return len(self._raters)

    @property
    def versions(self) -> list[int]:
        return [r.version for r in self._raters]

    def rater_at(self, epoch: float) -> Rater | None:
        """The tariff valid at ``epoch`` (latest valid_from ≤ epoch), or None before the first."""
        i = bisect.bisect_right(self._starts, epoch) - 1
        return self._raters[i] if i >= 0 else None
