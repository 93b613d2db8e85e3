"""Password and token hashing.

Passwords: argon2id through argon2-cffi (its default parameters, RFC 9106's
low-memory profile); a hash made with older parameters is replaced at the next
good login.  API tokens: 32 random bytes shown once, stored as SHA-256 (a
random 256-bit secret needs no slow hash), compared by looking the hash up.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Tuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TOKEN_PREFIX = "smss_"

_hasher = PasswordHasher()

# A hash of a password nobody has, verified when the user does not exist, so a
# login takes as long for an unknown name as for a wrong password.
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def burn_time(password: str) -> None:
    """Spend a verification's time on a login for a name that does not exist."""
    verify_password(_DUMMY, password)


def needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False


def password_stamp(password_hash: str) -> str:
    """A short digest of the stored hash, kept in the login cookie: a password
    change or a deleted user ends every login made before it."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def new_token() -> Tuple[str, str]:
    """A new API token and the hash to store."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
