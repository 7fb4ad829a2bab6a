"""The bus interface every service publishes and subscribes through, and its in-process form."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple, Protocol

from sukverse_common.events.envelope import CloudEvent

Handler = Callable[[CloudEvent], Awaitable[None]]


class Message(NamedTuple):
    topic: str
    key: str
    event: CloudEvent


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


class Bus(Protocol):
    """Publishes in order per key and delivers at least once to every subscribed group."""

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
        await self._started.wait()
        for message in messages:
            for handler in list(self._handlers.get(message.topic, {}).values()):
                await handler(message.event)

    async def ready(self) -> bool:
        return self._started.is_set() and not self._stopped
