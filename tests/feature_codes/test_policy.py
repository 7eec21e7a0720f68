"""Per-code operator policy: the FAQ's defaults, overrides, and the two codes nobody can refuse."""

from __future__ import annotations

import pytest

from feature_codes import (
    ALWAYS_ENABLED,
    CODES,
    DEFAULT_POLICIES,
    REFUSED_PROMPT,
    USE_SELF_SERVICE_PROMPT,
    CodePolicy,
    FeaturePolicies,
    PolicyError,
    validate,
)


def test_defaults_follow_the_faq() -> None:
    p = FeaturePolicies()
    for code in ("*21*", "*61*", "*62*", "*67*"):
        assert not p.allowed(code), code
        assert p.get(code).prompt == USE_SELF_SERVICE_PROMPT
    for code in ("#21#", "*#21#", "#61#", "*#61#", "#62#", "*#62#", "#67#", "*#67#", "##002#"):
        assert p.allowed(code), code
    assert [c.code for c in p.all()] == list(CODES)
    assert set(DEFAULT_POLICIES) == set(CODES)


def test_an_override_replaces_one_code_only() -> None:
    p = FeaturePolicies([CodePolicy("*21*", True), CodePolicy("*#67#", False, "my_prompt")])
    assert p.allowed("*21*")
    assert not p.allowed("*#67#") and p.get("*#67#").prompt == "my_prompt"
    assert not p.allowed("*61*")
    assert not p.is_default("*21*") and p.is_default("*61*")
    assert p.ignored == []


def test_refused_without_announcement_gets_the_generic_prompt() -> None:
    p = FeaturePolicies([CodePolicy("#61#", False)])
    assert p.get("#61#").prompt == REFUSED_PROMPT


@pytest.mark.parametrize("code", sorted(ALWAYS_ENABLED))
def test_locked_codes_cannot_be_refused(code: str) -> None:
    with pytest.raises(PolicyError) as exc:
        validate(CodePolicy(code, False))
    assert exc.value.field == "enabled"
    with pytest.raises(PolicyError):
        FeaturePolicies().with_policy(CodePolicy(code, False, "x"))
    # A row written around the API (SQL by hand) is ignored by the loader, and said so.
    loaded = FeaturePolicies([CodePolicy(code, False)])
    assert loaded.allowed(code)
    assert [e.code for e in loaded.ignored] == [code]


def test_locked_codes_may_still_get_a_new_description() -> None:
    p = FeaturePolicies().with_policy(CodePolicy("#21#", True, None, "Slå av viderekobling"))
    assert p.get("#21#").description == "Slå av viderekobling" and p.allowed("#21#")


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        (CodePolicy("*33*", True), "code"),
        (CodePolicy("21", True), "code"),
        (CodePolicy("*21*", False, ""), "announcement"),
        (CodePolicy("*21*", False, "no spaces"), "announcement"),
        (CodePolicy("*21*", False, "x" * 65), "announcement"),
        (CodePolicy("*21*", False, "prøve"), "announcement"),
        (CodePolicy("*21*", True, None, "d" * 201), "description"),
    ],
)
def test_bad_policies_are_refused(policy: CodePolicy, field: str) -> None:
    with pytest.raises(PolicyError) as exc:
        validate(policy)
    assert exc.value.field == field


def test_with_policy_leaves_the_original_alone() -> None:
    before = FeaturePolicies()
    after = before.with_policy(CodePolicy("*21*", True))
    assert after.allowed("*21*") and not before.allowed("*21*")
