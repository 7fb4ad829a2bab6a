"""Argon2id password hashing on a thread pool, so hashing never blocks the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

T = TypeVar("T")
HASHING_NICENESS = 19
IDLE_TRIM_SECONDS = 2.0


def _lower_priority() -> None:
    """Hash at the lowest CPU priority (Linux: niceness is per thread), so requests that
    need no hashing are served at once even while every core is hashing, and a flood of
    them still leaves logins a small share rather than none."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


def _release_free_memory() -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim).

    Every hash allocates its whole memory cost at once, and glibc keeps such blocks in
    each hashing thread's heap for reuse, which is what makes hashing fast; once the
    hashing stops, they are returned.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


class Hasher:
    """argon2-cffi releases the GIL while hashing, so `workers` threads use as many cores."""

    def __init__(
        self,
        *,
        time_cost: int,
        memory_kib: int,
        parallelism: int,
        workers: int,
        first: str | None = None,
    ) -> None:
        """`first`, a password to hash at once, ahead of anything else (see `first_hash`)."""
        self._argon2 = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=_lower_priority
        )
        self._running = 0
        self._idle_trim: asyncio.TimerHandle | None = None
        self._first = None if first is None else self._pool.submit(self._argon2.hash, first)
        # Verified against when an account does not exist, so the answer takes as long;
        # hashed on the pool, so that start-up does not wait for it.
        self._decoy = self._pool.submit(self._new_decoy)

    async def first_hash(self) -> str:
        """The hash of the `first` password."""
        if self._first is None:
            raise RuntimeError("the hasher was given no first password")
        return await asyncio.wrap_future(self._first)

    def _new_decoy(self) -> str:
        if self._first is not None:  # leave the spare core to the hash start-up waits for
            wait([self._first])
        decoy = self._argon2.hash(secrets.token_urlsafe(32))
        _release_free_memory()
        return decoy

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        loop = asyncio.get_running_loop()
        if self._idle_trim is not None:
            self._idle_trim.cancel()
            self._idle_trim = None
        self._running += 1
        try:
            return await loop.run_in_executor(self._pool, work, *args)
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle_trim = loop.call_later(IDLE_TRIM_SECONDS, self._trim_when_idle)

    def _trim_when_idle(self) -> None:
        self._idle_trim = None
        if self._running == 0:
            self._pool.submit(_release_free_memory)

    async def hash(self, password: str) -> str:
        return await self._run(self._argon2.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password; with no hash (no such account) spend the same time and fail."""
        # An account without a password yet (`!unset:`) also spends the time and fails.
        stored = password_hash if password_hash and not password_hash.startswith("!") else None
        usable = stored is not None
        if stored is None:
            stored = await asyncio.wrap_future(self._decoy)
        try:
            matched = await self._run(self._argon2.verify, stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return matched and usable

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon2.check_needs_rehash(password_hash)

    async def close(self) -> None:
        if self._idle_trim is not None:
            self._idle_trim.cancel()
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
