"""Every cause the switch can store (call_records.cause, the values of switch/services/b2bua/causes.py's Cause)
has words in Norwegian and English (provisioning/ui/i18n.py, keys ``cause_<value>``), so no call list shows a
raw code like ``suspended_unpaid`` to a reader; the list comes from the enum, so a new cause fails here first."""

from __future__ import annotations

import pytest

from provisioning.ui.i18n import TEXTS, translate_cause
from switch.services.b2bua.causes import Cause


@pytest.mark.parametrize("cause", list(Cause), ids=lambda c: c.value)
def test_every_cause_the_switch_writes_has_words_in_both_languages(cause: Cause) -> None:
    nb, en = TEXTS[f"cause_{cause.value}"]
    assert nb and en and nb != en, (nb, en)
    for lang, words in (("nb", nb), ("en", en)):
        assert translate_cause(lang, cause.value) == words
        assert "_" not in words, words  # words, not the code
    assert nb != cause.value, nb


def test_no_words_for_a_cause_no_switch_writes() -> None:
    """Stale keys would hide a renamed cause (the old words stay, the new value shows raw)."""
    keys = {k.removeprefix("cause_") for k in TEXTS if k.startswith("cause_")}
    assert keys == {c.value for c in Cause}


def test_a_cause_without_words_is_shown_as_stored() -> None:
    assert translate_cause("nb", "from_a_future_version") == "from_a_future_version"
    assert translate_cause("en", None) == ""
    assert translate_cause("nb", "busy") == "opptatt" and translate_cause("en", "busy") == "busy"
