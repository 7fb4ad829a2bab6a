"""A password hashing worker: `python -m sukverse_auth.hashing TIME_COST MEMORY_KIB PARALLELISM`.

It reads one request a line on stdin, `["hash", password]` or `["verify", hash, password]`,
and answers each with one line of JSON on stdout: the hash, or whether the password
matches. It runs at the lowest CPU priority (see `lowest_priority`) and exits at the end
of its input. It imports argon2 and nothing of the service, so that it starts in a few
hundredths of a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

NICENESS = 19


def lowest_priority() -> None:
    """Linux's idle scheduling policy where there is one, else niceness 19.

    A task of the normal policy that wakes takes the CPU from an idle-policy one at once.
    From a task at niceness 19 it may not: the kernel can let the running task have the rest
    of its time slice first, and a request that wakes the event loop while every core hashes
    waits for it.
    """
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, NICENESS)
    if hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def main() -> None:
    time_cost, memory_kib, parallelism = (int(arg) for arg in sys.argv[1:4])
    lowest_priority()
    argon2 = PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )
    for line in sys.stdin.buffer:
        operation, *args = json.loads(line)
        result: str | bool
        if operation == "hash":
            result = argon2.hash(args[0])
        else:
            try:
                result = argon2.verify(args[0], args[1])
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                result = False
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
