"""The prompt catalogue: what each announcement says and its support code.

One data file, ``prompts/catalogue.csv`` (key, code, nb, en), is the source
of the spoken texts (``scripts/generate_prompts.py`` turns it into audio) and
of the support codes the switch writes into the call record. Keys are the
refusal causes' values (``switch.services.b2bua.causes.Cause``) plus the star
code results (``fwd_on`` ...), the word ``code`` and the digits ``digit_0`` to
``digit_9`` that announcements are assembled from.

An announcement is a sequence of clips: the keys asked for (one cause, or a
star-code result followed by a number spoken digit by digit), then the word
"kode"/"code" and the support code digit by digit -- so every announcement
ends with its code, including an operator's own recording, which only has to
say the text.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LANGUAGES",
    "DEFAULT_LANGUAGE",
    "PROMPT_DIR",
    "Entry",
    "Catalogue",
    "Selection",
    "language_of",
    "digit_keys",
    "load_catalogue",
]

LANGUAGES = ("nb", "en")
DEFAULT_LANGUAGE = "nb"
PROMPT_DIR = Path(__file__).resolve().parent / "prompts"
"""The shipped catalogue and the generated audio (``<lang>/<key>.alaw``: raw A-law, 8 kHz)."""


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    code: str
    """Support code, e.g. "21"; "" for clips that are only parts (digits, the word "code")."""
    texts: dict[str, str]


@dataclass(frozen=True, slots=True)
class Selection:
    """What to play: clip keys in order (the support code already appended), in one language."""

    keys: tuple[str, ...]
    language: str
    support_code: str


def language_of(value: str | None) -> str:
    """A line's language as we can speak it: "nb" or "en" (anything else: Norwegian)."""
    if value:
        low = str(value).lower()
        if low in LANGUAGES:
            return low
        if low in ("no", "nn", "nob", "nor"):
            return "nb"
        if low.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def digit_keys(number: str) -> tuple[str, ...]:
    """'+47 22000002' → ('digit_4', 'digit_7', 'digit_2', ...): a number spoken digit by digit."""
    return tuple(f"digit_{c}" for c in number if c.isdigit())


class Catalogue:
    """Entries by key. Immutable once loaded."""

    __slots__ = ("entries",)

    def __init__(self, entries: dict[str, Entry]) -> None:
        self.entries = entries

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def support_code(self, key: str) -> str | None:
        entry = self.entries.get(key)
        return entry.code if entry is not None and entry.code else None

    def text(self, key: str, language: str) -> str:
        return self.entries[key].texts[language_of(language)]

    def select(self, keys: tuple[str, ...] | list[str] | str, language: str | None) -> Selection | None:
        """The clips for ``keys`` (a cause value, or a star-code result + digits), ending with the code.

        The support code is that of the first key that has one. None when a key
        has no prompt (nothing to play; the caller gets the plain response).
        """
        seq = (keys,) if isinstance(keys, str) else tuple(keys)
        if not seq or any(k not in self.entries for k in seq):
            return None
        code = next((self.entries[k].code for k in seq if self.entries[k].code), "")
        tail = ("code",) + digit_keys(code) if code else ()
        return Selection(seq + tail, language_of(language), code)


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and check the catalogue (raises ValueError naming the bad row)."""
    path = path or PROMPT_DIR / "catalogue.csv"
    return parse_catalogue(path.read_text(encoding="utf-8"), str(path))


def parse_catalogue(text: str, name: str = "catalogue.csv") -> Catalogue:
    reader = csv.DictReader(io.StringIO(text))
    wanted = {"key", "code", *LANGUAGES}
    if reader.fieldnames is None or not wanted <= set(reader.fieldnames):
        raise ValueError(f"{name}: the header must name {', '.join(sorted(wanted))}")
    entries: dict[str, Entry] = {}
    codes: dict[str, str] = {}
    for row_no, row in enumerate(reader, start=2):
        key = (row["key"] or "").strip()
        code = (row["code"] or "").strip()
        if not key or not key.replace("_", "").isalnum() or key != key.lower():
            raise ValueError(f"{name}:{row_no}: key {key!r} must be lower-case letters, digits and _")
        if key in entries:
            raise ValueError(f"{name}:{row_no}: key {key!r} appears twice")
        if code and (not code.isdigit() or len(code) > 4):
            raise ValueError(f"{name}:{row_no}: support code {code!r} must be 1-4 digits")
        if code in codes:
            raise ValueError(f"{name}:{row_no}: support code {code} is already used by {codes[code]!r}")
        texts = {lang: (row[lang] or "").strip() for lang in LANGUAGES}
        missing = [lang for lang, t in texts.items() if not t]
        if missing:
            raise ValueError(f"{name}:{row_no}: {key} has no {'/'.join(missing)} text")
        if code:
            codes[code] = key
        entries[key] = Entry(key, code, texts)
    for needed in ("code", *(f"digit_{d}" for d in range(10))):
        if needed not in entries:
            raise ValueError(f"{name}: the clip {needed!r} is missing (announcements end with the code)")
    return Catalogue(entries)
