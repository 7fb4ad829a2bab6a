"""Retention of the messaging tables, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import MetaData, func, select, update

from sukverse_common.db import Database, create_engine
from sukverse_common.events.contracts import UserRegistered
from sukverse_common.events.outbox import Outbox, messaging_tables
from sukverse_common.events.retention import Retention, RetentionSweeper
from sukverse_common.settings import ServiceSettings

metadata = MetaData()
tables = messaging_tables(metadata)
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RETENTION = Retention(outbox=timedelta(hours=1), inbox=timedelta(days=8), every_seconds=60, chunk=3)


@pytest.fixture
async def database(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    url = ServiceSettings(service_name="test", database_url=database_url, data_dir=tmp_path)
    engine = create_engine(url.effective_database_url)
    async with engine.begin() as conn:  # a scratch schema for this kit test only
        await conn.run_sync(metadata.create_all)
    yield Database(engine)
    await engine.dispose()


def registered() -> UserRegistered:
    return UserRegistered(
        user_id=uuid.uuid4(),
        email="kim@example.com",
        full_name="Kim",
        roles=["student"],
        registered_at=NOW,
    )


async def test_only_rows_past_their_retention_are_deleted(database: Database) -> None:
    outbox, inbox = tables.outbox, tables.inbox
    async with database.sessions() as session, session.begin():
        envelopes = await Outbox(outbox).add_many(
            session, [(registered(), f"user-{n}") for n in range(10)]
        )
        ids = [envelope.id for envelope in envelopes]
        # 7 published two hours ago, 1 published just now, 2 never published.
        for event_id, published in zip(ids, [NOW - timedelta(hours=2)] * 7 + [NOW], strict=False):
            await session.execute(
                update(outbox).where(outbox.c.event_id == event_id).values(published_at=published)
            )
        shared = uuid.uuid4()  # one event seen by two consumers, at different times
        await session.execute(
            inbox.insert(),
            [
                {"consumer": "a", "event_id": shared, "event_type": "t", "handled_at": NOW},
                {
                    "consumer": "b",
                    "event_id": shared,
                    "event_type": "t",
                    "handled_at": NOW - timedelta(days=9),
                },
                *(
                    {
                        "consumer": "a",
                        "event_id": uuid.uuid4(),
                        "event_type": "t",
                        "handled_at": NOW - timedelta(days=8, seconds=1),
                    }
                    for _ in range(4)
                ),
            ],
        )
    sweeper = RetentionSweeper(tables=tables, database=database, retention=RETENTION)

    assert await sweeper.sweep(NOW) == {"outbox": 7, "inbox": 5}
    assert await sweeper.sweep(NOW) == {"outbox": 0, "inbox": 0}
    async with database.sessions() as session:
        left = set(await session.scalars(select(outbox.c.event_id)))
        kept = (await session.execute(select(inbox.c.consumer, inbox.c.event_id))).all()
        unpublished = await session.scalar(
            select(func.count()).where(outbox.c.published_at.is_(None))
        )
    assert left == set(ids[7:])
    assert unpublished == 2
    assert [tuple(row) for row in kept] == [("a", shared)]
