"""The bus interface every service publishes and subscribes through, and its in-process form."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import structlog

from sukverse_common.events.envelope import CloudEvent

log = structlog.get_logger(__name__)

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

    def listen(self, topics: Sequence[str], handler: Handler, *, replay_seconds: float) -> None:
        """Hand this process every event of `topics`, beginning with those published in the
        last `replay_seconds`: each replica on its own, with no inbox and nothing
        committed, a failing handler logged and passed over. For what every replica keeps
        in memory and can apply twice (the token verifier's revocations). Before `start`."""

    @property
    def history(self) -> Mapping[str, float]:
        """The seconds of each topic's past that listeners want and the bus cannot give
        them: each service's relay hands them to `replay` from its outbox at start."""

    async def replay(self, messages: Sequence[Message]) -> None:
        """Hand the listeners messages published before this process started."""

    async def ready(self) -> bool: ...


async def listened(handler: Handler, events: Sequence[CloudEvent]) -> None:
    """Run a listener; its failure is logged, never passed on to the publisher or consumer."""
    try:
        await handler(events)
    except Exception:
        log.exception("event listener failed", events=len(events))


class InMemoryBus:
    """The embedded bus: delivery is a direct await of each subscribed group's handler.

    Durability comes from the outbox: a message leaves the outbox only once every handler
    has returned, and each handler records what it handled in its inbox.
    """

    system = "in_process"

    def __init__(self) -> None:
        self._handlers: dict[str, dict[str, Handler]] = defaultdict(dict)
        self._listeners: dict[str, list[Handler]] = defaultdict(list)
        self.history: dict[str, float] = {}
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

    def listen(self, topics: Sequence[str], handler: Handler, *, replay_seconds: float) -> None:
        """Listeners get each publish first; nothing outlives the process, so the past they
        want comes from the producers' outboxes (`history`, `replay`)."""
        for topic in topics:
            self._listeners[topic].append(handler)
            self.history[topic] = max(self.history.get(topic, 0.0), replay_seconds)

    async def replay(self, messages: Sequence[Message]) -> None:
        await self._started.wait()
        await self._tell_listeners(messages)

    async def _tell_listeners(self, messages: Sequence[Message]) -> None:
        batches: dict[Handler, list[CloudEvent]] = {}
        for message in messages:
            for handler in self._listeners.get(message.topic, ()):
                batches.setdefault(handler, []).append(message.event)
        for handler, events in batches.items():
            await listened(handler, events)

    async def publish(self, messages: Sequence[Message]) -> None:
        """Hand each listener and then each subscribed group, in one call each, the
        messages of its topics in order."""
        await self._started.wait()
        if self._listeners:
            await self._tell_listeners(messages)
        batches: dict[str, tuple[Handler, list[CloudEvent]]] = {}
        for message in messages:
            for group, handler in self._handlers.get(message.topic, {}).items():
                batches.setdefault(group, (handler, []))[1].append(message.event)
        for handler, events in batches.values():
            await handler(events)

    async def ready(self) -> bool:
        return self._started.is_set() and not self._stopped
