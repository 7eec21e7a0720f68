"""Tests for switch.sip.nonces: stateless signed nonces and nonce-count replay tracking."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from switch.sip.nonces import NonceCounter, NonceManager, NonceStatus

SECRET = b"0123456789abcdef0123456789abcdef"


# ---------------------------------------------------------------------------
# Stateless nonces
# ---------------------------------------------------------------------------


def test_nonce_valid_then_stale() -> None:
    nm = NonceManager(SECRET, lifetime=300.0)
    nonce = nm.make(1_700_000_000.0)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", nonce)
    assert nm.check(nonce, 1_700_000_000.0) is NonceStatus.VALID
    assert nm.check(nonce, 1_700_000_300.0) is NonceStatus.VALID
    assert nm.check(nonce, 1_700_000_300.5) is NonceStatus.STALE
    assert nm.check(nonce, 1_800_000_000.0) is NonceStatus.STALE


def test_nonce_from_the_future_is_stale() -> None:
    nm = NonceManager(SECRET, max_skew=5.0)
    nonce = nm.make(1000.0)
    assert nm.check(nonce, 996.0) is NonceStatus.VALID  # within skew
    assert nm.check(nonce, 994.0) is NonceStatus.STALE


def test_nonces_are_unique_and_salt_injectable() -> None:
    nm = NonceManager(SECRET)
    assert nm.make(5.0) != nm.make(5.0)
    assert nm.make(5.0, salt=b"\0" * 8) == nm.make(5.0, salt=b"\0" * 8)
    with pytest.raises(ValueError):
        nm.make(5.0, salt=b"short")
    with pytest.raises(ValueError):
        nm.make(-1.0)


def test_nonce_tampering_is_invalid() -> None:
    nm = NonceManager(SECRET)
    nonce = nm.make(1000.0, salt=b"\x01" * 8)
    for i in range(len(nonce)):
        ch = "A" if nonce[i] != "A" else "B"
        assert nm.check(nonce[:i] + ch + nonce[i + 1 :], 1000.0) is NonceStatus.INVALID, i


def test_nonce_with_extended_timestamp_cannot_be_forged() -> None:
    # An attacker re-signing a later timestamp without the secret gets INVALID.
    nm = NonceManager(SECRET)
    other = NonceManager(b"x" * 32)
    assert nm.check(other.make(1000.0), 1000.0) is NonceStatus.INVALID


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "!" * 43, "A" * 44, "A" * 42 + "=", "é" * 43],
)
def test_nonce_garbage_is_invalid(garbage: str) -> None:
    assert NonceManager(SECRET).check(garbage, 0.0) is NonceStatus.INVALID


def test_nonce_non_canonical_base64_is_invalid() -> None:
    nm = NonceManager(SECRET)
    nonce = nm.make(1000.0, salt=b"\x02" * 8)
    # 32 bytes → 43 chars; the last char carries 2 unused bits.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    idx = alphabet.index(nonce[-1])
    assert idx % 4 == 0
    twin = nonce[:-1] + alphabet[idx + 1]
    assert nm.check(twin, 1000.0) is NonceStatus.INVALID


def test_nonce_key_rotation() -> None:
    old = NonceManager(b"o" * 32)
    nonce = old.make(10.0)
    rotated = NonceManager(b"n" * 32, old_secrets=[b"o" * 32])
    assert rotated.check(nonce, 10.0) is NonceStatus.VALID
    assert NonceManager(b"n" * 32).check(nonce, 10.0) is NonceStatus.INVALID


def test_nonce_manager_argument_checks() -> None:
    with pytest.raises(ValueError):
        NonceManager(b"short")
    with pytest.raises(ValueError):
        NonceManager(SECRET, old_secrets=[b"short"])
    with pytest.raises(ValueError):
        NonceManager(SECRET, lifetime=0)


# ---------------------------------------------------------------------------
# Nonce-count replay tracking
# ---------------------------------------------------------------------------


def test_nonce_counter_strictly_increasing() -> None:
    nc = NonceCounter()
    assert nc.accept("n", "c", 1, 0.0) is True
    assert nc.accept("n", "c", 1, 0.0) is False  # replay
    assert nc.accept("n", "c", "00000002", 0.0) is True
    assert nc.accept("n", "c", 5, 0.0) is True  # gaps are fine
    assert nc.accept("n", "c", 4, 0.0) is False  # older than last
    assert nc.accept("n", "c", 0, 0.0) is False
    assert nc.accept("n", "other-cnonce", 1, 0.0) is True  # new cnonce, own count
    assert nc.accept("m", "c", 1, 0.0) is True
    assert nc.accept("n", None, 1, 0.0) is True
    assert nc.accept("n", None, 1, 0.0) is False
    assert len(nc) == 4


def test_nonce_counter_ttl_expiry() -> None:
    nc = NonceCounter(ttl=300.0)
    assert nc.accept("n", "c", 1, 0.0) is True
    assert nc.accept("n", "c", 1, 299.0) is False
    assert nc.accept("n", "c", 2, 299.0) is True  # refreshes last use
    assert nc.accept("x", "c", 1, 598.0) is True
    assert len(nc) == 2
    assert nc.accept("y", "c", 1, 599.0) is True  # "n" idle for 300 s: dropped
    assert len(nc) == 2
    assert nc.evictions == 0


def test_nonce_counter_bounded_lru() -> None:
    nc = NonceCounter(max_entries=3)
    for i, key in enumerate("abc"):
        assert nc.accept(key, "c", 1, float(i))
    assert nc.accept("a", "c", 2, 3.0)  # "a" becomes most recent
    assert nc.accept("d", "c", 1, 4.0)  # evicts "b", the least recently used
    assert len(nc) == 3
    assert nc.evictions == 1
    assert nc.accept("a", "c", 2, 5.0) is False  # still tracked
    assert nc.accept("b", "c", 1, 5.0) is True  # forgotten (documented risk)


def test_nonce_counter_grows_evicts_and_shrinks_without_losing_counts() -> None:
    """The table is rebuilt as it fills (grow, drop expired, evict the oldest eighth):
    every entry that stays keeps its count, across each rebuild."""
    nc = NonceCounter(max_entries=10_000, ttl=100.0)
    for i in range(10_000):
        assert nc.accept(f"n{i}", "c", 3, i * 0.001)
    assert len(nc) == 10_000 and nc.evictions == 0
    assert all(nc.accept(f"n{i}", "c", 3, 10.0) is False for i in range(0, 10_000, 7))  # replays, all caught
    # One more makes room: the oldest eighth (by last use) goes, the rest keep their counts.
    assert nc.accept("new", "c", 1, 11.0)
    assert nc.evictions == 10_000 - (10_000 - 10_000 // 8)
    assert nc.accept("n1", "c", 1, 11.0) is True  # n1 was among the oldest: forgotten (documented risk)
    assert nc.accept("n9999", "c", 3, 11.0) is False
    assert nc.accept("n9999", "c", 4, 11.0) is True
    # Once everything has been idle past ttl, a rebuild shrinks the table back.
    for i in range(600):
        nc.accept(f"late{i}", "c", 1, 500.0)
    assert len(nc) == 600
    assert len(nc._keys) <= 4096


def test_nonce_counter_expired_entry_starts_over() -> None:
    nc = NonceCounter(ttl=10.0)
    assert nc.accept("n", "c", 5, 0.0)
    assert nc.accept("n", "c", 5, 5.0) is False
    assert nc.accept("n", "c", 1, 11.0) is True  # idle past ttl: the nonce is STALE anyway
    assert nc.accept("n", "c", 1, 12.0) is False


def test_nonce_counter_refuses_counts_out_of_range() -> None:
    nc = NonceCounter()
    assert nc.accept("n", "c", "1" + "0" * 16, 0.0) is False  # more than 64 bits
    assert nc.accept("n", "c", "ffffffff", 0.0) is True


def test_module_is_sans_io() -> None:
    import switch.sip

    # the source beside the package's (uncompiled) __init__: a compiled module's __file__
    # depends on which group member imported it first
    tree = ast.parse(Path(str(switch.sip.__file__)).with_name("nonces.py").read_text(encoding="utf-8"))
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    assert not imported & {"asyncio", "socket", "time", "datetime", "threading", "switch"}
    assert "hmac" in imported  # the check itself sees imports
