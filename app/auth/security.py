"""Password hashing (Argon2id) and bearer token digests."""

import hashlib
import hmac
import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.config import Settings


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def hasher(settings: Settings) -> PasswordHasher:
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_kib)


def hash_password(settings: Settings, password: str) -> str:
    """An Argon2id hash of `password`."""
    return hasher(settings).hash(password)


def password_matches(settings: Settings, password_hash: str, password: str) -> bool:
    """True if `password` is the one hashed in `password_hash`."""
    try:
        return hasher(settings).verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def burn_password_check(settings: Settings, password: str) -> None:
    """Spend the time of one verification, so an unknown username is not revealed by timing."""
    password_matches(settings, _dummy_hash(settings.argon2_time_cost, settings.argon2_memory_kib),
                     password)  # fmt: skip


@lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_kib: int) -> str:
    return _hasher(time_cost, memory_kib).hash(secrets.token_urlsafe(16))


def new_token() -> str:
    """A fresh bearer token (256 bits of randomness)."""
    return secrets.token_urlsafe(32)


def token_digest(settings: Settings, token: str) -> str:
    """What is stored for a token: its HMAC-SHA256 under the secret key, never the token."""
    return hmac.new(settings.secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()
