"""The dashboard pictures: Grafana's variable and unit rules, and a render from a real
Prometheus scraping a running service."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import matplotlib.image
import numpy as np
import pytest

from observability import render as r
from sukverse_auth.app import create_app
from sukverse_auth.settings import AuthSettings

# -- variables ---------------------------------------------------------------------------------

DASHBOARD: dict[str, Any] = {
    "templating": {
        "list": [
            {
                "name": "datasource",
                "type": "datasource",
                "query": "prometheus",
                "current": {"text": "Prometheus", "value": "prom-uid"},
            },
            {
                "name": "namespace",
                "type": "query",
                "includeAll": True,
                "multi": True,
                "allValue": ".*",
                "query": "label_values(up, namespace)",
                "current": {"text": "All", "value": "$__all"},
            },
            {
                "name": "workshop",
                "type": "query",
                "query": 'label_values(sukverse_workshops{namespace=~"$namespace"}, workshop)',
                "current": {"text": "intro", "value": "intro"},
            },
        ]
    }
}
GLOBALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "3600s", "__range_s": "3600"}


def interpolate(expr: str, **overrides: str | list[str]) -> str:
    return r.interpolate(expr, r.resolve_variables(DASHBOARD, overrides), GLOBALS)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('up{namespace=~"$namespace"}', 'up{namespace=~".*"}'),
        ('up{namespace=~"${namespace}"}', 'up{namespace=~".*"}'),
        ('up{namespace=~"[[namespace]]"}', 'up{namespace=~".*"}'),
        ('up{namespace=~"${namespace:regex}"}', 'up{namespace=~".*"}'),
        ('x{workshop="$workshop"}', 'x{workshop="intro"}'),
        ('x{workshop="${workshop}"}', 'x{workshop="intro"}'),
        ('x{workshop="[[workshop]]"}', 'x{workshop="intro"}'),
        ("rate(x[$__rate_interval])", "rate(x[1m])"),
        ("rate(x[${__rate_interval}])", "rate(x[1m])"),
        ("avg_over_time(x[$__interval])", "avg_over_time(x[15s])"),
        ("increase(x[$__range])", "increase(x[3600s])"),
        ("x / $__range_s", "x / 3600"),
        ('x{d="$datasource"}', 'x{d="prom-uid"}'),
        ('x{a="$unknown", b="${unknown}"}', 'x{a="$unknown", b="${unknown}"}'),
        ("$workshop_suffix", "$workshop_suffix"),
    ],
)
def test_every_variable_form_is_replaced(expr: str, expected: str) -> None:
    assert interpolate(expr) == expected


def test_a_chosen_value_wins_over_the_saved_one() -> None:
    assert interpolate('x{workshop="$workshop"}', workshop="k8s-101") == 'x{workshop="k8s-101"}'
    assert interpolate('x{namespace=~"$namespace"}', namespace="sukverse") == (
        'x{namespace=~"sukverse"}'
    )


def test_several_values_become_a_regex_alternation() -> None:
    chosen = ["sukverse", "team.a"]
    assert interpolate('x{namespace=~"$namespace"}', namespace=chosen) == (
        'x{namespace=~"(sukverse|team\\\\.a)"}'
    )
    assert interpolate("${namespace:regex}", namespace=chosen) == "(sukverse|team\\.a)"
    assert interpolate("${namespace:pipe}", namespace=chosen) == "sukverse|team.a"
    assert interpolate("[[namespace:csv]]", namespace=chosen) == "sukverse,team.a"
    assert interpolate("${namespace:text}", namespace=chosen) == "sukverse + team.a"


def test_a_single_value_of_a_plain_variable_is_not_regex_escaped() -> None:
    assert interpolate('x{workshop="$workshop"}', workshop="a.b") == 'x{workshop="a.b"}'
    assert interpolate('x{workshop="$workshop"}', workshop='say "hi"') == (
        'x{workshop="say \\"hi\\""}'
    )


def test_all_is_the_custom_all_value_as_written_in_every_format() -> None:
    assert interpolate("$namespace|${namespace:regex}|[[namespace:pipe]]") == ".*|.*|.*"
    assert interpolate("${namespace:text}") == "All"
    assert interpolate("$namespace", namespace="$__all") == ".*"
    assert interpolate("$namespace", namespace="All") == ".*"


def test_all_without_a_custom_value_is_every_option() -> None:
    dashboard = {
        "templating": {
            "list": [
                {
                    "name": "service",
                    "type": "custom",
                    "includeAll": True,
                    "query": "auth,quiz",
                    "current": {"value": ["$__all"]},
                },
                {"name": "job", "type": "query", "includeAll": True, "query": "label_values(job)"},
            ]
        }
    }
    chosen = r.resolve_variables(dashboard)
    assert r.interpolate("$service", chosen) == "(auth|quiz)"
    assert r.interpolate("$job", chosen) == ".*"  # no options known: match everything


def test_variables_without_a_value_take_their_first_option_from_the_lookup() -> None:
    seen: list[tuple[str, dict[str, r.Selection]]] = []

    def lookup(variable: Mapping[str, Any], resolved: Mapping[str, r.Selection]) -> list[str]:
        seen.append((variable["name"], dict(resolved)))
        return ["prod-workshop", "intro", "other"]

    dashboard = json.loads(json.dumps(DASHBOARD))
    dashboard["templating"]["list"][2]["current"] = {}
    dashboard["templating"]["list"][2]["regex"] = "/(.*)-workshop|intro/"
    chosen = r.resolve_variables(dashboard, lookup=lookup)
    assert chosen["workshop"].values == ("prod",)
    assert [name for name, _ in seen] == ["workshop"]
    assert seen[0][1]["namespace"].all_value == ".*"  # chained: earlier variables are known


@pytest.mark.parametrize(
    ("span", "points", "scrape", "interval", "rate"),
    [
        (900, 900, 1, 1, 4),  # 4 x scrape
        (3600, 1000, 15, 15, 60),  # 4 x scrape
        (86400, 1000, 15, 60, 75),  # interval + scrape
        (7 * 86400, 800, 15, 900, 915),  # interval + scrape
        (300, 1200, 30, 30, 120),  # the interval never falls below the scrape interval
    ],
)
def test_rate_interval_is_grafanas_rule(
    span: float, points: int, scrape: float, interval: float, rate: float
) -> None:
    spans = r.intervals(0, span, max_data_points=points, scrape_interval=scrape)
    assert (spans.interval, spans.step, spans.rate_interval) == (interval, interval, rate)
    assert spans.rate_interval == max(spans.interval + scrape, 4 * scrape)


def test_global_variables_of_one_query() -> None:
    spans = r.intervals(1000, 1900, max_data_points=900, scrape_interval=1)
    assert r.builtins(1000, 1900, spans) == {
        "__interval": "1s",
        "__interval_ms": "1000",
        "__rate_interval": "4s",
        "__rate_interval_ms": "4000",
        "__range": "900s",
        "__range_s": "900",
        "__range_ms": "900000",
        "__from": "1000000",
        "__to": "1900000",
    }
    assert r.builtins(1000, 1900, spans, rate_interval="2m")["__rate_interval"] == "2m"
    minimum = r.intervals(0, 900, max_data_points=900, scrape_interval=1, min_interval=60)
    assert (minimum.interval, minimum.rate_interval) == (60, 61)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("1d", 86400), ("42", 42)],
)
def test_durations_read_and_write_back(text: str, seconds: float) -> None:
    assert r.parse_duration(text) == seconds
    if text != "42":
        assert r.format_duration(seconds) == text


def test_a_bad_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        r.parse_duration("15 minutes")


# -- units -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (45.23, "percent", "45.2%"),
        (100, "percent", "100%"),
        (0.4523, "percentunit", "45.2%"),
        (1, "percentunit", "100%"),
        (0.25, "s", "250 ms"),
        (0.0004, "s", "400 µs"),
        (1.5, "s", "1.50 s"),
        (90, "s", "1.50 min"),
        (7200, "s", "2 hour"),
        (0, "s", "0 s"),
        (12, "ms", "12 ms"),
        (1500, "ms", "1.50 s"),
        (512, "bytes", "512 B"),
        (1536, "bytes", "1.50 KiB"),
        (3 * 1024**3, "bytes", "3 GiB"),
        (1500, "decbytes", "1.50 kB"),
        (12.34, "reqps", "12.3 req/s"),
        (1500, "reqps", "1.50K req/s"),
        (0, "reqps", "0 req/s"),
        (999, "short", "999"),
        (1234, "short", "1.23 K"),
        (2_500_000, "short", "2.50 Mil"),
        (1234.5, "none", "1235"),
        (0.123, "none", "0.123"),
        (7, None, "7"),
        (3.7, "suffix: jobs", "3.70 jobs"),
        (9, "widgets", "9 widgets"),
        (float("nan"), "s", "NaN"),
    ],
)
def test_values_are_formatted_by_unit(value: float, unit: str | None, expected: str) -> None:
    assert r.format_value(value, unit) == expected


def test_explicit_decimals_and_axis_ticks() -> None:
    assert r.format_value(0.5, "percentunit", decimals=1) == "50.0%"
    assert r.format_value(2, "s", decimals=2) == "2.00 s"
    ticks = r._UnitFormatter("s")
    assert [ticks(v) for v in (0, 0.5, 1, 1.5, 2)] == ["0 s", "500 ms", "1 s", "1.5 s", "2 s"]
    assert r._UnitFormatter("short")(2000) == "2 K"


def test_legend_format_fills_in_labels() -> None:
    series = r.Series("", {"__name__": "up", "job": "auth", "instance": "a:1"}, [], [])
    assert r.legend_name(series, "{{job}} on {{ instance }} {{missing}}", "up") == "auth on a:1 "
    assert r.legend_name(series, "", "up") == 'up{job="auth", instance="a:1"}'
    assert r.legend_name(r.Series("", {}, [], []), None, "sum(up)") == "sum(up)"


# -- layout and errors -------------------------------------------------------------------------


def test_panels_float_up_into_free_rows_and_collapsed_rows_hide_theirs() -> None:
    dashboard = {
        "panels": [
            {"type": "stat", "gridPos": {"x": 0, "y": 5, "w": 12, "h": 4}},
            {"type": "stat", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 2}},
            {
                "type": "row",
                "collapsed": True,
                "gridPos": {"x": 0, "y": 9, "w": 24, "h": 1},
                "panels": [{"type": "stat", "gridPos": {"x": 0, "y": 10, "w": 6, "h": 3}}],
            },
            {"type": "stat", "gridPos": {"x": 0, "y": 10, "w": 24, "h": 2}},
        ]
    }
    placed = [position for _, position in r.layout(dashboard)]
    assert placed == [(12, 0, 12, 2), (0, 0, 12, 4), (0, 4, 24, 1), (0, 5, 24, 2)]
    opened = [position for _, position in r.layout(dashboard, expand_rows=True)]
    assert opened == [
        (12, 0, 12, 2),
        (0, 0, 12, 4),
        (0, 4, 24, 1),
        (0, 5, 6, 3),
        (0, 8, 24, 2),
    ]
    assert r.canvas_size(7) == (
        2 * r.PADDING_PX + 24 * r.COLUMN_PX - r.GAP_PX,
        r.HEADER_PX + 2 * r.PADDING_PX + 7 * r.ROW_PX + 6 * r.GAP_PX,
    )


class _Refusing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.dumps(
            {"status": "error", "errorType": "bad_data", "error": "1:6: parse error"}
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_error_from_prometheus_names_the_panel_and_the_query(
    refusing_prometheus: str, tmp_path: Path
) -> None:
    dashboard = {
        "panels": [
            {
                "type": "timeseries",
                "title": "Broken",
                "gridPos": {"x": 0, "y": 0, "w": 12, "h": 6},
                "targets": [{"expr": "rate(up[$__rate_interval]", "refId": "A"}],
            }
        ]
    }
    with pytest.raises(r.QueryError, match=r"'Broken'.*bad_data: 1:6: parse error") as caught:
        r.render(
            dashboard,
            prometheus_url=refusing_prometheus,
            start=0,
            end=600,
            out=tmp_path / "x.png",
            scrape_interval=1,
        )
    assert caught.value.query == "rate(up[4s]"
    assert caught.value.panel == "Broken"


def test_an_unreachable_prometheus_is_named(tmp_path: Path) -> None:
    dashboard = {
        "panels": [{"type": "stat", "title": "S", "targets": [{"expr": "up"}], "gridPos": {"w": 4}}]
    }
    with pytest.raises(
        r.PrometheusError, match=r"cannot reach Prometheus at http://127\.0\.0\.1:9"
    ):
        r.render(
            dashboard, prometheus_url="http://127.0.0.1:9", start=0, end=60, out=tmp_path / "x.png"
        )


# -- a real Prometheus -------------------------------------------------------------------------

REQUESTS = "sukverse_http_requests_total"
BUCKETS = "sukverse_http_request_duration_seconds_bucket"


def _panel(kind: str, title: str, pos: tuple[int, int, int, int], **extra: Any) -> dict[str, Any]:
    x, y, w, h = pos
    return {"type": kind, "title": title, "gridPos": {"x": x, "y": y, "w": w, "h": h}, **extra}


def _target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    source = {"type": "prometheus", "uid": "${datasource}"}
    return {"expr": expr, "legendFormat": legend, "refId": ref, "datasource": source}


def _units(unit: str) -> dict[str, Any]:
    return {"defaults": {"unit": unit}, "overrides": []}


SERVICE = 'job=~"$job", service="auth"'
FIXTURE: dict[str, Any] = {
    "title": "Render check",
    "schemaVersion": 39,
    "timezone": "utc",
    "templating": {
        "list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "hide": 0},
            {
                "name": "job",
                "type": "query",
                "query": "label_values(up, job)",
                "includeAll": True,
                "allValue": ".*",
                "current": {"text": "All", "value": "$__all"},
            },
        ]
    },
    "panels": [
        _panel("row", "Traffic", (0, 0, 24, 1), collapsed=False, panels=[]),
        _panel(
            "timeseries",
            "Requests per second by route",
            (0, 1, 12, 8),
            fieldConfig={"defaults": {"unit": "reqps", "custom": {"fillOpacity": 10}}},
            targets=[
                _target(
                    f"sum by (route) (rate({REQUESTS}{{{SERVICE}}}[$__rate_interval]))",
                    "{{route}}",
                )
            ],
        ),
        _panel(
            "timeseries",
            "p90 latency",
            (12, 1, 12, 8),
            fieldConfig=_units("s"),
            targets=[
                _target(
                    f"histogram_quantile(0.9, sum by (le) (rate({BUCKETS}{{{SERVICE}}}"
                    "[$__rate_interval])))",
                    "p90",
                )
            ],
        ),
        _panel(
            "stat",
            "Requests",
            (0, 9, 6, 6),
            fieldConfig=_units("short"),
            targets=[_target(f"sum({REQUESTS}{{{SERVICE}}})")],
        ),
        _panel(
            "gauge",
            "Targets up",
            (6, 9, 6, 6),
            fieldConfig={
                "defaults": {
                    "unit": "percentunit",
                    "min": 0,
                    "max": 1,
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "red", "value": None},
                            {"color": "orange", "value": 0.9},
                            {"color": "green", "value": 0.99},
                        ],
                    },
                }
            },
            targets=[_target('avg(up{job=~"$job"})')],
        ),
        _panel(
            "bargauge",
            "Requests by route",
            (12, 9, 12, 6),
            fieldConfig=_units("short"),
            targets=[_target(f"sum by (route) ({REQUESTS}{{{SERVICE}}})", "{{route}}")],
        ),
        _panel("row", "Details", (0, 15, 24, 1), collapsed=False, panels=[]),
        _panel(
            "table",
            "Scrape targets",
            (0, 16, 12, 6),
            targets=[_target('up{job=~"$job"}')],
        ),
        _panel(
            "text",
            "About",
            (12, 16, 6, 6),
            options={
                "mode": "markdown",
                "content": "## Render check\nOne panel of each kind, from **Prometheus**.",
            },
        ),
        _panel(
            "timeseries",
            "Matches nothing",
            (18, 16, 6, 6),
            targets=[_target('up{job="no-such-job"}')],
        ),
    ],
}


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(address, timeout=5) as response:
        result: list[dict[str, Any]] = json.load(response)["data"]["result"]
        return result


async def _until(url: str, promql: str, what: str, deadline: float) -> None:
    while not await asyncio.to_thread(_query, url, promql):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.5)


@pytest.mark.real
async def test_a_dashboard_renders_from_a_real_prometheus(
    prometheus: Callable[[str], str], tmp_path: Path, aiohttp_server: Any
) -> None:
    server = await aiohttp_server(create_app(AuthSettings(data_dir=tmp_path)))
    config = (
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: auth\n    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    url = await asyncio.to_thread(prometheus, config)
    async with aiohttp.ClientSession() as client:
        for path in ("/healthz", "/readyz", "/no-such-page"):
            async with client.get(server.make_url(path)) as response:
                await response.read()
    deadline = time.monotonic() + 60
    await _until(url, REQUESTS, "Prometheus never scraped the service", deadline)
    # Enough scrapes for a rate over $__rate_interval (4 s at a 1 s scrape interval).
    await _until(url, f"count_over_time({REQUESTS}[10s]) >= 5", "too few scrapes", deadline)

    out = tmp_path / "dashboards" / "check.png"
    end = time.time()
    report = await asyncio.to_thread(
        r.render,
        FIXTURE,
        prometheus_url=url,
        start=end - 20,
        end=end,
        out=out,
        scrape_interval=1.0,
    )

    by_title = {panel.title: panel for panel in report.panels}
    assert [p.type for p in report.panels] == [p["type"] for p in FIXTURE["panels"]]
    assert by_title["Requests per second by route"].queries == [
        'sum by (route) (rate(sukverse_http_requests_total{job=~".*", service="auth"}[4s]))'
    ]
    assert by_title["Requests per second by route"].step == 1
    for panel in report.panels:
        if panel.type in ("row", "text"):
            assert (panel.series, panel.points, panel.queries) == (0, 0, [])
        elif panel.title == "Matches nothing":
            assert panel.empty and panel.points == 0
        else:
            assert panel.series > 0 and panel.points > 0, panel
            assert not panel.empty
    assert [p.title for p in report.empty_panels] == ["Matches nothing"]
    assert by_title["Requests by route"].series >= 4  # /metrics, /healthz, /readyz, 404
    assert by_title["Requests per second by route"].points > 10

    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in FIXTURE["panels"])
    width = 2 * r.PADDING_PX + 24 * r.COLUMN_PX - r.GAP_PX
    height = r.HEADER_PX + 2 * r.PADDING_PX + rows * (r.ROW_PX + r.GAP_PX) - r.GAP_PX
    assert (report.width, report.height) == (width, height)
    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (height, width)
    for panel, spec in zip(report.panels, FIXTURE["panels"], strict=True):
        x, y, w, h = panel.box
        pos = spec["gridPos"]
        assert (x, y) == (
            r.PADDING_PX + pos["x"] * r.COLUMN_PX,
            r.HEADER_PX + r.PADDING_PX + pos["y"] * (r.ROW_PX + r.GAP_PX),
        )
        assert w == pos["w"] * r.COLUMN_PX - r.GAP_PX
        assert h == pos["h"] * r.ROW_PX + (pos["h"] - 1) * r.GAP_PX
        inside = image[y : y + h, x : x + w, :3]
        assert float(np.std(inside)) > 0.02, f"panel {panel.title!r} is blank"

    # Series are drawn in the palette's colours; the theme's greys are not saturated.
    def coloured(title: str) -> int:
        x, y, w, h = by_title[title].box
        inside = image[y + 32 : y + h - 34, x + 8 : x + w - 8, :3]
        return int(np.sum(np.ptp(inside, axis=2) > 0.25))

    for title in ("Requests per second by route", "p90 latency", "Requests", "Targets up"):
        assert coloured(title) > 50, title
    assert coloured("Requests by route") > 500
    assert coloured("Matches nothing") == 0

    # The command line prints the report, and --require-data fails on the empty panel.
    dashboard = tmp_path / "check.json"
    dashboard.write_text(json.dumps(FIXTURE))
    argv = [
        "--prometheus",
        url,
        "--dashboard",
        str(dashboard),
        "--out",
        str(tmp_path / "cli.png"),
        "--since",
        "1m",
        "--scrape-interval",
        "1s",
        "--var",
        "job=auth",
    ]
    assert await asyncio.to_thread(r.main, argv) == 0
    assert await asyncio.to_thread(r.main, [*argv, "--require-data"]) == 1
    assert (tmp_path / "cli.png").stat().st_size > 10_000
