"""Validation of policy settings: the one set of rules the API, the importer,
star codes and the service all use, so nothing accepted by one is refused by
another. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from switch.store.models import BarringCategory, ForwardKind, SuspensionLevel, SuspensionReason

from ..numbering import Normalised, NumberClass, normalise
from .model import DEFAULT_FORWARD_CLASSES, RING_TIME_RANGE, FraudLimits

__all__ = [
    "PolicyValidationError",
    "ValidForward",
    "validate_forward",
    "validate_kind",
    "validate_categories",
    "validate_level",
    "validate_reason",
    "validate_limits",
    "parse_forward_classes",
]


class PolicyValidationError(ValueError):
    """A setting is refused; ``field`` names what is wrong (for a 400/422 and import errors)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ValidForward:
    kind: ForwardKind
    target: str
    """E.164 form (or the national form for numbers without one)."""
    timeout_s: int | None
    number: Normalised


def validate_kind(raw: object) -> ForwardKind:
    try:
        return ForwardKind(str(raw))
    except ValueError:
        kinds = ", ".join(k.value for k in ForwardKind)
        raise PolicyValidationError("kind", f"must be one of {kinds}, got {raw!r}") from None


def validate_forward(
    kind: ForwardKind | str,
    target: object,
    timeout_s: object,
    *,
    line_number: str,
    on_net: Mapping[str, object] | Iterable[str] = (),
    allowed: frozenset[NumberClass] = DEFAULT_FORWARD_CLASSES,
    country_code: str = "47",
) -> ValidForward:
    """A forward target a line may set: a valid number of an allowed class, never
    110/112/113, never the line itself. ``timeout_s`` only for ``no_answer`` (5-120 s)."""
    k = kind if isinstance(kind, ForwardKind) else validate_kind(kind)
    if not isinstance(target, str) or not target.strip():
        raise PolicyValidationError("target", "is required: the number to forward to, e.g. \"22000003\"")
    number = normalise(target.strip(), country_code)
    if number.number_class is NumberClass.INVALID:
        raise PolicyValidationError("target", f"{target!r} is not a telephone number")
    if number.number_class is NumberClass.EMERGENCY:
        raise PolicyValidationError("target", "emergency numbers (110, 112, 113) cannot be forward targets")
    to = number.e164 or number.national or target
    if to == line_number:
        raise PolicyValidationError("target", "a line cannot forward to itself")
    lines = on_net if isinstance(on_net, Mapping) else set(on_net)
    if number.number_class not in allowed and not (number.e164 is not None and number.e164 in lines):
        classes = ", ".join(sorted(c.value for c in allowed))
        raise PolicyValidationError(
            "target", f"{to} is a {number.number_class.value} number; forwarding is allowed to {classes} numbers"
        )
    timeout: int | None = None
    if k is ForwardKind.NO_ANSWER:
        if timeout_s is None:
            timeout = 20
        elif isinstance(timeout_s, bool) or not isinstance(timeout_s, int):
            raise PolicyValidationError("timeout_s", f"must be a whole number of seconds, got {timeout_s!r}")
        else:
            lo, hi = RING_TIME_RANGE
            if not lo <= timeout_s <= hi:
                raise PolicyValidationError("timeout_s", f"must be from {lo} to {hi} seconds, got {timeout_s}")
            timeout = timeout_s
    elif timeout_s is not None:
        raise PolicyValidationError("timeout_s", f"applies to no_answer forwarding only, not {k.value}")
    return ValidForward(k, to, timeout, number)


def validate_categories(raw: object, field: str = "categories") -> frozenset[BarringCategory]:
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise PolicyValidationError(field, "must be a list of category names, e.g. [\"international\", \"premium\"]")
    out: set[BarringCategory] = set()
    for c in raw:
        try:
            out.add(BarringCategory(c))
        except ValueError:
            names = ", ".join(b.value for b in BarringCategory)
            raise PolicyValidationError(field, f"unknown category {c!r}; known: {names}") from None
    return frozenset(out)


def validate_level(raw: object) -> SuspensionLevel:
    try:
        return SuspensionLevel(str(raw))
    except ValueError:
        raise PolicyValidationError("level", f"must be soft or hard, got {raw!r}") from None


def validate_reason(raw: object) -> SuspensionReason:
    try:
        return SuspensionReason(str(raw))
    except ValueError:
        names = ", ".join(r.value for r in SuspensionReason)
        raise PolicyValidationError("reason", f"must be one of {names}, got {raw!r}") from None


_LIMIT_FIELDS = ("calls_per_line", "calls_per_customer", "attempts_per_hour", "night_attempts_per_hour")


def validate_limits(raw: object, base: FraudLimits = FraudLimits(), field: str = "fraud_limits") -> dict[str, int]:
    """Per-customer fraud limits: a mapping of some of the four limits to whole numbers 1..1000."""
    if not isinstance(raw, dict):
        raise PolicyValidationError(field, f"must be a mapping with some of {', '.join(_LIMIT_FIELDS)}")
    out: dict[str, int] = {}
    for key, value in raw.items():
        if key not in _LIMIT_FIELDS:
            raise PolicyValidationError(f"{field}.{key}", f"unknown limit; known: {', '.join(_LIMIT_FIELDS)}")
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise PolicyValidationError(f"{field}.{key}", f"must be a whole number from 1 to 1000, got {value!r}")
        out[str(key)] = value
    return out


def parse_forward_classes(raw: str) -> frozenset[NumberClass]:
    """``"fixed,mobile,premium_rate"`` (a setting) → number classes."""
    out: set[NumberClass] = set()
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            cls = NumberClass(part)
        except ValueError:
            raise PolicyValidationError("forward_classes", f"unknown number class {part!r}") from None
        if cls in (NumberClass.EMERGENCY, NumberClass.INVALID):
            raise PolicyValidationError("forward_classes", f"{part} can never be a forward target")
        out.add(cls)
    return frozenset(out)
