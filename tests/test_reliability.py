"""The fault scenarios of the reliability report (benchmarks/faults.py), briefly: the
Kafka broker killed under progress writes loses no event and applies none twice, and the
workshop service's PostgreSQL going away answers 503 problems, nothing else, and writes
succeed again without a restart. docs/reliability.md has the full-length figures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from benchmarks.faults import database_outage, kafka_outage
from benchmarks.real_tier import Cluster

pytestmark = [pytest.mark.real, pytest.mark.timeout(600)]


def test_faults_lose_nothing_and_answer_only_what_they_should(tmp_path: Path) -> None:
    with Cluster(tmp_path, ("auth", "workshop", "analytics")) as cluster:
        kafka = asyncio.run(kafka_outage(cluster, rate=50, seconds=16, down_at=4, down_for=6))
        database = asyncio.run(database_outage(cluster, rate=50, seconds=16, down_at=4, down_for=4))
    # Every write is accepted while the broker is down: the outbox holds its event.
    assert kafka.statuses == {200: kafka.sent}, kafka
    assert kafka.written == kafka.sent
    assert (kafka.lost, kafka.missing_on_topic) == (0, 0), kafka
    assert kafka.applied == kafka.written
    assert kafka.backlog > 0, kafka  # writes went on while the broker was down
    # While the database is down every write is refused with a 503 problem and nothing
    # else; it is accepted again soon after, by the same process; no accepted write is lost.
    assert database.unavailable > 0, database
    assert (database.other_5xx, database.other, database.errors_before_down) == (0, {}, 0)
    assert database.errors_after_ready == 0, database
    assert database.ok + database.unavailable == database.sent
    assert database.first_ok_after < 5, database
    assert database.rows >= database.ok
    assert database.same_process
