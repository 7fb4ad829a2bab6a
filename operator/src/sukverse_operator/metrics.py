"""The operator's Prometheus metrics: cohorts by phase, reconciles, errors and durations."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as render
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PHASES = ("Pending", "Provisioning", "Ready", "Degraded", "Archiving")
# Why a reconcile failed: a service refused a change, did not answer, the roster is invalid,
# or something unforeseen (a bug, an API server error).
ERROR_REASONS = ("ChangeRefused", "ServiceUnavailable", "RosterInvalid", "Unexpected")
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class _Cohorts(Collector):
    """`sukverse_operator_cohorts{phase}`: the cohorts by phase, as last listed from the API
    server and updated by each reconcile since."""

    def __init__(self) -> None:
        self.phases: dict[str, str] = {}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "sukverse_operator_cohorts",
            "Cohorts by the phase of their status.",
            labels=["phase"],
        )
        counts = dict.fromkeys(PHASES, 0)
        for phase in self.phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            family.add_metric([phase], count)
        yield family


class OperatorMetrics:
    """One registry; every series exists from the start, at zero."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._cohorts = _Cohorts()
        self.registry.register(self._cohorts)
        self.reconciles = Counter(
            "sukverse_operator_reconciles",
            "Full reconciles of a cohort, by the phase they left it in.",
            ["phase"],
            registry=self.registry,
        )
        self.errors = Counter(
            "sukverse_operator_reconcile_errors",
            "Reconciles that failed, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "sukverse_operator_reconcile_duration_seconds",
            "Time a full reconcile took, by the phase it left the cohort in.",
            ["phase"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        for phase in PHASES:
            self.reconciles.labels(phase)
            self.duration.labels(phase)
        for reason in ERROR_REASONS:
            self.errors.labels(reason)

    def reconciled(self, cohort: str, phase: str, seconds: float) -> None:
        self._cohorts.phases[cohort] = phase
        self.reconciles.labels(phase).inc()
        self.duration.labels(phase).observe(seconds)

    def failed(self, cohort: str, phase: str, reason: str, seconds: float) -> None:
        self.errors.labels(reason if reason in ERROR_REASONS else "Unexpected").inc()
        self.reconciled(cohort, phase, seconds)

    def forget(self, cohort: str) -> None:
        self._cohorts.phases.pop(cohort, None)

    def observe_phases(self, phases: dict[str, str]) -> None:
        """Every cohort's phase as the API server holds it (by uid): what every replica
        reports, the leader and those standing by alike."""
        self._cohorts.phases = dict(phases)


@contextlib.asynccontextmanager
async def serve(metrics: OperatorMetrics, host: str, port: int) -> AsyncIterator[None]:
    """`/metrics` on host:port while the body of the `async with` runs."""

    async def scrape(_: web.Request) -> web.Response:
        return web.Response(
            body=render(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield
    finally:
        await runner.cleanup()
