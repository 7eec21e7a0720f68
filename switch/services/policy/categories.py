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


def category_of(number: Normalised) -> BarringCategory | None:
    """The barring category of a dialled number; None: only ``all_outgoing`` bars it."""
    national = number.national
    if national is not None:
        for prefix, length, category in BY_PREFIX:
            if len(national) == length and national.startswith(prefix):
                return category
    return BY_CLASS.get(number.number_class)
