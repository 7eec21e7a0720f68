"""How an adapter's four lamps look: colour, steady or blinking, and the words for it.

The switch computes each lamp as ``ok`` / ``warning`` / ``off`` with a reason
(``switch.services.adapter_status``). On the page they look as support staff
tell customers to look at the box: green and steady when all is well, red and
blinking when something needs attention, unlit when off. The state is always
written out in words too (not only a colour), for screen readers and for the
colour-blind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Final

from .deps import LampView

__all__ = ["LAMP_LABELS", "LAMP_ORDER", "LampDisplay", "lamp_view", "needs_attention"]

LAMP_ORDER: Final = ("pwr", "wan", "tel1", "tel2")
LAMP_LABELS: Final = {"pwr": "PWR", "wan": "WAN", "tel1": "Tel1", "tel2": "Tel2"}
_LOOK: Final = {"ok": ("green", "steady"), "warning": ("red", "blinking"), "off": ("none", "off")}


@dataclass(frozen=True, slots=True)
class LampDisplay:
    name: str  # pwr ...
    label: str  # PWR ...
    state: str  # ok | warning | off
    colour: str  # green | red | none
    pattern: str  # steady | blinking | off
    reason: str
    since: datetime | None


def lamp_view(name: str, lamp: LampView | None) -> LampDisplay:
    if lamp is None:
        return LampDisplay(name, LAMP_LABELS[name], "off", "none", "off", "unknown", None)
    colour, pattern = _LOOK.get(lamp.state, ("none", "off"))
    since = datetime.fromtimestamp(lamp.since, tz=timezone.utc) if lamp.since else None
    return LampDisplay(name, LAMP_LABELS[name], lamp.state, colour, pattern, lamp.reason, since)


def needs_attention(lamps: Mapping[str, LampView]) -> list[LampDisplay]:
    """The lamps a customer would call support about: red ones, and unlit Tel lamps of a line that exists."""
    out = []
    for name in LAMP_ORDER:
        lamp = lamps.get(name)
        if lamp is None:
            continue
        if lamp.state == "warning" or (
            lamp.state == "off" and lamp.reason not in ("no line on this port", "line disabled")
            and (name.startswith("tel") or name == "pwr")
        ):
            out.append(lamp_view(name, lamp))
    return out
