"""The embedded tier's SQLite driver: a statement is one call to aiosqlite's thread, and a
connection goes back to the pool without an open transaction and without a needless rollback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sukverse_common.db import Database, create_engine

metadata = MetaData()
notes = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("title", String(50), nullable=False, unique=True),
)


class Base(DeclarativeBase):
    pass


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def thread_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions aiosqlite ran on its thread, in order."""
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def test_a_committed_transaction_is_a_call_per_statement_and_one_to_commit(
    engine: AsyncEngine, thread_calls: list[str]
) -> None:
    database = Database(engine)
    async with database.sessions() as session, session.begin():  # the pool's first connection
        await session.execute(select(1))
    thread_calls.clear()
    async with database.sessions() as session, session.begin():
        await session.execute(insert(notes), [{"title": "a"}, {"title": "b"}])
        rows = (await session.execute(select(notes.c.title).order_by(notes.c.id))).all()
    assert [row.title for row in rows] == ["a", "b"]
    assert thread_calls == ["_run_statement", "_run_statement", "commit"]


async def test_rows_rowcount_and_new_ids_come_back(engine: AsyncEngine) -> None:
    database = Database(engine)
    async with database.sessions() as session, session.begin():
        tag = Tag(name="first")
        session.add(tag)
        await session.flush()
        assert tag.id == 1  # the ORM read the row's id from the cursor
        await session.execute(insert(notes), [{"title": t} for t in "abc"])
        changed = await session.execute(
            update(notes).where(notes.c.title != "b").values(title=notes.c.title + "!")
        )
        assert changed.rowcount == 2  # type: ignore[attr-defined]
        result = await session.execute(select(notes.c.title).order_by(notes.c.id))
        assert result.keys() == ["title"]
        assert result.scalars().all() == ["a!", "b", "c!"]
        assert (await session.execute(select(func.count()).select_from(notes).limit(0))).all() == []


async def test_a_refused_statement_raises_sqlalchemys_error_and_writes_nothing(
    engine: AsyncEngine,
) -> None:
    database = Database(engine)

    async def insert_twice() -> None:
        async with database.sessions() as session, session.begin():
            await session.execute(insert(notes).values(title="kept?"))
            await session.execute(insert(notes).values(title="kept?"))

    with pytest.raises(IntegrityError, match="UNIQUE"):
        await insert_twice()
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(notes)) == 0


async def test_a_connection_returned_mid_transaction_is_rolled_back(
    engine: AsyncEngine, thread_calls: list[str]
) -> None:
    def insert_behind_sqlalchemys_back(sync: Any) -> bool:
        sync.connection.dbapi_connection.cursor().execute(
            "INSERT INTO notes (title) VALUES ('abandoned')"
        )
        return bool(sync.connection.driver_connection.in_transaction)

    conn = await engine.connect()
    assert await conn.run_sync(insert_behind_sqlalchemys_back)
    thread_calls.clear()
    await conn.close()  # SQLAlchemy began nothing, so the pool's reset must find it
    assert thread_calls == ["rollback"]
    async with engine.connect() as again:
        assert (await again.exec_driver_sql("SELECT count(*) FROM notes")).scalar() == 0
