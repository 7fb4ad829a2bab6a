"""The async database of one service: engine, sessions, readiness and Alembic migrations."""

from __future__ import annotations

import asyncio
import errno
import socket
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy.ext.asyncio
from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    insert,
    text,
    util,
)
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolResetState, QueuePool
from sqlalchemy.types import TypeDecorator

from sukverse_common.metrics import Metrics

if TYPE_CHECKING:
    from alembic.config import Config

REVISION_FILE_TEMPLATE = "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s"


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata() -> MetaData:
    """A service's metadata, with the constraint names every migration relies on."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use UTC-aware times")
        return value.astimezone(UTC) if value is not None else None

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            # SQLite's stored text, as its DATETIME type writes it, in one C call: the
            # type's own %-formatting of each field costs more than the insert.
            utc = self.process_bind_param(value, dialect)
            return None if utc is None else utc.replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


BindProcessor = Callable[[Any], Any]


class BulkInsert:
    """A plain INSERT of many rows into fixed columns, for the event tables, which take
    hundreds of rows a transaction.

    On SQLite the rows go to the driver in one executemany (a C loop over one prepared
    statement). On PostgreSQL they go as one statement with an array per column,
    `INSERT ... SELECT ... FROM unnest($1::uuid[], ...)`: one message and one execution on
    the server, where asyncpg's executemany runs the statement once per row and
    SQLAlchemy's multi-row VALUES binds a parameter per value. A column that holds one
    value all the way down (a batch's timestamp, its consumer, its event type) is bound
    once, as a scalar: the driver encodes each array element in turn, and for the event
    tables that is most of the client's work. Either way the columns' bind processing is
    applied by column, and to such a value once: SQLAlchemy's per-row parameter
    dictionaries cost more than the database's own insert.
    """

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.table = table
        self.columns = list(columns)
        self._compiled: dict[tuple[str, str, frozenset[int]], _CompiledInsert] = {}

    async def execute(self, session: AsyncSession, rows: Sequence[Sequence[Any]]) -> None:
        """Insert `rows`, each a sequence of values in the order of `columns`."""
        if rows:
            await self._run(session, rows)

    async def execute_new(
        self, session: AsyncSession, rows: Sequence[Sequence[Any]], *, returning: str
    ) -> list[Any]:
        """PostgreSQL only: insert the rows whose key is not there yet (`ON CONFLICT DO
        NOTHING`); the `returning` column of those inserted."""
        if not rows:
            return []
        result = await self._run(session, rows, returning=returning)
        return list(result.scalars())

    async def _run(
        self, session: AsyncSession, rows: Sequence[Sequence[Any]], *, returning: str = ""
    ) -> Any:
        connection = await session.connection()
        dialect = connection.dialect
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
        postgres = dialect.name == "postgresql"
        # Equal all the way down: the ends first, as most columns that vary differ there,
        # then `count`, which compares in C and by identity first.
        single = frozenset(
            index
            for index, column in enumerate(columns)
            if postgres and column[-1] == column[0] and column.count(column[0]) == len(column)
        )
        if len(single) == len(columns) and len(rows) > 1:
            single -= {0}  # equal rows are still so many rows: one array says how many
        key = (dialect.name, returning, single)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._compile(dialect, returning, single)
        parameters: list[Any] = []
        for index in compiled.order:
            process = compiled.processors.get(index)
            if index in single:
                value = columns[index][0]
                parameters.append(value if process is None else process(value))
                continue
            column = columns[index]
            if process is not None:
                first = column[0]
                if all(value is first for value in column):  # a batch's one timestamp
                    column = [process(first)] * len(column)
                else:
                    column = [process(value) for value in column]
            parameters.append(column)
        if postgres:
            return await connection.exec_driver_sql(compiled.sql, tuple(parameters))
        return await connection.exec_driver_sql(compiled.sql, list(zip(*parameters, strict=True)))

    def _compile(self, dialect: Dialect, returning: str, single: frozenset[int]) -> _CompiledInsert:
        processors: dict[int, BindProcessor] = {}
        for index, name in enumerate(self.columns):
            process = self.table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[index] = process
        if dialect.name == "postgresql":
            sql, order = self._unnest_sql(dialect, returning, single)
            return _CompiledInsert(sql, order, processors)
        if returning:
            raise ValueError("execute_new is for PostgreSQL: SQLite's executemany returns no rows")
        statement = insert(self.table).values({name: bindparam(name) for name in self.columns})
        compiled = statement.compile(dialect=dialect)
        # The driver's placeholders come in the compiled order, not necessarily ours.
        order = [self.columns.index(name) for name in compiled.positiontup or []]
        return _CompiledInsert(compiled.string, order, processors)

    def _unnest_sql(
        self, dialect: Dialect, returning: str, single: frozenset[int]
    ) -> tuple[str, list[int]]:
        """The statement, and the columns in the order of its parameters: the arrays, then
        the values bound once."""
        quote = dialect.identifier_preparer.quote
        order = [i for i in range(len(self.columns)) if i not in single] + sorted(single)
        number = {index: at for at, index in enumerate(order, start=1)}
        selected, arrays = [], []
        for index, name in enumerate(self.columns):
            column_type = self.table.c[name].type.dialect_impl(dialect)
            to_column = ""  # a cast from the type bound to the column's, where they differ
            # Strings go as varchar without a length: the insert's own assignment then
            # refuses a value too long, where a cast to varchar(n) would cut it short.
            if isinstance(column_type, String):
                sql_type = "VARCHAR"
            elif isinstance(column_type, JSON):  # JSON text, as SQLAlchemy binds it
                sql_type, to_column = "TEXT", f"::{column_type.compile(dialect=dialect)}"
            else:
                sql_type = column_type.compile(dialect=dialect)
            if index in single:
                selected.append(f"${number[index]}::{sql_type}{to_column}")
            else:
                selected.append(f"{quote(f'u{index}')}{to_column}")
                arrays.append(f"${number[index]}::{sql_type}[]")
        aliases = ", ".join(quote(f"u{index}") for index in order[: len(arrays)])
        source = f" FROM unnest({', '.join(arrays)}) AS u({aliases})" if arrays else ""
        names = ", ".join(quote(name) for name in self.columns)
        # Identifiers from the table's metadata, quoted; every value is a parameter.
        sql = (
            f"INSERT INTO {dialect.identifier_preparer.format_table(self.table)} ({names}) "
            f"SELECT {', '.join(selected)}{source}"
        )
        if returning:
            sql += f" ON CONFLICT DO NOTHING RETURNING {quote(returning)}"
        return sql, order


@dataclass(frozen=True)
class _CompiledInsert:
    """A BulkInsert statement for one dialect and one shape of batch."""

    sql: str
    order: list[int]  # the columns, by index, in the order of the statement's parameters
    processors: dict[int, BindProcessor]


class StaleSchemaError(RuntimeError):
    """The database is not at the migrations' head: run `sukverse migrate`."""


class _Executed:
    """What a statement left on its cursor, read before the cursor was closed."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount", "rows")

    def __init__(self, cursor: sqlite3.Cursor | None = None) -> None:
        self.arraysize = 1
        self.description = None if cursor is None else cursor.description
        self.rows = cursor.fetchall() if cursor is not None and cursor.description else []
        self.rowcount = -1 if cursor is None else cursor.rowcount
        self.lastrowid = None if cursor is None else cursor.lastrowid

    def close(self) -> None:
        pass


def _run_statement(
    connection: sqlite3.Connection, many: bool, operation: str, parameters: Any
) -> _Executed:
    """On the connection's thread: a cursor, the statement, its rows, and the cursor closed."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        return _Executed(cursor)
    finally:
        cursor.close()


class _OneCallCursor(AsyncAdapt_aiosqlite_cursor):
    """Runs each statement in one call to aiosqlite's thread.

    The stock adapter makes a call each to open a cursor, execute, fetch the rows and close
    it, and every call waits for the thread and then for the event loop to wake: on a busy
    machine that wait costs more than most statements."""

    __slots__ = ()
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = _Executed()  # type: ignore[assignment]
        self._soft_closed_memoized = util.EMPTY_DICT
        self._rows = deque()

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(False, operation, parameters)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._run(True, operation, seq_of_parameters)

    async def _run(self, many: bool, operation: Any, parameters: Any) -> None:
        connection: Any = self._connection  # aiosqlite's, whose thread runs the statement
        async with self._adapt_connection._execute_mutex:
            done = await connection._execute(
                _run_statement, connection._conn, many, operation, parameters
            )
        self._cursor = done
        self._rows = deque(done.rows)


class _OneCallConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _OneCallCursor  # type: ignore[assignment]  # a subclass of the declared one


class _OneCallDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *args: Any, **kwargs: Any) -> _OneCallConnection:
        return _OneCallConnection(self, super().connect(*args, **kwargs)._connection)


def _rollback_if_open(
    dbapi_connection: Any, _record: ConnectionPoolEntry, state: PoolResetState
) -> None:
    """Reset a connection going back to the pool, in place of the pool's own rollback: only
    when a transaction is open. A session that committed leaves none, and a rollback is one
    more call to aiosqlite's thread."""
    if (
        state.asyncio_safe
        and not state.terminate_only
        and dbapi_connection.driver_connection.in_transaction
    ):
        dbapi_connection.rollback()


# A pooled connection used this recently is handed out without a check (HikariCP's
# `aliveBypassWindowMs` is half a second): a busy service pays no round trips for it.
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "sukverse_idle_since"


def _mark_idle(_dbapi_connection: Any, record: ConnectionPoolEntry, *_: Any) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    """Check out a connection that sat idle only once a ping shows it alive; a dead one is
    replaced by the pool (a new connection, or the reason none can be made).

    What `pool_pre_ping` does on every checkout, which costs three round trips (a ping
    inside its own transaction) per unit of work; after a database restart, a connection
    used less than `PING_AFTER_IDLE_SECONDS` before fails its one statement and makes the
    pool discard every connection of that age."""
    idle_since = record.info.get(_IDLE_SINCE)
    if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        raise DisconnectionError("the pooled connection failed its ping") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def async_driver_url(url: str) -> str:
    """The URL with the async driver this kit runs on: the plain `postgresql://` URI that
    CloudNativePG puts in its Secret (and hack/ prints) takes asyncpg, `sqlite://` aiosqlite."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url.removeprefix(plain)
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    return url


def _create_async_engine(url: str, **options: Any) -> AsyncEngine:
    """SQLAlchemy's, looked up when called: with tracing on, the SQLAlchemy instrumentation
    has wrapped it to trace the engines it makes."""
    return sqlalchemy.ext.asyncio.create_async_engine(url, **options)


def _measured_pool(metrics: Metrics) -> type[AsyncAdaptedQueuePool]:
    """The asyncio queue pool, timing each checkout that found no connection free and no
    room to open one (it waits for a check-in, up to the pool timeout)."""
    wait = metrics.db_pool_wait

    class MeasuredPool(AsyncAdaptedQueuePool):
        def _do_get(self) -> ConnectionPoolEntry:
            if self.checkedin() or self.overflow() < self._max_overflow:
                return super()._do_get()
            started = time.perf_counter()
            try:
                return super()._do_get()
            finally:
                wait.observe(time.perf_counter() - started)

    return MeasuredPool


# What says the database cannot serve now, rather than that a statement is wrong: the
# connection failing (the driver's error, a network error: refused, unreachable, reset, a
# name that does not resolve), no connection free in the pool in time, or a PostgreSQL
# SQLSTATE of the classes connection exception (08), insufficient resources (53),
# operator intervention (57: shutting down, cannot connect now) and system error (58), a
# serialization failure or deadlock (40001, 40P01), or a primary a failover made read-only
# (25006). Asked again later, it may well succeed. A statement canceled by its timeout
# (57014) and a missing file (58P01) would fail again the same way: they are errors.
_UNAVAILABLE_ERRORS = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    ConnectionError,
    TimeoutError,
    socket.gaierror,
)
_NETWORK_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT}
)
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
_UNAVAILABLE_SQLSTATES = frozenset({"40001", "40P01", "25006"})
_FAILING_SQLSTATES = frozenset({"57014", "58P01"})


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot serve now (a request answers 503, an event
    is retried) rather than that the work itself failed."""
    if isinstance(exc, _UNAVAILABLE_ERRORS):
        return True
    if isinstance(exc, OSError):
        # asyncpg trying every address of a host raises one OSError for them all.
        return exc.errno in _NETWORK_ERRNOS or str(exc).startswith("Multiple exceptions")
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        state = getattr(exc.orig, "sqlstate", None)
        if isinstance(state, str) and state not in _FAILING_SQLSTATES:
            return state[:2] in _UNAVAILABLE_SQLSTATE_CLASSES or state in _UNAVAILABLE_SQLSTATES
    return False


def create_engine(url: str, *, pool_size: int = 10, metrics: Metrics | None = None) -> AsyncEngine:
    url = async_driver_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = _create_async_engine(
            url,
            connect_args={"timeout": 30},
            hide_parameters=True,
            module=_OneCallDBAPI(__import__("aiosqlite"), sqlite3),
            pool_reset_on_return=None,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "reset", _rollback_if_open)
    else:
        engine = _create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=10,
            hide_parameters=True,  # SQL parameters hold hashes and personal data
            **({} if metrics is None else {"poolclass": _measured_pool(metrics)}),
        )
        event.listen(engine.sync_engine, "connect", _mark_idle)
        event.listen(engine.sync_engine, "checkin", _mark_idle)
        event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    if metrics is not None:
        pool: Any = engine.pool
        if isinstance(pool, QueuePool):
            metrics.db_pool_size.set(pool.size() + pool._max_overflow)
        gauge = metrics.db_pool_checked_out
        event.listen(engine.sync_engine, "checkout", lambda *_: gauge.inc())
        event.listen(engine.sync_engine, "checkin", lambda *_: gauge.dec())
    return engine


class UnitOfWork(Session):
    """The sessions a Database makes: they run what `after_commit` gave them once they commit.

    One listener on this class serves every session, where a listener per session costs
    more to register (about 20 us) than a small transaction takes to run."""


_AFTER_COMMIT = "sukverse.after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Call `callback` once this session's transaction commits; never if it rolls back."""
    if not isinstance(session.sync_session, UnitOfWork):
        raise TypeError("after_commit takes a session from Database.sessions")
    session.info.setdefault(_AFTER_COMMIT, {})[callback] = None  # once each, in order


@event.listens_for(UnitOfWork, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, ()):
        callback()


@event.listens_for(UnitOfWork, "after_rollback")
def _forget_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


class Database:
    """One engine and its session factory; a use case opens one session per unit of work."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(
            engine, expire_on_commit=False, sync_session_class=UnitOfWork
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(2.0), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # any failure means "not ready"
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


def alembic_config(url: str, script_location: str) -> Config:
    """An Alembic config for a service's `package:migrations` directory and a database URL.
    Alembic is imported when migrations are looked at, not with this module."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("file_template", REVISION_FILE_TEMPLATE)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _current_heads(connection: Connection) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    return set(MigrationContext.configure(connection).get_current_heads())


async def schema_is_current(engine: AsyncEngine, script_location: str) -> bool:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("", script_location))
    async with engine.connect() as conn:
        current = await conn.run_sync(_current_heads)
    return current == set(script.get_heads())


_MIGRATING = threading.Lock()


async def upgrade(url: str, script_location: str) -> None:
    """`alembic upgrade head`, in a thread: Alembic's env runs its own event loop. One
    upgrade at a time in a process: Alembic's `context` and `op` are module globals."""
    from alembic import command

    def run() -> None:
        with _MIGRATING:
            command.upgrade(alembic_config(url, script_location), "head")

    await asyncio.to_thread(run)


def run_migrations(target_metadata: Any) -> None:
    """The body of every service's migrations/env.py."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    batch = make_url(url).get_backend_name() == "sqlite"

    def configure_and_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=batch,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(configure_and_run)
                await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(main())
