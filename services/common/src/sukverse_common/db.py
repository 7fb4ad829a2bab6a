"""The async database of one service: engine, sessions, readiness and Alembic migrations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import DateTime, Dialect, MetaData, Table, bindparam, event, insert, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from sukverse_common.metrics import Metrics

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
    statement), with the columns' bind processing applied by column: SQLAlchemy's per-row
    parameter dictionaries cost more than SQLite's own insert. Elsewhere SQLAlchemy's
    executemany is kept, which sends the rows as multi-row VALUES statements: the driver's
    executemany would run the statement once per row on the server.
    """

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.table = table
        self.columns = list(columns)
        self._compiled: tuple[str, list[int], list[tuple[int, BindProcessor]]] | None = None

    async def execute(self, session: AsyncSession, rows: Sequence[Sequence[Any]]) -> None:
        """Insert `rows`, each a sequence of values in the order of `columns`."""
        if not rows:
            return
        connection = await session.connection()
        if connection.dialect.name != "sqlite":
            await session.execute(
                insert(self.table), [dict(zip(self.columns, row, strict=True)) for row in rows]
            )
            return
        if self._compiled is None:
            self._compiled = self._compile(connection.dialect)
        sql, order, processors = self._compiled
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
        for index, process in processors:
            column = columns[index]
            first = column[0]
            if all(value is first for value in column):  # a batch's one timestamp
                columns[index] = [process(first)] * len(column)
            else:
                columns[index] = [process(value) for value in column]
        parameters = list(zip(*[columns[index] for index in order], strict=True))
        await connection.exec_driver_sql(sql, parameters)

    def _compile(self, dialect: Dialect) -> tuple[str, list[int], list[tuple[int, BindProcessor]]]:
        statement = insert(self.table).values({name: bindparam(name) for name in self.columns})
        compiled = statement.compile(dialect=dialect)
        # The driver's placeholders come in the compiled order, not necessarily ours.
        order = [self.columns.index(name) for name in compiled.positiontup or []]
        processors: list[tuple[int, BindProcessor]] = []
        for index, name in enumerate(self.columns):
            process = self.table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((index, process))
        return compiled.string, order, processors


class StaleSchemaError(RuntimeError):
    """The database is not at the migrations' head: run `sukverse migrate`."""


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_engine(url: str, *, pool_size: int = 10, metrics: Metrics | None = None) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_timeout=10,
            hide_parameters=True,  # SQL parameters hold hashes and personal data
        )
    if metrics is not None:
        gauge = metrics.db_pool_checked_out
        event.listen(engine.sync_engine, "checkout", lambda *_: gauge.inc())
        event.listen(engine.sync_engine, "checkin", lambda *_: gauge.dec())
    return engine


class Database:
    """One engine and its session factory; a use case opens one session per unit of work."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

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
    """An Alembic config for a service's `package:migrations` directory and a database URL."""
    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("file_template", REVISION_FILE_TEMPLATE)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _current_heads(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


async def schema_is_current(engine: AsyncEngine, script_location: str) -> bool:
    script = ScriptDirectory.from_config(alembic_config("", script_location))
    async with engine.connect() as conn:
        current = await conn.run_sync(_current_heads)
    return current == set(script.get_heads())


async def upgrade(url: str, script_location: str) -> None:
    """`alembic upgrade head`, in a thread: Alembic's env runs its own event loop."""
    await asyncio.to_thread(command.upgrade, alembic_config(url, script_location), "head")


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
