"""``softswitch prompt install|remove|list``: an operator's recording in place of a shipped prompt.

Any WAV is accepted: with sox installed it is converted (any rate, channels,
encoding) to 8 kHz mono A-law; without sox the stdlib ``wave`` module reads
8 kHz mono 16-bit PCM, and A-law/µ-law WAVs are taken as they are. The clip is
written next to the others of its language in the prompt directory through a
temporary file and a rename, so a switch reading it at that moment sees the
old clip or the new one, never half of one. The running switch notices the
new file on the next announcement (``library.PromptLibrary``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

from . import g711
from .catalogue import LANGUAGES, load_catalogue
from .library import clip_path

__all__ = ["convert_wav", "install_prompt", "remove_prompt", "prompt_command", "ConversionError"]

MAX_SECONDS = 60


class ConversionError(ValueError):
    """The file is not a WAV we can turn into a prompt (the message says why)."""


def convert_wav(path: Path) -> bytes:
    """``path`` as raw 8 kHz A-law."""
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    if shutil.which("sox"):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "prompt.alaw"
            done = subprocess.run(
                ["sox", "-D", "-R", "-t", "wav", str(path), "-r", "8000", "-c", "1", "-e", "a-law", "-t", "raw", str(out)],
                capture_output=True, text=True,
            )
            if done.returncode != 0:
                raise ConversionError(f"{path}: sox cannot read it as WAV: {done.stderr.strip()[:200]}")
            data = out.read_bytes()
    else:
        data = _without_sox(path)
    if not data:
        raise ConversionError(f"{path}: the recording is empty")
    if len(data) > MAX_SECONDS * 8000:
        raise ConversionError(f"{path}: {len(data) / 8000:.0f} s is longer than the {MAX_SECONDS} s a prompt may last")
    return data


def _without_sox(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ConversionError(f"{path}: not a WAV file")
    fmt = _wav_format(raw)
    if fmt in ((6, 1, 8000, 8), (7, 1, 8000, 8)):  # A-law / µ-law WAV, 8 kHz mono
        data = _wav_data(raw)
        return data if fmt[0] == 6 else g711.ulaw_to_alaw(data)
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ConversionError(f"{path}: cannot read it as WAV ({exc})") from None
    if (rate, channels, width) != (8000, 1, 2):
        raise ConversionError(
            f"{path}: is {rate} Hz, {channels} channel(s), {8 * width}-bit; without sox only 8000 Hz mono 16-bit "
            "(or G.711) WAVs can be installed (apt-get install sox)"
        )
    samples = struct.unpack(f"<{len(frames) // 2}h", frames[: len(frames) // 2 * 2])
    return g711.encode_alaw(samples)


def _chunks(raw: bytes) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    pos = 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        out.append((cid, raw[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return out


def _wav_format(raw: bytes) -> tuple[int, int, int, int] | None:
    for cid, body in _chunks(raw):
        if cid == b"fmt " and len(body) >= 16:
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            return tag, channels, rate, bits
    return None


def _wav_data(raw: bytes) -> bytes:
    for cid, body in _chunks(raw):
        if cid == b"data":
            return body
    return b""


def install_prompt(prompt_dir: Path, key: str, language: str, wav: Path) -> Path:
    """Convert ``wav`` and put it in place of prompt ``key`` in ``language``; returns the clip's path."""
    catalogue = load_catalogue()
    if key not in catalogue:
        raise ConversionError(f"no prompt is called {key!r} (softswitch prompt list)")
    if language not in LANGUAGES:
        raise ConversionError(f"language must be one of {', '.join(LANGUAGES)}")
    data = convert_wav(wav)
    target = clip_path(prompt_dir, key, language)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{key}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def remove_prompt(prompt_dir: Path, key: str, language: str) -> bool:
    target = clip_path(prompt_dir, key, language)
    if target.exists():
        target.unlink()
        return True
    return False


def prompt_command(args: argparse.Namespace) -> int:
    prompt_dir = Path(args.prompt_dir)
    if args.prompt_command == "install":
        try:
            target = install_prompt(prompt_dir, args.key, args.language, Path(args.file))
        except ConversionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{args.key} ({args.language}): {target.stat().st_size / 8000:.1f} s installed as {target}")
        return 0
    if args.prompt_command == "remove":
        if remove_prompt(prompt_dir, args.key, args.language):
            print(f"{args.key} ({args.language}): back to the shipped prompt")
            return 0
        print(f"{args.key} ({args.language}): no recording installed", file=sys.stderr)
        return 1
    catalogue = load_catalogue()
    for key, entry in catalogue.entries.items():
        own = [lang for lang in LANGUAGES if clip_path(prompt_dir, key, lang).exists()]
        mark = f"  recording: {', '.join(own)}" if own else ""
        print(f"{key:24} {entry.code or '-':>4}  {entry.texts['en']}{mark}")
    return 0
