"""The decision trail in words, in both languages: every step the engine writes has a code
(switch/services/policy/trail.py) and words in Norwegian and English (provisioning/ui/i18n.py).

The engine's own decision table (tests/services/test_policy_engine.py) is run here and every step it
writes must parse; English must come out exactly as the engine wrote it (records stay as they read),
Norwegian must not be the English sentence."""

from __future__ import annotations

import pytest

from provisioning.ui.i18n import TEXTS, translate_trail_step
from switch.services.policy.engine import decide_forward
from switch.services.policy.trail import CODES, parse_step
from switch.store.models import ForwardKind as FK
from tests.services.test_policy_engine import C, D, DAY, DIVERTED, LINES, MOBILE, NIGHT, ROUTING, TABLE, A, World, run


def _engine_steps() -> list[str]:
    """Every step the decision table (and its conditional forwards) makes the engine write."""
    steps: list[str] = []
    for name, world, caller, dialled, *_ in TABLE:
        diverted, counted = DIVERTED.get(name, ((), 0))
        d = run(world, caller, dialled, NIGHT if name.startswith("night") else DAY, diverted=diverted,
                incoming_hops=counted)
        steps.extend(d.trail)
    world = World(forwards={C: {FK.BUSY: D, FK.NO_ANSWER: MOBILE, FK.UNREACHABLE: D}}, on_line={C: 9})
    first = run(world, A, C)
    forwarded = decide_forward(LINES[C], FK.BUSY, first.hops, [C], first.trail, ROUTING, world.state(), world.live(),
                               DAY)
    assert forwarded is not None
    steps.extend(forwarded.trail)
    return steps


STEPS = _engine_steps()


def test_every_step_the_engine_writes_has_a_code() -> None:
    unknown = sorted({s for s in STEPS if parse_step(s) is None})
    assert unknown == [], "steps without a code in switch/services/policy/trail.py (they would stay English)"
    seen = {step.code for s in STEPS if (step := parse_step(s)) is not None}
    # Not reached by the table: an emergency call without any trunk (no route at all), a forward to an emergency
    # number (refused by validation before it is stored), and routing's own refusal of a number it cannot place.
    assert CODES - seen <= {"emergency_no_trunk", "emergency_not_target", "destination_refused"}, CODES - seen


@pytest.mark.parametrize("step", sorted(set(STEPS)))
def test_each_step_reads_in_english_as_written_and_in_norwegian_in_words(step: str) -> None:
    assert translate_trail_step("en", step) == step
    nb = translate_trail_step("nb", step)
    assert nb != step, nb
    assert "{" not in nb and "_" not in nb.replace("premium_rate", ""), nb


def test_every_code_has_words_in_both_languages() -> None:
    for code in CODES:
        nb, en = TEXTS[f"trail_{code}"]
        assert nb and en
    assert translate_trail_step("nb", "a note no engine wrote") == "a note no engine wrote"
    assert translate_trail_step("nb", "emergency: no trunk for it") == "nødnummer: ingen trunk for det"
