"""Rate limiting and brute-force throttling, pure: time enters as ``now``.

* ``TokenBucket``: ``rate`` tokens per second, at most ``burst`` saved up.
* ``KeyedRateLimiter``: one bucket per key (source IP) with bounded memory.
* ``FailureThrottle``: counts authentication failures per key and blocks a
  key that fails too often, with exponential backoff on repeated blocks.
* ``AuthThrottle``: the policy the registrar should use, combining three
  ``FailureThrottle``s (see below).

Use one monotonic clock per instance (``loop.time()`` is fine); a ``now``
that goes backwards is treated as no time passing, never as a refill.

Keys and NAT
------------
Many adapters share one public address (home routers with two lines, office
NATs, carrier-grade NAT), so blocking a source address on a few failures
would take dial tone away from innocent neighbours. ``AuthThrottle`` uses:

1. (source, username) pairs, blocked hard (5 failures in 5 minutes): this is
   what stops password guessing against one account from one place;
2. username alone, at a higher threshold: stops guessing one account from
   many addresses;
3. source alone, at a much higher threshold: stops one address from trying
   many usernames.

A (source, username) pair that authenticated successfully recently is "known
good" and exempt from the source and username blocks, so an attacker behind
the same NAT, or an attacker elsewhere hammering a customer's username,
cannot lock out an adapter that already knows its password. Only the pair
block applies to it. Failures never unblock anything, successes reset only
their own pair, and successes from other users behind the same address leave
the source counter alone (so one valid account cannot be used to launder an
address's failures).

Use the source IP without the port (ports change behind NAT); for IPv6, a
/64 prefix, since one host can pick any address in it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "AuthThrottle",
    "AuthThrottlePolicy",
    "FailureThrottle",
    "KeyedRateLimiter",
    "TokenBucket",
]

K = TypeVar("K", bound=Hashable)


class TokenBucket:
    """Classic token bucket; starts full. Refused requests cost nothing."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        if rate < 0 or not math.isfinite(rate):
            raise ValueError("rate must be a finite number >= 0")
        if burst <= 0 or not math.isfinite(burst):
            raise ValueError("burst must be a finite number > 0")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last: float | None = None

    def _refill(self, now: float) -> None:
        if self._last is None:
            self._last = now
            return
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (does not consume)."""
        self._refill(now)
        return self._tokens

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if available."""
        if cost < 0:
            raise ValueError("cost must be >= 0")
        self._refill(now)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def retry_after(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``allow(cost)`` would succeed; inf if it never can."""
        self._refill(now)
        missing = cost - self._tokens
        if missing <= 0:
            return 0.0
        if cost > self.burst or self.rate == 0:
            return math.inf
        return missing / self.rate

    def is_full(self, now: float) -> bool:
        """True when this bucket is indistinguishable from a fresh one."""
        return self.tokens(now) >= self.burst


class KeyedRateLimiter(Generic[K]):
    """A token bucket per key (e.g. source IP), at most ``max_keys`` of them.

    Memory is bounded without giving anyone extra tokens where possible: a
    bucket that has refilled completely is dropped first, since it equals the
    fresh bucket the key would get next time (lossless). Only when the table
    is still full is the least recently used bucket dropped (``evictions``
    counts these); that key then starts again from a fresh bucket, i.e. it
    never gets more than ``burst`` at once.
    """

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        TokenBucket(rate, burst)  # validate once, same messages
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.evictions = 0
        self._buckets: OrderedDict[K, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _purge_full(self, now: float) -> None:
        # Least recently used first; stop at the first bucket still in use.
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if not bucket.is_full(now):
                break
            del self._buckets[key]

    def allow(self, key: K, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket if available."""
        bucket = self._buckets.get(key)
        if bucket is None:
            self._purge_full(now)
            while len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
                self.evictions += 1
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        else:
            self._buckets.move_to_end(key)
        return bucket.allow(now, cost)

    def retry_after(self, key: K, now: float, cost: float = 1.0) -> float:
        """Seconds until ``allow(key, cost)`` would succeed; 0 for unknown keys."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0 if cost <= self.burst else math.inf
        return bucket.retry_after(now, cost)


@dataclass(slots=True)
class _FailureRecord:
    score: float = 0.0  # leaky-bucket failure count
    last: float = 0.0  # time of the last score update
    blocked_until: float = -math.inf
    strikes: int = 0  # blocks so far, drives the backoff
    strike_time: float = -math.inf  # end of the latest block


class FailureThrottle(Generic[K]):
    """Blocks a key after ``threshold`` failures within about ``window`` seconds.

    The failure count is a leaky bucket: each failure adds 1, and it drains
    at ``threshold / window`` per second, so a steady trickle below that rate
    (a misconfigured adapter retrying every minute) never blocks, while a
    burst of ``threshold`` failures does at once. The n-th block lasts
    ``block * backoff**(n-1)`` seconds, capped at ``max_block``; the strike
    count is forgotten ``strike_memory`` seconds after the last block ended,
    or on a success.

    While a key is blocked, the caller must not verify its credentials at all
    (answer as for a failure), otherwise the block would not stop guessing;
    failures and successes reported during a block are ignored.
    """

    def __init__(
        self,
        threshold: float = 5.0,
        window: float = 300.0,
        block: float = 60.0,
        max_block: float = 3600.0,
        backoff: float = 2.0,
        strike_memory: float = 86_400.0,
        max_keys: int = 100_000,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if window <= 0 or block <= 0 or max_block < block or backoff < 1:
            raise ValueError("need window > 0, 0 < block <= max_block, backoff >= 1")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.threshold = threshold
        self.window = window
        self.block = block
        self.max_block = max_block
        self.backoff = backoff
        self.strike_memory = strike_memory
        self.max_keys = max_keys
        self.evictions = 0
        self._records: OrderedDict[K, _FailureRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    @property
    def _leak(self) -> float:
        return self.threshold / self.window

    def _score(self, rec: _FailureRecord, now: float) -> float:
        return max(0.0, rec.score - max(0.0, now - rec.last) * self._leak)

    def _strikes(self, rec: _FailureRecord, now: float) -> int:
        return rec.strikes if now - rec.strike_time < self.strike_memory else 0

    def _is_idle(self, rec: _FailureRecord, now: float) -> bool:
        return (
            now >= rec.blocked_until
            and self._score(rec, now) == 0.0
            and self._strikes(rec, now) == 0
        )

    def _record(self, key: K, now: float) -> _FailureRecord:
        rec = self._records.get(key)
        if rec is not None:
            self._records.move_to_end(key)
            return rec
        # Idle records carry no information: drop them first (lossless).
        while self._records:
            old_key, old = next(iter(self._records.items()))
            if not self._is_idle(old, now):
                break
            del self._records[old_key]
        while len(self._records) >= self.max_keys:
            self._records.popitem(last=False)
            self.evictions += 1
        rec = self._records[key] = _FailureRecord(last=now)
        return rec

    def record_failure(self, key: K, now: float) -> bool:
        """Count one failure; True if ``key`` is blocked afterwards."""
        rec = self._record(key, now)
        if now < rec.blocked_until:
            return True
        rec.strikes = self._strikes(rec, now)
        rec.score = self._score(rec, now) + 1.0
        rec.last = max(rec.last, now)
        if rec.score >= self.threshold:
            duration = min(self.max_block, self.block * self.backoff**rec.strikes)
            rec.blocked_until = now + duration
            rec.strike_time = rec.blocked_until
            rec.strikes += 1
            rec.score = 0.0
            return True
        return False

    def record_success(self, key: K, now: float) -> None:
        """Forget ``key``'s failures and strikes (ignored while blocked)."""
        rec = self._records.get(key)
        if rec is None or now < rec.blocked_until:
            return
        del self._records[key]

    def is_blocked(self, key: K, now: float) -> bool:
        rec = self._records.get(key)
        return rec is not None and now < rec.blocked_until

    def blocked_until(self, key: K, now: float) -> float | None:
        """When the current block ends, or None if ``key`` is not blocked."""
        rec = self._records.get(key)
        if rec is None or now >= rec.blocked_until:
            return None
        return rec.blocked_until

    def failures(self, key: K, now: float) -> float:
        """The current (decayed) failure count."""
        rec = self._records.get(key)
        return self._score(rec, now) if rec is not None else 0.0

    def clear(self, key: K) -> None:
        """Forget everything about ``key`` (support lifted the block)."""
        self._records.pop(key, None)


@dataclass(frozen=True, slots=True)
class AuthThrottlePolicy:
    """Thresholds for ``AuthThrottle``; see the module docstring for why."""

    pair_threshold: float = 5.0
    user_threshold: float = 20.0
    source_threshold: float = 100.0
    window: float = 300.0
    block: float = 60.0
    max_block: float = 900.0
    backoff: float = 2.0
    strike_memory: float = 86_400.0
    known_good_ttl: float = 86_400.0
    max_keys: int = 100_000


class AuthThrottle:
    """Digest-failure throttling by pair, username and source (NAT-friendly)."""

    def __init__(self, policy: AuthThrottlePolicy | None = None) -> None:
        p = policy if policy is not None else AuthThrottlePolicy()
        self.policy = p
        self.pairs: FailureThrottle[tuple[str, str]] = FailureThrottle(
            p.pair_threshold, p.window, p.block, p.max_block, p.backoff, p.strike_memory, p.max_keys
        )
        self.users: FailureThrottle[str] = FailureThrottle(
            p.user_threshold, p.window, p.block, p.max_block, p.backoff, p.strike_memory, p.max_keys
        )
        self.sources: FailureThrottle[str] = FailureThrottle(
            p.source_threshold, p.window, p.block, p.max_block, p.backoff, p.strike_memory, p.max_keys
        )
        self._known_good: OrderedDict[tuple[str, str], float] = OrderedDict()

    def _is_known_good(self, source: str, username: str, now: float) -> bool:
        seen = self._known_good.get((source, username))
        return seen is not None and now - seen < self.policy.known_good_ttl

    def is_blocked(self, source: str, username: str, now: float) -> bool:
        """True if this attempt must be refused without checking credentials."""
        if self.pairs.is_blocked((source, username), now):
            return True
        if self._is_known_good(source, username, now):
            return False
        return self.sources.is_blocked(source, now) or self.users.is_blocked(username, now)

    def blocked_until(self, source: str, username: str, now: float) -> float | None:
        """The latest end among the blocks that apply, or None."""
        if not self.is_blocked(source, username, now):
            return None
        ends = [self.pairs.blocked_until((source, username), now)]
        if not self._is_known_good(source, username, now):
            ends += [self.sources.blocked_until(source, now), self.users.blocked_until(username, now)]
        return max(e for e in ends if e is not None)

    def record_failure(self, source: str, username: str, now: float) -> None:
        """Count a failed verification against all three keys."""
        self.pairs.record_failure((source, username), now)
        self.users.record_failure(username, now)
        self.sources.record_failure(source, now)

    def record_success(self, source: str, username: str, now: float) -> None:
        """Reset the pair and mark it known good; source/user counts stay."""
        self.pairs.record_success((source, username), now)
        key = (source, username)
        self._known_good.pop(key, None)
        self._known_good[key] = now
        ttl = self.policy.known_good_ttl
        while self._known_good:
            old_key, seen = next(iter(self._known_good.items()))
            if now - seen < ttl and len(self._known_good) <= self.policy.max_keys:
                break
            del self._known_good[old_key]
