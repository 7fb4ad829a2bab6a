"""The bus interface every service publishes and subscribes through, and its in-process form."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from sukverse_common.events.envelope import CloudEvent

Handler = Callable[[Sequence[CloudEvent]], Awaitable[None]]
"""Handles a batch of events in order; raising means none of the batch counts as handled."""


def each(handler: Callable[[CloudEvent], Awaitable[None]]) -> Handler:
    """A batch handler that hands the events to `handler` one at a time."""

    async def handle(events: Sequence[CloudEvent]) -> None:
        for event in events:
            await handler(event)

    return handle


class Message:
    """One event to publish on `topic`, keyed by `key` (its aggregate id)."""

    __slots__ = ("_event", "_json", "key", "topic", "trace")

    def __init__(self, topic: str, key: str, event: CloudEvent) -> None:
        self.topic, self.key = topic, key
        self._event: CloudEvent | None = event
        self._json: bytes | None = None
        # The trace context to send it with (W3C `traceparent`, `tracestate`), as headers.
        self.trace: Mapping[str, str] | None = None

    @classmethod
    def from_json(cls, topic: str, key: str, raw: str | bytes) -> Message:
        """A message from its serialised event, parsed only if something reads `event`:
        the Kafka bus sends the JSON as it is."""
        message = cls.__new__(cls)
        message.topic, message.key, message._event, message.trace = topic, key, None, None
        message._json = raw.encode() if isinstance(raw, str) else raw
        return message

    @property
    def event(self) -> CloudEvent:
        if self._event is None:
            assert self._json is not None
            self._event = CloudEvent.from_json(self._json)
        return self._event

    def to_bytes(self) -> bytes:
        return self._json if self._json is not None else self.event.to_bytes()

    def __repr__(self) -> str:
        return f"Message(topic={self.topic!r}, key={self.key!r})"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


class Bus(Protocol):
    """Publishes in order per key and delivers at least once to every subscribed group,
    in batches that keep the order of each key."""

    system: str
    """The messaging system, as trace spans name it (`kafka`, `in_process`)."""

    async def start(self) -> None:
        """Begin delivering; subscriptions made before this see every event."""

    async def stop(self) -> None: ...

    async def publish(self, messages: Sequence[Message]) -> None:
        """Return once every message is durably accepted, in the order given."""

    def subscribe(self, group: str, topics: Sequence[str], handler: Handler) -> None: ...

    async def ready(self) -> bool: ...


class InMemoryBus:
    """The embedded bus: delivery is a direct await of each subscribed group's handler.

    Durability comes from the outbox: a message leaves the outbox only once every handler
    has returned, and each handler records what it handled in its inbox.
    """

    system = "in_process"

    def __init__(self) -> None:
        self._handlers: dict[str, dict[str, Handler]] = defaultdict(dict)
        self._started = asyncio.Event()
        self._stopped = False

    async def start(self) -> None:
        self._stopped = False
        self._started.set()

    async def stop(self) -> None:
        self._stopped = True
        self._started.clear()

    def subscribe(self, group: str, topics: Sequence[str], handler: Handler) -> None:
        for topic in topics:
            self._handlers[topic][group] = handler

    async def publish(self, messages: Sequence[Message]) -> None:
        """Hand each subscribed group, in one call, the messages of its topics in order."""
        await self._started.wait()
        batches: dict[str, tuple[Handler, list[CloudEvent]]] = {}
        for message in messages:
            for group, handler in self._handlers.get(message.topic, {}).items():
                batches.setdefault(group, (handler, []))[1].append(message.event)
        for handler, events in batches.values():
            await handler(events)

    async def ready(self) -> bool:
        return self._started.is_set() and not self._stopped
