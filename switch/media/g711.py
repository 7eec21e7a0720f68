"""G.711 A-law and µ-law (ITU-T G.711) as lookup tables, no ``audioop``.

Prompts are shipped A-law; a caller who offers only PCMU gets the same bytes
through a 256-entry translate table, built once. The linear encoders exist for
``softswitch prompt install`` without sox (an 8 kHz 16-bit WAV) and for tests
that decode what arrived over RTP.
"""

from __future__ import annotations

__all__ = [
    "alaw_to_linear",
    "ulaw_to_linear",
    "linear_to_alaw",
    "linear_to_ulaw",
    "ALAW_TO_ULAW",
    "ULAW_TO_ALAW",
    "alaw_to_ulaw",
    "ulaw_to_alaw",
    "decode",
    "encode_alaw",
    "silence",
    "SILENCE_BYTE",
]

_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def alaw_to_linear(a: int) -> int:
    """One A-law byte → a 16-bit linear sample (G.711 §A, the Sun reference decoder)."""
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def ulaw_to_linear(u: int) -> int:
    """One µ-law byte → a 16-bit linear sample."""
    u = ~u & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return (0x84 - t) if u & 0x80 else (t - 0x84)


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for i, end in enumerate(ends):
        if value <= end:
            return i
    return 8


def linear_to_alaw(sample: int) -> int:
    """A 16-bit linear sample → one A-law byte."""
    pcm = sample >> 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = _segment(pcm, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0x0F if seg < 2 else (pcm >> seg) & 0x0F
    return aval ^ mask


def linear_to_ulaw(sample: int) -> int:
    """A 16-bit linear sample → one µ-law byte."""
    pcm = sample >> 2
    if pcm < 0:
        pcm = -pcm
        mask = 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, 8159) + 0x21
    seg = _segment(pcm, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    uval = (seg << 4) | ((pcm >> (seg + 1)) & 0x0F)
    return uval ^ mask


_ALAW_LINEAR = tuple(alaw_to_linear(i) for i in range(256))
_ULAW_LINEAR = tuple(ulaw_to_linear(i) for i in range(256))
#: ``payload.translate(ALAW_TO_ULAW)``: A-law bytes as µ-law, as G.711 Table 3/4 pairs them
ALAW_TO_ULAW = bytes(linear_to_ulaw(_ALAW_LINEAR[i]) for i in range(256))
ULAW_TO_ALAW = bytes(linear_to_alaw(_ULAW_LINEAR[i]) for i in range(256))
#: The A-law byte for silence (+0); µ-law's is 0xFF
SILENCE_BYTE = {"PCMA": 0xD5, "PCMU": 0xFF}


def alaw_to_ulaw(data: bytes) -> bytes:
    return data.translate(ALAW_TO_ULAW)


def ulaw_to_alaw(data: bytes) -> bytes:
    return data.translate(ULAW_TO_ALAW)


def decode(data: bytes, encoding: str) -> list[int]:
    """G.711 bytes (``"PCMA"`` or ``"PCMU"``) → linear samples."""
    table = _ALAW_LINEAR if encoding.upper() == "PCMA" else _ULAW_LINEAR
    return [table[b] for b in data]


def encode_alaw(samples: list[int] | tuple[int, ...]) -> bytes:
    """Linear 16-bit samples → A-law (a 64 K-entry table would be faster; installs are rare)."""
    return bytes(linear_to_alaw(s) for s in samples)


def silence(encoding: str, samples: int) -> bytes:
    """``samples`` of digital silence in ``encoding``."""
    return bytes((SILENCE_BYTE[encoding.upper()],)) * samples
