"""The Norwegian numbering plan as data: normalise dialled strings and classify them.

Barring, forwarding, routing and rating all ask this module "what is this
number?", so the answer lives in one declarative table, ``NORWEGIAN_NUMBERING``:
rows of (prefix, allowed lengths, class, description). For a national number
the row with the longest prefix whose lengths include the number's length
wins. Prices are not here: rating keeps its own ``PrefixTable`` of tariffs.

Facts used (Nkom E.164 plan, operator price list in the project notes):
country code 47, international prefix 00, no trunk prefix; 8-digit national
numbers (2/3/5/6/7 geographic, 4/9 mobile, 8xx non-geographic); 3-digit 1xx
(110/112/113 emergency); 4-digit 1xxx services; 6-digit 116xxx European
harmonised services; 5-digit 02000-09999; 12-digit 58 M2M numbers.

Accepted dialling forms (``normalise``)
---------------------------------------
* national: ``22334455``, ``112``, ``1881``, ``02800``;
* ``+47…``, ``0047…``: the rest must be a national number of the plan. This
  includes short codes, so ``+47112`` and ``0047112`` ARE emergency calls:
  a phone that prefixes +47 to everything must still reach 112, and refusing
  an emergency call is worse than routing an oddly dialled one;
* ``47`` + 8 or 12 digits without ``+``/``00`` when the digit string is not
  itself a national number (10 and 14 digits never are): ``4722334455``.
  An 8-digit string starting 47 is a national mobile number;
* ``+<cc>…``/``00<cc>…`` for another country: INTERNATIONAL, 6-15 digits;
* visual separators (space, ``-``, ``.``, ``(``, ``)``) are ignored;
* ``tel:`` URIs and SIP URI user parts, with ``;phone-context=+47`` (national)
  or ``+<cc>`` (local number in that country, RFC 3966 §5.1.5); a domain
  phone-context is ignored;
* emergency service URNs (RFC 5031): ``urn:service:sos`` → 112,
  ``.fire`` → 110, ``.ambulance``/``.physician`` → 113, other ``sos.*`` → 112.

Anything with ``*`` or ``#`` is INVALID here: feature codes are parsed first
by ``feature_codes``.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Generic, TypeVar
from urllib.parse import unquote

__all__ = [
    "NORWEGIAN_NUMBERING",
    "Normalised",
    "NumberClass",
    "NumberRule",
    "NumberingPlan",
    "PrefixTable",
    "is_emergency",
    "normalise",
]

T = TypeVar("T")

_DIGITS_RE: Final = re.compile(r"[0-9]*")


class PrefixTable(Generic[T]):
    """Longest-prefix match over digit strings (routing tables, tariffs).

    One dict of prefixes plus the distinct prefix lengths, longest first: a
    lookup costs one dict probe per distinct length, independent of table
    size. The empty prefix is allowed and matches everything (a default).
    """

    def __init__(self, items: Iterable[tuple[str, T]] = ()) -> None:
        self._items: dict[str, T] = {}
        self._lengths: list[int] = []
        for prefix, value in items:
            self.add(prefix, value)

    def add(self, prefix: str, value: T) -> None:
        """Map ``prefix`` to ``value``; an existing prefix is replaced."""
        if not _DIGITS_RE.fullmatch(prefix):
            raise ValueError(f"prefix must be ASCII digits, got {prefix!r}")
        self._items[prefix] = value
        if len(prefix) not in self._lengths:
            self._lengths.append(len(prefix))
            self._lengths.sort(reverse=True)

    def matches(self, digits: str) -> Iterator[tuple[str, T]]:
        """Every (prefix, value) that is a prefix of ``digits``, longest first."""
        for length in self._lengths:
            if length <= len(digits):
                key = digits[:length]
                if key in self._items:
                    yield key, self._items[key]

    def lookup_with_prefix(self, digits: str) -> tuple[str, T] | None:
        """The longest matching (prefix, value), or None."""
        return next(self.matches(digits), None)

    def lookup(self, digits: str) -> T | None:
        """The value of the longest matching prefix, or None."""
        found = self.lookup_with_prefix(digits)
        return found[1] if found is not None else None

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._items


class NumberClass(enum.Enum):
    """What a dialled number reaches; values are stable strings for storage."""

    EMERGENCY = "emergency"  # 110 fire, 112 police, 113 ambulance: never barred
    FIXED = "fixed"  # 8-digit geographic, 2/3/5/6/7
    MOBILE = "mobile"  # 8-digit 4xx/9xx
    M2M = "m2m"  # 12-digit 58…, machine-to-machine/IoT mobile numbers
    FREEPHONE = "freephone"  # 800: free for the caller
    SHARED_COST = "shared_cost"  # 810-814: caller pays a fixed low rate
    NATIONAL_SPECIAL = "national_special"  # 815, 819, 999 and other 8xx: operator-priced, not premium
    PREMIUM_RATE = "premium_rate"  # 820/829 ("teletorg") and other 82x
    FIVE_DIGIT = "five_digit"  # 02000-09999 business numbers
    SERVICE = "service"  # 4-digit 1xxx (1881 …) and 6-digit 116xxx
    SHORT_SERVICE = "short_service"  # 3-digit 1xx other than emergency (115, 117, 175, 177)
    INTERNATIONAL = "international"  # another country code
    INVALID = "invalid"  # not a number this plan knows


@dataclass(frozen=True, slots=True)
class NumberRule:
    """One row of the plan. ``has_e164``: reachable as +47 + national digits."""

    prefix: str
    lengths: tuple[int, ...]
    number_class: NumberClass
    description: str
    has_e164: bool = True


def _rule(
    prefix: str,
    lengths: int | tuple[int, ...],
    cls: NumberClass,
    description: str,
    has_e164: bool = True,
) -> NumberRule:
    lengths = lengths if isinstance(lengths, tuple) else (lengths,)
    return NumberRule(prefix, lengths, cls, description, has_e164)


_C = NumberClass

# The plan. Longest matching prefix (among rows allowing the length) wins.
NORWEGIAN_NUMBERING: Final[tuple[NumberRule, ...]] = (
    # Emergency (always routable, never forwarded, never barred).
    _rule("110", 3, _C.EMERGENCY, "Fire and rescue (brann)", has_e164=False),
    _rule("112", 3, _C.EMERGENCY, "Police (politi)", has_e164=False),
    _rule("113", 3, _C.EMERGENCY, "Ambulance / medical emergency (AMK)", has_e164=False),
    # Other 3-digit service codes; the named ones appear in the price list.
    _rule("1", 3, _C.SHORT_SERVICE, "3-digit 1xx service code", has_e164=False),
    _rule("115", 3, _C.SHORT_SERVICE, "Service code 115 (price list 0.52 + 0.80/min)", has_e164=False),
    _rule("117", 3, _C.SHORT_SERVICE, "Service code 117 (price list 0.52 + 0.80/min)", has_e164=False),
    _rule("175", 3, _C.SHORT_SERVICE, "Service code 175 (price list 0.52 + 1.61/min)", has_e164=False),
    _rule("177", 3, _C.SHORT_SERVICE, "Service code 177 (price list 0.52 + 1.61/min)", has_e164=False),
    # 4-digit and 6-digit services.
    _rule("1", 4, _C.SERVICE, "4-digit 1xxx service number", has_e164=False),
    _rule("18", 4, _C.SERVICE, "18xx directory enquiries (1881, 1882 …), high start fee", has_e164=False),
    _rule("116", 6, _C.SERVICE, "116xxx harmonised European service (116 117 legevakt …)", has_e164=False),
    # 5-digit location-independent numbers, 02000-09999 (01 is reserved).
    *(_rule(f"0{d}", 5, _C.FIVE_DIGIT, "5-digit business number") for d in "23456789"),
    # 8-digit geographic.
    _rule("2", 8, _C.FIXED, "Geographic, 2x (Oslo area)"),
    _rule("3", 8, _C.FIXED, "Geographic, 3x (south-east: Viken, Vestfold og Telemark, Agder)"),
    _rule("5", 8, _C.FIXED, "Geographic, 5x (west: Rogaland, Vestland)"),
    _rule("6", 8, _C.FIXED, "Geographic, 6x (east and inland)"),
    _rule("7", 8, _C.FIXED, "Geographic, 7x (Møre og Romsdal, Trøndelag, north)"),
    # Mobile.
    _rule("4", 8, _C.MOBILE, "Mobile, 4xx xx xxx"),
    _rule("9", 8, _C.MOBILE, "Mobile, 9xx xx xxx"),
    _rule("58", 12, _C.M2M, "12-digit M2M/IoT mobile number"),
    # 8-digit non-geographic 8xx.
    _rule("8", 8, _C.NATIONAL_SPECIAL, "Other location-independent 8xx number"),
    _rule("800", 8, _C.FREEPHONE, "Freephone (grønt nummer)"),
    *(_rule(f"81{d}", 8, _C.SHARED_COST, "Shared cost 810-814") for d in "01234"),
    _rule("815", 8, _C.NATIONAL_SPECIAL, "815 special number, priced like 5-digit numbers"),
    _rule("819", 8, _C.NATIONAL_SPECIAL, "819 special number"),
    _rule("82", 8, _C.PREMIUM_RATE, "Other 82x number, treated as premium rate"),
    _rule("820", 8, _C.PREMIUM_RATE, "Premium rate 820 (teletorg)"),
    _rule("829", 8, _C.PREMIUM_RATE, "Premium rate 829 (teletorg)"),
    # The operator's price list prices 999 as a special number, so it is
    # carved out of the 9xx mobile range.
    _rule("999", 8, _C.NATIONAL_SPECIAL, "999 special number"),
)

_SEPARATORS_RE: Final = re.compile(r"[ \t\u00a0\-.()]")
_DIALLABLE_RE: Final = re.compile(r"\+?[0-9]+")
_MAX_INPUT: Final = 128
# RFC 5031 §4.2 emergency service URNs → the Norwegian number that answers them.
_SOS_URN_NUMBERS: Final = {
    "urn:service:sos": "112",
    "urn:service:sos.police": "112",
    "urn:service:sos.fire": "110",
    "urn:service:sos.ambulance": "113",
    "urn:service:sos.physician": "113",
}
_INTL_MIN: Final = 6  # country code + subscriber number, E.164 has no formal minimum
_INTL_MAX: Final = 15  # ITU-T E.164 §6.1: at most 15 digits


@dataclass(frozen=True, slots=True)
class Normalised:
    """The result of ``normalise``; never raises, INVALID says "no".

    ``e164`` ("+4722334455") is None for short codes that have no E.164 form
    and for INVALID. ``national`` is the national number without country code
    (None for international and INVALID). ``short``: a national number under
    8 digits (emergency, 1xx, 1xxx, 116xxx, 5-digit).
    """

    e164: str | None
    national: str | None
    number_class: NumberClass
    dialled: str
    short: bool
    description: str = ""

    @property
    def is_emergency(self) -> bool:
        return self.number_class is NumberClass.EMERGENCY


class NumberingPlan:
    """A country's rules plus the dialling-form logic around them."""

    def __init__(self, rules: Iterable[NumberRule], country_code: str = "47") -> None:
        if not country_code.isascii() or not country_code.isdigit() or country_code[0] == "0":
            raise ValueError(f"bad country code {country_code!r}")
        self.country_code = country_code
        self.rules = tuple(rules)
        grouped: dict[str, list[NumberRule]] = {}
        for rule in self.rules:
            same = grouped.setdefault(rule.prefix, [])
            for other in same:
                if set(other.lengths) & set(rule.lengths):
                    raise ValueError(f"rules overlap: {other} and {rule}")
            same.append(rule)
        self._table: PrefixTable[tuple[NumberRule, ...]] = PrefixTable(
            (prefix, tuple(rules_)) for prefix, rules_ in grouped.items()
        )

    def classify(self, national: str) -> NumberRule | None:
        """The rule for a national digit string, or None if the plan has none."""
        if not national.isascii() or not national.isdigit():
            return None
        for _prefix, rules in self._table.matches(national):
            for rule in rules:
                if len(national) in rule.lengths:
                    return rule
        return None

    def _national(self, digits: str, dialled: str) -> Normalised | None:
        rule = self.classify(digits)
        if rule is None:
            return None
        return Normalised(
            e164=f"+{self.country_code}{digits}" if rule.has_e164 else None,
            national=digits,
            number_class=rule.number_class,
            dialled=dialled,
            short=len(digits) < 8,
            description=rule.description,
        )

    def _international(self, digits: str, dialled: str) -> Normalised:
        """``digits`` follow "+" or "00": country code first."""
        cc = self.country_code
        if digits.startswith(cc):
            return self._national(digits[len(cc) :], dialled) or _invalid(dialled)
        if not digits or digits[0] == "0" or not _INTL_MIN <= len(digits) <= _INTL_MAX:
            return _invalid(dialled)
        return Normalised(
            e164=f"+{digits}",
            national=None,
            number_class=NumberClass.INTERNATIONAL,
            dialled=dialled,
            short=False,
            description="International",
        )

    def normalise(self, dialled: str) -> Normalised:
        """Classify what a caller dialled (see the module docstring for forms)."""
        if len(dialled) > _MAX_INPUT:
            return _invalid(dialled)
        lower = dialled.strip().lower()
        if lower.startswith("urn:service:sos"):
            number = _SOS_URN_NUMBERS.get(lower)
            if number is None and lower.startswith("urn:service:sos."):
                number = "112"  # marine, mountain, gas ...: the general number
            if number is not None:
                return self._national(number, dialled) or _invalid(dialled)
            return _invalid(dialled)
        text, context = _strip_uri(dialled.strip())
        text = _SEPARATORS_RE.sub("", text)
        if not _DIALLABLE_RE.fullmatch(text):
            return _invalid(dialled)

        if text.startswith("+"):
            return self._international(text[1:], dialled)
        if text.startswith("00"):
            return self._international(text[2:], dialled)
        if context is not None:
            ctx_digits = _SEPARATORS_RE.sub("", context[1:])
            if not ctx_digits.isascii() or not ctx_digits.isdigit():
                return _invalid(dialled)
            if ctx_digits != self.country_code:
                # A local number in another numbering context (RFC 3966 §5.1.5).
                return self._international(ctx_digits + text, dialled)

        found = self._national(text, dialled)
        if found is not None:
            return found
        # "47XXXXXXXX": country code without + or 00, only when the rest is a
        # full subscriber number (so the whole string cannot be national).
        cc = self.country_code
        rest = text[len(cc) :]
        if text.startswith(cc) and len(rest) >= 8:
            found = self._national(rest, dialled)
            if found is not None:
                return found
        return _invalid(dialled)

    def is_emergency(self, dialled: str) -> bool:
        return self.normalise(dialled).number_class is NumberClass.EMERGENCY


def _invalid(dialled: str) -> Normalised:
    return Normalised(None, None, NumberClass.INVALID, dialled, False, "")


def _strip_uri(text: str) -> tuple[str, str | None]:
    """Reduce tel:/sip: forms to the number; return it and a global phone-context."""
    lower = text.lower()
    if lower.startswith(("sip:", "sips:")):
        text = unquote(text.split(":", 1)[1].split("@", 1)[0])
    elif lower.startswith("tel:"):
        text = unquote(text[4:])
    context: str | None = None
    if ";" in text:
        text, *params = text.split(";")
        for param in params:
            name, _, value = param.partition("=")
            value = value.strip()
            # Only a global-number context changes the meaning; a domain
            # context (";phone-context=example.com") is ignored.
            if name.strip().lower() == "phone-context" and value.startswith("+"):
                context = value
    return text, context


@functools.lru_cache(maxsize=8)
def _plan(country_code: str) -> NumberingPlan:
    return NumberingPlan(NORWEGIAN_NUMBERING, country_code)


def normalise(dialled: str, country_code: str = "47") -> Normalised:
    """Normalise and classify ``dialled`` with the Norwegian plan."""
    return _plan(country_code).normalise(dialled)


def is_emergency(n: str) -> bool:
    """True for 110/112/113 in any accepted form (also +47112, 0047 112, tel:112)."""
    return normalise(n).number_class is NumberClass.EMERGENCY
