"""Personal data that must be kept is kept only encrypted: the PII key, sealed slot values, checkpoint encryption.

The key (32 bytes, AES-256-GCM) comes from `SWITCHBOARD_PII_KEY` (URL-safe base64, made by
`python -c 'from guards.vault import new_key; print(new_key())'`), else from `data_dir/pii.key`, created on
first use with mode 0600 (the embedded default).
Keep the key out of the database it protects: with Postgres, set `SWITCHBOARD_PII_KEY`.

- `Vault.seal(value, owner)` -> ``"pii:v1:..."``: a JSON value encrypted and bound to its owner (tenant/user),
  so a token opens only in that customer's runs. Equal values seal to equal tokens (a synthetic nonce, as in
  SIV), which keeps node-cache keys stable. Used for the slots a ticket carries (`SEALED_SLOTS`).
- `Vault.cipher()`: a LangGraph `CipherProtocol`, for `langgraph.checkpoint.serde.encrypted.EncryptedSerializer`
  (see `guards.checkpoint_serde`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "PREFIX",
    "SEALED_SLOTS",
    "SealError",
    "Vault",
    "is_sealed",
    "load_key",
    "new_key",
    "open_slots",
    "owner_of",
    "seal_slots",
    "vault_for",
]

PREFIX = "pii:v1:"
SEALED_SLOTS = ("email", "phone", "address", "address_parts", "value")
"""Slot keys (`dialogue.slots.Slots.entities`) that hold personal data; in graph state they are sealed tokens."""
KEY_ENV = "SWITCHBOARD_PII_KEY"
MAKE_KEY = """python -c 'from guards.vault import new_key; print(new_key())'"""
_NONCE = 12
_SLOT_AD = b"switchboard/slot/"
_CHECKPOINT_AD = b"switchboard/checkpoint"


class SealError(ValueError):
    """A sealed value that does not open: not a token, tampered with, another key or another owner's."""


def new_key() -> str:
    """A fresh key, URL-safe base64 (what `SWITCHBOARD_PII_KEY` and `pii.key` hold)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{where} is not URL-safe base64 (make one with: {MAKE_KEY})") from exc
    if len(key) != 32:
        raise ValueError(f"{where} must decode to 32 bytes, not {len(key)} (make one with: {MAKE_KEY})")
    return key


def load_key(env_value: str | None, path: Path) -> bytes:
    """The key from `env_value` (SWITCHBOARD_PII_KEY), else from `path`, which is created (0600) when missing."""
    if env_value:
        return _decode_key(env_value, KEY_ENV)
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(new_key() + "\n")
    return _decode_key(path.read_text(), str(path))


class _Cipher:
    """AES-256-GCM for `EncryptedSerializer`: random 96-bit nonce, ciphertext = nonce + ct + tag."""

    name = "aesgcm"

    def __init__(self, aead: AESGCM) -> None:
        self._aead = aead

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        nonce = secrets.token_bytes(_NONCE)
        return self.name, nonce + self._aead.encrypt(nonce, plaintext, _CHECKPOINT_AD)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        if ciphername != self.name:
            raise ValueError(f"checkpoint encrypted with {ciphername!r}; this serializer decrypts {self.name!r}")
        try:
            return self._aead.decrypt(ciphertext[:_NONCE], ciphertext[_NONCE:], _CHECKPOINT_AD)
        except InvalidTag as exc:
            raise ValueError("a checkpoint does not decrypt with this PII key (SWITCHBOARD_PII_KEY changed?)") from exc


class Vault:
    """Seals and opens personal data with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError(f"the PII key must be 32 bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self._nonce_key = hmac.new(key, b"switchboard/nonce", hashlib.sha256).digest()

    def cipher(self) -> _Cipher:
        return _Cipher(self._aead)

    def seal(self, value: Any, owner: str) -> str:
        """`value` (JSON-serialisable) encrypted for `owner` ("tenant/user")."""
        plain = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        ad = _SLOT_AD + owner.encode()
        nonce = hmac.new(self._nonce_key, ad + b"\x00" + plain, hashlib.sha256).digest()[:_NONCE]
        return PREFIX + base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, plain, ad)).decode()

    def unseal(self, token: Any, owner: str) -> Any:
        """The value `seal` was given; SealError when `token` is not one of ours for `owner`."""
        if not is_sealed(token):
            raise SealError(f"not a sealed value: {str(token)[:20]!r}")
        try:
            raw = base64.urlsafe_b64decode(token[len(PREFIX) :].encode())
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _SLOT_AD + owner.encode())
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise SealError("a sealed value does not open for this customer (tampered, another key or owner)") from exc
        return json.loads(plain)


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def owner_of(tenant_id: str, user_id: str) -> str:
    return f"{tenant_id}/{user_id}"


def seal_slots(slots: dict[str, Any], vault: Vault, owner: str) -> dict[str, Any]:
    """`slots` with the personal ones (`SEALED_SLOTS`) sealed; already sealed values are kept."""
    return {
        k: vault.seal(v, owner) if k in SEALED_SLOTS and v is not None and not is_sealed(v) else v
        for k, v in slots.items()
    }


def open_slots(slots: dict[str, Any], vault: Vault, owner: str) -> dict[str, Any]:
    """`slots` with sealed values opened (for the tool arguments that need them)."""
    return {k: vault.unseal(v, owner) if is_sealed(v) else v for k, v in slots.items()}


@functools.cache
def _vault(env_value: str | None, path: str) -> Vault:
    return Vault(load_key(env_value, Path(path)))


def vault_for(settings: Any) -> Vault:
    """The process's vault for these settings (one per key)."""
    return _vault(settings.pii_key, str(settings.pii_key_path))
