"""Tests for switch.transport.ratelimit. Time only moves through ``now``; nothing sleeps.

Rates and windows are powers of two so that the float arithmetic is exact.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from switch.transport.ratelimit import (
    AuthThrottle,
    AuthThrottlePolicy,
    FailureThrottle,
    KeyedRateLimiter,
    TokenBucket,
)

# ---------------------------------------------------------------------------
# TokenBucket
# ---------------------------------------------------------------------------


def test_bucket_starts_full_and_drains() -> None:
    b = TokenBucket(rate=2.0, burst=3.0)
    assert [b.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.tokens(0.0) == 0.0


def test_bucket_refills_at_rate() -> None:
    b = TokenBucket(rate=2.0, burst=3.0)
    for _ in range(3):
        b.allow(10.0)
    assert b.allow(10.25) is False  # 0.5 token
    assert b.allow(10.5) is True  # 1.0 token
    assert b.allow(10.5) is False
    assert b.tokens(11.0) == 1.0


def test_bucket_caps_at_burst() -> None:
    b = TokenBucket(rate=2.0, burst=3.0)
    b.allow(0.0)
    assert b.tokens(1000.0) == 3.0
    assert [b.allow(1000.0) for _ in range(4)] == [True, True, True, False]


def test_bucket_refusals_cost_nothing() -> None:
    b = TokenBucket(rate=1.0, burst=1.0)
    assert b.allow(0.0) is True
    for t in (0.25, 0.5, 0.75):
        assert b.allow(t) is False
    assert b.allow(1.0) is True  # the refused attempts did not delay the refill


def test_bucket_cost() -> None:
    b = TokenBucket(rate=1.0, burst=4.0)
    assert b.allow(0.0, cost=2.5) is True
    assert b.allow(0.0, cost=2.0) is False
    assert b.allow(0.0, cost=1.5) is True
    assert b.allow(0.0, cost=0.0) is True
    assert b.allow(100.0, cost=5.0) is False  # more than burst: never
    with pytest.raises(ValueError):
        b.allow(0.0, cost=-1.0)


def test_bucket_retry_after() -> None:
    b = TokenBucket(rate=2.0, burst=3.0)
    assert b.retry_after(0.0) == 0.0
    for _ in range(3):
        b.allow(0.0)
    assert b.retry_after(0.0) == 0.5
    assert b.retry_after(0.0, cost=3.0) == 1.5
    assert b.retry_after(0.25) == 0.25
    assert b.retry_after(0.0, cost=4.0) == math.inf
    assert b.allow(0.5) is True  # retry_after(0.0) was right


def test_bucket_zero_rate_never_refills() -> None:
    b = TokenBucket(rate=0.0, burst=2.0)
    assert b.allow(0.0) and b.allow(0.0)
    assert b.allow(1e9) is False
    assert b.retry_after(1e9) == math.inf


def test_bucket_clock_going_backwards_gives_nothing() -> None:
    b = TokenBucket(rate=1.0, burst=2.0)
    b.allow(100.0)
    b.allow(100.0)
    assert b.allow(50.0) is False  # backwards: no refill
    assert b.allow(100.5) is False  # measured from 100, not from 50
    assert b.allow(101.0) is True


def test_bucket_first_call_time_is_origin() -> None:
    b = TokenBucket(rate=1.0, burst=1.0)
    assert b.allow(1e6) is True
    assert b.allow(1e6 + 0.5) is False


@pytest.mark.parametrize(
    ("rate", "burst"), [(-1.0, 1.0), (1.0, 0.0), (1.0, -1.0), (math.inf, 1.0), (1.0, math.nan)]
)
def test_bucket_validation(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


# ---------------------------------------------------------------------------
# KeyedRateLimiter
# ---------------------------------------------------------------------------


def test_keyed_independent_keys() -> None:
    rl: KeyedRateLimiter[str] = KeyedRateLimiter(rate=1.0, burst=2.0)
    assert [rl.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert [rl.allow("b", 0.0) for _ in range(3)] == [True, True, False]
    assert rl.allow("a", 1.0) is True
    assert len(rl) == 2


def test_keyed_retry_after() -> None:
    rl: KeyedRateLimiter[str] = KeyedRateLimiter(rate=4.0, burst=1.0)
    assert rl.retry_after("x", 0.0) == 0.0  # unknown key
    assert rl.retry_after("x", 0.0, cost=2.0) == math.inf
    assert len(rl) == 0  # retry_after does not create buckets
    rl.allow("x", 0.0)
    assert rl.retry_after("x", 0.0) == 0.25
    assert rl.retry_after("x", 0.125) == 0.125
    assert rl.retry_after("x", 1.0) == 0.0


def test_keyed_full_buckets_dropped_losslessly() -> None:
    rl: KeyedRateLimiter[str] = KeyedRateLimiter(rate=1.0, burst=2.0, max_keys=2)
    rl.allow("a", 0.0)
    rl.allow("b", 0.0)
    # At t=1 both refilled (1 token used, 1 per second): dropping them loses nothing.
    assert rl.allow("c", 1.0) is True
    assert rl.evictions == 0
    assert len(rl) == 1


def test_keyed_lossy_eviction_gives_at_most_a_fresh_bucket() -> None:
    rl: KeyedRateLimiter[str] = KeyedRateLimiter(rate=1.0, burst=2.0, max_keys=2)
    assert [rl.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    rl.allow("b", 0.0)
    rl.allow("c", 0.5)  # table full, nothing refilled: evict LRU "a"
    assert rl.evictions == 1
    assert len(rl) == 2
    # "a" comes back with exactly a fresh bucket: burst, no more.
    assert [rl.allow("a", 0.5) for _ in range(3)] == [True, True, False]
    assert rl.evictions == 2  # "b" went to make room


def test_keyed_lru_order_follows_use() -> None:
    rl: KeyedRateLimiter[str] = KeyedRateLimiter(rate=1.0, burst=4.0, max_keys=2)
    rl.allow("a", 0.0)
    rl.allow("b", 0.0)
    rl.allow("a", 0.0)  # "a" is now most recent
    rl.allow("c", 0.0)  # evicts "b"
    for _ in range(2):
        assert rl.allow("a", 0.0)  # "a" kept its state: 4 - 2 used, 2 left
    assert rl.allow("a", 0.0) is False


def test_keyed_memory_bounded_under_flood() -> None:
    rl: KeyedRateLimiter[int] = KeyedRateLimiter(rate=1.0, burst=5.0, max_keys=100)
    for i in range(10_000):
        assert rl.allow(i, 0.0) is True
        assert len(rl) <= 100
    assert rl.evictions == 9_900


def test_keyed_validation() -> None:
    with pytest.raises(ValueError):
        KeyedRateLimiter(rate=1.0, burst=1.0, max_keys=0)
    with pytest.raises(ValueError):
        KeyedRateLimiter(rate=-1.0, burst=1.0)


# ---------------------------------------------------------------------------
# FailureThrottle
# ---------------------------------------------------------------------------


def make_throttle(**kw: float) -> FailureThrottle[str]:
    # threshold 5 per 320 s: leaks 1/64 failure per second.
    args: dict[str, float] = dict(threshold=5.0, window=320.0, block=64.0, max_block=1024.0)
    args.update(kw)
    return FailureThrottle(**args)  # type: ignore[arg-type]


def test_throttle_blocks_at_threshold() -> None:
    ft = make_throttle()
    assert [ft.record_failure("k", 0.0) for _ in range(5)] == [False, False, False, False, True]
    assert ft.is_blocked("k", 0.0)
    assert ft.blocked_until("k", 0.0) == 64.0
    assert ft.is_blocked("k", 63.9)
    assert not ft.is_blocked("k", 64.0)
    assert ft.blocked_until("k", 64.0) is None
    assert not ft.is_blocked("other", 0.0)
    assert ft.blocked_until("other", 0.0) is None


def test_throttle_failures_decay() -> None:
    ft = make_throttle()
    for _ in range(3):
        ft.record_failure("k", 0.0)
    assert ft.failures("k", 0.0) == 3.0
    assert ft.failures("k", 64.0) == 2.0
    assert ft.failures("k", 1000.0) == 0.0
    assert ft.failures("unknown", 0.0) == 0.0


def test_throttle_slow_trickle_never_blocks() -> None:
    ft = make_throttle()
    # One failure every 64 s leaks away completely before the next one.
    for i in range(1000):
        assert ft.record_failure("k", i * 64.0) is False
    assert ft.failures("k", 999 * 64.0) == 1.0


def test_throttle_faster_trickle_blocks_eventually() -> None:
    ft = make_throttle()
    # Every 32 s: +1 -0.5, so the count reads 1, 1.5, 2, ... and reaches 5 at the 9th.
    results = [ft.record_failure("k", i * 32.0) for i in range(9)]
    assert results == [False] * 8 + [True]
    assert ft.blocked_until("k", 256.0) == 256.0 + 64.0


def test_throttle_exponential_backoff_capped() -> None:
    ft = make_throttle()
    t = 0.0
    durations = []
    for _ in range(6):
        for _ in range(5):
            ft.record_failure("k", t)
        until = ft.blocked_until("k", t)
        assert until is not None
        durations.append(until - t)
        t = until
    assert durations == [64.0, 128.0, 256.0, 512.0, 1024.0, 1024.0]


def test_throttle_strikes_forgotten_after_memory() -> None:
    ft = make_throttle(strike_memory=1000.0)
    for _ in range(5):
        ft.record_failure("k", 0.0)
    for _ in range(5):
        ft.record_failure("k", 64.0)
    assert ft.blocked_until("k", 64.0) == 64.0 + 128.0
    # Last block ended at 192; 1000 s later the strikes are gone.
    for _ in range(5):
        ft.record_failure("k", 1192.0)
    assert ft.blocked_until("k", 1192.0) == 1192.0 + 64.0


def test_throttle_failures_during_block_ignored() -> None:
    ft = make_throttle()
    for _ in range(5):
        ft.record_failure("k", 0.0)
    for t in (1.0, 2.0, 30.0):
        assert ft.record_failure("k", t) is True
    assert ft.blocked_until("k", 30.0) == 64.0  # not extended
    assert ft.failures("k", 64.0) == 0.0
    assert ft.record_failure("k", 64.0) is False


def test_throttle_success_resets_but_not_during_block() -> None:
    ft = make_throttle()
    for _ in range(4):
        ft.record_failure("k", 0.0)
    ft.record_success("k", 0.0)
    assert ft.failures("k", 0.0) == 0.0
    assert ft.record_failure("k", 0.0) is False  # count starts over
    for _ in range(4):
        ft.record_failure("k", 0.0)
    assert ft.is_blocked("k", 0.0)
    ft.record_success("k", 10.0)  # must not lift a block
    assert ft.is_blocked("k", 10.0)
    # After the block, a success also forgets the strike: next block is short again.
    ft.record_success("k", 64.0)
    for _ in range(5):
        ft.record_failure("k", 64.0)
    assert ft.blocked_until("k", 64.0) == 128.0
    ft.record_success("never-seen", 0.0)  # harmless


def test_throttle_clear() -> None:
    ft = make_throttle()
    for _ in range(5):
        ft.record_failure("k", 0.0)
    ft.clear("k")
    assert not ft.is_blocked("k", 0.0)
    assert ft.failures("k", 0.0) == 0.0
    ft.clear("k")  # idempotent


def test_throttle_memory_bounded_and_idle_purged() -> None:
    ft = make_throttle(max_keys=3)
    for key in "abc":
        ft.record_failure(key, 0.0)
    # At t=64 every count has leaked to 0: idle records go without an eviction.
    ft.record_failure("d", 64.0)
    assert len(ft) == 1
    assert ft.evictions == 0
    for key in "efg":
        ft.record_failure(key, 64.0)
    assert len(ft) == 3
    assert ft.evictions == 1  # "d" was still counting: lossy
    assert ft.failures("d", 64.0) == 0.0


def test_throttle_blocked_records_survive_idle_purge() -> None:
    ft = make_throttle(max_keys=10)
    for _ in range(5):
        ft.record_failure("attacker", 0.0)
    ft.record_failure("x", 32.0)  # triggers purge; "attacker" is blocked, not idle
    assert ft.is_blocked("attacker", 32.0)
    ft.record_failure("y", 100.0)  # block over, but strikes remembered: not idle
    assert len(ft) == 3


def test_throttle_validation() -> None:
    for kw in (dict(threshold=0.5), dict(window=0.0), dict(block=0.0), dict(max_block=1.0),
               dict(backoff=0.5), dict(max_keys=0)):
        with pytest.raises(ValueError):
            make_throttle(**kw)


# ---------------------------------------------------------------------------
# AuthThrottle: the NAT-friendly policy
# ---------------------------------------------------------------------------

NAT = "203.0.113.9"
POLICY = AuthThrottlePolicy(
    pair_threshold=5.0,
    user_threshold=16.0,
    source_threshold=64.0,
    window=320.0,
    block=64.0,
    max_block=1024.0,
    known_good_ttl=3600.0,
)


def test_pair_blocked_hard_neighbours_unaffected() -> None:
    at = AuthThrottle(POLICY)
    for _ in range(5):
        at.record_failure(NAT, "line1", 0.0)
    assert at.is_blocked(NAT, "line1", 0.0)
    assert at.blocked_until(NAT, "line1", 0.0) == 64.0
    assert not at.is_blocked(NAT, "line2", 0.0)  # other adapter behind the same NAT
    assert not at.is_blocked("198.51.100.1", "line1", 0.0)  # same user elsewhere
    assert not at.is_blocked(NAT, "line1", 64.0)


def test_source_blocked_at_higher_threshold_but_known_good_adapters_keep_working() -> None:
    at = AuthThrottle(POLICY)
    at.record_success(NAT, "neighbour", 0.0)
    # An attacker behind the same NAT tries many usernames, one guess each.
    for i in range(63):
        at.record_failure(NAT, f"guess{i}", 1.0)
        assert not at.is_blocked(NAT, f"guess{i + 1}", 1.0)
    at.record_failure(NAT, "guess63", 1.0)
    assert at.is_blocked(NAT, "fresh-name", 1.0)
    assert at.blocked_until(NAT, "fresh-name", 1.0) == 65.0
    # The neighbour already proved its password from this address: unaffected.
    assert not at.is_blocked(NAT, "neighbour", 1.0)
    assert at.blocked_until(NAT, "neighbour", 1.0) is None
    # Its success did not reset the source count.
    at.record_success(NAT, "neighbour", 2.0)
    assert at.sources.is_blocked(NAT, 2.0)


def test_success_of_other_user_does_not_launder_source_failures() -> None:
    at = AuthThrottle(POLICY)
    for i in range(40):
        at.record_failure(NAT, f"u{i}", 0.0)
    at.record_success(NAT, "valid-account", 0.0)
    assert at.sources.failures(NAT, 0.0) == 40.0


def test_username_blocked_from_many_sources_but_home_adapter_keeps_working() -> None:
    at = AuthThrottle(POLICY)
    home = "192.0.2.10"
    at.record_success(home, "victim", 0.0)
    for i in range(16):
        at.record_failure(f"198.51.100.{i}", "victim", 1.0)
    assert at.is_blocked("198.51.100.200", "victim", 1.0)  # a new source for this user
    assert not at.is_blocked(home, "victim", 1.0)  # known good
    assert not at.is_blocked("198.51.100.200", "someone-else", 1.0)


def test_known_good_still_subject_to_pair_block() -> None:
    at = AuthThrottle(POLICY)
    at.record_success(NAT, "line1", 0.0)
    for _ in range(5):
        at.record_failure(NAT, "line1", 1.0)
    assert at.is_blocked(NAT, "line1", 1.0)
    assert at.blocked_until(NAT, "line1", 1.0) == 65.0


def test_known_good_expires() -> None:
    at = AuthThrottle(POLICY)
    at.record_success(NAT, "line1", 0.0)
    for i in range(64):
        at.record_failure(NAT, f"x{i}", 3599.0)
    assert not at.is_blocked(NAT, "line1", 3599.0)
    assert at.is_blocked(NAT, "line1", 3600.0)  # one hour without a success


def test_known_good_memory_bounded() -> None:
    at = AuthThrottle(AuthThrottlePolicy(max_keys=2, known_good_ttl=3600.0))
    for name in ("a", "b", "c"):
        at.record_success(NAT, name, 0.0)
    # Checking the bound itself, so look inside.
    assert len(at._known_good) == 2
    assert (NAT, "a") not in at._known_good


def test_default_policy_thresholds() -> None:
    at = AuthThrottle()
    assert at.policy == AuthThrottlePolicy()
    for _ in range(4):
        at.record_failure(NAT, "line1", 0.0)
    assert not at.is_blocked(NAT, "line1", 0.0)
    at.record_failure(NAT, "line1", 0.0)
    assert at.is_blocked(NAT, "line1", 0.0)
    assert at.blocked_until(NAT, "line1", 0.0) == 60.0


def test_module_is_pure() -> None:
    import switch.transport.ratelimit as mod

    tree = ast.parse(Path(str(mod.__file__)).read_text(encoding="utf-8"))
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    assert not imported & {"asyncio", "socket", "time", "datetime", "threading"}
    assert "math" in imported
