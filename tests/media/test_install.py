"""``softswitch prompt install/remove/list``: an operator's WAV becomes a prompt clip."""

from __future__ import annotations

import struct
import subprocess
import wave
from pathlib import Path

import pytest

from harness.softswitch import softswitch_cmd
from switch.media import g711
from switch.media.install import ConversionError, _without_sox, convert_wav, install_prompt
from switch.media.library import PromptLibrary, clip_path


def _sox_wav(path: Path, *args: str) -> Path:
    subprocess.run(["sox", "-n", *args, str(path), "synth", "1.5", "sine", "440", "vol", "0.5"], check=True, capture_output=True)
    return path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*softswitch_cmd(), "prompt", "--prompt-dir", str(cwd / "prompts"), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


def test_install_list_remove_from_the_command_line(tmp_path: Path) -> None:
    wav = _sox_wav(tmp_path / "studio.wav", "-r", "44100", "-c", "2", "-b", "24")  # anything sox reads
    done = _cli("install", "barred_premium", "en", str(wav), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    clip = clip_path(tmp_path / "prompts", "barred_premium", "en")
    assert 11_900 <= len(clip.read_bytes()) <= 12_100  # 1.5 s at 8 kHz, one byte a sample
    assert "installed" in done.stdout
    listed = _cli("list", cwd=tmp_path)
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if line.startswith("barred_premium "))
    assert "23" in row and "recording: en" in row
    lib = PromptLibrary(overrides=tmp_path / "prompts")
    assert lib.clip("barred_premium", "en") == clip.read_bytes()
    assert _cli("remove", "barred_premium", "en", cwd=tmp_path).returncode == 0
    assert not clip.exists()
    again = _cli("remove", "barred_premium", "en", cwd=tmp_path)
    assert again.returncode == 1 and "no recording" in again.stderr


def test_bad_input_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    wav = _sox_wav(tmp_path / "ok.wav", "-r", "8000", "-c", "1")
    unknown = _cli("install", "no_such_prompt", "nb", str(wav), cwd=tmp_path)
    assert unknown.returncode == 1 and "no prompt is called 'no_such_prompt'" in unknown.stderr
    (tmp_path / "notes.wav").write_text("not audio")
    junk = _cli("install", "busy", "nb", str(tmp_path / "notes.wav"), cwd=tmp_path)
    assert junk.returncode == 1 and "cannot read it as WAV" in junk.stderr
    missing = _cli("install", "busy", "nb", str(tmp_path / "gone.wav"), cwd=tmp_path)
    assert missing.returncode == 1 and "no such file" in missing.stderr
    assert not (tmp_path / "prompts").exists() or not any((tmp_path / "prompts").rglob("*.alaw"))


def _pcm_wav(path: Path, rate: int, samples: list[int]) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def test_without_sox_an_8khz_mono_wav_is_encoded_here(tmp_path: Path) -> None:
    samples = [(i * 37) % 20000 - 10000 for i in range(8000)]
    data = _without_sox(_pcm_wav(tmp_path / "a.wav", 8000, samples))
    assert data == g711.encode_alaw(samples)
    with pytest.raises(ConversionError, match="without sox only 8000 Hz mono"):
        _without_sox(_pcm_wav(tmp_path / "b.wav", 16000, samples))


def test_with_sox_the_same_wav_gives_the_same_clip(tmp_path: Path) -> None:
    samples = [(i * 37) % 20000 - 10000 for i in range(8000)]
    wav = _pcm_wav(tmp_path / "a.wav", 8000, samples)
    by_sox, here = convert_wav(wav), g711.encode_alaw(samples)
    assert len(by_sox) == len(here)
    # sox rounds to the nearest A-law step where the table truncates: at most one step apart
    decoded = zip(g711.decode(by_sox, "PCMA"), g711.decode(here, "PCMA"), samples, strict=True)
    assert all(abs(a - s) <= abs(b - s) + max(16, abs(s) // 16) for a, b, s in decoded)


def test_install_is_atomic_and_replaces(tmp_path: Path) -> None:
    first = install_prompt(tmp_path, "busy", "nb", _sox_wav(tmp_path / "1.wav", "-r", "8000", "-c", "1"))
    second = install_prompt(tmp_path, "busy", "nb", _pcm_wav(tmp_path / "2.wav", 8000, [0] * 800))
    assert first == second and second.read_bytes() == g711.encode_alaw([0] * 800)
    assert [p.name for p in second.parent.iterdir()] == ["busy.alaw"]  # no temporary file left behind
