"""Tariff files: every problem reported with its place, versions picked by the call's start time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from switch.services.rating.rater import Rater, TariffBook
from switch.services.rating.tariff import (
    Price,
    TariffError,
    bundled_tariff_paths,
    load_tariff,
    parse_tariff,
    tariff_from_document,
)


def doc(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 2,
        "valid_from": "2026-01-01T00:00:00+01:00",
        "zones": [
            {"id": "nordic", "start_ore": 59, "per_minute_ore": 179, "countries": ["Sverige"]},
            {"id": "rest", "start_ore": 59, "per_minute_ore": 1099, "prefixes": [""]},
        ],
    }
    base.update(over)
    return base


def test_a_good_document_parses() -> None:
    t = parse_tariff(doc())
    assert t.version == 2 and t.by_prefix == {"46": "nordic", "": "rest"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": "two"}, "version: must be a positive integer"),
        ({"valid_from": "2026-01-01T00:00:00"}, "valid_from: needs a time zone"),
        ({"valid_from": "soon"}, "valid_from: must be an ISO 8601 time"),
        ({"zones": []}, "zones: must be a non-empty list"),
        ({"zones": [{"id": "x", "start_ore": 1.5, "per_minute_ore": 1, "prefixes": ["1"]}]},
         "zones[0] (x).start_ore: must be a whole number of øre"),
        ({"zones": [{"id": "x", "start_ore": -1, "per_minute_ore": 1, "prefixes": ["1"]}]},
         "zones[0] (x).start_ore: must be 0..10000000 øre"),
        ({"zones": [{"id": "x", "start_ore": 1, "per_minute_ore": 1, "prefixes": [46]}]},
         "zones[0] (x).prefixes: 46 is not a string of digits"),
        ({"zones": [{"id": "x", "start_ore": 1, "per_minute_ore": 1, "countries": ["Atlantis"]}]},
         "zones[0] (x).countries: 'Atlantis' is not in countries.yaml"),
        ({"zones": [{"id": "x", "start_ore": 1, "per_minute_ore": 1}]}, "zones[0] (x): reaches no number"),
        ({"zones": [{"id": "a", "start_ore": 1, "per_minute_ore": 1, "countries": ["USA"]},
                    {"id": "b", "start_ore": 1, "per_minute_ore": 1, "prefixes": ["1"]}]},
         "zones[1] (b): prefix '1' is already in zone 'a'"),
        ({"zones": [{"id": "a", "start_ore": 1, "per_minute_ore": 1, "prefixes": ["1"]},
                    {"id": "a", "start_ore": 1, "per_minute_ore": 1, "prefixes": ["2"]}]},
         "zones[1] (a).id: used twice"),
    ],
)
def test_each_problem_is_named_with_its_place(change: dict[str, Any], message: str) -> None:
    with pytest.raises(TariffError) as err:
        parse_tariff(doc(**change))
    assert any(p.startswith(message) for p in err.value.problems), err.value.problems


def test_same_prefix_twice_in_one_zone_is_fine() -> None:
    """Tahiti is listed besides French Polynesia (+689), both in Verden 4."""
    t = parse_tariff(doc(zones=[{"id": "w4", "start_ore": 1, "per_minute_ore": 1,
                                  "countries": ["Fransk Polynesia", "Tahitri"]}]))
    assert t.by_prefix == {"689": "w4"}


def test_business_prices_override_private() -> None:
    t = parse_tariff(doc(zones=[{"id": "fixed", "start_ore": 0, "per_minute_ore": 0,
                                  "business": {"start_ore": 0, "per_minute_ore": 15}, "prefixes": ["47"]}]))
    r = Rater(t)
    assert r.rate("+4722334455", 61, "private").price_ore == 0  # type: ignore[union-attr]
    assert r.rate("+4722334455", 61, "business").price_ore == 16  # type: ignore[union-attr]


def test_the_stored_document_round_trips_without_the_country_table() -> None:
    [path] = bundled_tariff_paths()
    t = load_tariff(path)
    back = tariff_from_document(t.document())
    assert back.by_prefix == t.by_prefix and back.zones == t.zones and back.valid_from == t.valid_from


def test_a_call_is_rated_by_the_tariff_valid_when_it_started() -> None:
    old = parse_tariff(doc(version=1, valid_from="2025-01-01T00:00:00+00:00"))
    new = parse_tariff(doc(version=2, valid_from="2026-01-01T00:00:00+00:00",
                           zones=[{"id": "nordic", "start_ore": 0, "per_minute_ore": 100, "prefixes": ["46"]}]))
    book = TariffBook([new, old])
    before = datetime(2024, 12, 31, 23, 59, tzinfo=UTC).timestamp()
    assert book.rater_at(before) is None
    assert book.rater_at(datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()).version == 1  # type: ignore[union-attr]
    assert book.rater_at(datetime(2026, 1, 1, tzinfo=UTC).timestamp()).version == 2  # type: ignore[union-attr]
    assert book.versions == [1, 2]


def test_per_second_price_rounds_up_and_budget_inverts_it() -> None:
    p = Price(59, 179)
    assert [p.for_seconds(s) for s in (0, 1, 2, 60, 61)] == [0, 62, 65, 238, 241]
    assert p.seconds_for(238) == pytest.approx(60.0)
    assert Price(0, 0).seconds_for(10) == float("inf")
