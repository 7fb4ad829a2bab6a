"""The idempotent inbox: each event's effect and its inbox row commit together, once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_common.db import Database
from sukverse_common.events.bus import Bus, Message, dead_letter_topic
from sukverse_common.events.contracts import EventData, topic_of
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.events.outbox import Outbox
from sukverse_common.metrics import Metrics

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=EventData)


@dataclass(frozen=True)
class EventContext:
    """What a handler gets besides the event's data: its transaction and its outbox."""

    session: AsyncSession
    event: CloudEvent
    outbox: Outbox


EventHandler = Callable[[EventContext, Any], Awaitable[None]]

TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


def is_transient(exc: BaseException) -> bool:
    """Infrastructure trouble: retry until it passes rather than dead-letter the event."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, TRANSIENT)


class EventConsumer:
    """A service's declared event handlers, keyed by contract; bound to a database at start."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.handlers: dict[str, tuple[type[EventData], EventHandler]] = {}

    def on(
        self, contract: type[E]
    ) -> Callable[
        [Callable[[EventContext, E], Awaitable[None]]], Callable[[EventContext, E], Awaitable[None]]
    ]:
        def register(
            handler: Callable[[EventContext, E], Awaitable[None]],
        ) -> Callable[[EventContext, E], Awaitable[None]]:
            self.handlers[contract.event_type] = (contract, handler)
            return handler

        return register

    @property
    def topics(self) -> list[str]:
        return sorted({contract.topic() for contract, _ in self.handlers.values()})


class InboxDispatcher:
    """Runs a consumer's handlers exactly once in effect per event id."""

    def __init__(
        self,
        *,
        consumer: EventConsumer,
        database: Database,
        inbox: Table,
        outbox: Outbox,
        bus: Bus,
        metrics: Metrics,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
    ) -> None:
        self.consumer = consumer
        self.database = database
        self.inbox = inbox
        self.outbox = outbox
        self.bus = bus
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds

    def subscribe(self) -> None:
        self.bus.subscribe(self.consumer.name, self.consumer.topics, self.handle)

    def _outcome(self, outcome: str) -> None:
        self.metrics.events_handled.labels(self.metrics.service, self.consumer.name, outcome).inc()

    async def handle(self, event: CloudEvent) -> None:
        entry = self.consumer.handlers.get(event.type)
        if entry is None:
            self._outcome("ignored")
            return
        contract, handler = entry
        try:
            data = contract.model_validate(event.data)
        except ValidationError as exc:
            await self._dead_letter(event, f"data does not match {event.type}: {exc}")
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = await self._apply(event, data, handler)
            except Exception as exc:
                self.metrics.handler_errors.labels(self.metrics.service, self.consumer.name).inc()
                transient = is_transient(exc)
                log.warning(
                    "event handler failed",
                    consumer=self.consumer.name,
                    event_id=str(event.id),
                    event_type=event.type,
                    attempt=attempt,
                    transient=transient,
                    error=repr(exc),
                )
                if not transient and attempt >= self.max_attempts:
                    await self._dead_letter(event, repr(exc))
                    return
                await asyncio.sleep(min(30.0, self.backoff_seconds * 2 ** min(attempt, 8)))
                continue
            self._outcome(outcome)
            return

    async def _apply(self, event: CloudEvent, data: EventData, handler: EventHandler) -> str:
        async with self.database.sessions() as session, session.begin():
            dialect = postgresql if self.database.dialect == "postgresql" else sqlite
            recorded = await session.execute(
                dialect.insert(self.inbox)
                .values(
                    consumer=self.consumer.name,
                    event_id=event.id,
                    event_type=event.type,
                    handled_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing()
            )
            if recorded.rowcount == 0:  # type: ignore[attr-defined]
                return "duplicate"
            await handler(EventContext(session=session, event=event, outbox=self.outbox), data)
        return "handled"

    async def _dead_letter(self, event: CloudEvent, reason: str) -> None:
        log.error(
            "event dead-lettered",
            consumer=self.consumer.name,
            event_id=str(event.id),
            event_type=event.type,
            reason=reason[:500],
        )
        letter = CloudEvent.model_validate(
            {**event.model_dump(), "dlqconsumer": self.consumer.name, "dlqreason": reason[:1000]}
        )
        topic = dead_letter_topic(topic_of(event.type.split(".")[2]))
        await self.bus.publish([Message(topic, event.subject, letter)])
        self._outcome("dead_lettered")
