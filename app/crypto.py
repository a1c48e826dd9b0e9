"""Secrets at rest: API keys are hashed, store credentials and webhook secrets are encrypted.

The encryption key is derived from `SYNCAUCTION_SECRET_KEY` with HKDF, so rotating the secret key
means re-encrypting stored credentials (see README, "Secrets").
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretBox:
    """Authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256) for small JSON secrets."""

    def __init__(self, secret_key: str, *, purpose: bytes = b"syncauction/secrets/v1"):
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            secret_key.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, value: Any) -> str:
        return self._fernet.encrypt(orjson.dumps(value)).decode()

    def seal(self, data: bytes) -> bytes:
        """Encrypt raw bytes (stored responses that may carry secrets)."""
        return self._fernet.encrypt(data)

    def open(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise ValueError("stored data cannot be decrypted with the current secret key") from exc

    def decrypt(self, token: str) -> Any:
        try:
            return orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ValueError(
                "stored secret cannot be decrypted with the current secret key"
            ) from exc


def hash_api_key(key: str) -> str:
    """API keys carry ~190 random bits, so a fast unsalted digest is safe and lookup-friendly."""
    return hashlib.sha256(key.encode()).hexdigest()
