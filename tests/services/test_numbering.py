"""Tests for switch.services.numbering: the Norwegian plan, dialling forms, PrefixTable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.services.numbering import (
    NORWEGIAN_NUMBERING,
    Normalised,
    NumberClass,
    NumberingPlan,
    NumberRule,
    PrefixTable,
    is_emergency,
    normalise,
)

C = NumberClass

# (national number, class, has E.164 form)
NATIONAL_CASES: list[tuple[str, NumberClass, bool]] = [
    # Emergency.
    ("110", C.EMERGENCY, False),
    ("112", C.EMERGENCY, False),
    ("113", C.EMERGENCY, False),
    # 3-digit services.
    ("115", C.SHORT_SERVICE, False),
    ("117", C.SHORT_SERVICE, False),
    ("175", C.SHORT_SERVICE, False),
    ("177", C.SHORT_SERVICE, False),
    ("111", C.SHORT_SERVICE, False),
    ("120", C.SHORT_SERVICE, False),
    # 4-digit and 116xxx services.
    ("1881", C.SERVICE, False),
    ("1860", C.SERVICE, False),
    ("1880", C.SERVICE, False),
    ("1882", C.SERVICE, False),
    ("1885", C.SERVICE, False),
    ("1888", C.SERVICE, False),
    ("1890", C.SERVICE, False),
    ("1412", C.SERVICE, False),
    ("1120", C.SERVICE, False),  # 4 digits: not 112
    ("116117", C.SERVICE, False),
    ("116111", C.SERVICE, False),
    # 5-digit.
    ("02000", C.FIVE_DIGIT, True),
    ("02800", C.FIVE_DIGIT, True),
    ("04000", C.FIVE_DIGIT, True),
    ("07575", C.FIVE_DIGIT, True),
    ("09999", C.FIVE_DIGIT, True),
    # Fixed.
    ("22334455", C.FIXED, True),
    ("21000000", C.FIXED, True),
    ("32123456", C.FIXED, True),
    ("38000000", C.FIXED, True),
    ("51234567", C.FIXED, True),
    ("55555555", C.FIXED, True),
    ("59999999", C.FIXED, True),
    ("61234567", C.FIXED, True),
    ("69999999", C.FIXED, True),
    ("73000000", C.FIXED, True),
    ("77123456", C.FIXED, True),
    # Mobile.
    ("40000000", C.MOBILE, True),
    ("41234567", C.MOBILE, True),
    ("47123456", C.MOBILE, True),  # 8 digits starting 47 is a mobile number
    ("48999999", C.MOBILE, True),
    ("90000000", C.MOBILE, True),
    ("91234567", C.MOBILE, True),
    ("98765432", C.MOBILE, True),
    ("99899999", C.MOBILE, True),
    # M2M.
    ("580012345678", C.M2M, True),
    ("589999999999", C.M2M, True),
    # 8xx.
    ("80012345", C.FREEPHONE, True),
    ("80099999", C.FREEPHONE, True),
    ("81012345", C.SHARED_COST, True),
    ("81112345", C.SHARED_COST, True),
    ("81412345", C.SHARED_COST, True),
    ("81556510", C.NATIONAL_SPECIAL, True),  # the operator's own 815 56 510
    ("81912345", C.NATIONAL_SPECIAL, True),
    ("85012345", C.NATIONAL_SPECIAL, True),
    ("88012345", C.NATIONAL_SPECIAL, True),
    ("81612345", C.NATIONAL_SPECIAL, True),
    ("82012345", C.PREMIUM_RATE, True),
    ("82040123", C.PREMIUM_RATE, True),
    ("82912345", C.PREMIUM_RATE, True),
    ("82512345", C.PREMIUM_RATE, True),
    ("99912345", C.NATIONAL_SPECIAL, True),
]


@pytest.mark.parametrize(("number", "cls", "has_e164"), NATIONAL_CASES)
def test_national_classification(number: str, cls: NumberClass, has_e164: bool) -> None:
    n = normalise(number)
    assert n.number_class is cls
    assert n.national == number
    assert n.dialled == number
    assert n.e164 == (f"+47{number}" if has_e164 else None)
    assert n.short is (len(number) < 8)
    assert n.description


def _forms(number: str) -> list[str]:
    """Every accepted way of dialling a national number."""
    forms = [
        number,
        f"+47{number}",
        f"0047{number}",
        f"+47 {number}",
        f"00 47 {number}",
        f"tel:+47{number}",
        f"tel:{number};phone-context=+47",
        f"sip:{number}@sip.example.no",
        f"sip:+47{number}@sip.example.no;user=phone",
        f"sips:{number};phone-context=+47@sip.example.no",
        f"{number};phone-context=+47",
        f"{number};phone-context=sip.example.no",
        f"  {number}\t",
    ]
    if len(number) in (8, 12):
        forms.append(f"47{number}")
    if len(number) == 8:
        forms += [
            f"{number[:2]} {number[2:4]} {number[4:6]} {number[6:]}",
            f"{number[:3]}-{number[3:5]}-{number[5:]}",
            f"({number[:3]}) {number[3:5]}.{number[5:]}",
            f"+47 ({number[:3]}) {number[3:5]} {number[5:]}",
            f"tel:+47-{number[:3]}-{number[3:5]}-{number[5:]}",
            f"sip:%2B47{number}@h",
            f"{number[:2]}\u00a0{number[2:]}",
        ]
    return forms


ALL_FORMS = [(form, number, cls) for number, cls, _ in NATIONAL_CASES for form in _forms(number)]


@pytest.mark.parametrize(("form", "number", "cls"), ALL_FORMS)
def test_every_dialling_form(form: str, number: str, cls: NumberClass) -> None:
    n = normalise(form)
    assert (n.national, n.number_class, n.dialled) == (number, cls, form)


def test_exact_normalised_values() -> None:
    assert normalise("+47 22 33 44 55") == Normalised(
        e164="+4722334455",
        national="22334455",
        number_class=C.FIXED,
        dialled="+47 22 33 44 55",
        short=False,
        description="Geographic, 2x (Oslo area)",
    )
    assert normalise("112") == Normalised(
        e164=None,
        national="112",
        number_class=C.EMERGENCY,
        dialled="112",
        short=True,
        description="Police (politi)",
    )
    assert normalise("0046 8 123 456 78") == Normalised(
        e164="+46812345678",
        national=None,
        number_class=C.INTERNATIONAL,
        dialled="0046 8 123 456 78",
        short=False,
        description="International",
    )


@pytest.mark.parametrize(
    ("dialled", "e164"),
    [
        ("+46812345678", "+46812345678"),
        ("0046812345678", "+46812345678"),
        ("00 45 33 12 34 56", "+4533123456"),
        ("+1 (212) 555-0100", "+12125550100"),
        ("0012125550100", "+12125550100"),
        ("+44 20 7946 0000", "+442079460000"),
        ("+358 40 1234567", "+358401234567"),
        ("+683 4002", "+6834002"),  # Niue: 4-digit subscriber numbers
        ("+123456789012345", "+123456789012345"),  # 15 digits: E.164 maximum
        ("tel:+46-8-123-456-78", "+46812345678"),
        ("sip:+46812345678@carrier.example;user=phone", "+46812345678"),
        ("812345678;phone-context=+46", "+46812345678"),
        ("tel:8123456;phone-context=+46-8", "+4688123456"),
    ],
)
def test_international(dialled: str, e164: str) -> None:
    n = normalise(dialled)
    assert n.number_class is C.INTERNATIONAL
    assert n.e164 == e164
    assert n.national is None
    assert n.short is False


@pytest.mark.parametrize(
    "dialled",
    [
        "",
        " ",
        "+",
        "00",
        "0",
        "1",
        "11",
        "abc",
        "2233445a",
        "22334455x",
        "phone",
        "*21*22334455#",
        "#21#",
        "*#21#",
        "##002#",
        "22#",
        "2233445",  # 7 digits
        "223344556",  # 9 digits
        "12345678",  # 8 digits starting 1
        "01234567",  # 8 digits starting 0
        "01234",  # 01 series is reserved
        "00123",  # international prefix, country code 0
        "000",
        "911",
        "999",
        "1000000",
        "1161170",
        "11611",
        "58001234567",  # M2M is 12 digits
        "5800123456789",
        "4722334455 1",
        "472233445",  # 9 digits
        "47 02800",  # 47 + 5-digit without + is not accepted
        "47112",
        "+4",
        "+47",
        "0047",
        "+47 1234 5678",  # +47 then invalid national
        "+4701234567",
        "+47 0123",
        "+0123456789",
        "+12345",  # too short
        "+46112",  # short codes have no international form
        "+1234567890123456",  # 16 digits
        "++4722334455",
        "+47+22334455",
        "22 33 44 55 +",
        "٢٢٣٣٤٤٥٥",  # Arabic-Indic digits are not ASCII digits
        "２２３３４４５５",  # full-width digits  # noqa: RUF001
        "tel:",
        "sip:sip.example.no",
        "sip:alice@sip.example.no",
        "tel:22334455;phone-context=+4x",
        "22334455/",
        "2" * 200,
    ],
)
def test_invalid(dialled: str) -> None:
    n = normalise(dialled)
    assert n == Normalised(None, None, C.INVALID, dialled, False, "")


@given(st.text(max_size=40))
def test_normalise_never_raises(text: str) -> None:
    n = normalise(text)
    assert n.dialled == text
    if n.number_class is C.INVALID:
        assert n.e164 is None and n.national is None
    if n.e164 is not None:
        assert n.e164.startswith("+") and n.e164[1:].isdigit()


@given(st.from_regex(r"[235-7][0-9]{7}", fullmatch=True))
def test_every_geographic_8_digit_number_is_fixed(number: str) -> None:
    assert normalise(number).number_class is C.FIXED


@given(st.from_regex(r"(4[0-9]|9[0-8])[0-9]{6}|99[0-8][0-9]{5}", fullmatch=True))
def test_every_mobile_8_digit_number_is_mobile(number: str) -> None:
    n = normalise(number)
    assert n.number_class is C.MOBILE
    assert normalise(f"0047{number}").e164 == f"+47{number}"


def test_47_prefix_ambiguity() -> None:
    # 8 digits starting 47: national mobile, not "47" + 6 digits.
    assert normalise("47123456").national == "47123456"
    # 10 digits starting 47: country code + national.
    assert normalise("4747123456").national == "47123456"
    assert normalise("4722334455").e164 == "+4722334455"
    # +47 followed by 47...
    assert normalise("+47 47 12 34 56").national == "47123456"


def test_emergency_in_every_form() -> None:
    for form in ["112", "+47112", "0047112", "+47 112", "tel:112", "tel:+47112",
                 "sip:112@sip.example.no", "112;phone-context=+47", " 1-1-2 "]:
        assert is_emergency(form), form
        assert normalise(form).national == "112"
    for number in ("110", "113"):
        assert is_emergency(number)
    for not_emergency in ["1120", "11", "911", "999", "+46112", "00112", "12", "115", "116117", ""]:
        assert not is_emergency(not_emergency), not_emergency
    assert normalise("+47113").is_emergency


@pytest.mark.parametrize(
    ("urn", "number"),
    [
        ("urn:service:sos", "112"),
        ("URN:Service:SOS", "112"),
        ("urn:service:sos.police", "112"),
        ("urn:service:sos.fire", "110"),
        ("urn:service:sos.ambulance", "113"),
        ("urn:service:sos.physician", "113"),
        ("urn:service:sos.marine", "112"),
        ("urn:service:sos.mountain", "112"),
    ],
)
def test_emergency_service_urns(urn: str, number: str) -> None:
    n = normalise(urn)
    assert (n.number_class, n.national, n.dialled) == (C.EMERGENCY, number, urn)
    assert is_emergency(urn)


@pytest.mark.parametrize("urn", ["urn:service:sosx", "urn:service:counseling", "urn:service:sos:", "urn:x"])
def test_other_service_urns_invalid(urn: str) -> None:
    assert normalise(urn).number_class is C.INVALID


def test_country_code_parameter() -> None:
    # With another home country code, +47 numbers are international.
    n = normalise("+4722334455", country_code="46")
    assert (n.number_class, n.e164) == (C.INTERNATIONAL, "+4722334455")
    with pytest.raises(ValueError):
        NumberingPlan(NORWEGIAN_NUMBERING, "0")


def test_table_is_declarative_and_unambiguous() -> None:
    seen: set[tuple[str, int]] = set()
    for rule in NORWEGIAN_NUMBERING:
        assert rule.prefix.isdigit()
        assert rule.description
        for length in rule.lengths:
            assert len(rule.prefix) <= length
            assert (rule.prefix, length) not in seen
            seen.add((rule.prefix, length))
    classes = {r.number_class for r in NORWEGIAN_NUMBERING}
    assert classes == set(NumberClass) - {C.INTERNATIONAL, C.INVALID}


def test_longest_prefix_wins_in_custom_plan() -> None:
    plan = NumberingPlan(
        [
            NumberRule("9", (8,), C.MOBILE, "mobile"),
            NumberRule("999", (8,), C.NATIONAL_SPECIAL, "special"),
            NumberRule("9999", (8,), C.PREMIUM_RATE, "more special"),
            NumberRule("1", (3,), C.SHORT_SERVICE, "short"),
            NumberRule("1", (4,), C.SERVICE, "service"),
        ]
    )
    assert plan.classify("91234567") == NumberRule("9", (8,), C.MOBILE, "mobile")
    assert plan.classify("99912345") is not None
    assert plan.classify("99912345").number_class is C.NATIONAL_SPECIAL  # type: ignore[union-attr]
    assert plan.classify("99991234").number_class is C.PREMIUM_RATE  # type: ignore[union-attr]
    assert plan.classify("123").number_class is C.SHORT_SERVICE  # type: ignore[union-attr]
    assert plan.classify("1234").number_class is C.SERVICE  # type: ignore[union-attr]
    assert plan.classify("12345") is None
    assert plan.classify("9999123") is None  # length excluded: no shorter fallback either
    assert plan.classify("") is None
    assert plan.classify("12a") is None


def test_length_filter_falls_back_to_shorter_prefix() -> None:
    plan = NumberingPlan(
        [
            NumberRule("11", (3,), C.EMERGENCY, "e"),
            NumberRule("1", (3, 4), C.SERVICE, "s"),
        ]
    )
    assert plan.classify("112").number_class is C.EMERGENCY  # type: ignore[union-attr]
    # "1120" does not fit "11" (length 3 only) and falls back to "1".
    assert plan.classify("1120").number_class is C.SERVICE  # type: ignore[union-attr]


def test_overlapping_rules_rejected() -> None:
    with pytest.raises(ValueError):
        NumberingPlan(
            [NumberRule("2", (8,), C.FIXED, "a"), NumberRule("2", (7, 8), C.MOBILE, "b")]
        )


# ---------------------------------------------------------------------------
# PrefixTable
# ---------------------------------------------------------------------------


def test_prefix_table_longest_match() -> None:
    t: PrefixTable[str] = PrefixTable()
    t.add("47", "norway")
    t.add("47815", "815")
    t.add("4781", "81x")
    t.add("46", "sweden")
    t.add("1", "nanp")
    assert t.lookup("4781556510") == "815"
    assert t.lookup_with_prefix("4781556510") == ("47815", "815")
    assert t.lookup_with_prefix("4781012345") == ("4781", "81x")
    assert t.lookup_with_prefix("4722334455") == ("47", "norway")
    assert t.lookup("12125550100") == "nanp"
    assert t.lookup("45") is None
    assert t.lookup_with_prefix("") is None
    assert t.lookup("4") is None  # shorter than every prefix
    assert t.lookup("47") == "norway"  # exact match
    assert len(t) == 5
    assert "4781" in t and "478" not in t


def test_prefix_table_default_and_replace() -> None:
    t = PrefixTable([("", 0), ("47", 1)])
    assert t.lookup("99") == 0
    assert t.lookup_with_prefix("") == ("", 0)
    t.add("47", 2)
    assert t.lookup("4722") == 2
    assert t.items() == [("", 0), ("47", 2)]
    assert len(t) == 2


def test_prefix_table_none_and_falsy_values() -> None:
    t: PrefixTable[int | None] = PrefixTable([("4", 0), ("47", None)])
    assert t.lookup_with_prefix("4722") == ("47", None)
    assert t.lookup_with_prefix("4622") == ("4", 0)


def test_prefix_table_matches_order() -> None:
    t = PrefixTable([("4", "a"), ("478", "c"), ("47", "b"), ("5", "x")])
    assert list(t.matches("4789")) == [("478", "c"), ("47", "b"), ("4", "a")]
    assert list(t.matches("6")) == []


@pytest.mark.parametrize("bad", ["+47", "4 7", "a", "٤٧", "47-"])
def test_prefix_table_rejects_non_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        PrefixTable[int]().add(bad, 1)


@given(
    st.dictionaries(st.from_regex(r"[0-9]{0,6}", fullmatch=True), st.integers(), max_size=30),
    st.from_regex(r"[0-9]{0,10}", fullmatch=True),
)
def test_prefix_table_matches_brute_force(table: dict[str, int], digits: str) -> None:
    t = PrefixTable(table.items())
    candidates = [p for p in table if digits.startswith(p)]
    if not candidates:
        assert t.lookup_with_prefix(digits) is None
    else:
        best = max(candidates, key=len)
        assert t.lookup_with_prefix(digits) == (best, table[best])
