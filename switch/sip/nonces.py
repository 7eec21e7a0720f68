"""Server-side Digest nonces (RFC 7616 §3.3, §5.4): stateless issue/check and replay counting.

Why a module of its own: the digest computations (``switch.sip.digest``) are
pure functions of their inputs, while the nonces are the server's state and
policy: a secret, lifetimes, rotation, a bounded replay table. Both SIP
(``switch.services.auth``) and HTTP provisioning (``provisioning.ata``) use
them.

Nonces are stateless: ``NonceManager`` signs the issue time with HMAC, so any
instance holding the secret can check them and nothing is stored per
challenge. Pass wall-clock time (``time.time()``) as ``now`` if nonces must
survive a restart or be shared between instances; ``loop.time()`` is monotonic
per process and would turn every outstanding nonce STALE (harmless, one extra
round trip) after a restart.

``NonceCounter`` is the replay tracker: feed it only credentials that passed
``digest.verify``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import re
import secrets
import struct
from array import array
from collections.abc import Sequence
from typing import Final

__all__ = ["NonceCounter", "NonceManager", "NonceStatus"]


class NonceStatus(enum.Enum):
    VALID = "valid"
    STALE = "stale"  # our signature, but expired: re-challenge with stale=true
    INVALID = "invalid"  # not ours (forged, tampered, wrong binding, garbage)


_TS: Final = struct.Struct(">Q")  # issue time, milliseconds
_SALT_LEN: Final = 8
_TAG_LEN: Final = 16  # truncated HMAC-SHA256, 128 bits
_RAW_LEN: Final = _TS.size + _SALT_LEN + _TAG_LEN
_NONCE_CHARS: Final = (4 * _RAW_LEN + 2) // 3  # unpadded base64url length
_NONCE_RE: Final = re.compile(rf"[A-Za-z0-9_-]{{{_NONCE_CHARS}}}")


class NonceManager:
    """Issues and checks HMAC-signed nonces; holds no per-nonce state.

    nonce = base64url(issue_ms[8] | salt[8] | HMAC-SHA256(secret, ... | binding)[:16])

    salt = a random prefix drawn once per manager (4 bytes) + a counter (4 bytes).

    ``binding`` ties a nonce to context the caller chooses (realm, or source
    address; beware that NAT rebinding then invalidates nonces). ``old_secrets``
    are still accepted on check, for key rotation without a flag day.
    """

    def __init__(
        self,
        secret: bytes,
        lifetime: float = 300.0,
        *,
        old_secrets: Sequence[bytes] = (),
        max_skew: float = 5.0,
    ) -> None:
        for key in (secret, *old_secrets):
            if len(key) < 16:
                raise ValueError("nonce secrets must be at least 16 bytes")
        if lifetime <= 0:
            raise ValueError("lifetime must be positive")
        self._secret = secret
        self._old_secrets = tuple(old_secrets)
        self._salt_prefix = secrets.token_bytes(_SALT_LEN - 4)
        self._issued = 0
        self.lifetime = lifetime
        self.max_skew = max_skew

    @staticmethod
    def _tag(key: bytes, head: bytes, binding: str) -> bytes:
        msg = b"sip-digest-nonce\0" + head + b"\0" + binding.encode("utf-8")
        # One-shot hmac.digest (OpenSSL in C): the HMAC object API costs 3x as much.
        return hmac.digest(key, msg, "sha256")[:_TAG_LEN]

    def make(self, now: float, binding: str = "", *, salt: bytes | None = None) -> str:
        """A fresh nonce issued at ``now``."""
        if now < 0:
            raise ValueError("now must be non-negative wall-clock seconds")
        if salt is None:
            # Unique, not secret: the HMAC makes a nonce unforgeable, the salt only keeps
            # two nonces of the same millisecond apart. A random per-process prefix and a
            # counter do that without a getrandom() call per challenge.
            self._issued = (self._issued + 1) & 0xFFFFFFFF
            salt = self._salt_prefix + self._issued.to_bytes(4, "big")
        if len(salt) != _SALT_LEN:
            raise ValueError(f"salt must be {_SALT_LEN} bytes")
        head = _TS.pack(int(now * 1000)) + salt
        raw = head + self._tag(self._secret, head, binding)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def check(self, nonce: str, now: float, binding: str = "") -> NonceStatus:
        """Classify a nonce presented by a client at ``now``."""
        if not _NONCE_RE.fullmatch(nonce):
            return NonceStatus.INVALID
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except binascii.Error:
            return NonceStatus.INVALID
        # Reject non-canonical encodings (unused low bits set): one nonce, one string.
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != nonce:
            return NonceStatus.INVALID
        head, tag = raw[: -_TAG_LEN], raw[-_TAG_LEN:]
        if not any(
            hmac.compare_digest(tag, self._tag(key, head, binding))
            for key in (self._secret, *self._old_secrets)
        ):
            return NonceStatus.INVALID
        issued = _TS.unpack(head[: _TS.size])[0] / 1000.0
        age = now - issued
        # A nonce from the future means our clock stepped back: ours, but make
        # the client fetch a new one rather than trust it for longer.
        if age > self.lifetime or age < -self.max_skew:
            return NonceStatus.STALE
        return NonceStatus.VALID


class NonceCounter:
    """Replay protection: per (nonce, cnonce), ``nc`` must strictly increase.

    Keyed by (nonce, cnonce) rather than nonce alone: the response hash binds
    both, so a replay must repeat the pair, and UAs that keep nc=1 with a fresh
    cnonce per request still work. Entries idle for ``ttl`` seconds are
    dropped; keep ``ttl >= NonceManager.lifetime`` so a dropped entry's nonce
    is already STALE. When ``max_entries`` is reached the least recently used
    entries are evicted (an eighth of the table at a time, counted in
    ``evictions``), which could re-open a replay window for those nonces: size
    it above the authenticated request rate times ``ttl``. Feed it only with
    credentials that passed ``verify``.

    Why three flat arrays and not a dict of (nonce, cnonce) -> (nc, time):
    every authenticated request adds an entry that lives ``ttl`` (600 s), and
    as Python objects (two strings, two tuples, a float, a dict node: ~340 B
    in six small blocks) those made during a call burst sit in every
    allocator arena of the burst and keep it from going back to the system
    long after the calls. Here an entry is a 64-bit fingerprint of the pair,
    its nc and its last use, 48 bytes in a table that grows and shrinks as a
    whole (open addressing, linear probing, rebuilt when full). Two pairs
    sharing a fingerprint (odds ~n^2/2^65, and the hash is salted per
    instance) only cost the later one a fresh challenge.
    """

    _MIN_SLOTS: Final = 64

    def __init__(self, max_entries: int = 100_000, ttl: float = 300.0) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.ttl = ttl
        self.evictions = 0
        self._salt = secrets.token_hex(8)
        self._max_slots = _pow2_at_least(2 * max_entries)
        self._now = 0.0
        self._rebuilt = 0.0
        self._alloc(min(self._MIN_SLOTS, self._max_slots))

    def _alloc(self, slots: int) -> None:
        self._mask = slots - 1
        self._keys = array("Q", bytes(8 * slots))  # 0 = empty slot
        self._ncs = array("Q", bytes(8 * slots))
        self._last = array("d", bytes(8 * slots))
        self._used = 0  # occupied slots, expired ones included until the next rebuild
        self._limit = min(self.max_entries, slots // 2)

    def __len__(self) -> int:
        """Entries still within ``ttl`` of the latest ``accept``."""
        keys, last, now, ttl = self._keys, self._last, self._now, self.ttl
        return sum(1 for i in range(len(keys)) if keys[i] != 0 and now - last[i] < ttl)

    def _slot(self, key: int) -> int:
        """The slot holding ``key``, or the empty slot where it belongs."""
        keys, mask = self._keys, self._mask
        i = key & mask
        while True:
            k = keys[i]
            if k == key or k == 0:
                return i
            i = (i + 1) & mask

    def accept(self, nonce: str, cnonce: str | None, nc: int | str, now: float) -> bool:
        """Record ``nc`` and return True, or False if it is not above the last one."""
        value = int(nc, 16) if isinstance(nc, str) else nc
        if value < 1 or value > _NC_MAX:
            return False
        if now > self._now:
            self._now = now
        key = (hash((self._salt, nonce, cnonce or "")) & _NC_MAX) or 1
        i = self._slot(key)
        if self._keys[i] == key:
            if now - self._last[i] < self.ttl and value <= self._ncs[i]:
                return False
            self._ncs[i] = value  # a higher count, or an expired entry starting over
            self._last[i] = now
            return True
        if self._used >= self._limit or now - self._rebuilt > self.ttl:
            self._rebuild(now)  # full, or not swept for a ttl: expired entries would hold the table's size
            i = self._slot(key)
        self._keys[i] = key
        self._ncs[i] = value
        self._last[i] = now
        self._used += 1
        return True

    def _rebuild(self, now: float) -> None:
        """Drop expired entries, evict the oldest if still full, and re-size the table around the rest."""
        self._rebuilt = now
        keys, ncs, last, ttl = self._keys, self._ncs, self._last, self.ttl
        live = [i for i in range(len(keys)) if keys[i] != 0 and now - last[i] < ttl]
        room = self.max_entries - max(1, self.max_entries // 8)
        if len(live) > room:
            live.sort(key=last.__getitem__)
            self.evictions += len(live) - room
            live = live[len(live) - room :]
        kept = [(keys[i], ncs[i], last[i]) for i in live]
        self._alloc(min(self._max_slots, max(self._MIN_SLOTS, _pow2_at_least(4 * (len(kept) + 1)))))
        for key, value, used in kept:
            j = self._slot(key)
            self._keys[j] = key
            self._ncs[j] = value
            self._last[j] = used
        self._used = len(kept)


_NC_MAX: Final = (1 << 64) - 1


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()
