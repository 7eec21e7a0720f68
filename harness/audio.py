"""Test audio for real phones: speech (espeak-ng) and tones (sox) in, checks on what was heard.

baresip's aufile source reads 8 kHz mono 16-bit WAV, and its sndfile module writes
what a phone sent and received in the same format; ``envelope_correlation`` then tells
whether the far end heard *these* words rather than just some sound.
"""

from __future__ import annotations

import array
import math
import re
import subprocess
import sys
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AudioStat", "envelope_correlation", "make_speech_wav", "make_tone_wav", "sox_stat"]


def make_speech_wav(path: Path, text: str, *, voice: str = "en-gb") -> Path:
    """espeak-ng → 8 kHz mono 16-bit PCM WAV (what baresip's aufile source reads)."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "170", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-e", "signed-integer", "-b", "16", str(path)],
                   check=True, capture_output=True)
    raw.unlink()
    return path


def make_tone_wav(path: Path, *, seconds: float, freq: int, volume: float = 0.5) -> Path:
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "signed-integer", "-b", "16", str(path),
                    "synth", f"{seconds:g}", "sine", str(freq), "vol", f"{volume:g}"], check=True, capture_output=True)
    return path


@dataclass(frozen=True)
class AudioStat:
    length_s: float
    rms: float
    rough_freq: int


def sox_stat(path: Path) -> AudioStat:
    """``sox FILE -n stat`` (printed on stderr)."""
    out = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True, check=True).stderr

    def num(label: str) -> float:
        m = re.search(rf"^{label}:\s+(-?[\d.]+)", out, re.M)
        if not m:
            raise ValueError(f"sox stat of {path}: no {label!r} in {out!r}")
        return float(m.group(1))

    return AudioStat(num(r"Length \(seconds\)"), num(r"RMS\s+amplitude"), int(num(r"Rough\s+frequency")))


def _envelope(path: Path, frame_ms: int = 20) -> list[float]:
    """RMS per frame of a 16-bit mono WAV: a cheap fingerprint of speech."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: want 16-bit mono, got {w.getsampwidth() * 8}-bit x{w.getnchannels()}")
        samples = array.array("h", w.readframes(w.getnframes()))
        rate = w.getframerate()
    if sys.byteorder == "big":
        samples.byteswap()
    n = rate * frame_ms // 1000
    return [math.sqrt(sum(s * s for s in samples[i : i + n]) / n) for i in range(0, len(samples) - n + 1, n)]


def envelope_correlation(a: Path, b: Path, *, max_lag_frames: int = 50) -> float:
    """Best Pearson correlation of the two loudness envelopes over lags 0..max_lag.

    ``b`` is what arrived, ``a`` what was sent: ``b`` may start late (call set-up,
    jitter buffer), never early. Speech has a distinctive envelope, so a high value
    means ``b`` really carries ``a``'s words and not some other sound.
    """
    ea, eb = _envelope(a), _envelope(b)
    best = -1.0
    for lag in range(0, max_lag_frames + 1):
        xs, ys = ea, eb[lag:]
        k = min(len(xs), len(ys))
        if k < 10:
            break
        best = max(best, _pearson(xs[:k], ys[:k]))
    return best


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else 0.0


