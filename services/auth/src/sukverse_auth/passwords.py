"""Argon2id password hashing in worker processes, so hashing never blocks the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
from collections.abc import Coroutine

from argon2 import PasswordHasher, Type

IDLE_SECONDS = 30.0
STOP_SECONDS = 2.0


class WorkerGoneError(RuntimeError):
    """A hashing worker exited (it was killed) before it answered."""


class _Worker:
    """One `sukverse_auth.hashing` process, asked one thing at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, args: list[str]) -> _Worker:
        # The service's own settings (its database URL, an admin password) stay out of it.
        env = {name: value for name, value in os.environ.items() if "SUKVERSE" not in name}
        process = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env
        )
        return cls(process)

    async def ask(self, request: list[str]) -> str | bool:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            await self.process.stdin.drain()
            answer = await self.process.stdout.readline()
        except (BrokenPipeError, ConnectionResetError):
            answer = b""
        if not answer:
            raise WorkerGoneError("a password hashing worker exited")
        result: str | bool = json.loads(answer)
        return result

    async def stop(self, *, kill: bool = False) -> None:
        """End its input, so it exits (or kill it); wait for it and the end of its output."""
        if kill:
            self.kill()
        elif self.process.stdin is not None:
            self.process.stdin.close()
        try:
            async with asyncio.timeout(STOP_SECONDS):
                await self.process.communicate()
        except TimeoutError:
            self.kill()
            await self.process.communicate()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


class Hasher:
    """Hashes and verifies on at most `workers` processes at once, at the lowest CPU priority.

    Processes rather than threads: argon2 lets go of the interpreter's lock while it hashes,
    but a hashing thread takes it back around each hash, and at the lowest priority it is
    often descheduled holding it while the event loop waits for it. A worker starts when a
    hash needs it and stops after `idle_seconds` without one: an idle service holds no
    hashing memory, and a worker that dies is replaced by the next hash.
    """

    def __init__(
        self,
        *,
        time_cost: int,
        memory_kib: int,
        parallelism: int,
        workers: int,
        first: str | None = None,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        """`first`, a password to hash at once, ahead of anything else (see `first_hash`)."""
        self._argon2 = PasswordHasher(  # reads hashes' parameters; hashes nothing itself
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._command = [
            sys.executable,
            "-m",
            "sukverse_auth.hashing",
            str(time_cost),
            str(memory_kib),
            str(parallelism),
        ]
        self._slots = asyncio.Semaphore(workers)
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._busy = 0
        self._idle_seconds = idle_seconds
        self._idle_stop: asyncio.TimerHandle | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        self._first = None if first is None else asyncio.ensure_future(self.hash(first))
        # Verified against when an account does not exist, so the answer takes as long;
        # hashed in the background, after `first`, so that start-up does not wait for it.
        self._decoy = asyncio.ensure_future(self._new_decoy())

    async def first_hash(self) -> str:
        """The hash of the `first` password."""
        if self._first is None:
            raise RuntimeError("the hasher was given no first password")
        return await asyncio.shield(self._first)

    async def _new_decoy(self) -> str:
        if self._first is not None:  # leave the spare core to the hash start-up waits for
            await asyncio.wait([self._first])
        return await self.hash(secrets.token_urlsafe(32))

    async def _ask(self, request: list[str]) -> str | bool:
        async with self._slots:
            if self._idle_stop is not None:
                self._idle_stop.cancel()
                self._idle_stop = None
            self._busy += 1
            try:
                while True:
                    fresh = not self._idle
                    try:
                        return await self._ask_a_worker(request)
                    except WorkerGoneError:  # killed from outside (out of memory, say)
                        if fresh:
                            raise
            finally:
                self._busy -= 1
                if self._busy == 0 and self._idle:
                    loop = asyncio.get_running_loop()
                    self._idle_stop = loop.call_later(self._idle_seconds, self._stop_idle)

    async def _ask_a_worker(self, request: list[str]) -> str | bool:
        worker = self._idle.pop() if self._idle else await self._start_worker()
        try:
            answer = await worker.ask(request)
        except BaseException:  # gone, or cancelled half-way through a question: not reused
            self._workers.discard(worker)
            self._in_background(worker.stop(kill=True))
            raise
        self._idle.append(worker)
        return answer

    async def _start_worker(self) -> _Worker:
        worker = await _Worker.start(self._command)
        self._workers.add(worker)
        return worker

    def _stop_idle(self) -> None:
        self._idle_stop = None
        idle, self._idle = self._idle, []
        for worker in idle:
            self._workers.discard(worker)
            self._in_background(worker.stop())

    def _in_background(self, stopping: Coroutine[None, None, None]) -> None:
        task = asyncio.ensure_future(stopping)
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def hash(self, password: str) -> str:
        return str(await self._ask(["hash", password]))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password; with no hash (no such account) spend the same time and fail."""
        # An account without a password yet (`!unset:`) also spends the time and fails.
        stored = password_hash if password_hash and not password_hash.startswith("!") else None
        usable = stored is not None
        if stored is None:
            stored = await asyncio.shield(self._decoy)
        matched = await self._ask(["verify", stored, password])
        return matched is True and usable

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon2.check_needs_rehash(password_hash)

    @property
    def processes(self) -> int:
        """Workers running now."""
        return len(self._workers)

    async def close(self) -> None:
        if self._idle_stop is not None:
            self._idle_stop.cancel()
        tasks = [task for task in (self._first, self._decoy) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._idle = []
        workers, self._workers = self._workers, set()
        await asyncio.gather(*(worker.stop() for worker in workers), *self._stopping)
