"""Prometheus metrics of one service, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
POOL_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0)
EVENT_OUTCOMES = ("handled", "duplicate", "ignored", "dead_lettered")


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
            "HTTP requests being handled, by route template.",
            labels,
            registry=self.registry,
        )
        self.ready = Gauge(
            "sukverse_ready",
            "1 when the last readiness check passed (database and bus), else 0.",
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
        self.consumer_lag = Gauge(
            "sukverse_kafka_consumer_lag",
            "Records of a partition not yet handled by a consumer group: the partition's end "
            "offset less the group's position, as of the group's last fetch.",
            ["service", "consumer", "topic", "partition"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._in_flight_children: dict[tuple[str, str], Gauge] = {}
        self.db_pool_checked_out = Gauge(
            "sukverse_db_pool_connections_in_use",
            "Database connections checked out of the pool.",
            ["service"],
            registry=self.registry,
        ).labels(service)
        self.db_pool_size = Gauge(
            "sukverse_db_pool_size",
            "The most database connections the pool opens (its size and overflow).",
            ["service"],
            registry=self.registry,
        ).labels(service)
        self.db_pool_wait = Histogram(
            "sukverse_db_pool_wait_seconds",
            "Time a checkout waited because no connection was free; its count is the waits.",
            ["service"],
            buckets=POOL_WAIT_BUCKETS,
            registry=self.registry,
        ).labels(service)

    def consumer(self, name: str) -> None:
        """Make a consumer's series exist at zero, so a rate or an alert over them has data
        before the first dead letter or failure."""
        for outcome in EVENT_OUTCOMES:
            self.events_handled.labels(self.service, name, outcome)
        self.handler_errors.labels(self.service, name)

    def in_flight_of(self, method: str, route: str) -> Gauge:
        """The in-flight gauge of a route, looked up once per key."""
        gauge = self._in_flight_children.get((method, route))
        if gauge is None:
            gauge = self.in_flight.labels(self.service, method, route)
            self._in_flight_children[(method, route)] = gauge
        return gauge

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
