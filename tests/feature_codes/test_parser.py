"""The star-code parser, one table row per dialled string (good and malformed)."""

from __future__ import annotations

import pytest

from feature_codes import CODES, Action, Condition, FeatureRequest, InvalidCode, parse, policy_key
from switch.services.numbering import NumberClass, normalise
from switch.store.models import ForwardKind

A, D, S, X = Action.ACTIVATE, Action.DEACTIVATE, Action.STATUS, Action.CANCEL_ALL
U, NA, UR, B = Condition.UNCONDITIONAL, Condition.NO_ANSWER, Condition.UNREACHABLE, Condition.BUSY

# dialled -> (action, condition, target, ring time, policy key)
GOOD: list[tuple[str, tuple[Action, Condition | None, str | None, int | None, str]]] = [
    ("*21*22000002#", (A, U, "22000002", None, "*21*")),
    ("*21*22000002%23", (A, U, "22000002", None, "*21*")),
    ("*21*+4722000002#", (A, U, "+4722000002", None, "*21*")),
    ("**21*004612345678#", (A, U, "004612345678", None, "*21*")),  # GSM registration = activation
    ("#21#", (D, U, None, None, "#21#")),
    ("%2321%23", (D, U, None, None, "#21#")),
    ("##21#", (D, U, None, None, "#21#")),  # GSM erasure = deactivation
    ("*#21#", (S, U, None, None, "*#21#")),
    ("*%2321%23", (S, U, None, None, "*#21#")),
    ("*61*22000002#", (A, NA, "22000002", None, "*61*")),
    ("*61*22000002*20#", (A, NA, "22000002", 20, "*61*")),
    ("*61*22000002*5#", (A, NA, "22000002", 5, "*61*")),
    ("*61*22000002*120%23", (A, NA, "22000002", 120, "*61*")),
    ("*61*22000002**30#", (A, NA, "22000002", 30, "*61*")),  # 22.030 form, empty basic service
    ("#61#", (D, NA, None, None, "#61#")),
    ("*#61#", (S, NA, None, None, "*#61#")),
    ("*62*91234567#", (A, UR, "91234567", None, "*62*")),
    ("#62#", (D, UR, None, None, "#62#")),
    ("*#62#", (S, UR, None, None, "*#62#")),
    ("*67*91234567#", (A, B, "91234567", None, "*67*")),
    ("#67%23", (D, B, None, None, "#67#")),
    ("*#67#", (S, B, None, None, "*#67#")),
    ("##002#", (X, None, None, None, "##002#")),
    ("%23%23002%23", (X, None, None, None, "##002#")),
    ("##002%23", (X, None, None, None, "##002#")),
    ("*21*22000002#;phone-context=+47", (A, U, "22000002", None, "*21*")),
    ("%2A21%2A22000002%23", (A, U, "22000002", None, "*21*")),
]

# dialled -> a word of the reason
BAD: list[tuple[str, str]] = [
    ("*21*#", "form"),  # no target
    ("*21*22000002", "form"),  # no closing #
    ("*21#", "form"),  # activation without a number
    ("21#", "form"),
    ("*2*22000002#", "form"),  # one-digit service code
    ("*211*22000002#", "form"),
    ("*33*22000002#", "service code"),  # GSM call barring: not ours
    ("#33#", "service code"),
    ("*#30#", "service code"),  # CLIP status
    ("*31#22000002", "form"),  # CLIR prefix
    ("##004#", "form"),  # all conditional forwarding: not offered
    ("*002*22000002#", "form"),
    ("#002#", "form"),
    ("*21*2200a002#", "form"),
    ("*21*22+000002#", "form"),
    ("*21*22000002*20#", "only for *61*"),  # ring time on unconditional
    ("*67*22000002*20#", "only for *61*"),
    ("*61*22000002*4#", "5-120"),
    ("*61*22000002*121#", "5-120"),
    ("*61*22000002*0#", "5-120"),
    ("*61*22000002*#", "form"),
    ("*61*22000002***20#", "form"),
    ("*61**20#", "form"),
    ("*21*123456789012345678901#", "too long"),  # 21 digits
    ("*21*22000002##", "form"),
    ("**", "form"),
    ("#", "form"),
    ("*", "form"),
    ("*#", "form"),
    ("###", "form"),
    ("*21*22000002%23%23", "form"),
    ("*21*22000002%41", "escape"),
    ("*21*22%000002#", "escape"),
    ("*21*" + "2" * 70 + "#", "too long"),
    (" *21* 22000002#", "form"),
    ("*21*２２000002#", "form"),  # full-width digits
]

NOT_CODES = ["22000002", "+4722000002", "112", "urn:service:sos", "", "1881", "%32%32000002"]


@pytest.mark.parametrize(("dialled", "expected"), GOOD, ids=[g[0] for g in GOOD])
def test_good_codes(dialled: str, expected: tuple[Action, Condition | None, str | None, int | None, str]) -> None:
    got = parse(dialled)
    assert isinstance(got, FeatureRequest), got
    action, condition, target, ring, key = expected
    assert (got.action, got.condition, got.target, got.ring_time_s, got.key) == (action, condition, target, ring, key)
    assert "%" not in got.dialled and got.dialled.endswith("#")


@pytest.mark.parametrize(("dialled", "why"), BAD, ids=[b[0] for b in BAD])
def test_malformed_codes_are_invalid(dialled: str, why: str) -> None:
    got = parse(dialled)
    assert isinstance(got, InvalidCode), got
    assert why in got.reason
    assert got.dialled == dialled


@pytest.mark.parametrize("dialled", NOT_CODES)
def test_numbers_are_not_codes(dialled: str) -> None:
    assert parse(dialled) is None


def test_every_bad_string_is_invalid_for_numbering_too() -> None:
    """What the parser refuses must not get routed by the numbering plan either."""
    for dialled, _ in BAD:
        assert normalise(dialled).number_class is NumberClass.INVALID, dialled


def test_every_policy_key_is_produced_by_its_own_code() -> None:
    keys = set()
    for dialled, (_, _, _, _, key) in GOOD:
        keys.add(key)
    assert keys == set(CODES)
    assert len(CODES) == 13


def test_policy_keys() -> None:
    assert policy_key(A, U) == "*21*"
    assert policy_key(D, B) == "#67#"
    assert policy_key(S, NA) == "*#61#"
    assert policy_key(X, None) == "##002#"


def test_conditions_are_the_stores_forward_kinds() -> None:
    """The executor converts by value: the two enums must carry the same strings."""
    assert {c.value for c in Condition} == {k.value for k in ForwardKind}
