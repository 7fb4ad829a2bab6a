"""The Kafka bus: structured CloudEvents on topics it creates, one consumer per group."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import sys
import time
from array import array
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple, NoReturn

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.helpers import create_ssl_context
from pydantic import ValidationError

from sukverse_common.events.bus import Handler, Message, dead_letter_topic, listened
from sukverse_common.events.contracts import topic_of
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.metrics import Metrics
from sukverse_common.settings import ServiceSettings

log = structlog.get_logger(__name__)

CONTENT_TYPE = ("content-type", b"application/cloudevents+json")
READY_TIMEOUT_SECONDS = 2.0
FETCH_TIMEOUT_MS = 1000
MAX_RECORDS = 500
# A record batch's size limit. aiokafka's default (16 KiB, some 25 events) makes a relay
# batch of 500 events some 20 record batches, and the producer queues a partition's next
# batch only once the one before it has been sent: a broker round trip each. Half a MiB
# holds a relay batch's share of a partition and stays under the broker's and Strimzi's
# default `message.max.bytes` (1 MiB); a publish larger than that is sent in several.
MAX_BATCH_BYTES = 512 * 1024
MAX_REASON_CHARS = 1000
_M32 = 0xFFFFFFFF
_MURMUR_M = 0x5BD1E995
_MURMUR_SEED = 0x9747B28C


class _Record(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def connection_options(settings: ServiceSettings) -> dict[str, Any]:
    """The aiokafka client options of the settings' security protocol: SASL (SCRAM) and TLS,
    as Strimzi's KafkaUsers and listeners have them."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": password.get_secret_value() if password else "",
        }
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ssl_cafile and str(settings.kafka_ssl_cafile),
            certfile=settings.kafka_ssl_certfile and str(settings.kafka_ssl_certfile),
            keyfile=settings.kafka_ssl_keyfile and str(settings.kafka_ssl_keyfile),
        )
    return options


class KafkaBus:
    """Publishes each batch in order and acknowledged by every in-sync replica; delivers at
    least once to each subscribed group, committing a record's offset only after its handler
    returned, so an inbox transaction always commits before the offset that covers it.

    Topics are `{topic_prefix}{topic}`, consumer groups `{topic_prefix}{group}`: one prefix
    isolates a deployment (or a test) on a shared cluster. Every declared and subscribed topic
    and its `.dlq` is created at start; a topic first met in `publish` is created then. With
    `create_topics` off, the topics must exist (the platform manages them).

    `connection` holds the aiokafka options every client gets (see `connection_options`).
    """

    system = "kafka"
    # The broker keeps the past: listeners read it themselves.
    history: Mapping[str, float] = MappingProxyType({})

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic_prefix: str = "",
        partitions: int = 3,
        replication_factor: int = 1,
        topics: Sequence[str] = (),
        client_id: str = "sukverse",
        publish_timeout: float = 10.0,
        backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 10.0,
        create_topics: bool = True,
        connection: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.create_topics = create_topics
        self.connection = dict(connection or {})
        self.topic_prefix = topic_prefix
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.client_id = client_id
        self.publish_timeout = publish_timeout
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.metrics: Metrics | None = None  # the service's, for consumer lag
        self._declared = list(topics)
        self._groups: dict[str, dict[str, Handler]] = {}
        self._listeners: list[_Listener] = []
        self._created: set[str] = set()
        self._admin: Any = None
        self._producer: Any = None
        self._publishing = asyncio.Lock()
        self._started = asyncio.Event()
        self._tasks: list[asyncio.Task[NoReturn]] = []

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> KafkaBus:
        """The bus of a service: it publishes to its own topic (one per producing service)."""
        name = settings.service_name
        return cls(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic_prefix=settings.kafka_topic_prefix,
            partitions=settings.kafka_partitions,
            replication_factor=settings.kafka_replication_factor,
            topics=[topic_of(name)] if name else [],
            client_id=f"sukverse-{name}" if name else "sukverse",
            create_topics=settings.kafka_create_topics,
            connection=connection_options(settings),
        )

    def topic(self, logical: str) -> str:
        """The name on the broker of a logical topic such as `sukverse.auth`."""
        return f"{self.topic_prefix}{logical}"

    def subscribe(self, group: str, topics: Sequence[str], handler: Handler) -> None:
        if self._started.is_set():
            raise RuntimeError("subscribe to the Kafka bus before starting it")
        handlers = self._groups.setdefault(group, {})
        for topic in topics:
            handlers[self.topic(topic)] = handler

    def listen(self, topics: Sequence[str], handler: Handler, *, replay_seconds: float) -> None:
        """A consumer of every partition of `topics` in no group, from `replay_seconds` ago."""
        if self._started.is_set():
            raise RuntimeError("listen to the Kafka bus before starting it")
        handlers = {self.topic(topic): handler for topic in topics}
        self._listeners.append(_Listener(self, handlers, replay_seconds=replay_seconds))

    async def replay(self, messages: Sequence[Message]) -> None:
        """Nothing to do: listeners read the past from the broker."""

    async def start(self) -> None:
        """Create the topics, connect the producer, start one consumer task per group and
        one per listener, and wait until the listeners have read their past.

        Raises when the broker cannot be reached, so a service does not start without it."""
        try:
            self._admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                client_id=self.client_id,
                request_timeout_ms=int(self.publish_timeout * 1000),
                **self.connection,
            )
            await self._admin.start()
            subscribed = {topic for handlers in self._groups.values() for topic in handlers}
            listened = {topic for listener in self._listeners for topic in listener.handlers}
            declared = subscribed | {self.topic(topic) for topic in self._declared}
            dead_letters = {dead_letter_topic(t) for t in declared}
            await self._create_topics(declared | dead_letters | listened)  # none dead-letters
            self._producer = await self._start_producer()
        except BaseException:
            await self.stop()
            raise
        self._started.set()
        for group, handlers in self._groups.items():
            consumer = _GroupConsumer(self, group=group, handlers=handlers)
            task = asyncio.create_task(consumer.run(), name=f"kafka-consumer-{group}")
            task.add_done_callback(_report_end)
            self._tasks.append(task)
        for number, listener in enumerate(self._listeners):
            task = asyncio.create_task(listener.run(), name=f"kafka-listener-{number}")
            task.add_done_callback(_report_end)
            self._tasks.append(task)
        try:
            async with asyncio.timeout(self.publish_timeout):
                for listener in self._listeners:
                    await listener.caught_up.wait()
        except TimeoutError:
            await self.stop()
            raise KafkaTimeoutError(
                f"the event listeners did not read the last events within {self.publish_timeout} s"
            ) from None
        except BaseException:  # cancelled while waiting: nothing started may be left running
            await self.stop()
            raise

    async def stop(self) -> None:
        """Cancel and await the consumers, then close the producer and the admin client."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._started.clear()
        await self._drop_producer(flush_seconds=self.publish_timeout)
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()

    async def publish(self, messages: Sequence[Message]) -> None:
        """Send the batch and wait until the broker acknowledged every message.

        Messages with one key go to one partition in the order given; the idempotent
        producer keeps that order through its own retries. Waits for `start` first. Raises
        a `KafkaError` when the batch is not acknowledged within `publish_timeout`; the
        caller sends it again.
        """
        await self._produce(
            [
                _Record(
                    self.topic(m.topic),
                    m.key.encode(),
                    m.to_bytes(),
                    [CONTENT_TYPE]
                    if m.trace is None
                    else [CONTENT_TYPE, *((k, v.encode()) for k, v in m.trace.items())],
                )
                for m in messages
            ]
        )

    async def ready(self) -> bool:
        """True when the broker answers a metadata request within two seconds."""
        if self._admin is None:
            return False
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await self._admin.describe_cluster()
        except (KafkaError, TimeoutError, OSError):
            return False
        return True

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before attempt `attempt + 1`: exponential, capped."""
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** min(attempt, 16)))

    async def dead_letter(self, record: Any, *, group: str, reason: str) -> None:
        """Send a record no handler can read, as it came, to its topic's `.dlq`."""
        log.error(
            "kafka record dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            group=group,
            reason=reason[:500],
        )
        headers = [
            *record.headers,
            ("dlqreason", reason[:MAX_REASON_CHARS].encode()),
            ("dlqconsumer", group.encode()),
        ]
        await self._produce(
            [_Record(dead_letter_topic(record.topic), record.key, record.value or b"", headers)]
        )

    async def _produce(self, records: Sequence[_Record]) -> None:
        """Send records and wait for every acknowledgement, or raise within the timeout.

        A failure drops the producer (the next call starts a new one): it may hold batches
        it would retry until the broker returns, or have died of a fatal error such as
        `OutOfOrderSequenceNumber` after the broker lost its state. The caller sends the
        whole batch again; consumers' inboxes absorb a record that went out twice."""
        if not records:
            return
        await self._started.wait()
        async with self._publishing:
            try:
                async with asyncio.timeout(self.publish_timeout):
                    await self._send_all(records)
            except TimeoutError as exc:
                await self._drop_producer(flush_seconds=0)
                raise KafkaTimeoutError(
                    f"the broker did not acknowledge the batch within {self.publish_timeout} s"
                ) from exc
            except Exception:
                await self._drop_producer(flush_seconds=0)
                raise

    async def _send_all(self, records: Sequence[_Record]) -> None:
        """Send records as one batch per partition, each partition's in the order given."""
        if self._producer is None:
            self._producer = await self._start_producer()
        producer = self._producer
        await self._create_topics({record.topic for record in records})
        by_partition: dict[tuple[str, int], list[_Record]] = {}
        partitions: dict[str, list[int]] = {}
        # A record without a key (only a dead letter can be one) goes to the first.
        hashes = iter(partitions_of([record.key for record in records if record.key is not None]))
        for record in records:
            if record.topic not in partitions:
                partitions[record.topic] = sorted(await producer.partitions_for(record.topic))
            every = partitions[record.topic]
            partition = every[0 if record.key is None else next(hashes) % len(every)]
            by_partition.setdefault((record.topic, partition), []).append(record)
        futures: list[asyncio.Future[Any]] = []
        for (topic, partition), batch_records in by_partition.items():
            batch = producer.create_batch()
            for record in batch_records:
                metadata = batch.append(
                    key=record.key, value=record.value, timestamp=None, headers=record.headers
                )
                if metadata is None:  # the batch is full: send it and start the next
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(
                        key=record.key, value=record.value, timestamp=None, headers=record.headers
                    )
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        for future in futures:
            # A call that times out leaves its futures behind; one may still fail later.
            future.add_done_callback(_retrieve_exception)
        await asyncio.wait(futures)
        failures = [exc for exc in (future.exception() for future in futures) if exc is not None]
        if failures:
            raise failures[0]

    async def _start_producer(self) -> Any:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            enable_idempotence=True,
            acks="all",
            max_batch_size=MAX_BATCH_BYTES,
            request_timeout_ms=int(self.publish_timeout * 1000),
            **self.connection,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def _drop_producer(self, *, flush_seconds: float) -> None:
        """Stop the producer; whatever it has not delivered within `flush_seconds` is dropped.

        An idempotent producer retries a batch until the broker takes it, so a plain stop
        would wait for an absent broker. Dropping loses nothing: an unacknowledged batch's
        events are still in the outbox, an undelivered dead letter's record uncommitted."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            async with asyncio.timeout(flush_seconds):
                await producer.flush()
        except TimeoutError:
            sender = producer._sender.sender_task
            sender.cancel()
            await asyncio.wait([sender])
        await producer.stop()

    async def _create_topics(self, topics: Iterable[str]) -> None:
        missing = sorted(set(topics) - self._created)
        if not missing or not self.create_topics:
            return
        response = await self._admin.create_topics(
            [NewTopic(name, self.partitions, self.replication_factor) for name in missing]
        )
        for topic, code, *detail in response.topic_errors:
            if code not in (0, TopicAlreadyExistsError.errno):
                raise for_code(code)(f"cannot create topic {topic}: {detail}")
        self._created.update(missing)


class _GroupConsumer:
    """One consumer group's loop: fetch, hand the records to the handlers in partition
    order, commit."""

    def __init__(self, bus: KafkaBus, *, group: str, handlers: dict[str, Handler]) -> None:
        self.bus = bus
        self.group = group
        self.handlers = handlers
        self.broker_failures = 0
        self.handler_failures = 0
        self.lagging: set[TopicPartition] = set()  # the partitions whose lag is reported

    async def run(self) -> NoReturn:
        """Consume until cancelled; on any error, close, back off and connect again."""
        while True:
            consumer = AIOKafkaConsumer(
                *self.handlers,
                bootstrap_servers=self.bus.bootstrap_servers,
                client_id=self.bus.client_id,
                group_id=self.bus.topic(self.group),
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **self.bus.connection,
            )
            try:
                await _settled(consumer.start(), self.bus.publish_timeout)
                await self._consume(consumer)
            except KafkaError as exc:
                self.broker_failures += 1
                log.warning(
                    "kafka consumer lost the broker; reconnecting",
                    group=self.group,
                    attempt=self.broker_failures,
                    error=repr(exc),
                )
            except Exception:
                self.broker_failures += 1
                log.exception("kafka consumer failed; restarting", group=self.group)
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.bus.publish_timeout):
                        await consumer.stop()
            await asyncio.sleep(self.bus.backoff(self.broker_failures))

    async def _consume(self, consumer: Any) -> NoReturn:
        """Fetch, handle, commit; a fetch's offsets are committed while the next fetch is
        handled, so the broker's round trip costs no handling time. Commits go out one at
        a time in fetch order, each only once its records' handlers returned."""
        committing: asyncio.Task[None] | None = None
        try:
            while True:
                batches = await consumer.getmany(
                    timeout_ms=FETCH_TIMEOUT_MS, max_records=MAX_RECORDS
                )
                if not batches:
                    await self._observe_idle_lag(consumer)
                    continue
                offsets, failed = await self._handle(consumer, batches)
                self._observe_lag(consumer, offsets)
                # Shielded: a stop while waiting here leaves the commit running, for the
                # grace period below, instead of cancelling it with the wait.
                if committing is not None:
                    await asyncio.shield(committing)  # raises what the previous one raised
                committing = asyncio.create_task(self._commit(consumer, offsets))
                if failed:
                    await asyncio.shield(committing)  # the rewound offsets, then back off
                    await asyncio.sleep(self.bus.backoff(self.handler_failures))
        finally:
            # Stopping or failing: the records were handled, so the commit in flight gets
            # a chance to finish before the consumer closes; an offset lost here only
            # means a redelivery that the inboxes recognise.
            if committing is not None:
                if not committing.done():
                    await asyncio.wait([committing], timeout=self.bus.publish_timeout)
                    committing.cancel()
                with contextlib.suppress(BaseException):
                    await committing

    async def _handle(
        self, consumer: Any, batches: dict[TopicPartition, list[Any]]
    ) -> tuple[dict[TopicPartition, int], bool]:
        """Hand one fetch to the handlers, one call per handler with its records in
        partition order; the offsets to commit, and whether a handler failed.

        A record that is not a CloudEvent goes to the dead-letter topic at once. When a
        handler fails, its partitions are rewound to their first record in the call, to be
        fetched again (an unreadable record after that one is then dead-lettered again)."""
        offsets: dict[TopicPartition, int] = {}
        calls: dict[Handler, list[tuple[TopicPartition, int, CloudEvent]]] = {}
        for partition, records in batches.items():
            handler = self.handlers[partition.topic]
            for record in records:
                try:
                    event = CloudEvent.model_validate_json(record.value or b"")
                except ValidationError as exc:
                    await self.bus.dead_letter(
                        record, group=self.group, reason=f"not a CloudEvent: {exc}"
                    )
                else:
                    calls.setdefault(handler, []).append((partition, record.offset, event))
            offsets[partition] = records[-1].offset + 1
        failed = False
        for handler, entries in calls.items():
            try:
                await handler([event for _, _, event in entries])
            except Exception as exc:
                failed = True
                self.handler_failures += 1
                first: dict[TopicPartition, int] = {}
                for partition, offset, _ in entries:
                    first.setdefault(partition, offset)
                log.warning(
                    "kafka handler failed; retrying its records",
                    group=self.group,
                    records=len(entries),
                    rewound={f"{tp.topic}:{tp.partition}": offset for tp, offset in first.items()},
                    attempt=self.handler_failures,
                    error=repr(exc),
                )
                for partition, offset in first.items():
                    consumer.seek(partition, offset)
                    offsets[partition] = offset
        if not failed:
            self.handler_failures = 0
        return offsets, failed

    def _observe_lag(self, consumer: Any, positions: Mapping[TopicPartition, int]) -> None:
        """The group's lag on each partition given: its end offset less the position. A
        partition no longer assigned here (the group rebalanced) loses its series, which
        the member that holds it now reports."""
        metrics = self.bus.metrics
        if metrics is None:
            return
        assigned = consumer.assignment()
        for partition in self.lagging - assigned:
            with contextlib.suppress(KeyError):
                metrics.consumer_lag.remove(*self._lag_labels(metrics, partition))
        self.lagging &= assigned
        for partition, position in positions.items():
            end = consumer.highwater(partition)
            if end is not None and partition in assigned:
                metrics.consumer_lag.labels(*self._lag_labels(metrics, partition)).set(
                    max(0, end - position)
                )
                self.lagging.add(partition)

    def _lag_labels(self, metrics: Metrics, partition: TopicPartition) -> tuple[str, ...]:
        return (metrics.service, self.group, partition.topic, str(partition.partition))

    async def _observe_idle_lag(self, consumer: Any) -> None:
        """A fetch that brought nothing: the lag of every assigned partition, at its position."""
        if self.bus.metrics is None:
            return
        positions = {}
        for partition in consumer.assignment():
            with contextlib.suppress(KafkaError, AssertionError):
                positions[partition] = await consumer.position(partition)
        self._observe_lag(consumer, positions)

    async def _commit(self, consumer: Any, offsets: dict[TopicPartition, int]) -> None:
        assigned = consumer.assignment()
        owned = {
            partition: offset for partition, offset in offsets.items() if partition in assigned
        }
        if not owned:
            return
        try:
            await consumer.commit(owned)
        except CommitFailedError as exc:
            # The group rebalanced: the new owner gets these records again and its inbox
            # recognises them, so there is nothing to undo.
            log.warning("kafka offsets not committed", group=self.group, error=repr(exc))
            return
        self.broker_failures = 0


class _Listener:
    """Every partition of its topics, read in no consumer group from `replay_seconds` ago:
    each replica reads them all, nothing is committed, and a reconnect reads the past
    again (a listener applies an event twice alike). `caught_up` is set once it has read
    what the topics held when it (first) started."""

    def __init__(self, bus: KafkaBus, handlers: dict[str, Handler], *, replay_seconds: float):
        self.bus = bus
        self.handlers = handlers
        self.replay_seconds = replay_seconds
        self.caught_up = asyncio.Event()
        self.failures = 0

    async def run(self) -> NoReturn:
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bus.bootstrap_servers,
                client_id=self.bus.client_id,
                group_id=None,
                enable_auto_commit=False,
                **self.bus.connection,
            )
            try:
                await _settled(consumer.start(), self.bus.publish_timeout)
                ends = await self._rewind(consumer)
                await self._consume(consumer, ends)
            except KafkaError as exc:
                self.failures += 1
                log.warning(
                    "kafka listener lost the broker; reconnecting",
                    topics=sorted(self.handlers),
                    attempt=self.failures,
                    error=repr(exc),
                )
            except Exception:
                self.failures += 1
                log.exception("kafka listener failed; restarting", topics=sorted(self.handlers))
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.bus.publish_timeout):
                        await consumer.stop()
            await asyncio.sleep(self.bus.backoff(self.failures))

    async def _rewind(self, consumer: Any) -> dict[TopicPartition, int]:
        """Take every partition of the topics, each from its first record of the last
        `replay_seconds` (its end when none is that recent); the end offsets, to know when
        the past has been read."""
        partitions = []
        for topic in await self.bus._admin.describe_topics(list(self.handlers)):
            if topic["error_code"] or not topic["partitions"]:
                raise UnknownTopicOrPartitionError(f"no partitions of {topic['topic']}")
            numbers = sorted(partition["partition"] for partition in topic["partitions"])
            partitions += [TopicPartition(topic["topic"], number) for number in numbers]
        consumer.assign(partitions)
        since = int((time.time() - self.replay_seconds) * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, since))
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        for partition in partitions:
            at = found.get(partition)
            consumer.seek(partition, at.offset if at is not None else ends[partition])
        return ends

    async def _consume(self, consumer: Any, ends: dict[TopicPartition, int]) -> NoReturn:
        while True:
            if not self.caught_up.is_set() and all(
                [await consumer.position(tp) >= end for tp, end in ends.items()]
            ):
                self.caught_up.set()
            batches = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=MAX_RECORDS)
            calls: dict[Handler, list[CloudEvent]] = {}
            for partition, records in batches.items():
                for record in records:
                    try:
                        event = CloudEvent.model_validate_json(record.value or b"")
                    except ValidationError:
                        continue  # the consumer groups dead-letter it
                    calls.setdefault(self.handlers[partition.topic], []).append(event)
            for handler, events in calls.items():
                await listened(handler, events)
            self.failures = 0


def partition_of(key: bytes) -> int:
    """The Java client's default partitioning: the positive murmur2 hash of the key, to be
    taken modulo the partition count, so every client agrees on a key's partition.

    aiokafka's own murmur2 takes a byte at a time; reading the 4-byte words in one
    `struct` call halves its cost, a few microseconds per event published."""
    length = len(key)
    h = _MURMUR_SEED ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", key):
        k = (k * _MURMUR_M) & _M32
        k ^= k >> 24
        h = ((h * _MURMUR_M) & _M32) ^ ((k * _MURMUR_M) & _M32)
    tail = key[words << 2 :]
    if tail:
        if len(tail) == 3:
            h ^= tail[2] << 16
        if len(tail) >= 2:
            h ^= tail[1] << 8
        h = ((h ^ tail[0]) * _MURMUR_M) & _M32
    h ^= h >> 13
    h = (h * _MURMUR_M) & _M32
    h ^= h >> 15
    return h & 0x7FFFFFFF


# Fewer keys of one length than this are hashed one by one: packing them costs more.
_LANES_FROM = 8
_LANE = b"\x01" + b"\x00" * 7


def partitions_of(keys: Sequence[bytes]) -> list[int]:
    """`partition_of` of many keys at once, a few times faster per key than one by one.

    Keys of one length are hashed side by side: each key is a 64-bit lane of one Python
    integer, so every step of murmur2 is one multiplication, shift, mask or exclusive-or
    over all of them. A lane holds a 32-bit value, so a product by the 32-bit constant
    fits in it and no carry reaches the next lane, and the mask clears what a right
    shift brings over from it."""
    hashes = [0] * len(keys)
    by_length: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(index)
    for length, indices in by_length.items():
        if len(indices) < _LANES_FROM:
            for index in indices:
                hashes[index] = partition_of(keys[index])
            continue
        group = [keys[index] for index in indices]
        lanes = int.from_bytes(_LANE * len(group), "little")
        m32 = lanes * _M32
        h = lanes * (_MURMUR_SEED ^ length)
        words = length >> 2
        if words:
            body = array("I", b"".join(key[: words << 2] for key in group))
            if sys.byteorder != "little":
                body.byteswap()
            for word in range(words):  # the word-th 4 bytes of every key, a lane each
                k = int.from_bytes(array("Q", body[word::words]).tobytes(), "little")
                k = (k * _MURMUR_M) & m32
                k ^= (k >> 24) & m32
                h = ((h * _MURMUR_M) ^ (k * _MURMUR_M)) & m32
        if length & 3:
            pad = b"\x00" * (8 - (length & 3))
            tail = int.from_bytes(b"".join(key[words << 2 :] + pad for key in group), "little")
            h = ((h ^ tail) * _MURMUR_M) & m32
        h ^= (h >> 13) & m32
        h = (h * _MURMUR_M) & m32
        h ^= (h >> 15) & m32
        values = array("Q", h.to_bytes(8 * len(group), "little"))
        for index, value in zip(indices, values, strict=True):
            hashes[index] = value & 0x7FFFFFFF
    return hashes


async def _settled(call: Awaitable[None], grace_seconds: float) -> None:
    """Await `call`; if cancelled meanwhile, give it up to `grace_seconds` to finish before
    passing the cancellation on. A client cancelled while it connects leaves a socket that
    its `stop` does not know of."""
    task = asyncio.ensure_future(call)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task], timeout=grace_seconds)
        if not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise


def _report_end(task: asyncio.Task[NoReturn]) -> None:
    """A consumer task ends only when cancelled; anything else is a bug worth shouting about."""
    if not task.cancelled():
        log.error("kafka consumer task ended", task=task.get_name(), error=repr(task.exception()))


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    """Mark a send's failure as seen, so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()
