"""Prometheus metrics of one service, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The platform-wide metric families; each service adds its domain gauges to `registry`."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["service", "method", "route"]
        self.requests = Counter(
            "sukverse_http_requests",
            "HTTP requests handled, by route template and status.",
            [*labels, "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sukverse_http_request_duration_seconds",
            "HTTP request latency by route template.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "sukverse_http_requests_in_flight",
            "HTTP requests being handled.",
            ["service"],
            registry=self.registry,
        ).labels(service)
        self.outbox_backlog = Gauge(
            "sukverse_outbox_backlog",
            "Outbox events committed and not yet published.",
            ["service"],
            registry=self.registry,
        ).labels(service)
        self.outbox_oldest_age = Gauge(
            "sukverse_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox event.",
            ["service"],
            registry=self.registry,
        ).labels(service)
        self.events_published = Counter(
            "sukverse_events_published",
            "Events published from the outbox.",
            ["service", "topic"],
            registry=self.registry,
        )
        self.events_handled = Counter(
            "sukverse_events_handled",
            "Events consumed, by outcome (handled, duplicate, ignored, dead_lettered).",
            ["service", "consumer", "outcome"],
            registry=self.registry,
        )
        self.handler_errors = Counter(
            "sukverse_event_handler_errors",
            "Failed attempts to handle an event.",
            ["service", "consumer"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.db_pool_checked_out = Gauge(
            "sukverse_db_pool_connections_in_use",
            "Database connections checked out of the pool.",
            ["service"],
            registry=self.registry,
        ).labels(service)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count a request and its latency; label children are looked up once per key."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(self.service, method, route, str(status)),
                self.latency.labels(self.service, method, route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)
