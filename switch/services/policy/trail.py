"""The decision trail's vocabulary: every step the engine writes, as a code with its values.

The engine writes each step as a fixed English sentence (``engine.py``; built
with f-strings or once per line in ``model.LinePolicy``, since a decision costs a
few microseconds and the sentence is what the calls API and the CDR give support).
Those sentences are stored as they are (``call_records.decision_trail``, a JSON
list of strings), so records written before this module existed read the same.
``parse_step`` turns one back into its code and values so that a page can say
it in the reader's language (``provisioning/ui/i18n.py``, keys ``trail_<code>``
and the words ``tw_<value>``). ``tests/ui/test_trail_words.py`` runs the
engine's decision table and fails on any step this vocabulary does not know,
so a new or reworded step cannot stay English on a Norwegian page unnoticed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["CODES", "TrailStep", "WORD_PARAMS", "parse_step"]

_N: Final = r"[^\s:]+"  # a number as the trail shows it (E.164, national or as dialled)
_W: Final = r"[a-z_0-9]+"  # an enum value
_SCOPE: Final = r"line|customer"

_STEPS: Final[tuple[tuple[str, str], ...]] = (
    ("incoming_diversions", r"incoming diversions: (?P<numbers>.+)"),
    ("caller_trunk", r"caller: trunk (?P<trunk>.+)"),
    ("caller_line", rf"caller: line (?P<number>{_N}) authenticated"),
    ("number", rf"number (?P<number>{_N}): (?P<cls>{_W})"),
    ("emergency_routed", r"emergency: routed before any policy"),
    ("emergency_no_trunk", r"emergency: no trunk for it"),
    ("emergency_not_target", r"emergency numbers are never forward targets"),
    ("destination_refused", rf"destination: refused \((?P<cause>{_W})\)"),
    ("destination_trunks", r"destination: trunks (?P<trunks>.+) \(route (?P<prefix>\+[0-9]*)\)"),
    ("destination_line", rf"destination: on-net line (?P<number>{_N})"),
    ("suspension_service",
     rf"suspension #(?P<id>\d+) soft \((?P<reason>{_W}), (?P<scope>{_SCOPE})\): customer service allowed"),
    ("suspension_refused",
     rf"suspension #(?P<id>\d+) (?P<level>soft|hard) \((?P<reason>{_W}), (?P<scope>{_SCOPE})\): refused"),
    ("suspension_none", r"suspension: none"),
    ("fraud_line", r"fraud guard: (?P<n>\d+) calls in progress on the line, limit (?P<limit>\d+): refused"),
    ("fraud_customer",
     r"fraud guard: (?P<n>\d+) calls in progress on customer (?P<customer>.+), limit (?P<limit>\d+): refused"),
    ("fraud_attempts_night", r"fraud guard: more than (?P<limit>\d+) international/premium attempts per hour at night: "
                             r"refused, customer suspended"),
    ("fraud_attempts",
     r"fraud guard: more than (?P<limit>\d+) international/premium attempts per hour: refused, customer suspended"),
    ("fraud_ok", r"fraud guard: ok"),
    ("barred_all", rf"barring: all outgoing calls barred \((?P<scope>{_SCOPE})\): refused"),
    ("barred", rf"barring: (?P<cat>{_W}) barred \((?P<scope>{_SCOPE})\): refused"),
    ("not_barred", rf"barring: (?P<cat>{_W}) not barred"),
    ("loop_incoming", rf"forward loop: (?P<number>{_N}) already diverted this call before it reached us"),
    ("loop_chain", rf"forward loop: (?P<to>{_N}) is already in the chain"),
    ("hops", r"forward chain longer than (?P<cap>\d+)"),
    ("forward", rf"forward (?P<kind>{_W}): (?P<source>{_N}) -> (?P<to>{_N}) \(hop (?P<count>\d+)/(?P<cap>\d+)\)"),
    ("callee_hard", rf"callee (?P<number>{_N}): hard suspension #(?P<id>\d+) \((?P<reason>{_W})\): incoming refused"),
    ("callee_rings", rf"callee (?P<number>{_N}): rings; forwards on (?P<kinds>{_W}(?:, {_W})*)"),
    ("callee_busy", rf"callee (?P<number>{_N}): (?P<limit>\d+) calls in progress: busy"),
    ("callee_reach", rf"callee (?P<number>{_N}): (?P<reach>no binding|pings lost)"),
    ("not_forward_target", rf"(?P<cls>{_W}) is not an allowed forward target"),
)
_COMPILED: Final = tuple((code, re.compile(pattern)) for code, pattern in _STEPS)
_FORWARDER: Final = re.compile(rf"forwarder (?P<forwarder>{_N}): (?P<rest>.+)")

#: Every code a step can have.
CODES: Final = frozenset(code for code, _ in _STEPS)
#: Values that are words to translate (enum values), not numbers or names; ``kinds`` is a list of them.
WORD_PARAMS: Final = frozenset({"cls", "cat", "reason", "level", "scope", "kind", "kinds", "reach", "cause"})


@dataclass(frozen=True, slots=True)
class TrailStep:
    """One step: its code, its values, and the forwarding line it was decided for (step 6), if any."""

    code: str
    params: dict[str, str]
    forwarder: str | None = None


def parse_step(text: str) -> TrailStep | None:
    """The step an engine sentence says; None for text that is not one (shown as it is)."""
    forwarder = None
    found = _FORWARDER.fullmatch(text)
    if found is not None and _match(found.group("rest")) is not None:
        forwarder, text = found.group("forwarder"), found.group("rest")
    step = _match(text)
    if step is None:
        return None
    return TrailStep(step[0], step[1], forwarder)


def _match(text: str) -> tuple[str, dict[str, str]] | None:
    for code, pattern in _COMPILED:
        m = pattern.fullmatch(text)
        if m is not None:
            return code, m.groupdict()
    return None
