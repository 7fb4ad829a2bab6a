"""Per-workshop Prometheus gauges, read from the aggregates when Prometheus scrapes.

Prometheus collectors are synchronous and the database is not, so a scrape of `/metrics`
first reads the aggregates into a snapshot (one small query per table, bounded by the
workshops and their enrolled students) and the collector then reports that snapshot.
Labels are the workshop id only, never a student.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sukverse_analytics import store
from sukverse_analytics.domain import from_milli
from sukverse_analytics.service import AnalyticsService
from sukverse_analytics.store import StudentRow

RANGES = tuple(f"{10 * tenth}-{10 * tenth + 10}" for tenth in range(10))


@dataclass(frozen=True)
class WorkshopGauges:
    enrolled: int
    completion_percent: float
    average_quiz_score: float
    at_risk: int
    certificates_issued: int
    completion_students: tuple[int, ...]  # students per tenth of completion, 0-10 .. 90-100


@dataclass
class Snapshot:
    workshops: dict[uuid.UUID, WorkshopGauges] = field(default_factory=dict)
    read_at: float = -math.inf  # time.monotonic() when read


async def read_snapshot(service: AnalyticsService) -> Snapshot:
    async with service.database.sessions() as session:
        stats = await store.all_stats(session)
        own = {row.workshop_id: row for row in await store.all_thresholds(session)}
        cohorts: dict[uuid.UUID, list[StudentRow]] = {}
        for student in await store.all_enrolled_students(session):
            cohorts.setdefault(student.workshop_id, []).append(student)
    snapshot = Snapshot(read_at=time.monotonic())
    for row in stats:
        enrolled, grades = row.enrolled, row.grade_count
        cohort = service.assess_cohort(
            cohorts.get(row.workshop_id, []), service.effective(own.get(row.workshop_id))
        )
        snapshot.workshops[row.workshop_id] = WorkshopGauges(
            enrolled=enrolled,
            completion_percent=from_milli(row.percent_sum_milli / enrolled) if enrolled else 0.0,
            average_quiz_score=from_milli(row.grade_sum_milli / grades) if grades else 0.0,
            at_risk=cohort.at_risk,
            certificates_issued=row.certificates,
            completion_students=tuple(row.histogram),
        )
    return snapshot


class WorkshopCollector(Collector):
    """Reports the latest snapshot as gauge families labelled by workshop."""

    def __init__(self, max_age_seconds: float) -> None:
        self.snapshot = Snapshot()
        self.max_age_seconds = max_age_seconds
        self._refreshing = asyncio.Lock()

    async def refresh(self, service: AnalyticsService) -> None:
        """Read the aggregates again unless the snapshot is recent enough; concurrent
        scrapes share one read."""
        async with self._refreshing:
            if time.monotonic() - self.snapshot.read_at >= self.max_age_seconds:
                self.snapshot = await read_snapshot(service)

    def collect(self) -> Iterator[Metric]:
        families = {
            "enrolled": GaugeMetricFamily(
                "sukverse_workshop_enrolled",
                "Students enrolled in a workshop.",
                labels=["workshop_id"],
            ),
            "completion_percent": GaugeMetricFamily(
                "sukverse_workshop_completion_percent",
                "Mean completion of a workshop's enrolled students, 0-100.",
                labels=["workshop_id"],
            ),
            "average_quiz_score": GaugeMetricFamily(
                "sukverse_workshop_average_quiz_score",
                "Mean quiz grade of a workshop's enrolled students, 0-100.",
                labels=["workshop_id"],
            ),
            "at_risk": GaugeMetricFamily(
                "sukverse_workshop_at_risk",
                "Enrolled students of a workshop at risk.",
                labels=["workshop_id"],
            ),
            "certificates_issued": GaugeMetricFamily(
                "sukverse_workshop_certificates_issued",
                "Certificates issued for a workshop and not revoked.",
                labels=["workshop_id"],
            ),
        }
        histogram = GaugeMetricFamily(
            "sukverse_workshop_completion_students",
            "Enrolled students of a workshop whose completion falls in a range of percent.",
            labels=["workshop_id", "range"],
        )
        for workshop_id, gauges in sorted(self.snapshot.workshops.items()):
            for name, family in families.items():
                family.add_metric([str(workshop_id)], float(getattr(gauges, name)))
            for tenth, students in enumerate(gauges.completion_students):
                histogram.add_metric([str(workshop_id), RANGES[tenth]], float(students))
        yield from families.values()
        yield histogram


def scrape_middleware(
    service_key: web.AppKey[AnalyticsService], collector: WorkshopCollector
) -> Middleware:
    """Refreshes the collector's snapshot before `/metrics` renders."""

    @web.middleware
    async def refresh(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/metrics" and service_key in request.app:
            await collector.refresh(request.app[service_key])
        return await handler(request)

    return refresh
