"""The UTC timestamp type: SQLite's stored text is what SQLAlchemy's own DATETIME writes;
and what a unit of work runs once it commits."""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import DateTime, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_common.db import Database, UtcDateTime, after_commit, create_engine, unavailable

DIALECT = sqlite.dialect()


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 25, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 11, 25, 3, 4, 5, 123, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 30, 0, 999999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(99, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_sqlite_stores_a_timestamp_as_its_datetime_type_would_in_utc(moment: datetime) -> None:
    ours = UtcDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    theirs = DateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    assert ours is not None and theirs is not None
    assert ours(moment) == theirs(moment.astimezone(UTC).replace(tzinfo=None))
    assert ours(None) is None


def test_a_naive_timestamp_is_refused() -> None:
    process = UtcDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    assert process is not None
    with pytest.raises(ValueError, match="naive"):
        process(datetime(2026, 11, 25))


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    yield database
    await database.dispose()


async def test_after_commit_runs_each_callback_once_in_order_when_the_transaction_commits(
    database: Database,
) -> None:
    calls: list[str] = []
    first, second = (lambda: calls.append("first")), (lambda: calls.append("second"))
    async with database.sessions() as session:
        async with session.begin():
            await session.execute(text("SELECT 1"))
            after_commit(session, first)
            after_commit(session, second)
            after_commit(session, first)
            assert calls == []
        assert calls == ["first", "second"]
        async with session.begin():  # the next transaction of the session starts afresh
            await session.execute(text("SELECT 1"))
        assert calls == ["first", "second"]


async def test_after_commit_never_runs_for_a_rolled_back_transaction(database: Database) -> None:
    calls: list[str] = []
    async with database.sessions() as session:
        transaction = await session.begin()
        await session.execute(text("SELECT 1"))
        after_commit(session, lambda: calls.append("rolled back"))
        await transaction.rollback()
        async with session.begin():
            await session.execute(text("SELECT 1"))
    assert calls == []


async def test_after_commit_refuses_a_session_that_would_never_run_it(database: Database) -> None:
    async with AsyncSession(database.engine) as session:
        with pytest.raises(TypeError, match=r"Database\.sessions"):
            after_commit(session, lambda: None)


class _DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # PostgreSQL shutting down, not yet accepting connections, or gone away.
        (DBAPIError("SELECT 1", {}, _DriverError("57P03")), True),
        (DBAPIError("SELECT 1", {}, _DriverError("57P01")), True),
        (DBAPIError("SELECT 1", {}, _DriverError("08006")), True),
        (DBAPIError("SELECT 1", {}, _DriverError("53300")), True),  # too many connections
        (DBAPIError("SELECT 1", {}, _DriverError("40P01")), True),  # deadlock
        (DBAPIError("SELECT 1", {}, _DriverError("25006")), True),  # read-only after failover
        (DBAPIError("SELECT 1", {}, _DriverError(None), connection_invalidated=True), True),
        (OperationalError("SELECT 1", {}, _DriverError(None)), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (PoolTimeoutError("QueuePool limit of size 10 overflow 0 reached"), True),
        (socket.gaierror(-2, "Name or service not known"), True),
        (OSError(errno.EHOSTUNREACH, "No route to host"), True),
        (OSError("Multiple exceptions: [Errno 111] Connect call failed"), True),
        (FileNotFoundError(errno.ENOENT, "no such file"), False),
        (DBAPIError("SELECT 1", {}, _DriverError("57014")), False),  # statement timeout
        # The statement or the data is wrong: asking again changes nothing.
        (DBAPIError("SELECT 1", {}, _DriverError("23505")), False),  # unique violation
        (DBAPIError("SELECT 1", {}, _DriverError("42P01")), False),  # no such table
        (DBAPIError("SELECT 1", {}, _DriverError(None)), False),
        (ValueError("bad"), False),
    ],
)
def test_what_says_the_database_cannot_serve_now(error: BaseException, expected: bool) -> None:
    assert unavailable(error) is expected
