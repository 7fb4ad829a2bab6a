"""Argon2id password hashing on a thread pool, so hashing never blocks the event loop."""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Hasher:
    """argon2-cffi releases the GIL while hashing, so `workers` threads use as many cores."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, workers: int) -> None:
        self._argon2 = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        # Verified against when an account does not exist, so the answer takes as long.
        self._decoy = self._argon2.hash(secrets.token_urlsafe(32))

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._argon2.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password; with no hash (no such account) spend the same time and fail."""
        loop = asyncio.get_running_loop()
        try:
            return (
                await loop.run_in_executor(
                    self._pool, self._argon2.verify, password_hash or self._decoy, password
                )
                and password_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon2.check_needs_rehash(password_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
