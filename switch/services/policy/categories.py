"""Which barring category a number falls in, from the one numbering table.

Data, not code: the number class decides, except where the plan's class is
wider than a barring category (815 is "national special" in the plan but
sold as premium "teletorg"; 18xx is a 4-digit service but barred as
directory enquiries). Emergency numbers have no category: nothing bars them.
Freephone (800), fixed and on-net numbers are barred only by
``all_outgoing``; so are 116xxx harmonised services (116 117 legevakt).
"""

from __future__ import annotations

from switch.store.models import BarringCategory

from ..numbering import Normalised, NumberClass

__all__ = ["category_of", "ATTEMPT_CATEGORIES", "BY_CLASS", "BY_PREFIX"]

_B = BarringCategory
_C = NumberClass

BY_CLASS: dict[NumberClass, BarringCategory] = {
    _C.INTERNATIONAL: _B.INTERNATIONAL,
    _C.MOBILE: _B.MOBILE,
    _C.M2M: _B.MOBILE,
    _C.PREMIUM_RATE: _B.PREMIUM,
    _C.SHARED_COST: _B.SHARED_COST,
    _C.FIVE_DIGIT: _B.SPECIAL,
    _C.NATIONAL_SPECIAL: _B.SPECIAL,
    _C.SHORT_SERVICE: _B.SPECIAL,
    _C.SERVICE: _B.SPECIAL,
}

#: National prefixes whose category differs from their class's (longest first is not needed: no overlaps).
BY_PREFIX: tuple[tuple[str, int, BarringCategory | None], ...] = (
    ("815", 8, _B.PREMIUM),
    ("18", 4, _B.DIRECTORY),
    ("116", 6, None),
)

#: Categories whose attempts the fraud guard counts (toll fraud goes abroad or to premium numbers).
ATTEMPT_CATEGORIES = frozenset({_B.INTERNATIONAL, _B.PREMIUM})


_BY_VALUE = {c.value: b for c, b in BY_CLASS.items()}  # str keys: an enum member's hash is a Python call
#: Only these classes hold a prefix of ``BY_PREFIX`` (815 is national special; 18xx, 116xxx are services).
_PREFIXED = frozenset({_C.NATIONAL_SPECIAL, _C.SERVICE})


def category_of(number: Normalised) -> BarringCategory | None:
    """The barring category of a dialled number; None: only ``all_outgoing`` bars it."""
    cls = number.number_class
    national = number.national
    if (cls is _C.NATIONAL_SPECIAL or cls is _C.SERVICE) and national is not None:  # _PREFIXED
        for prefix, length, category in BY_PREFIX:
            if len(national) == length and national.startswith(prefix):
                return category
    return _BY_VALUE.get(cls._value_)
