"""Prompt audio: the shipped clips, operator recordings over them, and assembled announcements.

Clips are raw A-law at 8 kHz (``<dir>/<lang>/<key>.alaw``), already encoded,
so playing one is slicing bytes; a PCMU caller gets them through a 256-byte
translate table (``g711.ALAW_TO_ULAW``), not a codec. An operator's recording
(``softswitch prompt install``) lives in the override directory with the
same layout and wins over the shipped clip. Overrides are looked up with one
``stat`` per clip per announcement, and re-read when the file's mtime or size
changes, so a new recording is heard on the next call without a restart.
A missing English clip falls back to the Norwegian one rather than silence.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import g711
from .catalogue import DEFAULT_LANGUAGE, PROMPT_DIR, Catalogue, Selection, language_of, load_catalogue

__all__ = ["PromptLibrary", "LEAD_IN", "GAP", "CODE_PAUSE", "clip_path"]

LEAD_IN = 1600
"""Samples of silence before the first word (200 ms): the adapter opens its early-media path on the 183."""
GAP = 400
"""50 ms between the spoken digits."""
CODE_PAUSE = 2800
"""350 ms before "kode ..." so the code stands apart from the sentence."""
_EXT = ".alaw"


def clip_path(directory: Path, key: str, language: str) -> Path:
    return directory / language / f"{key}{_EXT}"


class PromptLibrary:
    """Clips by (key, language), with an optional override directory watched by mtime."""

    __slots__ = ("catalogue", "shipped", "overrides", "_shipped_cache", "_override_cache")

    def __init__(self, catalogue: Catalogue | None = None, shipped: Path | None = None, overrides: Path | None = None) -> None:
        self.catalogue = catalogue or load_catalogue()
        self.shipped = shipped or PROMPT_DIR
        self.overrides = overrides
        self._shipped_cache: dict[tuple[str, str], bytes] = {}
        self._override_cache: dict[tuple[str, str], tuple[int, int, bytes]] = {}

    def clip(self, key: str, language: str) -> bytes:
        """A-law audio of one clip (raises KeyError when it is neither shipped nor recorded)."""
        lang = language_of(language)
        found = self._override(key, lang)
        if found is not None:
            return found
        cached = self._shipped_cache.get((key, lang))
        if cached is not None:
            return cached
        path = clip_path(self.shipped, key, lang)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if lang != DEFAULT_LANGUAGE:
                return self.clip(key, DEFAULT_LANGUAGE)
            raise KeyError(f"no audio for prompt {key!r} ({lang})") from None
        self._shipped_cache[(key, lang)] = data
        return data

    def _override(self, key: str, lang: str) -> bytes | None:
        if self.overrides is None:
            return None
        path = clip_path(self.overrides, key, lang)
        try:
            st = os.stat(path)
        except OSError:
            self._override_cache.pop((key, lang), None)
            return None
        cached = self._override_cache.get((key, lang))
        if cached is not None and cached[0] == st.st_mtime_ns and cached[1] == st.st_size:
            return cached[2]
        try:
            data = path.read_bytes()
        except OSError:
            return None
        self._override_cache[(key, lang)] = (st.st_mtime_ns, st.st_size, data)
        return data

    def audio(self, selection: Selection, encoding: str = "PCMA") -> bytes:
        """The whole announcement for ``selection`` in ``encoding`` ("PCMA"/"PCMU")."""
        lang = selection.language
        pause = g711.silence("PCMA", GAP)
        parts = [g711.silence("PCMA", LEAD_IN)]
        previous_digit = False
        for key in selection.keys:
            if key == "code":
                parts.append(g711.silence("PCMA", CODE_PAUSE))
            elif key.startswith("digit_") and previous_digit:
                parts.append(pause)
            parts.append(self.clip(key, lang))
            previous_digit = key.startswith("digit_")
        parts.append(g711.silence("PCMA", LEAD_IN))
        data = b"".join(parts)
        if encoding.upper() == "PCMU":
            return g711.alaw_to_ulaw(data)
        return data
