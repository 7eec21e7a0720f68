"""Every provisioned model sends the GSM-style star codes to the switch and acts on none itself.

The dial plans are checked by *running* them: each plan rendered for an adapter is compiled
into a matcher with the vendor's syntax (Cisco/OBi: ``x`` a digit, ``[..]`` a set, ``.``
zero or more of the previous element, ``S0`` a timer; Grandstream: ``x`` a digit, ``+`` one or
more), and every code the switch understands must be matched in full by some rule, with no
rule complete on a shorter prefix (which would send the code cut short).
"""

from __future__ import annotations

import re

import pytest

from feature_codes import FeatureRequest, parse
from provisioning.render import render_config
from switch.store.adapter_models import MODELS

from .test_render import SPA_MODELS, _flat, _obi, _profile

#: Key sequences as typed on the phone (the switch parses each to a FeatureRequest).
CODES = [
    "*21*22000002#", "**21*22000002#", "#21#", "##21#", "*#21#",
    "*61*22000002#", "*61*22000002*20#", "*61*22000002**30#", "#61#", "*#61#",
    "*62*91234567#", "#62#", "*#62#", "*67*91234567#", "#67#", "*#67#", "##002#",
]
NUMBERS = ["22000002", "91234567", "112", "113", "02800", "004612345678", "1881"]


def test_the_codes_are_the_switchs_codes() -> None:
    assert all(isinstance(parse(c), FeatureRequest) for c in CODES)


def _spa_rule(rule: str) -> re.Pattern[str]:
    """One Cisco/OBi digit-sequence rule → a regex (no substitutions are used in our plans)."""
    rule = re.sub(r"[SL]\d+", "", rule.replace(" ", ""))
    out: list[str] = []
    i = 0
    while i < len(rule):
        ch = rule[i]
        if ch == "x":
            out.append("[0-9]")
        elif ch == "[":
            end = rule.index("]", i)
            out.append("[" + re.escape(rule[i + 1 : end]).replace("\\-", "-") + "]")
            i = end
        elif ch == ".":
            out[-1] = f"(?:{out[-1]})*"
        elif ch in "0123456789*#":
            out.append(re.escape(ch))
        else:
            raise AssertionError(f"unexpected {ch!r} in rule {rule!r}")
        i += 1
    return re.compile("".join(out))


def _spa_plan(plan: str) -> list[re.Pattern[str]]:
    assert plan.startswith("(") and plan.endswith(")"), plan
    return [_spa_rule(r) for r in plan[1:-1].split("|")]


def _gs_plan(plan: str) -> list[re.Pattern[str]]:
    assert plan.startswith("{") and plan.endswith("}"), plan
    rules = []
    for rule in plan[1:-1].split("|"):
        rx = ""
        for ch in rule.strip():
            if ch == "x":
                rx += "[0-9]"
            elif ch == "+":
                rx = rx[:-5] + "[0-9]+" if rx.endswith("[0-9]") else rx + "+"
            else:
                assert ch in "0123456789*#", (ch, rule)
                rx += re.escape(ch)
        rules.append(re.compile(rx))
    return rules


def _check(rules: list[re.Pattern[str]]) -> None:
    for code in CODES + NUMBERS:
        assert any(r.fullmatch(code) for r in rules), f"{code} is not dialled"
    for code in CODES:
        for cut in range(1, len(code)):
            early = [r.pattern for r in rules if r.fullmatch(code[:cut])]
            assert not early, f"{code} could be sent cut short as {code[:cut]} by {early}"


@pytest.mark.parametrize("model", SPA_MODELS)
def test_spa_dial_plan_passes_every_code_and_no_local_code_is_left(model: str) -> None:
    values = _flat(render_config(_profile(model)))
    for n in (1, 2):
        _check(_spa_plan(values[f"Dial_Plan_{n}_"]))
        for service in ("Cfwd_All_Serv", "Cfwd_Busy_Serv", "Cfwd_No_Ans_Serv", "Cfwd_Sel_Serv", "Cfwd_Last_Serv"):
            assert values[f"{service}_{n}_"] == "No"
        for dest in ("Cfwd_All_Dest", "Cfwd_Busy_Dest", "Cfwd_No_Ans_Dest"):
            assert values[f"{dest}_{n}_"] == ""
    codes = {k: v for k, v in values.items() if k.endswith("_Code") or k.endswith("_Codes")}
    assert len(codes) >= 57
    assert all(v == "" for v in codes.values()), {k: v for k, v in codes.items() if v}
    for name in ("Cfwd_All_Act_Code", "Cfwd_All_Deact_Code", "Cfwd_Busy_Act_Code", "Cfwd_No_Ans_Act_Code",
                 "Block_CID_Act_Code", "Feature_Dial_Services_Codes"):
        assert name in codes


@pytest.mark.parametrize("model", ["ht802", "ht812"])
def test_grandstream_dial_plans_pass_every_code_with_local_features_off(model: str) -> None:
    values = _flat(render_config(_profile(model)))
    for plan, features, hash_key in (("P4200", "P191", "P72"), ("P4201", "P751", "P772")):
        _check(_gs_plan(values[plan]))
        assert values[features] == "0", f"{features}: local call features must be off"
        assert values[hash_key] == "0", f"{hash_key}: '#' must be a digit, not the send key"


def test_obi_ports_route_everything_to_their_service_without_star_code_profile() -> None:
    values = _obi(render_config(_profile("obi202")))
    for n in (1, 2):
        _check(_spa_plan(values[(f"VoiceService.1.VoiceProfile.{n}.", "DigitMap")]))
        port = f"VoiceService.1.X_FXS.{n}."
        assert values[(port, "StarCodeProfile")] == "None"
        assert values[(port, "OutboundCallRoute")] == f"{{(Msp{n}):sp{n}}}"
        assert values[(port, "DigitMap")] == f"(Msp{n})"


def test_every_model_is_covered() -> None:
    assert set(MODELS) == {*SPA_MODELS, "ht802", "ht812", "obi202"}


def test_the_matcher_catches_a_plan_that_cuts_codes_short() -> None:
    """The check must fail for the plans adapters ship with (FusionPBX's SPA122 export)."""
    factory = "(*xxxxxx|*xxxxx|*xxxx|*xxx|*xx|*x|#x|**xx|**xxx|**xxxx|**xxxxx|[3469]11|0|00|[2-9]xxxxxx|xx.)"
    with pytest.raises(AssertionError):
        _check(_spa_plan(factory))
    with pytest.raises(AssertionError):
        _check(_gs_plan("{ x+ | *x+ | *xx*x+ }"))
