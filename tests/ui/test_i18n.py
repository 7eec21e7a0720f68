"""The words table (provisioning/ui/i18n.py): every key a page names is in it, in both languages, alike.

A key missing from the table is a KeyError when the page renders, so a template or handler naming one
that is not there is caught here, before a customer meets the 500. The keys made from an enum value
(``t('fwd_' ~ kind)``) are checked against the enum; the cause and trail words have their own tests
(test_cause_words.py, test_trail_words.py).
"""

from __future__ import annotations

import re
import string
from enum import StrEnum
from pathlib import Path

import pytest

import provisioning.ui
from provisioning.ui.i18n import TEXTS, translate
from switch.store.models import (
    BarringCategory,
    CustomerKind,
    ForwardKind,
    LampState,
    SuspensionLevel,
    SuspensionReason,
)

UI = Path(provisioning.ui.__file__).parent
#: ``t('key')`` in a template or a page helper, ``translate(lang, "key")`` in a handler.
_LITERAL = re.compile(r"""\bt\(\s*['"]([a-z0-9_]+)['"]\s*[,)]|\btranslate\([^,()]+(?:\([^()]*\))?,\s*['"]([a-z0-9_]+)['"]""")
#: ``t('prefix_' ~ value)``: a key made from a value.
_MADE = re.compile(r"""\bt\(\s*['"]([a-z0-9_]+_)['"]\s*~""")
_ENUM_KEYS: dict[str, type[StrEnum]] = {"fwd_": ForwardKind, "bar_": BarringCategory, "lamp_": LampState,
                                        "level_": SuspensionLevel, "reason_": SuspensionReason,
                                        "kind_": CustomerKind}


def _sources() -> list[Path]:
    """The templates and the UI's modules (not i18n.py itself: its docstring's ``t("key")`` is an example)."""
    return sorted([*UI.glob("templates/*.html"), *(p for p in UI.glob("*.py") if p.name != "i18n.py")])


def _literal_keys() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in _sources():
        for m in _LITERAL.finditer(path.read_text()):
            found.setdefault(m.group(1) or m.group(2), set()).add(path.name)
    return found


def test_the_scan_finds_the_keys_pages_use() -> None:
    """The scan reads what it should (else the next test would pass on nothing)."""
    keys = _literal_keys()
    assert len(keys) > 150
    assert {"login", "minside_title", "cause", "support_code", "refused_because", "csrf_failed"} <= set(keys)


def test_every_key_a_page_names_is_in_the_table() -> None:
    missing = {k: sorted(where) for k, where in _literal_keys().items() if k not in TEXTS}
    assert missing == {}, "keys used but not in provisioning/ui/i18n.py TEXTS"


def test_every_key_made_from_a_value_has_words_for_each_value() -> None:
    prefixes = {m.group(1) for path in _sources() for m in _MADE.finditer(path.read_text())}
    assert prefixes == set(_ENUM_KEYS), "a new t('prefix_' ~ value): say which enum its values come from"
    missing = [f"{p}{v.value}" for p, enum in _ENUM_KEYS.items() for v in enum if f"{p}{v.value}" not in TEXTS]
    assert missing == []


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_each_text_has_both_languages_with_the_same_placeholders(key: str) -> None:
    nb, en = TEXTS[key]
    assert nb.strip() and en.strip(), key
    fields = [{f for _, f, _, _ in string.Formatter().parse(text) if f is not None} for text in (nb, en)]
    assert fields[0] == fields[1], f"{key}: nb has {sorted(fields[0])}, en has {sorted(fields[1])}"
    if fields[0]:
        values = {f: "X" for f in fields[0]}
        assert translate("nb", key, **values) and translate("en", key, **values)
