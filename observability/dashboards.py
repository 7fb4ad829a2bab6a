"""The platform's Grafana dashboards as code, built with Grafana's foundation SDK.

    python -m observability.dashboards            write observability/dashboards/<name>.json
    python -m observability.dashboards --check    exit 1 if a committed file differs

The JSON files are what the umbrella chart ships (one ConfigMap each, for Grafana's
dashboard sidecar); they are generated, never edited by hand. Every query selects by the
dashboard's variables (`namespace`, and `service` or `workshop`) and reads only the
metrics of `CATALOGUE`, the one list of what the services, analytics and the operator
export.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

OUTPUT = Path(__file__).resolve().parent / "dashboards"

# --- The metrics ---------------------------------------------------------------------

# Labels Prometheus adds to every series it scrapes in a cluster.
SCRAPE_LABELS = frozenset({"job", "instance", "namespace"})


@dataclass(frozen=True)
class Metric:
    """A metric family: counters are exposed as `<name>_total`, histograms as
    `<name>_bucket` (with `le`), `<name>_count` and `<name>_sum`, gauges as `<name>`."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    labels: tuple[str, ...]
    help: str

    def series(self) -> dict[str, frozenset[str]]:
        """The series names this family exposes, each with every label it can carry."""
        labels = frozenset(self.labels) | SCRAPE_LABELS
        if self.kind == "counter":
            return {f"{self.name}_total": labels}
        if self.kind == "histogram":
            return {
                f"{self.name}_bucket": labels | {"le"},
                f"{self.name}_count": labels,
                f"{self.name}_sum": labels,
            }
        return {self.name: labels}


CATALOGUE: tuple[Metric, ...] = (
    # Every service (sukverse_common).
    Metric(
        "sukverse_http_requests",
        "counter",
        ("service", "method", "route", "status"),
        "HTTP requests handled, by route template and status.",
    ),
    Metric(
        "sukverse_http_request_duration_seconds",
        "histogram",
        ("service", "method", "route"),
        "HTTP request latency by route template.",
    ),
    Metric(
        "sukverse_http_requests_in_flight",
        "gauge",
        ("service", "method", "route"),
        "HTTP requests being handled.",
    ),
    Metric("sukverse_db_pool_size", "gauge", ("service",), "The most connections the pool opens."),
    Metric(
        "sukverse_db_pool_connections_in_use",
        "gauge",
        ("service",),
        "Database connections checked out of the pool.",
    ),
    Metric(
        "sukverse_db_pool_wait_seconds",
        "histogram",
        ("service",),
        "Time a checkout waited because no connection was free; its count is the waits.",
    ),
    Metric(
        "sukverse_outbox_backlog",
        "gauge",
        ("service",),
        "Outbox events committed and not yet published.",
    ),
    Metric(
        "sukverse_outbox_oldest_age_seconds",
        "gauge",
        ("service",),
        "Age of the oldest unpublished outbox event.",
    ),
    Metric(
        "sukverse_events_published",
        "counter",
        ("service", "topic"),
        "Events published from the outbox.",
    ),
    Metric(
        "sukverse_events_handled",
        "counter",
        ("service", "consumer", "outcome"),
        "Events consumed, by outcome (handled, duplicate, ignored, dead_lettered).",
    ),
    Metric(
        "sukverse_event_handler_errors",
        "counter",
        ("service", "consumer"),
        "Failed attempts to handle an event.",
    ),
    Metric(
        "sukverse_kafka_consumer_lag",
        "gauge",
        ("service", "consumer", "topic", "partition"),
        "Records behind the partition's end.",
    ),
    Metric(
        "sukverse_ready",
        "gauge",
        ("service",),
        "1 when the last readiness check passed, else 0.",
    ),
    # Analytics: one series per workshop, the same on every replica.
    Metric(
        "sukverse_workshop_enrolled", "gauge", ("workshop_id",), "Students enrolled in a workshop."
    ),
    Metric(
        "sukverse_workshop_completion_percent",
        "gauge",
        ("workshop_id",),
        "Mean completion of a workshop's enrolled students, 0-100.",
    ),
    Metric(
        "sukverse_workshop_average_quiz_score",
        "gauge",
        ("workshop_id",),
        "Mean quiz grade of a workshop's enrolled students, 0-100.",
    ),
    Metric(
        "sukverse_workshop_at_risk",
        "gauge",
        ("workshop_id",),
        "Enrolled students of a workshop at risk.",
    ),
    Metric(
        "sukverse_workshop_certificates_issued",
        "gauge",
        ("workshop_id",),
        "Certificates issued for a workshop and not revoked.",
    ),
    Metric(
        "sukverse_workshop_completion_students",
        "gauge",
        ("workshop_id", "range"),
        "Students whose completion falls in a range: 0-10, 10-20, ..., 90-100.",
    ),
    # The operator.
    Metric(
        "sukverse_operator_cohorts",
        "gauge",
        ("phase",),
        "Cohorts by phase: Pending, Provisioning, Ready, Degraded, Archiving.",
    ),
    Metric(
        "sukverse_operator_reconciles",
        "counter",
        ("phase",),
        "Reconciles, by the phase each left its cohort in.",
    ),
    Metric(
        "sukverse_operator_reconcile_errors",
        "counter",
        ("reason",),
        "Reconciles that failed, by reason.",
    ),
    Metric(
        "sukverse_operator_reconcile_duration_seconds",
        "histogram",
        ("phase",),
        "Time a reconcile took, by the phase it left its cohort in.",
    ),
)

# Every series name a query may select, with the labels it may match on.
SERIES: dict[str, frozenset[str]] = {
    name: labels for metric in CATALOGUE for name, labels in metric.series().items()
}

# --- Queries ---------------------------------------------------------------------------

RATE_INTERVAL = "$__rate_interval"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# A variable on All matches everything, a missing label too (`.*`, not `.+`): a
# Prometheus outside Kubernetes adds no namespace.
ALL = ".*"

_MATCHER = re.compile(r'^([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"$')


@dataclass(frozen=True)
class Scope:
    """The label each variable of a dashboard filters on; every selector carries them all."""

    variables: tuple[tuple[str, str], ...]  # (label, variable)

    def select(self, series: str, *matchers: str) -> str:
        """`series{label=~"$variable", ..., *matchers}`, checked against the catalogue."""
        if series not in SERIES:
            raise ValueError(f"{series} is not in the catalogue")
        scoped = [f'{label}=~"${variable}"' for label, variable in self.variables]
        for matcher in (*scoped, *matchers):
            parsed = _MATCHER.match(matcher)
            if parsed is None:
                raise ValueError(f"not a label matcher: {matcher}")
            if parsed.group(1) not in SERIES[series]:
                raise ValueError(f"{series} has no label {parsed.group(1)}")
        return f"{series}{{{', '.join((*scoped, *matchers))}}}"

    def rate(self, series: str, *matchers: str) -> str:
        """The per-second rate of a counter (or a histogram's buckets) over $__rate_interval."""
        return f"rate({self.select(series, *matchers)}[{RATE_INTERVAL}])"


def by(labels: str, operand: str, aggregation: str = "sum") -> str:
    return f"{aggregation} by ({labels}) ({operand})"


def quantile(q: float, scope: Scope, histogram: str, labels: str) -> str:
    """The q-quantile of a histogram over $__rate_interval, per `labels`."""
    return f"histogram_quantile({q}, {by(f'{labels}, le', scope.rate(f'{histogram}_bucket'))})"


def or_zero(query: str, baseline: str) -> str:
    """`query`, or zeros for the series of `baseline` it lacks: the panel shows a line at
    zero, not "No data", while what it counts (a failure, a wait) has not happened."""
    return f"{query} or {baseline} * 0"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


def _query(target: Target, ref_id: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(target.expr)
        .legend_format(target.legend)
        .ref_id(ref_id)
        .range()
        .datasource(DATASOURCE)
    )


# --- Panels ----------------------------------------------------------------------------

PanelBuilder = timeseries.Panel | stat.Panel | bargauge.Panel


@dataclass(frozen=True)
class Cell:
    """A panel and its size on Grafana's 24-column grid."""

    panel: PanelBuilder
    w: int
    h: int


def _thresholds(*steps: tuple[float | None, str]) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


P = TypeVar("P", timeseries.Panel, stat.Panel, bargauge.Panel)


def _common(panel: P, title: str, description: str, unit: str, targets: Sequence[Target]) -> P:
    panel.title(title).description(description).unit(unit).datasource(DATASOURCE)
    for index, target in enumerate(targets):
        panel.with_target(_query(target, chr(ord("A") + index)))
    return panel


def graph(
    title: str,
    description: str,
    unit: str,
    *targets: Target,
    w: int = 8,
    h: int = 8,
    min_value: float | None = None,
    max_value: float | None = None,
) -> Cell:
    """A time series panel whose legend is a table of each series' mean, max and last."""
    panel = _common(timeseries.Panel(), title, description, unit, targets)
    panel.line_width(1).fill_opacity(10).show_points(common.VisibilityMode.NEVER)
    panel.legend(
        common_builders.VizLegendOptions()
        .show_legend(True)
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .calcs(["mean", "max", "lastNotNull"])
    )
    panel.tooltip(
        common_builders.VizTooltipOptions()
        .mode(common.TooltipDisplayMode.MULTI)
        .sort(common.SortOrder.DESCENDING)
    )
    if min_value is not None:
        panel.min(min_value)
    if max_value is not None:
        panel.max(max_value)
    return Cell(panel, w, h)


def single(
    title: str,
    description: str,
    unit: str,
    target: Target,
    thresholds: Sequence[tuple[float | None, str]],
    *,
    w: int = 8,
    h: int = 6,
    min_value: float | None = None,
    max_value: float | None = None,
    colors: Mapping[str, str] | None = None,
) -> Cell:
    """A stat panel: the last value of each series, colored by `thresholds` or, for the
    series named in `colors`, by its own color."""
    panel = _common(stat.Panel(), title, description, unit, [target])
    panel.reduce_options(
        common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")
    )
    panel.graph_mode(common.BigValueGraphMode.AREA)
    panel.color_mode(common.BigValueColorMode.VALUE)
    panel.text_mode(common.BigValueTextMode.VALUE_AND_NAME)
    panel.orientation(common.VizOrientation.AUTO)
    panel.thresholds(_thresholds(*thresholds))
    if min_value is not None:
        panel.min(min_value)
    if max_value is not None:
        panel.max(max_value)
    for name, color in (colors or {}).items():
        panel.override_by_name(
            name,
            [
                model.DynamicConfigValue(
                    id_val="color", value={"mode": "fixed", "fixedColor": color}
                )
            ],
        )
    return Cell(panel, w, h)


def bars(
    title: str,
    description: str,
    unit: str,
    target: Target,
    thresholds: Sequence[tuple[float | None, str]],
    *,
    orientation: common.VizOrientation = common.VizOrientation.HORIZONTAL,
    min_value: float = 0,
    max_value: float | None = None,
    w: int = 8,
    h: int = 8,
) -> Cell:
    """A bar gauge: the last value of each series as a bar, in the query's series order."""
    panel = _common(bargauge.Panel(), title, description, unit, [target])
    panel.reduce_options(
        common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")
    )
    panel.orientation(orientation)
    panel.display_mode(common.BarGaugeDisplayMode.GRADIENT)
    panel.value_mode(common.BarGaugeValueMode.COLOR)
    panel.show_unfilled(True)
    panel.thresholds(_thresholds(*thresholds))
    panel.min(min_value)
    if max_value is not None:
        panel.max(max_value)
    return Cell(panel, w, h)


# --- Dashboards ------------------------------------------------------------------------


def _datasource_variable() -> dashboard_builders.DatasourceVariable:
    return (
        dashboard_builders.DatasourceVariable("datasource").label("Data source").type("prometheus")
    )


def _query_variable(name: str, label: str, query: str) -> dashboard_builders.QueryVariable:
    """A multi-select variable of label values, All by default, read again with the time
    range."""
    return (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DATASOURCE)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL)
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def _namespace_variable(metric: str) -> dashboard_builders.QueryVariable:
    return _query_variable("namespace", "Namespace", f"label_values({metric}, namespace)")


def _dashboard(
    uid: str,
    title: str,
    description: str,
    variables: Sequence[dashboard_builders.QueryVariable],
    rows: Sequence[tuple[str, Sequence[Cell]]],
) -> dashboard_builders.Dashboard:
    """A dashboard of rows, each row's panels laid out left to right on the 24-column
    grid, wrapping to a new line when one is full."""
    builder = (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["sukverse"])
        .readonly()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        # Grafana's own annotations (alerts, and those people add), as a new dashboard has.
        .annotation(
            dashboard_builders.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
        # The other Sukverse dashboards, at the same time range and namespace.
        .link(
            dashboard_builders.DashboardLink("Sukverse")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(["sukverse"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(_datasource_variable())
    )
    for variable in variables:
        builder.with_variable(variable)
    ids = iter(range(1, 1000))
    y = 0
    for row_title, cells in rows:
        builder.with_row(
            dashboard_builders.Row(row_title)
            .id(next(ids))
            .collapsed(False)
            .grid_pos(model.GridPos(h=1, w=24, x=0, y=y))
        )
        y += 1
        x = line_height = 0
        for cell in cells:
            if x + cell.w > 24:
                x, y, line_height = 0, y + line_height, 0
            cell.panel.id(next(ids)).grid_pos(model.GridPos(h=cell.h, w=cell.w, x=x, y=y))
            builder.with_panel(cell.panel)
            x += cell.w
            line_height = max(line_height, cell.h)
        y += line_height
    return builder


def platform() -> dashboard_builders.Dashboard:
    s = Scope((("namespace", "namespace"), ("service", "service")))
    requests = "sukverse_http_requests_total"
    latency = "sukverse_http_request_duration_seconds"
    handled = "sukverse_events_handled_total"
    route = "{{service}} {{method}} {{route}}"
    all_requests = by("service", s.rate(requests))
    errors = by("service", s.rate(requests, 'status=~"5.."'))
    all_handled = by("service, consumer", s.rate(handled))

    def latency_graph(q: float) -> Cell:
        return graph(
            f"Latency p{round(q * 100)} by route",
            f"{round(q * 100)}th percentile of the time to answer a request, per service, "
            "method and route template.",
            "s",
            Target(quantile(q, s, latency, "service, method, route"), route),
        )

    return _dashboard(
        "sukverse-platform",
        "Sukverse / Platform",
        "The six services: HTTP traffic, database pools, the transactional outbox, events "
        "and their consumers, readiness.",
        [
            _namespace_variable("sukverse_ready"),
            _query_variable(
                "service",
                "Service",
                'label_values(sukverse_ready{namespace=~"$namespace"}, service)',
            ),
        ],
        [
            (
                "Readiness",
                [
                    single(
                        "Ready pods",
                        "Share of each service's pods whose last readiness check passed "
                        "(its database and Kafka answer): 100% when every pod can serve.",
                        "percentunit",
                        Target(by("service", s.select("sukverse_ready"), "avg"), "{{service}}"),
                        [(None, "red"), (0.5, "orange"), (1, "green")],
                        w=24,
                        h=4,
                        min_value=0,
                        max_value=1,
                    )
                ],
            ),
            (
                "HTTP",
                [
                    graph(
                        "Request rate",
                        "Requests answered per second by each service, every route and "
                        "status together (probes and scrapes included).",
                        "reqps",
                        Target(by("service", s.rate(requests)), "{{service}}"),
                    ),
                    graph(
                        "5xx ratio",
                        "Share of each service's requests answered with a 5xx status; "
                        "zero while none failed.",
                        "percentunit",
                        Target(
                            f"({or_zero(errors, all_requests)}) / {all_requests}", "{{service}}"
                        ),
                        min_value=0,
                    ),
                    graph(
                        "In-flight requests by route",
                        "Requests being handled right now, per service, method and route template.",
                        "short",
                        Target(
                            by(
                                "service, method, route",
                                s.select("sukverse_http_requests_in_flight"),
                            ),
                            route,
                        ),
                        min_value=0,
                    ),
                    latency_graph(0.5),
                    latency_graph(0.95),
                    latency_graph(0.99),
                ],
            ),
            (
                "Database pool",
                [
                    graph(
                        "Connections in use vs pool size",
                        "Connections checked out of each service's pool, against the most "
                        "the pool opens: a pool at its size makes checkouts wait.",
                        "short",
                        Target(
                            by("service", s.select("sukverse_db_pool_connections_in_use")),
                            "{{service}} in use",
                        ),
                        Target(
                            by("service", s.select("sukverse_db_pool_size")), "{{service}} size"
                        ),
                        min_value=0,
                    ),
                    graph(
                        "Pool waits",
                        "Checkouts per second that waited because every connection of the "
                        "pool was in use.",
                        "ops",
                        Target(
                            by("service", s.rate("sukverse_db_pool_wait_seconds_count")),
                            "{{service}}",
                        ),
                        min_value=0,
                    ),
                    graph(
                        "Pool wait p95",
                        "95th percentile of how long a checkout that waited for a free "
                        "connection waited; zero while none waited.",
                        "s",
                        Target(
                            # No wait makes every bucket's rate 0 and the quantile NaN.
                            or_zero(
                                f"{quantile(0.95, s, 'sukverse_db_pool_wait_seconds', 'service')}"
                                " >= 0",
                                by("service", s.rate("sukverse_db_pool_wait_seconds_count")),
                            ),
                            "{{service}}",
                        ),
                        min_value=0,
                    ),
                ],
            ),
            (
                "Outbox",
                [
                    graph(
                        "Outbox backlog",
                        "Events committed with their transaction and not yet published to "
                        "Kafka, per service.",
                        "short",
                        Target(by("service", s.select("sukverse_outbox_backlog")), "{{service}}"),
                        w=12,
                        min_value=0,
                    ),
                    graph(
                        "Oldest unsent event",
                        "Age of the oldest event waiting in each service's outbox: every "
                        "consumer of its events is at least this far behind.",
                        "s",
                        Target(
                            by(
                                "service",
                                s.select("sukverse_outbox_oldest_age_seconds"),
                                "max",
                            ),
                            "{{service}}",
                        ),
                        w=12,
                        min_value=0,
                    ),
                ],
            ),
            (
                "Events",
                [
                    graph(
                        "Events published by topic",
                        "Events per second each service's outbox relay published, per topic.",
                        "cps",
                        Target(
                            by("service, topic", s.rate("sukverse_events_published_total")),
                            "{{topic}} from {{service}}",
                        ),
                        w=12,
                        min_value=0,
                    ),
                    graph(
                        "Events handled by outcome",
                        "Events per second each consumer took off Kafka, by outcome: "
                        "handled, duplicate (seen before), ignored, dead_lettered.",
                        "cps",
                        Target(
                            by("service, consumer, outcome", s.rate(handled)),
                            "{{service}} {{consumer}} {{outcome}}",
                        ),
                        w=12,
                        min_value=0,
                    ),
                    graph(
                        "Handler errors",
                        "Failed attempts per second to handle an event, per consumer; a "
                        "failed attempt is retried, then dead-lettered. Zero while none "
                        "failed.",
                        "cps",
                        Target(
                            or_zero(
                                by(
                                    "service, consumer",
                                    s.rate("sukverse_event_handler_errors_total"),
                                ),
                                all_handled,
                            ),
                            "{{service}} {{consumer}}",
                        ),
                        min_value=0,
                    ),
                    graph(
                        "Dead letters",
                        "Events per second each consumer gave up on and sent to the dead "
                        "letter topic. Zero while none was.",
                        "cps",
                        Target(
                            or_zero(
                                by(
                                    "service, consumer",
                                    s.rate(handled, 'outcome="dead_lettered"'),
                                ),
                                all_handled,
                            ),
                            "{{service}} {{consumer}}",
                        ),
                        min_value=0,
                    ),
                    graph(
                        "Consumer lag",
                        "Records each consumer has yet to read, per topic and partition "
                        "(the partition's end minus the consumer's position).",
                        "short",
                        Target(
                            by(
                                "service, consumer, topic, partition",
                                s.select("sukverse_kafka_consumer_lag"),
                                "max",
                            ),
                            "{{consumer}} {{topic}}/{{partition}}",
                        ),
                        min_value=0,
                    ),
                ],
            ),
        ],
    )


def learning() -> dashboard_builders.Dashboard:
    s = Scope((("namespace", "namespace"), ("workshop_id", "workshop")))

    # Every analytics replica reports the same values: `max` counts each workshop once.
    def per_workshop(metric: str) -> str:
        return by("workshop_id", s.select(metric), "max")

    workshop = "workshop {{workshop_id}}"
    percent = [(None, "red"), (50, "orange"), (80, "green")]
    return _dashboard(
        "sukverse-learning",
        "Sukverse / Learning analytics",
        "Per workshop: enrolment, completion, quiz scores, students at risk and certificates, "
        "as the analytics service computes them.",
        [
            _namespace_variable("sukverse_workshop_enrolled"),
            _query_variable(
                "workshop",
                "Workshop",
                'label_values(sukverse_workshop_enrolled{namespace=~"$namespace"}, workshop_id)',
            ),
        ],
        [
            (
                "Workshops",
                [
                    single(
                        "Enrolled students",
                        "Students enrolled in each workshop.",
                        "short",
                        Target(per_workshop("sukverse_workshop_enrolled"), workshop),
                        [(None, "blue")],
                    ),
                    single(
                        "At-risk students",
                        "Enrolled students of each workshop that analytics flags at risk "
                        "(behind on completion or quiz scores).",
                        "short",
                        Target(per_workshop("sukverse_workshop_at_risk"), workshop),
                        [(None, "green"), (1, "orange")],
                    ),
                    single(
                        "Certificates issued",
                        "Certificates issued for each workshop and not revoked.",
                        "short",
                        Target(per_workshop("sukverse_workshop_certificates_issued"), workshop),
                        [(None, "green")],
                    ),
                ],
            ),
            (
                "Progress",
                [
                    bars(
                        "Completion",
                        "Mean completion of each workshop's enrolled students.",
                        "percent",
                        Target(per_workshop("sukverse_workshop_completion_percent"), workshop),
                        percent,
                        max_value=100,
                    ),
                    bars(
                        "Average quiz score",
                        "Mean quiz grade of each workshop's enrolled students, out of 100.",
                        "percent",
                        Target(per_workshop("sukverse_workshop_average_quiz_score"), workshop),
                        percent,
                        max_value=100,
                    ),
                    # Prometheus returns a range query's series sorted by their labels,
                    # which puts the ranges 0-10 ... 90-100 in order.
                    bars(
                        "Students by completion",
                        "How many students of the selected workshops have completed 0-10%, "
                        "10-20%, ... 90-100% of their workshop.",
                        "short",
                        Target(
                            by(
                                "range",
                                by(
                                    "workshop_id, range",
                                    s.select("sukverse_workshop_completion_students"),
                                    "max",
                                ),
                            ),
                            "{{range}}%",
                        ),
                        [(None, "blue")],
                        orientation=common.VizOrientation.VERTICAL,
                    ),
                ],
            ),
            (
                "Over time",
                [
                    graph(
                        "Completion over time",
                        "Mean completion of each workshop's enrolled students.",
                        "percent",
                        Target(per_workshop("sukverse_workshop_completion_percent"), workshop),
                        w=12,
                        min_value=0,
                        max_value=100,
                    ),
                    graph(
                        "Average quiz score over time",
                        "Mean quiz grade of each workshop's enrolled students, out of 100.",
                        "percent",
                        Target(per_workshop("sukverse_workshop_average_quiz_score"), workshop),
                        w=12,
                        min_value=0,
                        max_value=100,
                    ),
                    graph(
                        "Enrolled and at risk",
                        "Students enrolled in each workshop, and those of them at risk.",
                        "short",
                        Target(per_workshop("sukverse_workshop_enrolled"), f"{workshop} enrolled"),
                        Target(per_workshop("sukverse_workshop_at_risk"), f"{workshop} at risk"),
                        w=12,
                        min_value=0,
                    ),
                    graph(
                        "Certificates issued over time",
                        "Certificates issued for each workshop and not revoked.",
                        "short",
                        Target(per_workshop("sukverse_workshop_certificates_issued"), workshop),
                        w=12,
                        min_value=0,
                    ),
                ],
            ),
        ],
    )


def operator() -> dashboard_builders.Dashboard:
    s = Scope((("namespace", "namespace"),))
    cohorts = Target(by("phase", s.select("sukverse_operator_cohorts")), "{{phase}}")
    reconciles = "sukverse_operator_reconciles_total"
    by_phase = single(
        "Cohorts by phase",
        "Cohorts the operator manages, by phase: Pending, Provisioning, Ready, Degraded, "
        "Archiving.",
        "short",
        cohorts,
        [(None, "blue")],
        h=8,
        colors={"Ready": "green", "Degraded": "red"},
    )
    return _dashboard(
        "sukverse-operator",
        "Sukverse / Operator",
        "The cohort operator: cohorts by phase, how often it reconciles, how it fails and "
        "how long it takes.",
        [_namespace_variable("sukverse_operator_cohorts")],
        [
            (
                "Cohorts",
                [
                    by_phase,
                    graph(
                        "Cohorts by phase over time",
                        "Cohorts the operator manages, by phase.",
                        "short",
                        cohorts,
                        w=16,
                        min_value=0,
                    ),
                ],
            ),
            (
                "Reconciles",
                [
                    graph(
                        "Reconciles by phase",
                        "Reconciles per second, by the phase each left its cohort in.",
                        "ops",
                        Target(by("phase", s.rate(reconciles)), "{{phase}}"),
                        min_value=0,
                    ),
                    graph(
                        "Reconcile errors by reason",
                        'Failed reconciles per second, by reason; one "none" line at zero '
                        "while none failed.",
                        "ops",
                        Target(
                            f"{by('reason', s.rate('sukverse_operator_reconcile_errors_total'))}"
                            " or on () label_replace("
                            f'sum({s.rate(reconciles)}) * 0, "reason", "none", "", "")',
                            "{{reason}}",
                        ),
                        min_value=0,
                    ),
                    graph(
                        "Reconcile duration p95 by phase",
                        "95th percentile of the time a reconcile took, by the phase it left "
                        "its cohort in.",
                        "s",
                        Target(
                            quantile(
                                0.95, s, "sukverse_operator_reconcile_duration_seconds", "phase"
                            ),
                            "{{phase}}",
                        ),
                        min_value=0,
                    ),
                ],
            ),
        ],
    )


DASHBOARDS: dict[str, Callable[[], dashboard_builders.Dashboard]] = {
    "platform": platform,
    "learning": learning,
    "operator": operator,
}


# --- Output ----------------------------------------------------------------------------


def render(name: str) -> str:
    """A dashboard's JSON: keys sorted, 2-space indent, a trailing newline."""
    built = DASHBOARDS[name]().build()
    return json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path = OUTPUT) -> list[Path]:
    """Write every dashboard to `directory`/<name>.json; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in DASHBOARDS:
        path = directory / f"{name}.json"
        path.write_text(render(name), encoding="utf-8")
        paths.append(path)
    return paths


def targets(name: str) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query of a dashboard, in panel order."""
    rendered = json.loads(render(name))
    return [
        (panel["title"], target["refId"], target["expr"])
        for panel in rendered["panels"]
        for target in panel.get("targets", [])
    ]


def with_all_selected(expr: str, rate_interval: str = "1m") -> str:
    """A query as Grafana sends it with every variable on All and $__rate_interval set:
    what to run against Prometheus directly."""
    expr = expr.replace(RATE_INTERVAL, rate_interval)
    return re.sub(r"\$\{?[A-Za-z]\w*\}?", lambda _: ALL, expr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=OUTPUT, help="folder to write to")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file differs"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = [
            name
            for name in DASHBOARDS
            if not (args.output / f"{name}.json").is_file()
            or (args.output / f"{name}.json").read_text(encoding="utf-8") != render(name)
        ]
        for name in stale:
            print(f"{args.output / name}.json is not what the generator writes", file=sys.stderr)
        return 1 if stale else 0
    for path in write(args.output):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
