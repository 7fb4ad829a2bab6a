"""Retention of the messaging tables: published outbox rows and old inbox rows go away.

An outbox row has done its work once the bus accepted it. An inbox row is the memory that
makes a redelivered event a no-op, so it is kept longer than the broker keeps a record
(Kafka's default retention is seven days): no redelivery can outlive it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Column, ColumnElement, Table, delete, select, tuple_

from sukverse_common import tracing
from sukverse_common.db import Database
from sukverse_common.events.outbox import MessagingTables

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Retention:
    """How long published outbox rows and inbox rows are kept, and how often to sweep."""

    outbox: timedelta
    inbox: timedelta
    every_seconds: float
    chunk: int = 5_000


class RetentionSweeper:
    """Deletes expired rows in chunks, each its own short transaction, so a sweep never
    holds a lock for long; replicas sweeping at once only delete the same rows once."""

    def __init__(self, *, tables: MessagingTables, database: Database, retention: Retention):
        self.tables = tables
        self.database = database
        self.retention = retention

    async def run(self) -> None:
        while True:
            try:
                with tracing.untraced():
                    await self.sweep()
            except Exception:
                log.exception("messaging retention sweep failed; trying again later")
            await asyncio.sleep(self.retention.every_seconds)

    async def sweep(self, now: datetime | None = None) -> dict[str, int]:
        """Delete every expired row; how many went, per table."""
        now = now or datetime.now(UTC)
        outbox, inbox = self.tables.outbox, self.tables.inbox
        deleted = {
            "outbox": await self._purge(
                outbox, [outbox.c.id], outbox.c.published_at < now - self.retention.outbox
            ),
            "inbox": await self._purge(
                inbox,
                [inbox.c.consumer, inbox.c.event_id],
                inbox.c.handled_at < now - self.retention.inbox,
            ),
        }
        if any(deleted.values()):
            log.info("messaging rows past retention deleted", **deleted)
        return deleted

    async def _purge(
        self, table: Table, key: Sequence[Column[Any]], expired: ColumnElement[bool]
    ) -> int:
        total = 0
        while True:
            async with self.database.sessions() as session, session.begin():
                chunk = select(*key).where(expired).limit(self.retention.chunk)
                result = await session.execute(delete(table).where(tuple_(*key).in_(chunk)))
            count = int(getattr(result, "rowcount", 0) or 0)
            total += count
            if count < self.retention.chunk:
                return total
