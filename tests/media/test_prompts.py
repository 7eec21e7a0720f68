"""The prompt catalogue: every audible refusal has a prompt in both languages, and the shipped
audio is what the generator makes from the catalogue's texts."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from switch.media.catalogue import LANGUAGES, PROMPT_DIR, digit_keys, language_of, load_catalogue, parse_catalogue
from switch.media.library import PromptLibrary, clip_path
from switch.services.b2bua.announce import NEVER_ANNOUNCED, Announcer, AnnounceSettings
from switch.services.b2bua.causes import Cause
from switch.services.b2bua.events import Fail

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = load_catalogue()
STAR_CODE_KEYS = ("fwd_on", "fwd_off", "fwd_status_on", "fwd_status_off", "service_not_available")
#: Causes with no prompt of their own, and why
NO_PROMPT = {
    Cause.LOOP: "a carrier looped our own call back: nobody to tell",
    Cause.TOO_MANY_HOPS: "Max-Forwards ran out in the network",
    Cause.FEATURE_CODE: "a star code's result is always played from its own prompts (fwd_on + digits ...)",
    Cause.FEATURE_CODE_REFUSED: "a refused star code plays its policy's prompt (fwd_use_web, service_not_available)",
}


@pytest.mark.parametrize("cause", [c for c in Cause if c not in NEVER_ANNOUNCED and c not in NO_PROMPT], ids=str)
def test_every_audible_cause_has_a_prompt_with_a_support_code(cause: Cause) -> None:
    entry = CATALOGUE.entries[cause.value]
    assert entry.code, cause
    assert all(entry.texts[lang] for lang in LANGUAGES)


def test_star_code_results_and_digits_are_there() -> None:
    for key in STAR_CODE_KEYS + tuple(f"digit_{d}" for d in range(10)) + ("code",):
        assert key in CATALOGUE, key
    assert CATALOGUE.text("digit_7", "nb") == "sju" and CATALOGUE.text("digit_7", "en") == "seven"


def test_support_codes_are_distinct() -> None:
    codes = [e.code for e in CATALOGUE.entries.values() if e.code]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize(
    ("line_language", "spoken"), [("nb", "nb"), ("en", "en"), ("EN", "en"), (None, "nb"), ("de", "nb"), ("nn", "nb")]
)
def test_language_is_the_lines_else_norwegian(line_language: str | None, spoken: str) -> None:
    assert language_of(line_language) == spoken


def test_selection_per_cause_and_language_ends_with_the_code() -> None:
    announcer = Announcer(PromptLibrary(), None)
    sel = announcer.selection(Fail(code=403, cause=Cause.BARRED_INTERNATIONAL), "en")
    assert sel is not None
    assert sel.keys == ("barred_international", "code", "digit_2", "digit_1")
    assert (sel.language, sel.support_code) == ("en", "21")
    sel = announcer.selection(Fail(code=404, cause=Cause.NUMBER_NOT_IN_USE), "nb")
    assert sel is not None and sel.keys == ("number_not_in_use", "code", "digit_1", "digit_1")
    # a star code's result: the text, the number digit by digit, then the code of the first key
    prompts = ("fwd_on",) + digit_keys("22000002")
    sel = announcer.selection(Fail(code=480, cause=Cause.UNAVAILABLE, prompts=prompts), "nb")
    assert sel is not None
    assert sel.keys == prompts + ("code", "digit_6", "digit_1")
    assert announcer.support_code(Fail(code=403, cause=Cause.SUSPENDED_UNPAID)) == "32"
    assert announcer.selection(Fail(code=487, cause=Cause.CANCELLED), "nb") is None
    assert announcer.selection(Fail(code=403, cause=Cause.UNAVAILABLE, prompts=("no_such_prompt",)), "nb") is None


def test_busy_and_no_answer_are_plain_unless_configured() -> None:
    class Player:
        def __init__(self) -> None:
            self.started: list[bytes] = []

        def start(self, offer, signalling_host, audio, on_end):  # type: ignore[no-untyped-def]
            self.started.append(audio("PCMA"))
            return None

        def close(self) -> None:
            pass

    player = Player()
    plain = Announcer(PromptLibrary(), player)
    args = {"offer": b"v=0", "source_host": "192.0.2.1", "language": "nb", "on_end": lambda: None}
    plain.begin(fail=Fail(code=486, cause=Cause.BUSY), **args)  # type: ignore[arg-type]
    plain.begin(fail=Fail(code=480, cause=Cause.NO_ANSWER), **args)  # type: ignore[arg-type]
    assert player.started == []
    plain.begin(fail=Fail(code=404, cause=Cause.NUMBER_NOT_IN_USE), **args)  # type: ignore[arg-type]
    assert len(player.started) == 1
    every = Announcer(PromptLibrary(), player, AnnounceSettings(plain=frozenset()))
    every.begin(fail=Fail(code=486, cause=Cause.BUSY), **args)  # type: ignore[arg-type]
    assert len(player.started) == 2
    off = Announcer(PromptLibrary(), player, AnnounceSettings(enabled=False))
    off.begin(fail=Fail(code=404, cause=Cause.NUMBER_NOT_IN_USE), **args)  # type: ignore[arg-type]
    assert len(player.started) == 2


def test_assembled_announcement_contains_the_shipped_clips_in_order() -> None:
    lib = PromptLibrary()
    sel = CATALOGUE.select("number_changed", "en")
    assert sel is not None
    audio = lib.audio(sel, "PCMA")
    at = 0
    for key in sel.keys:
        clip = clip_path(PROMPT_DIR, key, "en").read_bytes()
        found = audio.find(clip, at)
        assert found >= at, key
        at = found + len(clip)
    from switch.media.g711 import alaw_to_ulaw

    assert lib.audio(sel, "PCMU") == alaw_to_ulaw(audio)


def test_an_operator_recording_replaces_a_clip_without_a_restart(tmp_path: Path) -> None:
    lib = PromptLibrary(overrides=tmp_path)
    shipped = lib.clip("busy", "nb")
    target = clip_path(tmp_path, "busy", "nb")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\x01" * 800)
    assert lib.clip("busy", "nb") == b"\x01" * 800
    target.write_bytes(b"\x02" * 1600)  # re-recorded: a new size and mtime
    assert lib.clip("busy", "nb") == b"\x02" * 1600
    assert lib.clip("busy", "en") != b"\x02" * 1600  # per language
    target.unlink()
    assert lib.clip("busy", "nb") == shipped


def test_manifest_matches_the_catalogue_and_the_shipped_audio() -> None:
    """A text changed without regenerating its clip fails here (run scripts/generate_prompts.py)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import generate_prompts
    finally:
        sys.path.pop(0)
    manifest = json.loads((PROMPT_DIR / "manifest.json").read_text())
    assert set(manifest) == set(CATALOGUE.entries)
    for key, entry in CATALOGUE.entries.items():
        for lang in LANGUAGES:
            rec = manifest[key][lang]
            assert rec["text"] == generate_prompts.text_hash(entry.texts[lang], lang), f"{lang}/{key} is stale"
            data = clip_path(PROMPT_DIR, key, lang).read_bytes()
            assert hashlib.sha256(data).hexdigest()[:16] == rec["audio"], f"{lang}/{key} was edited by hand"
            assert len(data) > 800, f"{lang}/{key} is shorter than 0.1 s"


@pytest.mark.parametrize(("key", "lang"), [("barred_international", "nb"), ("digit_8", "en")])
def test_the_generator_reproduces_the_shipped_clip(tmp_path: Path, key: str, lang: str) -> None:
    assert shutil.which("espeak-ng") and shutil.which("sox"), "the test bootstrap installs espeak-ng and sox"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_prompts.py"), "--all", "--out", str(tmp_path), key],
        check=True, capture_output=True,
    )
    assert clip_path(tmp_path, key, lang).read_bytes() == clip_path(PROMPT_DIR, key, lang).read_bytes()


def test_a_bad_catalogue_is_refused_naming_the_row() -> None:
    good = "key,code,nb,en\n" + "".join(f"digit_{d},,x,y\n" for d in range(10)) + "code,,kode,code\n"
    parse_catalogue(good)
    with pytest.raises(ValueError, match=r":14: support code 11 is already used by 'a'"):
        parse_catalogue(good + "a,11,x,y\nb,11,x,y\n")
    with pytest.raises(ValueError, match="has no en text"):
        parse_catalogue(good + "a,11,x,\n")
    with pytest.raises(ValueError, match="'code' is missing"):
        parse_catalogue("key,code,nb,en\nx,1,a,b\n")
