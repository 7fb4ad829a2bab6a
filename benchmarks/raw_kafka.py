"""The raw aiokafka produce-and-consume loop, as a bare program would run it.

`python -m benchmarks.raw_kafka BOOTSTRAP PAYLOADS EVENTS BATCH_BYTES` creates a topic, starts
a consumer group in a child process, sends the first payload and waits until the consumer has
it, then sends `EVENTS` more through an idempotent acks=all producer with record batches of
up to BATCH_BYTES (the KafkaBus's own) without waiting on each, and prints the events/s from
the first send to the last record consumed.

It imports the standard library and aiokafka only, and so does its child: a process that
imported the platform as well would spend part of its time collecting garbage among objects
this loop never uses. PAYLOADS has a line per event: the key and the value, in hex.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
import uuid
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

PARTITIONS = 3  # as many as the KafkaBus gives the pipeline's topics
TIMEOUT = 300.0


def consume(bootstrap: str, topic: str, expected: int, warm: Event, results: Connection) -> None:
    """Child process: consume `expected` records after the warm-up one; send back when the
    last was fetched."""
    results.send(asyncio.run(_consume(bootstrap, topic, expected, warm)))


async def _consume(bootstrap: str, topic: str, expected: int, warm: Event) -> float:
    """A bare consumer group: fetch, commit each fetched batch, nothing else."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=topic,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen, last = 0, 0.0
    try:
        while seen < expected + 1:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
                seen += len(records)
            if batches:
                last = time.monotonic()
                await consumer.commit()
                warm.set()
    finally:
        await consumer.stop()
    return last


async def loop(
    bootstrap: str, payloads: list[tuple[bytes, bytes]], events: int, batch_bytes: int
) -> float:
    topic = f"raw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()
    context = multiprocessing.get_context("spawn")
    warm = context.Event()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=consume, args=(bootstrap, topic, events, warm, sender))
    child.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        max_batch_size=batch_bytes,
    )
    await producer.start()
    try:
        key, value = payloads[0]
        await producer.send_and_wait(topic, value, key=key)
        if not await asyncio.to_thread(warm.wait, TIMEOUT):
            raise RuntimeError("the consumer did not fetch the warm-up record")
        started = time.monotonic()
        futures = [await producer.send(topic, value, key=key) for key, value in payloads[1:]]
        await asyncio.gather(*futures)
        if not await asyncio.to_thread(receiver.poll, TIMEOUT):
            raise RuntimeError("the consumer did not finish")
        last: float = receiver.recv()
    finally:
        await producer.stop()
        await asyncio.to_thread(child.join, TIMEOUT)
    return events / (last - started)


def main(argv: list[str]) -> None:
    bootstrap, path, events, batch_bytes = argv[0], argv[1], int(argv[2]), int(argv[3])
    with open(path) as lines:
        payloads = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in map(str.split, lines)]
    if len(payloads) != events + 1:
        raise SystemExit(f"{path} holds {len(payloads)} payloads, not {events + 1}")
    print(f"{asyncio.run(loop(bootstrap, payloads, events, batch_bytes)):.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
