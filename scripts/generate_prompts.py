#!/usr/bin/env python3
"""Generate the announcement clips from switch/media/prompts/catalogue.csv.

    python3 scripts/generate_prompts.py            # every clip whose text changed
    python3 scripts/generate_prompts.py --all      # every clip
    python3 scripts/generate_prompts.py --check    # exit 1 if a clip is stale or missing

Each text is spoken by espeak-ng (``-v nb`` for Norwegian Bokmål, ``-v en-gb``
for English), then sox trims the silence around it and writes raw A-law at
8 kHz mono -- what the switch sends as RTP, so nothing is transcoded at call
time. sox runs with dither off and in repeatable mode (``-D -R``), so the same
text, espeak-ng and sox give the same bytes. ``manifest.json`` records each
clip's text hash and audio hash; the tests use it to find clips whose text
changed without regenerating them. Needs the Debian packages espeak-ng and sox.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from switch.media.catalogue import LANGUAGES, PROMPT_DIR, load_catalogue  # noqa: E402

VOICES = {"nb": "nb", "en": "en-gb"}
SPEED = 150  # words per minute: espeak's default of 175 is hard to follow on a phone
MANIFEST = PROMPT_DIR / "manifest.json"


def text_hash(text: str, language: str) -> str:
    recipe = f"{VOICES[language]}|{SPEED}|{text}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def synthesise(text: str, language: str, out: Path) -> bytes:
    """Speak ``text`` into ``out`` (raw A-law, 8 kHz) and return the bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", VOICES[language], "-s", str(SPEED), "-w", str(wav), text],
            check=True, capture_output=True,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["sox", "-D", "-R", str(wav), "-r", "8000", "-c", "1", "-e", "a-law", "-t", "raw", str(out),
             # trim silence at both ends: clips are joined into sentences
             "silence", "1", "0.01", "0.3%", "reverse", "silence", "1", "0.01", "0.3%", "reverse"],
            check=True, capture_output=True,
        )
    return out.read_bytes()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="regenerate every clip")
    ap.add_argument("--check", action="store_true", help="only report stale or missing clips")
    ap.add_argument("--out", type=Path, default=PROMPT_DIR, help="where the <lang>/<key>.alaw files go")
    ap.add_argument("keys", nargs="*", help="only these keys")
    args = ap.parse_args(argv)
    catalogue = load_catalogue()
    manifest: dict[str, dict[str, dict[str, object]]] = {}
    manifest_path = args.out / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
    if not args.check:
        for tool in ("espeak-ng", "sox"):
            if shutil.which(tool) is None:
                print(f"{tool} is not installed (Debian: apt-get install espeak-ng sox)", file=sys.stderr)
                return 2
    stale: list[str] = []
    made = 0
    for key, entry in catalogue.entries.items():
        if args.keys and key not in args.keys:
            continue
        for lang in LANGUAGES:
            th = text_hash(entry.texts[lang], lang)
            path = args.out / lang / f"{key}.alaw"
            known = manifest.get(key, {}).get(lang)
            fresh = known is not None and known.get("text") == th and path.exists()
            if fresh and not args.all:
                continue
            if args.check:
                stale.append(f"{lang}/{key}")
                continue
            data = synthesise(entry.texts[lang], lang, path)
            manifest.setdefault(key, {})[lang] = {
                "text": th, "audio": hashlib.sha256(data).hexdigest()[:16], "seconds": round(len(data) / 8000, 2),
            }
            made += 1
    if args.check:
        for s in stale:
            print(f"stale or missing: {s}")
        return 1 if stale else 0
    for key in list(manifest):
        if key not in catalogue.entries:
            del manifest[key]
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"{made} clips written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
