"""The Kafka bus's key partitioning agrees with the Java client's, byte for byte."""

from __future__ import annotations

import random
import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner

from sukverse_common.events.kafka import partition_of, partitions_of

# Utils.murmur2 results from the Java client's own tests (signed 32-bit values).
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "murmur2"), JAVA_MURMUR2.items())
def test_the_hash_is_the_java_clients_murmur2_made_positive(key: bytes, murmur2: int) -> None:
    assert partition_of(key) == murmur2 & 0x7FFFFFFF


def test_every_key_length_lands_where_aiokafka_would_put_it() -> None:
    generator = random.Random(7)
    for length in range(65):
        for count in (1, 2, 3, 7, 12):
            partitions = list(range(count))
            key = generator.randbytes(length)
            expected = DefaultPartitioner()(key, partitions, partitions)
            assert partition_of(key) % count == expected, (key, count)


def test_many_keys_hashed_at_once_hash_as_each_alone() -> None:
    generator = random.Random(11)
    keys = [generator.randbytes(length) for length in range(70) for _ in range(9)]
    keys += [str(uuid.UUID(int=generator.getrandbits(128))).encode() for _ in range(500)]
    keys += list(JAVA_MURMUR2) * 8  # eight of each length: hashed side by side
    generator.shuffle(keys)
    assert partitions_of(keys) == [partition_of(key) for key in keys]
    assert partitions_of([]) == []
    assert [partitions_of([key] * 8)[0] for key in JAVA_MURMUR2] == [
        murmur2 & 0x7FFFFFFF for murmur2 in JAVA_MURMUR2.values()
    ]
