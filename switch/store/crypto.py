"""Encryption of secrets at rest (SIP passwords, adapter and trunk secrets).

SIP passwords cannot be stored as hashes only: they must be written into adapter
configs. They are sealed with AES-256-GCM under a key from the settings, so a copy
of the database alone does not reveal them; digest authentication never decrypts
(it uses the stored HA1 values).

Token format: ``g1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``. The key id
(first 8 hex digits of sha256(key)) lets a box hold previous keys, so the key can be
rotated by re-encrypting rows at leisure (``SecretBox.needs_reencryption``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "CTX_ADAPTER_SECRET",
    "CTX_LINE_SECRET",
    "CTX_TRUNK_PASSWORD",
    "KEY_BYTES",
    "SecretBox",
    "SecretBoxError",
    "decode_key",
    "generate_key",
    "load_or_create_key",
]

KEY_BYTES = 32
_NONCE_BYTES = 12  # NIST SP 800-38D §8.2: 96-bit random nonces
_PREFIX = "g1"

# Associated data per column: a ciphertext copied into another column won't open.
CTX_LINE_SECRET = "lines.secret"
CTX_ADAPTER_SECRET = "adapters.provisioning_secret"
CTX_TRUNK_PASSWORD = "trunks.password"


class SecretBoxError(ValueError):
    """A token that cannot be decrypted: corrupt, tampered with, or sealed by an unknown key."""


def generate_key() -> str:
    """A fresh random key, as text (base64url) fit for a settings file or an env var."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def decode_key(key: bytes | str) -> bytes:
    """Accept 32 raw bytes, or base64 / base64url text (padding optional) of 32 bytes."""
    if isinstance(key, bytes) and len(key) == KEY_BYTES:
        return key
    text_key = key.decode("ascii", "strict") if isinstance(key, bytes) else key
    text_key = text_key.strip()
    padded = text_key + "=" * (-len(text_key) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("secret key is not valid base64") from exc
    if len(raw) != KEY_BYTES:
        raise ValueError(f"secret key must be {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def load_or_create_key(path: str | os.PathLike[str]) -> bytes:
    """Read the key file, creating it (mode 0600, parents 0700) with a new key if absent.

    ``O_EXCL`` makes two processes starting at once agree on one key: the loser of
    the race reads the winner's file.
    """
    p = Path(path)
    try:
        return decode_key(p.read_text(encoding="ascii"))
    except FileNotFoundError:
        pass
    p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_text = generate_key()
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return decode_key(p.read_text(encoding="ascii"))
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key_text + "\n")
        f.flush()
        os.fsync(f.fileno())
    return decode_key(key_text)


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class SecretBox:
    """Seal and open short strings with AES-256-GCM.

    ``previous_keys`` are only used to decrypt, for key rotation.
    """

    __slots__ = ("_current_id", "_keys")

    def __init__(self, key: bytes | str, *, previous_keys: Iterable[bytes | str] = ()) -> None:
        raw = decode_key(key)
        self._current_id = _key_id(raw)
        self._keys: dict[str, AESGCM] = {}
        for old in previous_keys:
            old_raw = decode_key(old)
            self._keys[_key_id(old_raw)] = AESGCM(old_raw)
        self._keys[self._current_id] = AESGCM(raw)

    @property
    def key_id(self) -> str:
        return self._current_id

    def encrypt(self, plaintext: str, *, context: str = "") -> str:
        """Seal ``plaintext``. ``context`` (associated data) must be given again to
        decrypt: use it to bind a ciphertext to its purpose so it cannot be copied
        into another column."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._keys[self._current_id].encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{_PREFIX}:{self._current_id}:{body}"

    def decrypt(self, token: str, *, context: str = "") -> str:
        prefix, _, rest = token.partition(":")
        key_id, _, body = rest.partition(":")
        if prefix != _PREFIX or not key_id or not body:
            raise SecretBoxError("not a sealed secret")
        aead = self._keys.get(key_id)
        if aead is None:
            raise SecretBoxError(f"sealed with unknown key {key_id}")
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as exc:
            raise SecretBoxError("sealed secret is not valid base64") from exc
        if len(blob) < _NONCE_BYTES + 16:
            raise SecretBoxError("sealed secret is truncated")
        try:
            plain = aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], context.encode("utf-8"))
        except InvalidTag as exc:
            raise SecretBoxError("sealed secret failed authentication (wrong key, context or tampered)") from exc
        return plain.decode("utf-8")

    def needs_reencryption(self, token: str) -> bool:
        """True when ``token`` was sealed by a previous key."""
        return token.split(":", 2)[1:2] != [self._current_id]
