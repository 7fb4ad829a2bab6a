"""Grafana dashboards drawn to PNG from live Prometheus data.

`render` reads a dashboard's JSON (Grafana's model: panels with `gridPos` on the 24-column
grid, `targets` with PromQL, templating variables), substitutes the variables the way
Grafana's Prometheus data source does, asks Prometheus's HTTP API for the data and draws
each panel where Grafana would put it, in Grafana's dark theme, so the picture reads like
the dashboard in a browser.

    python -m observability.render --prometheus http://127.0.0.1:9090 \\
        --dashboard observability/dashboards/platform.json --out docs/dashboards/platform.png
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyBboxPatch, Rectangle, Wedge
from matplotlib.text import Text
from matplotlib.ticker import Formatter, MaxNLocator
from matplotlib.transforms import Bbox

__all__ = [
    "PanelReport",
    "PrometheusError",
    "QueryError",
    "RenderReport",
    "Selection",
    "format_duration",
    "format_value",
    "interpolate",
    "intervals",
    "main",
    "parse_duration",
    "render",
    "resolve_variables",
]

# -- durations ---------------------------------------------------------------------------

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus or Grafana duration: `15s`, `1m30s`, `500ms`, `2h`; a bare
    number is seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """A duration as PromQL writes it, exactly: `4s`, `1m30s`, `500ms`, `2h`."""
    ms = round(seconds * 1000)
    if ms <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, ms = divmod(ms, size)
        if count:
            out.append(f"{count}{unit}")
    if ms:
        out.append(f"{ms}ms")
    return "".join(out)


def _round_interval(ms: float) -> float:
    """Grafana's rangeutil.roundInterval: a raw interval rounded to a readable one."""
    steps = (
        (15, 10),
        (35, 20),
        (75, 50),
        (150, 100),
        (350, 200),
        (750, 500),
        (1500, 1000),
        (3500, 2000),
        (7500, 5000),
        (12500, 10000),
        (17500, 15000),
        (25000, 20000),
        (45000, 30000),
        (90000, 60000),
        (210000, 120000),
        (450000, 300000),
        (750000, 600000),
        (1050000, 900000),
        (1500000, 1200000),
        (2700000, 1800000),
        (5400000, 3600000),
        (9000000, 7200000),
        (16200000, 10800000),
        (32400000, 21600000),
        (86400000, 43200000),
        (604800000, 86400000),
        (1814400000, 604800000),
        (3628800000, 2592000000),
    )
    for below, rounded in steps:
        if ms < below:
            return rounded
    return 31536000000


@dataclass(frozen=True)
class Intervals:
    """What Grafana computes for one query: `$__interval`, the step and `$__rate_interval`."""

    interval: float
    step: float
    rate_interval: float


def intervals(
    start: float,
    end: float,
    *,
    max_data_points: int,
    scrape_interval: float = 15.0,
    min_interval: float | None = None,
    interval_factor: int = 1,
) -> Intervals:
    """Grafana's rule: `$__interval` is the range over the panel's data points rounded to a
    readable interval, never below the minimum interval (the panel's, or else the scrape
    interval); the step is that times the interval factor, and at most 11,000 points;
    `$__rate_interval` is max(`$__interval` + scrape interval, 4 x scrape interval)."""
    span = max(end - start, 0.001)
    interval = _round_interval(span * 1000 / max(max_data_points, 1)) / 1000
    interval = max(interval, scrape_interval if min_interval is None else min_interval)
    step = max(interval * max(interval_factor, 1), span / 11000)
    rate = max(interval + scrape_interval, 4 * scrape_interval)
    return Intervals(interval, step, rate)


def builtins(
    start: float, end: float, spans: Intervals, rate_interval: str | None = None
) -> dict[str, str]:
    """Grafana's global variables for one query."""
    seconds = round(end - start)
    rate = parse_duration(rate_interval) if rate_interval else spans.rate_interval
    return {
        "__interval": format_duration(spans.interval),
        "__interval_ms": str(round(spans.interval * 1000)),
        "__rate_interval": format_duration(rate),
        "__rate_interval_ms": str(round(rate * 1000)),
        "__range": f"{seconds}s",
        "__range_s": str(seconds),
        "__range_ms": str(round((end - start) * 1000)),
        "__from": str(round(start * 1000)),
        "__to": str(round(end * 1000)),
    }


# -- template variables --------------------------------------------------------------------

ALL = "$__all"


@dataclass(frozen=True)
class Selection:
    """The value(s) chosen for one template variable.

    `regex` marks a variable that is multi-value or has an All option: Grafana's Prometheus
    data source regex-escapes its values and joins several into `(a|b)`. `all_value` is set
    when All is chosen and the variable has a custom all value, written as it is."""

    values: tuple[str, ...]
    text: str = ""
    regex: bool = False
    all_value: str | None = None

    @classmethod
    def of(cls, value: str | Sequence[str], *, regex: bool = False) -> Selection:
        values = (value,) if isinstance(value, str) else tuple(value)
        return cls(values, " + ".join(values), regex or len(values) > 1)


def _escape_value(value: str) -> str:
    # A label value inside a double-quoted PromQL string.
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _escape_regex(value: str) -> str:
    # A regex metacharacter escaped for RE2, inside a double-quoted PromQL string.
    return re.sub(r"([$^*{}\[\]'+?.()|])", r"\\\\\1", value.replace("\\", "\\\\\\\\"))


def _grafana_regex_escape(value: str) -> str:
    # Grafana's `${var:regex}`: single backslashes, as its kbn.regexEscape writes them.
    return re.sub(r"([\\^$*+?.()|\[\]{}/])", r"\\\1", value)


def format_selection(selection: Selection, fmt: str | None = None) -> str:
    """A selection as Grafana writes it into a Prometheus query, in its default format or
    one of `${var:format}`'s."""
    if selection.all_value is not None and fmt not in ("text", "percentencode"):
        return selection.all_value
    values = list(selection.values)
    if fmt == "text":
        return selection.text or " + ".join(values)
    if not values:
        return ""

    def joined(escape: Callable[[str], str]) -> str:
        escaped = [escape(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

    match fmt:
        case None | "" | "default":
            if selection.regex:
                return joined(_escape_regex)
            return _escape_value(values[0])
        case "regex":
            return joined(_grafana_regex_escape)
        case "pipe":
            return "|".join(values)
        case "csv" | "raw":
            return ",".join(values)
        case "distributed":
            return ",".join(values)
        case "glob":
            return values[0] if len(values) == 1 else "{" + ",".join(values) + "}"
        case "json":
            return json.dumps(values[0] if len(values) == 1 else values)
        case "singlequote":
            return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
        case "doublequote":
            return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
        case "sqlstring":
            return ",".join("'" + v.replace("'", "''") + "'" for v in values)
        case "percentencode":
            return urllib.parse.quote(",".join(values), safe="")
        case _:
            return format_selection(selection)


# Grafana's variable syntax: $var, [[var]], [[var:format]], ${var}, ${var.field}, ${var:format}
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}"
)


def interpolate(
    text: str,
    selections: Mapping[str, Selection],
    globals_: Mapping[str, str] | None = None,
) -> str:
    """`text` with every variable Grafana would replace replaced; unknown names stay."""
    globals_ = globals_ or {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name in globals_:
            return globals_[name]
        if name in selections:
            return format_selection(selections[name], fmt)
        return match.group(0)

    return _VARIABLE.sub(replace, text)


def _values(raw: object) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return [str(v) for v in raw]
    return [str(raw)]


def _variable_query(variable: Mapping[str, Any]) -> str:
    query = variable.get("query")
    if isinstance(query, Mapping):
        query = query.get("query", "")
    return str(query or "")


def _filter_options(variable: Mapping[str, Any], options: list[str]) -> list[str]:
    pattern = str(variable.get("regex") or "")
    if not pattern:
        return options
    match = re.fullmatch(r"/(.*)/([a-z]*)", pattern, re.DOTALL)
    body, flags = (match.group(1), match.group(2)) if match else (pattern, "")
    compiled = re.compile(body, re.IGNORECASE if "i" in flags else 0)
    kept: list[str] = []
    for option in options:
        found = compiled.search(option)
        if found:
            kept.append(found.group(1) if compiled.groups else option)
    return list(dict.fromkeys(kept))


OptionLookup = Callable[[Mapping[str, Any], Mapping[str, "Selection"]], list[str]]


def _options(
    variable: Mapping[str, Any], resolved: Mapping[str, Selection], lookup: OptionLookup | None
) -> list[str]:
    """A variable's options: listed in the dashboard, or a custom variable's, or found by
    `lookup` for a query variable."""
    kind = variable.get("type", "query")
    listed = [
        str(o.get("value"))
        for o in variable.get("options") or []
        if isinstance(o, Mapping) and o.get("value") not in (ALL, None)
    ]
    if not listed and kind == "custom":
        listed = [v.strip() for v in _variable_query(variable).split(",") if v.strip()]
    if not listed and kind == "query" and lookup is not None:
        listed = lookup(variable, resolved)
    return _filter_options(variable, listed) if kind == "query" else listed


def _everything(
    variable: Mapping[str, Any], resolved: Mapping[str, Selection], lookup: OptionLookup | None
) -> Selection:
    """All: the custom all value as it is, else every option, else `.*`."""
    all_value = variable.get("allValue")
    if all_value:
        return Selection((), "All", True, str(all_value))
    found = _options(variable, resolved, lookup)
    if found:
        return Selection(tuple(found), "All", True)
    return Selection((), "All", True, ".*")


def resolve_variables(
    dashboard: Mapping[str, Any],
    overrides: Mapping[str, str | Sequence[str]] | None = None,
    lookup: OptionLookup | None = None,
) -> dict[str, Selection]:
    """What each of the dashboard's template variables stands for.

    A value given in `overrides` wins (`$__all` or `All` choose All); then the variable's
    saved current value; then All for a variable that has it; then its first option.
    All is the variable's custom all value (such as `.*`) or else its options as a regex
    alternation. `lookup` finds a query variable's options (from Prometheus) when the
    dashboard does not list them."""
    overrides = overrides or {}
    resolved: dict[str, Selection] = {}
    templating = dashboard.get("templating") or {}
    for variable in templating.get("list") or []:
        name = str(variable.get("name", ""))
        if not name:
            continue
        kind = variable.get("type", "query")
        include_all = bool(variable.get("includeAll"))
        regex = bool(variable.get("multi")) or include_all
        current = variable.get("current") or {}

        if name in overrides:
            chosen = (
                _values(overrides[name])
                if not isinstance(overrides[name], str)
                else [str(overrides[name])]
            )
            if chosen in ([ALL], ["All"]):
                resolved[name] = _everything(variable, resolved, lookup)
            else:
                resolved[name] = Selection(tuple(chosen), " + ".join(chosen), regex)
            continue
        if kind == "constant":
            resolved[name] = Selection((_variable_query(variable),), _variable_query(variable))
            continue
        if kind == "datasource":
            values = _values(current.get("value")) or ["prometheus"]
            text = " + ".join(_values(current.get("text"))) or "Prometheus"
            resolved[name] = Selection(tuple(values), text)
            continue
        values = [v for v in _values(current.get("value")) if v != ""]
        if ALL in values or (not values and include_all):
            resolved[name] = _everything(variable, resolved, lookup)
        elif values:
            text = " + ".join(_values(current.get("text"))) or " + ".join(values)
            resolved[name] = Selection(tuple(values), text, regex)
        elif kind == "textbox":
            query = _variable_query(variable)
            resolved[name] = Selection((query,), query)
        else:
            found = _options(variable, resolved, lookup)
            resolved[name] = Selection(tuple(found[:1]), found[0] if found else "", regex)
    return resolved


# -- units ---------------------------------------------------------------------------------


def _decimals_for(value: float) -> int:
    # Grafana's getDecimalsForValue.
    magnitude = math.floor(math.log10(abs(value)))
    decimals = -magnitude + 1
    norm = abs(value) / 10.0 ** (-decimals)
    if norm > 2.25:
        decimals += 1
    if value % 1 == 0:
        decimals = 0
    return max(0, decimals)


def _fixed(value: float, decimals: int | None = None) -> str:
    # Grafana's toFixed: automatic decimals that keep about two significant digits.
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value == 0:
        return f"{0:.{decimals or 0}f}"
    if decimals is None:
        decimals = _decimals_for(value)
    if abs(value) >= 1e15:
        return f"{value:.3g}"
    factor = 10.0**decimals
    rounded = math.copysign(math.floor(abs(value) * factor + 0.5) / factor, value)
    return f"{rounded:.{decimals}f}"


def _scaled(value: float, decimals: int | None, factor: float, suffixes: Sequence[str]) -> str:
    steps = 0
    while abs(value) >= factor and steps < len(suffixes) - 1:
        value /= factor
        steps += 1
    return _fixed(value, decimals) + suffixes[steps]


def _seconds(value: float, decimals: int | None) -> str:
    # Grafana's toSeconds.
    size = abs(value)
    if value == 0:
        return "0 s"
    if size < 1e-6:
        return _fixed(value * 1e9, decimals) + " ns"
    if size < 1e-3:
        return _fixed(value * 1e6, decimals) + " µs"
    if size < 1:
        return _fixed(value * 1e3, decimals) + " ms"
    if size < 60:
        return _fixed(value, decimals) + " s"
    return _long_time(value, decimals)


def _milliseconds(value: float, decimals: int | None) -> str:
    # Grafana's toMilliSeconds.
    if abs(value) < 1000:
        return _fixed(value, decimals) + " ms"
    if abs(value) < 60000:
        return _fixed(value / 1000, decimals) + " s"
    return _long_time(value / 1000, decimals)


def _format_ns_above(value: float, decimals: int | None) -> str:
    if abs(value) < 1e6:
        return _fixed(value / 1000, decimals) + " µs"
    return _milliseconds(value / 1e6, decimals)


def _long_time(value: float, decimals: int | None) -> str:
    size = abs(value)
    if size < 3600:
        return _fixed(value / 60, decimals) + " min"
    if size < 86400:
        return _fixed(value / 3600, decimals) + " hour"
    if size < 604800:
        return _fixed(value / 86400, decimals) + " day"
    if size < 31536000:
        return _fixed(value / 604800, decimals) + " week"
    return _fixed(value / 3.15569e7, decimals) + " year"


_SI = ("", " K", " Mil", " Bil", " Tri", " Quadr", " Quint", " Sext", " Sept")
_COUNTS = {
    "reqps": "req/s",
    "rps": "rd/s",
    "wps": "wr/s",
    "iops": "io/s",
    "ops": "ops",
    "cps": "c/s",
    "reqpm": "req/m",
    "opm": "ops/m",
}


def format_value(value: float, unit: str | None = None, decimals: int | None = None) -> str:
    """A number as Grafana displays it in `unit` (percent, percentunit, s, ms, bytes,
    decbytes, reqps and the other rates, short, none, `suffix:` and `prefix:`)."""
    unit = unit or "none"
    if math.isnan(value) or math.isinf(value):
        return _fixed(value)
    if unit == "none":
        return _fixed(value, decimals)
    if unit == "short":
        return _scaled(value, decimals, 1000, _SI)
    if unit == "percent":
        return _fixed(value, decimals) + "%"
    if unit == "percentunit":
        return _fixed(value * 100, decimals) + "%"
    if unit == "s":
        return _seconds(value, decimals)
    if unit == "ms":
        return _milliseconds(value, decimals)
    if unit in ("µs", "us"):
        if abs(value) < 1000:
            return _fixed(value, decimals) + " µs"
        return _milliseconds(value / 1000, decimals)
    if unit == "ns":
        if abs(value) < 1000:
            return _fixed(value, decimals) + " ns"
        return _format_ns_above(value, decimals)
    if unit in ("bytes", "bits"):
        symbol = "B" if unit == "bytes" else "b"
        prefixes = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi")
        return _scaled(value, decimals, 1024, [f" {p}{symbol}" for p in prefixes])
    if unit in ("decbytes", "decbits", "Bps", "bps"):
        symbol = {"decbytes": "B", "decbits": "b", "Bps": "B/s", "bps": "b/s"}[unit]
        prefixes = ("", "k", "M", "G", "T", "P", "E", "Z", "Y")
        return _scaled(value, decimals, 1000, [f" {p}{symbol}" for p in prefixes])
    if unit in _COUNTS:
        return _scaled(value, decimals, 1000, ("", "K", "M", "B", "T")) + " " + _COUNTS[unit]
    if unit.startswith("suffix:"):
        return _fixed(value, decimals) + unit.removeprefix("suffix:")
    if unit.startswith("prefix:"):
        return unit.removeprefix("prefix:") + _fixed(value, decimals)
    return f"{_fixed(value, decimals)} {unit}"


def _trim_zeros(text: str) -> str:
    # "0.500 s" → "0.5 s", "2.00 K" → "2 K": axis ticks read cleaner without trailing zeros.
    return re.sub(
        r"(\d)\.(\d*?)0+(?!\d)",
        lambda m: m.group(1) + ("." + m.group(2) if m.group(2) else ""),
        text,
    )


class _UnitFormatter(Formatter):
    def __init__(self, unit: str | None) -> None:
        self.unit = unit

    def __call__(self, x: float, pos: int | None = None) -> str:
        return _trim_zeros(format_value(float(x), self.unit))


# -- Prometheus ----------------------------------------------------------------------------


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or answered an error."""


class QueryError(PrometheusError):
    """Prometheus answered an error to one of a panel's queries."""

    def __init__(self, panel: str, query: str, reason: str) -> None:
        super().__init__(f"panel {panel!r}: Prometheus answered {reason}\n  query: {query}")
        self.panel = panel
        self.query = query
        self.reason = reason


@dataclass
class Series:
    """One time series of a query's result, named as the legend shows it."""

    name: str
    labels: dict[str, str]
    times: list[float]
    values: list[float]
    ref_id: str = "A"
    color: str = ""

    @property
    def last(self) -> float:
        finite = [v for v in self.values if not math.isnan(v)]
        return finite[-1] if finite else math.nan


class Prometheus:
    """The HTTP API of one Prometheus server."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, path: str, params: Mapping[str, str], *, post: bool = True) -> Any:
        form = urllib.parse.urlencode(params, doseq=True)
        if post:
            request = urllib.request.Request(  # noqa: S310
                self.url + path,
                data=form.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                method="POST",
            )
        else:
            request = urllib.request.Request(f"{self.url}{path}?{form}")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = json.load(response)
        except urllib.error.HTTPError as error:
            try:
                with error:
                    body = json.load(error)
            except ValueError:
                raise PrometheusError(f"HTTP {error.code} {error.reason} from {path}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {reason}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        return body.get("data")

    def query(self, expr: str, at: float) -> Any:
        return self._call("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})

    def query_range(self, expr: str, start: float, end: float, step: float) -> Any:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return self._call("/api/v1/query_range", params)

    def label_values(self, label: str, match: str | None, start: float, end: float) -> list[str]:
        params = {"start": f"{start:.3f}", "end": f"{end:.3f}"}
        if match:
            params["match[]"] = match
        path = f"/api/v1/label/{urllib.parse.quote(label, safe='')}/values"
        return [str(v) for v in self._call(path, params, post=False) or []]


def _number(text: object) -> float:
    try:
        return float(str(text))
    except ValueError:
        return math.nan


def _series_of(data: Any, ref_id: str) -> list[Series]:
    kind = data.get("resultType") if isinstance(data, Mapping) else None
    result = data.get("result") if isinstance(data, Mapping) else None
    if kind in ("scalar", "string") and isinstance(result, list):
        return [Series("", {}, [float(result[0])], [_number(result[1])], ref_id)]
    out: list[Series] = []
    for item in result or []:
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        pairs = item.get("values") or ([item["value"]] if "value" in item else [])
        times = [float(t) for t, _ in pairs]
        out.append(Series("", labels, times, [_number(v) for _, v in pairs], ref_id))
    return out


def legend_name(series: Series, legend_format: str | None, expr: str) -> str:
    """The series name Grafana shows: the legend format with `{{label}}` filled in, else
    `metric{label="value", ...}`, else the query itself."""
    if legend_format and legend_format != "__auto":
        return re.sub(
            r"\{\{\s*(.+?)\s*\}\}", lambda m: series.labels.get(m.group(1), ""), legend_format
        )
    labels = {k: v for k, v in series.labels.items() if k != "__name__"}
    metric = series.labels.get("__name__", "")
    if not labels:
        return metric or expr
    return metric + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


# -- theme ---------------------------------------------------------------------------------

DPI = 100
COLUMNS = 24
COLUMN_PX = 80  # one of the 24 grid columns, gap included
ROW_PX = 30  # one grid row (Grafana's cell height), gap excluded
GAP_PX = 8  # between panels, across and down (Grafana's margin)
PADDING_PX = 16  # around the grid
HEADER_PX = 88  # the dashboard's title, time range and variable pickers

CANVAS = "#111217"
PANEL = "#181b1f"
BORDER = "#2b2e33"
TEXT = "#ccccdc"
TEXT_DIM = "#8e8e9c"
GRID = "#26292e"
LINK = "#6e9fff"
INPUT = "#111217"
INPUT_BORDER = "#34373d"
LABEL = "#22252b"
PALETTE = (
    "#73BF69",
    "#F2CC0C",
    "#8AB8FF",
    "#FF780A",
    "#F2495C",
    "#5794F2",
    "#B877D9",
    "#705DA0",
    "#37872D",
    "#FADE2A",
    "#447EBC",
    "#C15C17",
    "#890F02",
    "#0A437C",
    "#6D1F62",
    "#584477",
    "#B7DBAB",
    "#F4D598",
    "#70DBED",
    "#F9BA8F",
    "#F29191",
    "#82B5D8",
    "#E5A8E2",
    "#AEA2E0",
)
NAMED_COLORS = {
    f"{shade}{hue}": hexa
    for hue, shades in {
        "green": ("#37872D", "#56A64B", "#73BF69", "#96D98D", "#C8F2C2"),
        "red": ("#C4162A", "#E02F44", "#F2495C", "#FF7383", "#FFA6B0"),
        "orange": ("#FA6400", "#FF780A", "#FF9830", "#FFB357", "#FFCB7D"),
        "yellow": ("#E0B400", "#F2CC0C", "#FADE2A", "#FFEE52", "#FFF899"),
        "blue": ("#1F60C4", "#3274D9", "#5794F2", "#8AB8FF", "#C0D8FF"),
        "purple": ("#8F3BB8", "#A352CC", "#B877D9", "#CA95E5", "#DEB6F2"),
    }.items()
    for shade, hexa in zip(
        ("dark-", "semi-dark-", "", "light-", "super-light-"), shades, strict=True
    )
} | {"text": TEXT, "transparent": "#00000000", "white": "#ffffff", "black": "#000000"}

DEFAULT_THRESHOLDS: dict[str, Any] = {
    "mode": "absolute",
    "steps": [{"color": "green", "value": None}, {"color": "red", "value": 80}],
}


def grafana_color(name: object, fallback: str = PALETTE[0]) -> str:
    """A Grafana colour (a named one, `#hex`, `rgb()`, `rgba()`) as matplotlib reads it."""
    text = str(name or "").strip()
    if text in NAMED_COLORS:
        return NAMED_COLORS[text]
    if re.fullmatch(r"#[0-9a-fA-F]{3,8}", text):
        return text
    match = re.fullmatch(r"rgba?\(([^)]*)\)", text.replace(" ", ""))
    if match:
        parts = [float(p) for p in match.group(1).split(",")]
        alpha = parts[3] if len(parts) > 3 else 1.0
        return "#" + "".join(f"{round(c):02x}" for c in parts[:3]) + f"{round(alpha * 255):02x}"
    return fallback


def _px(size: float) -> float:
    """Points for a font size in pixels."""
    return size * 72 / DPI


# -- layout --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels from the picture's top-left corner."""

    x: float
    y: float
    w: float
    h: float

    def inset(self, left: float, top: float, right: float, bottom: float) -> Box:
        return Box(self.x + left, self.y + top, self.w - left - right, self.h - top - bottom)


def _grid(panel: Mapping[str, Any]) -> tuple[int, int, int, int]:
    pos = panel.get("gridPos") or {}
    w = max(1, min(COLUMNS, int(pos.get("w", 12))))
    x = max(0, min(COLUMNS - w, int(pos.get("x", 0))))
    return x, max(0, int(pos.get("y", 0))), w, max(1, int(pos.get("h", 8)))


def layout(
    dashboard: Mapping[str, Any], *, expand_rows: bool = False
) -> list[tuple[dict[str, Any], tuple[int, int, int, int]]]:
    """The panels Grafana shows and their grid positions (x, y, w, h), moved up into free
    space as Grafana's grid does. A collapsed row keeps its panels hidden unless
    `expand_rows`, which opens it and moves what follows down."""
    panels: list[dict[str, Any]] = []
    shift = 0
    for panel in sorted(dashboard.get("panels") or [], key=lambda p: (_grid(p)[1], _grid(p)[0])):
        placed = dict(panel)
        x, y, w, h = _grid(panel)
        placed["gridPos"] = {"x": x, "y": y + shift, "w": w, "h": h}
        panels.append(placed)
        if panel.get("type") == "row" and panel.get("collapsed") and expand_rows:
            placed["collapsed"] = False
            inner = panel.get("panels") or []
            top = y + shift + h
            first = min((_grid(p)[1] for p in inner), default=top)
            for child in inner:
                cx, cy, cw, ch = _grid(child)
                moved = dict(child)
                moved["gridPos"] = {"x": cx, "y": cy - first + top, "w": cw, "h": ch}
                panels.append(moved)
            shift += max((_grid(p)[1] + _grid(p)[3] - first for p in inner), default=0)
    placed_cells: list[tuple[int, int, int, int]] = []
    out: list[tuple[dict[str, Any], tuple[int, int, int, int]]] = []

    def collides(x: int, y: int, w: int, h: int) -> bool:
        return any(
            x < px + pw and px < x + w and y < py + ph and py < y + h
            for px, py, pw, ph in placed_cells
        )

    for panel in sorted(panels, key=lambda p: (_grid(p)[1], _grid(p)[0])):
        x, y, w, h = _grid(panel)
        while y > 0 and not collides(x, y - 1, w, h):
            y -= 1
        while collides(x, y, w, h):
            y += 1
        placed_cells.append((x, y, w, h))
        out.append((panel, (x, y, w, h)))
    return out


def panel_box(x: int, y: int, w: int, h: int) -> Box:
    """The pixels of a panel at grid position (x, y, w, h)."""
    return Box(
        PADDING_PX + x * COLUMN_PX,
        HEADER_PX + PADDING_PX + y * (ROW_PX + GAP_PX),
        w * COLUMN_PX - GAP_PX,
        h * ROW_PX + (h - 1) * GAP_PX,
    )


def canvas_size(rows: int) -> tuple[int, int]:
    """The picture's width and height in pixels for a grid `rows` tall."""
    width = 2 * PADDING_PX + COLUMNS * COLUMN_PX - GAP_PX
    height = HEADER_PX + 2 * PADDING_PX + max(rows * (ROW_PX + GAP_PX) - GAP_PX, 0)
    return width, height


# -- report --------------------------------------------------------------------------------


@dataclass
class PanelReport:
    """One panel as drawn: its series and points, and the queries as sent to Prometheus."""

    title: str
    type: str
    series: int
    points: int
    queries: list[str]
    box: tuple[int, int, int, int]  # x, y, width, height in pixels
    step: float | None = None  # the range queries' step; None for instant queries

    @property
    def empty(self) -> bool:
        """The panel queries Prometheus and got no series: it shows "No data"."""
        return bool(self.queries) and self.series == 0


@dataclass
class RenderReport:
    """What `render` drew and from which queries."""

    out: Path
    width: int
    height: int
    start: float
    end: float
    panels: list[PanelReport] = field(default_factory=list)
    query_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def empty_panels(self) -> list[PanelReport]:
        return [p for p in self.panels if p.empty]

    def __str__(self) -> str:
        lines = [
            f"{self.out}: {self.width}x{self.height} px, {len(self.panels)} panels, "
            f"{format_duration(self.end - self.start)} to "
            f"{datetime.fromtimestamp(self.end, UTC):%Y-%m-%d %H:%M:%S} UTC, "
            f"rendered in {self.seconds:.2f} s ({self.query_seconds:.2f} s querying)"
        ]
        for panel in self.panels:
            how = "" if panel.step is None else f" step {format_duration(panel.step)}"
            mark = "  NO DATA" if panel.empty else ""
            lines.append(
                f"  {panel.type:<10} {panel.series:>4} series {panel.points:>7} points  "
                f"{panel.title!r}{how}{mark}"
            )
            lines.extend(f"      {query}" for query in panel.queries)
        return "\n".join(lines)


# -- drawing -------------------------------------------------------------------------------

RANGE_TYPES = {"timeseries", "graph", "barchart", "heatmap", "state-timeline", "trend"}
INSTANT_TYPES = {"stat", "gauge", "bargauge", "table", "piechart", "singlestat", "table-old"}


class _Painter:
    """Draws in pixel coordinates (origin top-left) on one matplotlib figure."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=CANVAS)
        self.agg = FigureCanvasAgg(self.figure)
        self.renderer = self.agg.get_renderer()  # type: ignore[no-untyped-call]
        self.canvas = self.figure.add_axes((0.0, 0.0, 1.0, 1.0))
        self.canvas.set_xlim(0, width)
        self.canvas.set_ylim(height, 0)
        self.canvas.set_axis_off()
        self.canvas.set_zorder(0)

    def axes(self, box: Box) -> Axes:
        """A matplotlib axes filling `box`, drawn above the canvas."""
        rect = (
            box.x / self.width,
            1 - (box.y + box.h) / self.height,
            max(box.w, 1) / self.width,
            max(box.h, 1) / self.height,
        )
        axes = self.figure.add_axes(rect)
        axes.set_zorder(1)
        axes.patch.set_alpha(0.0)
        return axes

    def clip(self, box: Box) -> Bbox:
        return Bbox.from_bounds(box.x, self.height - box.y - box.h, box.w, box.h)

    def rect(
        self,
        box: Box,
        color: str,
        *,
        edge: str | None = None,
        radius: float = 0.0,
        zorder: float = 1,
    ) -> None:
        if radius:
            patch: Rectangle | FancyBboxPatch = FancyBboxPatch(
                (box.x, box.y),
                box.w,
                box.h,
                boxstyle=f"round,pad=0,rounding_size={radius}",
                facecolor=color,
                edgecolor=edge or "none",
                linewidth=1 if edge else 0,
                zorder=zorder,
            )
        else:
            patch = Rectangle(
                (box.x, box.y),
                box.w,
                box.h,
                facecolor=color,
                edgecolor=edge or "none",
                linewidth=1 if edge else 0,
                zorder=zorder,
            )
        self.canvas.add_patch(patch)

    def line(
        self, x0: float, y0: float, x1: float, y1: float, color: str, width: float = 1
    ) -> None:
        self.canvas.plot([x0, x1], [y0, y1], color=color, linewidth=width * 72 / DPI, zorder=2)

    def font(self, size: float, bold: bool = False) -> FontProperties:
        return FontProperties(size=_px(size), weight="bold" if bold else "normal")

    def measure(self, text: str, size: float, bold: bool = False) -> tuple[float, float]:
        width, height, _ = self.renderer.get_text_width_height_descent(
            text, self.font(size, bold), ismath=False
        )
        return float(width), float(height)

    def fit(self, text: str, size: float, width: float, bold: bool = False) -> str:
        """`text`, cut with an ellipsis to fit `width` pixels."""
        if width <= 0:
            return ""
        if self.measure(text, size, bold)[0] <= width:
            return text
        low, high = 0, len(text)
        while low < high:
            middle = (low + high + 1) // 2
            if self.measure(text[:middle] + "…", size, bold)[0] <= width:
                low = middle
            else:
                high = middle - 1
        return text[:low] + "…" if low else ""

    def largest(
        self, text: str, width: float, height: float, most: float, bold: bool = False
    ) -> float:
        """The largest font size in pixels at which `text` fits in width x height."""
        w, h = self.measure(text, 100, bold)
        return max(6.0, min(most, 100 * width / max(w, 1), 100 * height / max(h, 1)))

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        size: float = 14,
        color: str = TEXT,
        ha: str = "left",
        va: str = "center",
        bold: bool = False,
        clip: Box | None = None,
        zorder: float = 3,
    ) -> Text:
        artist = self.canvas.text(
            x,
            y,
            text,
            fontproperties=self.font(size, bold),
            color=color,
            ha=ha,
            va=va,
            zorder=zorder,
            parse_math=False,
        )
        if clip is not None:
            artist.set_clip_box(self.clip(clip))
            artist.set_clip_on(True)
        return artist

    def save(self, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        self.figure.savefig(out, dpi=DPI, facecolor=CANVAS)


def _thresholds(defaults: Mapping[str, Any]) -> list[tuple[float, str]]:
    spec = defaults.get("thresholds") or DEFAULT_THRESHOLDS
    steps = []
    for step in spec.get("steps") or []:
        value = step.get("value")
        steps.append(
            (-math.inf if value is None else float(value), grafana_color(step.get("color")))
        )
    return sorted(steps) or [(-math.inf, PALETTE[0])]


def _threshold_color(
    defaults: Mapping[str, Any], value: float, low: float = 0.0, high: float = 100.0
) -> str:
    spec = defaults.get("thresholds") or DEFAULT_THRESHOLDS
    steps = _thresholds(defaults)
    if spec.get("mode") == "percentage" and high > low:
        value = (value - low) / (high - low) * 100
    color = steps[0][1]
    for limit, step_color in steps:
        if not math.isnan(value) and value >= limit:
            color = step_color
    return color


def _value_color(
    defaults: Mapping[str, Any], value: float, low: float, high: float, index: int
) -> str:
    color: Mapping[str, Any] = defaults.get("color") or {}
    mode = str(color.get("mode", "thresholds"))
    if mode == "fixed":
        return grafana_color(color.get("fixedColor"))
    if mode.startswith("palette"):
        return PALETTE[index % len(PALETTE)]
    return _threshold_color(defaults, value, low, high)


def _series_colors(panel: Mapping[str, Any], series: list[Series]) -> None:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    color = defaults.get("color") or {}
    for index, item in enumerate(series):
        if color.get("mode") == "fixed":
            item.color = grafana_color(color.get("fixedColor"))
        else:
            item.color = PALETTE[index % len(PALETTE)]
    for override in (panel.get("fieldConfig") or {}).get("overrides") or []:
        matcher = override.get("matcher") or {}
        option = str(matcher.get("options", ""))
        for item in series:
            if matcher.get("id") == "byName":
                hit = item.name == option
            elif matcher.get("id") == "byRegexp":
                hit = re.search(option, item.name) is not None
            else:
                hit = False
            if not hit:
                continue
            for prop in override.get("properties") or []:
                if prop.get("id") == "color" and isinstance(prop.get("value"), Mapping):
                    item.color = grafana_color(prop["value"].get("fixedColor"), item.color)
                if prop.get("id") == "displayName":
                    item.name = str(prop.get("value"))


def _no_data(painter: _Painter, box: Box) -> None:
    painter.text(
        box.x + box.w / 2, box.y + box.h / 2, "No data", size=16, color=TEXT_DIM, ha="center"
    )


def _calc(name: str, values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan
    match name:
        case "mean":
            return sum(finite) / len(finite)
        case "max":
            return max(finite)
        case "min":
            return min(finite)
        case "sum":
            return sum(finite)
        case "first" | "firstNotNull":
            return finite[0]
        case "count":
            return float(len(finite))
        case _:
            return finite[-1]


_CALC_NAMES = {
    "mean": "Mean",
    "max": "Max",
    "min": "Min",
    "sum": "Total",
    "last": "Last",
    "lastNotNull": "Last *",
    "first": "First",
    "firstNotNull": "First *",
    "count": "Count",
}


def _legend(
    painter: _Painter,
    box: Box,
    series: list[Series],
    calcs: Sequence[str],
    unit: str | None,
    right: bool,
) -> Box:
    """Draws the legend along the bottom (or down the right) of `box`; the box left over."""
    size = 12
    entries = []
    for item in series:
        text = item.name or " "
        extra = "  ".join(
            f"{_CALC_NAMES.get(c, c)}: {format_value(_calc(c, item.values), unit)}" for c in calcs
        )
        entries.append((item.color, f"{text}   {extra}" if extra else text))
    line_h = 20
    if right:
        width = min(box.w * 0.4, max(painter.measure(t, size)[0] for _, t in entries) + 30)
        area = Box(box.x + box.w - width, box.y, width, box.h)
        rows = max(1, int(area.h // line_h))
        for i, (color, text) in enumerate(entries[:rows]):
            y = area.y + i * line_h + line_h / 2
            painter.rect(Box(area.x + 4, y - 2, 14, 4), color, radius=1.5, zorder=3)
            painter.text(area.x + 24, y, painter.fit(text, size, area.w - 28), size=size)
        return Box(box.x, box.y, box.w - width - 8, box.h)
    lines: list[list[tuple[str, str, float]]] = [[]]
    used = 0.0
    for color, text in entries:
        width = min(painter.measure(text, size)[0] + 32, box.w)
        if lines[-1] and used + width > box.w:
            lines.append([])
            used = 0
        lines[-1].append((color, text, width))
        used += width
    most = max(1, int(box.h * 0.4 // line_h))
    shown = lines[:most]
    height = len(shown) * line_h + 4
    top = box.y + box.h - height + 4
    for row, line in enumerate(shown):
        x = box.x
        y = top + row * line_h + line_h / 2
        for color, text, width in line:
            painter.rect(Box(x + 2, y - 2, 14, 4), color, radius=1.5, zorder=3)
            painter.text(x + 22, y, painter.fit(text, size, width - 28), size=size)
            x += width
    return Box(box.x, box.y, box.w, box.h - height)


def _timezone(dashboard: Mapping[str, Any]) -> tzinfo:
    name = str(dashboard.get("timezone") or "browser")
    if name.lower() == "utc":
        return UTC
    if name not in ("browser", ""):
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    local = datetime.now().astimezone().tzinfo
    return local or UTC


def _style_axes(axes: Axes) -> None:
    axes.set_facecolor("none")
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.tick_params(colors=TEXT_DIM, labelsize=_px(12), length=0, pad=6, labelcolor=TEXT_DIM)
    axes.grid(True, color=GRID, linewidth=0.75)
    axes.set_axisbelow(True)


def _time_axis(axes: Axes, width: float, start: float, end: float, tz: tzinfo) -> None:
    """Time along the x axis (matplotlib's days since 1970) labelled as Grafana does."""
    day = 86400.0
    span = end - start
    axes.set_xlim(start / day, end / day)
    pattern = "%H:%M:%S" if span <= 600 else "%H:%M" if span <= 2 * day else "%m/%d %H:%M"
    if span > 14 * day:
        pattern = "%m/%d"
    most = max(3, int(width // 90))
    locator = mdates.AutoDateLocator(tz=tz, minticks=2, maxticks=most)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    labels = mdates.DateFormatter(pattern, tz=tz)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(labels)


def _draw_time_axes(
    painter: _Painter,
    area: Box,
    series: list[Series],
    panel: Mapping[str, Any],
    start: float,
    end: float,
    step: float,
    tz: tzinfo,
) -> None:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    custom = defaults.get("custom") or {}
    unit = defaults.get("unit")
    bars = panel.get("type") == "barchart" or custom.get("drawStyle") == "bars"
    stacked = (custom.get("stacking") or {}).get("mode") in ("normal", "percent")
    fill = float(custom.get("fillOpacity", 0 if panel.get("type") != "graph" else 10)) / 100
    width = float(custom.get("lineWidth", 1))

    # Stack on the step-aligned timestamps that Prometheus returns.
    drawn: list[tuple[Series, list[float], list[float], list[float]]] = []
    base: dict[float, float] = {}
    for item in series:
        lows, highs = [], []
        for t, v in zip(item.times, item.values, strict=True):
            low = base.get(t, 0.0) if stacked else 0.0
            high = low + (0.0 if math.isnan(v) else v) if stacked else v
            if stacked:
                base[t] = high
            lows.append(low)
            highs.append(high)
        drawn.append((item, item.times, lows, highs))

    finite = [v for _, _, lows, highs in drawn for v in lows + highs if not math.isnan(v)]
    data_low, data_high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    low = float(defaults["min"]) if "min" in defaults else min(0.0, data_low)
    high = float(defaults["max"]) if "max" in defaults else data_high
    if "axisSoftMax" in custom:
        high = max(high, float(custom["axisSoftMax"]))
    if "axisSoftMin" in custom:
        low = min(low, float(custom["axisSoftMin"]))
    if high <= low:
        high = low + (abs(low) or 1.0)
    ticks = MaxNLocator(nbins=max(2, int(area.h // 42)), steps=[1, 2, 2.5, 5, 10]).tick_values(
        low, high
    )
    ticks = [t for t in ticks if low - 1e-12 <= t <= high + 1e-9 * abs(high) or t == ticks[-1]]
    if "max" not in defaults:
        high = max(high, ticks[-1])
    formatter = _UnitFormatter(unit)
    label_w = max(painter.measure(formatter(t), 12)[0] for t in ticks) + 10
    label = str(custom.get("axisLabel") or "")
    left = label_w + (20 if label else 0)
    plot = area.inset(left, 6, 6, 22)
    if plot.w < 20 or plot.h < 20:
        return
    axes = painter.axes(plot)
    _style_axes(axes)
    axes.set_ylim(low, high)
    axes.yaxis.set_major_locator(
        MaxNLocator(nbins=max(2, int(area.h // 42)), steps=[1, 2, 2.5, 5, 10])
    )
    axes.yaxis.set_major_formatter(formatter)
    if label:
        axes.set_ylabel(label, color=TEXT_DIM, fontsize=_px(12))
    day = 86400.0
    span = end - start
    _time_axis(axes, plot.w, start, end, tz)
    show_points = custom.get("showPoints", "auto")
    spacing = plot.w * step / max(span, 1e-9)
    for item, times, lows, highs in drawn:
        xs: list[float] = []
        ys: list[float] = []
        bottoms: list[float] = []
        previous: float | None = None
        for t, lo, hi in zip(times, lows, highs, strict=True):
            if previous is not None and t - previous > 1.5 * step and not bars:
                xs.append(math.nan)
                ys.append(math.nan)
                bottoms.append(math.nan)
            xs.append(t / day)
            ys.append(hi)
            bottoms.append(lo)
            previous = t
        if bars:
            axes.bar(
                [x for x in xs if not math.isnan(x)],
                [h - b for h, b in zip(ys, bottoms, strict=True) if not math.isnan(h)],
                bottom=[b for b in bottoms if not math.isnan(b)],
                width=step / day * 0.8,
                color=item.color,
                alpha=0.8,
                linewidth=0,
            )
            continue
        isolated = len([y for y in ys if not math.isnan(y)]) == 1
        marker = (
            "o"
            if show_points == "always" or isolated or (show_points == "auto" and spacing > 16)
            else None
        )
        axes.plot(
            xs,
            ys,
            color=item.color,
            linewidth=width * 72 / DPI * 1.2,
            marker=marker,
            markersize=3,
            solid_joinstyle="round",
        )
        if fill > 0 or stacked:
            axes.fill_between(
                xs,
                bottoms,
                ys,
                color=item.color,
                alpha=max(fill, 0.1 if stacked else 0),
                linewidth=0,
            )


def _draw_heatmap(
    painter: _Painter,
    area: Box,
    series: list[Series],
    panel: Mapping[str, Any],
    start: float,
    end: float,
    tz: tzinfo,
) -> None:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    buckets = sorted(series, key=lambda s: _number(s.labels.get("le", s.name)))
    times = sorted({t for s in buckets for t in s.times})
    index = {t: i for i, t in enumerate(times)}
    grid = [[0.0] * len(times) for _ in buckets]
    for row, item in enumerate(buckets):
        for t, v in zip(item.times, item.values, strict=True):
            grid[row][index[t]] = 0.0 if math.isnan(v) else v
    cumulative = all("le" in s.labels for s in buckets)
    if cumulative:
        for row in range(len(buckets) - 1, 0, -1):
            grid[row] = [max(a - b, 0.0) for a, b in zip(grid[row], grid[row - 1], strict=True)]
    names = [
        format_value(_number(s.labels["le"]), defaults.get("unit"))
        if "le" in s.labels and s.labels["le"] != "+Inf"
        else (s.labels.get("le") or s.name)
        for s in buckets
    ]
    label_w = max(painter.measure(n, 12)[0] for n in names) + 10
    plot = area.inset(label_w, 6, 6, 22)
    if plot.w < 20 or plot.h < 20 or not times:
        return
    axes = painter.axes(plot)
    _style_axes(axes)
    axes.grid(False)
    colormap = LinearSegmentedColormap.from_list(
        "grafana-oranges", ["#1f1e1d", "#5c2d0a", "#c4530f", "#ff9830", "#ffe0a8"]
    )
    colormap.set_bad(PANEL)
    peak = max((v for row in grid for v in row), default=0.0) or 1.0
    masked = [[v / peak if v > 0 else math.nan for v in row] for row in grid]
    day = 86400.0
    step = (times[1] - times[0]) if len(times) > 1 else end - start
    edges = [t / day for t in times] + [(times[-1] + step) / day]
    axes.pcolormesh(edges, range(len(buckets) + 1), masked, cmap=colormap, vmin=0, vmax=1)
    axes.set_yticks([i + 0.5 for i in range(len(buckets))])
    keep = max(1, math.ceil(len(buckets) / max(1, plot.h // 16)))
    axes.set_yticklabels([n if i % keep == 0 else "" for i, n in enumerate(names)])
    _time_axis(axes, plot.w, start, end, tz)


def _tiles(box: Box, count: int, vertical: bool | None = None) -> Iterator[Box]:
    """`count` equal tiles filling `box`: side by side when it is wide, stacked when it is
    tall, in a grid of tiles about twice as wide as tall when there are many."""
    if count <= 0:
        return
    if vertical is None:
        vertical = box.h > box.w

    def misfit(columns: int) -> float:
        rows = math.ceil(count / columns)
        return abs(math.log((box.w / columns) / (box.h / rows) / 2.0))

    few = 1 if vertical else count
    columns = few if count <= 3 else min(range(1, count + 1), key=misfit)
    rows = math.ceil(count / columns)
    w, h = box.w / columns, box.h / rows
    for i in range(count):
        yield Box(box.x + (i % columns) * w, box.y + (i // columns) * h, w, h)


def _draw_stat(
    painter: _Painter, area: Box, series: list[Series], panel: Mapping[str, Any]
) -> None:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    options = panel.get("options") or {}
    unit, decimals = defaults.get("unit"), defaults.get("decimals")
    color_mode = options.get("colorMode", "value")
    text_mode = options.get("textMode", "auto")
    vertical = {"horizontal": False, "vertical": True}.get(options.get("orientation", "auto"))
    for index, (item, tile) in enumerate(
        zip(series, _tiles(area, len(series), vertical), strict=False)
    ):
        value = item.last
        low = float(defaults.get("min", 0))
        high = float(defaults.get("max", 100))
        color = _value_color(defaults, value, low, high, index)
        inner = tile.inset(4, 4, 4, 4)
        if color_mode == "background":
            painter.rect(inner, color, radius=3, zorder=1.5)
            text_color = "#ffffff"
        elif color_mode == "none":
            text_color = TEXT
        else:
            text_color = color
        shown = format_value(value, unit, decimals)
        named = text_mode in ("value_and_name", "name") or (text_mode == "auto" and len(series) > 1)
        if named:
            name_size = min(16, max(9, inner.h * 0.14))
            painter.text(
                inner.x + inner.w / 2,
                inner.y + inner.h * 0.24,
                painter.fit(item.name, name_size, inner.w - 8),
                size=name_size,
                color=text_color if color_mode == "background" else TEXT,
                ha="center",
            )
            value_box = Box(inner.x, inner.y + inner.h * 0.36, inner.w, inner.h * 0.6)
        else:
            value_box = inner
        size = painter.largest(shown, value_box.w * 0.85, value_box.h * 0.7, 80, bold=True)
        painter.text(
            value_box.x + value_box.w / 2,
            value_box.y + value_box.h / 2,
            shown,
            size=size,
            color=text_color,
            ha="center",
            bold=True,
        )


def _gauge_range(defaults: Mapping[str, Any], series: list[Series]) -> tuple[float, float]:
    unit = defaults.get("unit")
    values = [s.last for s in series if not math.isnan(s.last)]
    low = float(defaults["min"]) if "min" in defaults else min([0.0, *values])
    if "max" in defaults:
        high = float(defaults["max"])
    elif unit == "percent":
        high = 100.0
    elif unit == "percentunit":
        high = 1.0
    else:
        high = max([*values, low + 1.0])
    return low, high if high > low else low + 1.0


def _draw_gauge(
    painter: _Painter, area: Box, series: list[Series], panel: Mapping[str, Any]
) -> None:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    options = panel.get("options") or {}
    unit, decimals = defaults.get("unit"), defaults.get("decimals")
    low, high = _gauge_range(defaults, series)
    sweep_start, sweep = 225.0, 270.0
    for index, (item, tile) in enumerate(zip(series, _tiles(area, len(series)), strict=False)):
        named = len(series) > 1
        name_h = min(22.0, tile.h * 0.15) if named else 0.0
        body = tile.inset(6, name_h, 6, 4)
        side = min(body.w, body.h * 1.08)
        square = Box(
            body.x + (body.w - side) / 2, body.y + (body.h - side / 1.08) / 2, side, side / 1.08
        )
        axes = painter.axes(square)
        axes.set_axis_off()
        axes.set_xlim(-1.0, 1.0)
        axes.set_ylim(-0.85, 1.0)
        axes.set_aspect("equal", adjustable="box")
        value = item.last
        color = _value_color(defaults, value, low, high, index)

        def angle(v: float) -> float:
            fraction = 0.0 if math.isnan(v) else min(max((v - low) / (high - low), 0.0), 1.0)
            return sweep_start - sweep * fraction

        axes.add_patch(
            Wedge((0, 0), 0.84, sweep_start - sweep, sweep_start, width=0.22, color=GRID)
        )
        axes.add_patch(Wedge((0, 0), 0.84, angle(value), sweep_start, width=0.22, color=color))
        if options.get("showThresholdMarkers", True):
            steps = _thresholds(defaults)
            percentage = (defaults.get("thresholds") or DEFAULT_THRESHOLDS).get(
                "mode"
            ) == "percentage"
            for i, (limit, step_color) in enumerate(steps):
                begin = low if math.isinf(limit) else limit
                finish = steps[i + 1][0] if i + 1 < len(steps) else high
                if percentage:
                    begin = low if math.isinf(limit) else low + (high - low) * limit / 100
                    finish = low + (high - low) * finish / 100 if i + 1 < len(steps) else high
                if finish <= low or begin >= high:
                    continue
                axes.add_patch(
                    Wedge((0, 0), 0.97, angle(finish), angle(begin), width=0.07, color=step_color)
                )
        shown = format_value(value, unit, decimals)
        size = painter.largest(shown, square.w * 0.5, square.h * 0.22, 64, bold=True)
        painter.text(
            square.x + square.w / 2,
            square.y + square.h * (1.0 / 1.85),
            shown,
            size=size,
            color=color,
            ha="center",
            bold=True,
        )
        if named:
            painter.text(
                tile.x + tile.w / 2,
                tile.y + name_h / 2 + 2,
                painter.fit(item.name, 12, tile.w - 8),
                size=12,
                ha="center",
            )


def _draw_bargauge(
    painter: _Painter, area: Box, series: list[Series], panel: Mapping[str, Any]
) -> None:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    unit, decimals = defaults.get("unit"), defaults.get("decimals")
    low, high = _gauge_range(defaults, series)
    shown = [format_value(s.last, unit, decimals) for s in series]
    row_h = min(area.h / max(len(series), 1), 48.0)
    size = min(16.0, max(9.0, row_h * 0.45))
    name_w = min(area.w * 0.35, max(painter.measure(s.name, size)[0] for s in series) + 12)
    value_w = max(painter.measure(v, size, True)[0] for v in shown) + 12
    for index, (item, text) in enumerate(zip(series, shown, strict=True)):
        y = area.y + index * row_h
        if y + row_h > area.y + area.h + 1:
            break
        color = _value_color(defaults, item.last, low, high, index)
        painter.text(area.x, y + row_h / 2, painter.fit(item.name, size, name_w - 8), size=size)
        bar = Box(area.x + name_w, y + row_h * 0.15, area.w - name_w - value_w, row_h * 0.7)
        painter.rect(bar, "#202226", radius=2, zorder=1.5)
        fraction = (
            0.0 if math.isnan(item.last) else min(max((item.last - low) / (high - low), 0.0), 1.0)
        )
        if fraction > 0:
            filled = Box(bar.x, bar.y, max(bar.w * fraction, 2), bar.h)
            painter.rect(filled, color, radius=2, zorder=1.6)
        painter.text(
            area.x + area.w, y + row_h / 2, text, size=size, color=color, ha="right", bold=True
        )


def _draw_table(
    painter: _Painter, area: Box, series: list[Series], panel: Mapping[str, Any]
) -> None:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    unit, decimals = defaults.get("unit"), defaults.get("decimals")
    refs = list(dict.fromkeys(s.ref_id for s in series))
    value_columns = ["Value"] if len(refs) == 1 else [f"Value #{r}" for r in refs]
    labels = sorted({k for s in series for k in s.labels if k != "__name__"})
    rows: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for item in series:
        key = tuple((k, item.labels.get(k, "")) for k in labels)
        row = rows.setdefault(key, dict(key))
        column = "Value" if len(refs) == 1 else f"Value #{item.ref_id}"
        row[column] = format_value(item.last, unit, decimals)
    columns = labels + value_columns
    hidden: set[str] = set()
    renamed: dict[str, str] = {}
    for transformation in panel.get("transformations") or []:
        if transformation.get("id") == "organize":
            opts = transformation.get("options") or {}
            hidden |= {k for k, v in (opts.get("excludeByName") or {}).items() if v}
            renamed |= {k: str(v) for k, v in (opts.get("renameByName") or {}).items() if v}
    columns = [c for c in columns if c not in hidden]
    if not columns:
        return
    size, row_h = 13.0, 30.0
    widths = []
    for column in columns:
        cells = [renamed.get(column, column)] + [
            r.get(column, "") for r in list(rows.values())[:50]
        ]
        widths.append(max(painter.measure(c, size)[0] for c in cells) + 24)
    scale = area.w / sum(widths)
    widths = [w * scale for w in widths]
    y = area.y
    x = area.x
    for column, width in zip(columns, widths, strict=True):
        painter.text(
            x + 8,
            y + row_h / 2,
            painter.fit(renamed.get(column, column), size, width - 16),
            size=size,
            color=LINK,
            bold=True,
        )
        x += width
    painter.line(area.x, y + row_h, area.x + area.w, y + row_h, BORDER)
    visible = max(0, int((area.h - row_h) // row_h))
    rows_list = list(rows.values())
    for index, row in enumerate(rows_list[:visible]):
        y = area.y + (index + 1) * row_h
        x = area.x
        for column, width in zip(columns, widths, strict=True):
            cell = row.get(column, "")
            if column in value_columns:
                painter.text(
                    x + width - 8,
                    y + row_h / 2,
                    painter.fit(cell, size, width - 16),
                    size=size,
                    ha="right",
                )
            else:
                painter.text(x + 8, y + row_h / 2, painter.fit(cell, size, width - 16), size=size)
            x += width
        painter.line(area.x, y + row_h, area.x + area.w, y + row_h, BORDER)
    if len(rows_list) > visible:
        painter.text(
            area.x + area.w - 4,
            area.y + area.h - 4,
            f"{len(rows_list) - visible} more rows",
            size=11,
            color=TEXT_DIM,
            ha="right",
            va="bottom",
        )


def _markdown_lines(content: str, mode: str) -> list[tuple[str, float, bool]]:
    """Text panel content as (line, size, bold): Markdown's headings, lists and emphasis,
    or HTML without its tags."""
    if mode == "html":
        content = re.sub(r"<br\s*/?>|</p>|</h\d>|</li>|</div>", "\n", content, flags=re.I)
        content = re.sub(r"<li[^>]*>", "• ", content, flags=re.I)
        content = html.unescape(re.sub(r"<[^>]+>", "", content))
    out: list[tuple[str, float, bool]] = []
    for raw in content.splitlines():
        line = raw.rstrip()
        size, bold = 14.0, False
        heading = re.match(r"^(#{1,6})\s+(.*)", line)
        if heading:
            size, bold = {1: 22.0, 2: 19.0, 3: 16.0}.get(len(heading.group(1)), 14.0), True
            line = heading.group(2)
        line = re.sub(r"^\s*[-*+]\s+", "• ", line)
        line = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", line)
        line = re.sub(r"(\*\*|__|`)", "", line)
        line = re.sub(r"(?<!\w)[*_](\S.*?\S|\S)[*_](?!\w)", r"\1", line)
        out.append((line, size, bold))
    return out


def _draw_text(painter: _Painter, area: Box, panel: Mapping[str, Any]) -> None:
    options = panel.get("options") or {}
    content = str(options.get("content", panel.get("content", "")))
    y = area.y
    for line, size, bold in _markdown_lines(content, str(options.get("mode", "markdown"))):
        if not line.strip():
            y += size * 0.6
            continue
        words, current = line.split(" "), ""
        wrapped: list[str] = []
        for word in words:
            candidate = f"{current} {word}" if current else word
            if current and painter.measure(candidate, size, bold)[0] > area.w:
                wrapped.append(current)
                current = word
            else:
                current = candidate
        wrapped.append(current)
        for part in wrapped:
            if y + size * 1.4 > area.y + area.h:
                return
            painter.text(area.x, y + size * 0.7, part, size=size, bold=bold, clip=area)
            y += size * 1.5
        if bold:
            y += 4


def _draw_over_time(
    painter: _Painter,
    content: Box,
    series: list[Series],
    panel: Mapping[str, Any],
    start: float,
    end: float,
    step: float,
    tz: tzinfo,
) -> None:
    legend = (panel.get("options") or {}).get("legend") or {}
    area = content
    if legend.get("showLegend", True) and legend.get("displayMode") != "hidden":
        unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        calcs = legend.get("calcs") or []
        right = legend.get("placement") == "right"
        area = _legend(painter, content, series, calcs, unit, right)
    _draw_time_axes(painter, area, series, panel, start, end, step, tz)


# -- rendering -----------------------------------------------------------------------------


def _label_values_lookup(prometheus: Prometheus, start: float, end: float) -> OptionLookup:
    def lookup(variable: Mapping[str, Any], resolved: Mapping[str, Selection]) -> list[str]:
        query = interpolate(_variable_query(variable), resolved)
        match = re.fullmatch(
            r"\s*label_values\(\s*(?:(.*?)\s*,\s*)?([a-zA-Z_]\w*)\s*\)\s*", query, re.DOTALL
        )
        if not match:
            return []
        try:
            return prometheus.label_values(match.group(2), match.group(1), start, end)
        except PrometheusError:
            return []

    return lookup


def _human_span(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return format_duration(seconds)


def _draw_header(
    painter: _Painter,
    dashboard: Mapping[str, Any],
    selections: Mapping[str, Selection],
    start: float,
    end: float,
    tz: tzinfo,
) -> None:
    width = painter.width
    painter.rect(Box(0, 0, width, 40), PANEL, zorder=0.5)
    painter.line(0, 40, width, 40, BORDER)
    painter.text(PADDING_PX, 20, "Home", size=14, color=TEXT_DIM)
    crumb = painter.measure("Home", 14)[0]
    painter.text(
        PADDING_PX + crumb + 8, 20, "\u203a   Dashboards   \u203a", size=14, color=TEXT_DIM
    )
    crumb += painter.measure("\u203a   Dashboards   \u203a", 14)[0] + 16
    painter.text(
        PADDING_PX + crumb,
        20,
        str(dashboard.get("title") or "Dashboard"),
        size=14,
        color=TEXT,
        bold=True,
    )
    if abs(time.time() - end) < 120:
        span = f"Last {_human_span(round(end - start))}"
    else:
        first = datetime.fromtimestamp(start, tz)
        last = datetime.fromtimestamp(end, tz)
        span = f"{first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S}"
    zone = datetime.fromtimestamp(end, tz).strftime("%Z") or "UTC"
    span = f"{span}   {zone}"
    span_w = painter.measure(span, 13)[0] + 24
    picker = Box(width - PADDING_PX - span_w, 56, span_w, 28)
    painter.rect(picker, INPUT, edge=INPUT_BORDER, radius=2, zorder=1)
    painter.text(picker.x + 12, picker.y + picker.h / 2, span, size=13)
    x = float(PADDING_PX)
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        name = str(variable.get("name", ""))
        hide = int(variable.get("hide", 0) or 0)
        if hide == 2 or name not in selections:
            continue
        label = str(variable.get("label") or name)
        value = selections[name].text or ",".join(selections[name].values) or "None"
        value = painter.fit(value, 13, 240)
        value_w = painter.measure(value, 13)[0] + 34
        if hide == 0:
            label_w = painter.measure(label, 13)[0] + 20
            painter.rect(Box(x, 56, label_w, 28), LABEL, edge=INPUT_BORDER, radius=2)
            painter.text(x + 10, 70, label, size=13)
            x += label_w
        if x + value_w > picker.x - 8:
            break
        painter.rect(Box(x, 56, value_w, 28), INPUT, edge=INPUT_BORDER, radius=2)
        painter.text(x + 10, 70, value, size=13)
        painter.text(x + value_w - 12, 69, "\u2304", size=12, color=TEXT_DIM, ha="center")
        x += value_w + 8


def _draw_row(painter: _Painter, box: Box, panel: Mapping[str, Any], title: str) -> None:
    collapsed = bool(panel.get("collapsed"))
    chevron = "\u203a" if collapsed else "\u2304"
    painter.text(
        box.x + 2, box.y + box.h / 2 - (2 if not collapsed else 0), chevron, size=18, color=TEXT
    )
    painter.text(box.x + 22, box.y + box.h / 2, title, size=16, bold=True)
    if collapsed:
        count = len(panel.get("panels") or [])
        after = box.x + 30 + painter.measure(title, 16, True)[0]
        painter.text(
            after,
            box.y + box.h / 2,
            f"({count} panel{'s' if count != 1 else ''})",
            size=13,
            color=TEXT_DIM,
        )


def render(
    dashboard: Mapping[str, Any],
    *,
    prometheus_url: str,
    start: float,
    end: float,
    out: Path,
    variables: Mapping[str, str | Sequence[str]] | None = None,
    rate_interval: str | None = None,
    scrape_interval: float = 15.0,
    timeout: float = 10.0,
    expand_rows: bool = False,
) -> RenderReport:
    """Draw `dashboard` over [start, end] (Unix seconds) from the Prometheus at
    `prometheus_url` to the PNG `out`.

    `variables` choose template variables' values (a list for several; `$__all` for All);
    `scrape_interval` is the data source's scrape interval in seconds, from which
    `$__rate_interval` follows unless `rate_interval` gives it. Raises `QueryError` naming
    the panel and query when Prometheus rejects one."""
    began = time.perf_counter()
    prometheus = Prometheus(prometheus_url, timeout)
    tz = _timezone(dashboard)
    placed = layout(dashboard, expand_rows=expand_rows)
    rows = max((y + h for _, (_, y, _, h) in placed), default=0)
    width, height = canvas_size(rows)
    painter = _Painter(width, height)
    selections = resolve_variables(
        dashboard, variables, _label_values_lookup(prometheus, start, end)
    )
    report = RenderReport(out=out, width=width, height=height, start=start, end=end)
    _draw_header(painter, dashboard, selections, start, end, tz)
    querying = 0.0
    for panel, (gx, gy, gw, gh) in placed:
        box = panel_box(gx, gy, gw, gh)
        kind = str(panel.get("type") or "graph")
        title = interpolate(str(panel.get("title") or ""), selections, {})
        entry = PanelReport(
            title, kind, 0, 0, [], (round(box.x), round(box.y), round(box.w), round(box.h))
        )
        report.panels.append(entry)
        if kind == "row":
            _draw_row(painter, box, panel, title)
            continue
        transparent = bool(panel.get("transparent"))
        if not transparent:
            painter.rect(box, PANEL, edge=BORDER, radius=2, zorder=0.5)
        content = box.inset(8, 32 if title else 8, 8, 8)
        if title:
            painter.text(
                box.x + 8, box.y + 16, painter.fit(title, 14, box.w - 16), size=14, bold=False
            )
        if kind == "text":
            _draw_text(painter, content, panel)
            continue
        instant = kind in INSTANT_TYPES
        series: list[Series] = []
        step = 0.0
        for target in panel.get("targets") or []:
            expr = str(target.get("expr") or "")
            if target.get("hide") or not expr.strip():
                continue
            min_interval = target.get("interval") or panel.get("interval")
            spans = intervals(
                start,
                end,
                max_data_points=int(panel.get("maxDataPoints") or box.w),
                scrape_interval=scrape_interval,
                min_interval=parse_duration(interpolate(str(min_interval), selections))
                if min_interval
                else None,
                interval_factor=int(target.get("intervalFactor") or 1),
            )
            sent = interpolate(expr, selections, builtins(start, end, spans, rate_interval))
            entry.queries.append(sent)
            clock = time.perf_counter()
            try:
                if instant:
                    data = prometheus.query(sent, end)
                else:
                    step = spans.step
                    first = math.floor(start / step) * step
                    last = math.floor(end / step) * step
                    data = prometheus.query_range(sent, first, last, step)
            except PrometheusError as error:
                raise QueryError(title, sent, str(error)) from None
            finally:
                querying += time.perf_counter() - clock
            found = _series_of(data, str(target.get("refId") or "A"))
            legend = target.get("legendFormat")
            for item in found:
                item.name = legend_name(item, legend, sent)
            series.extend(found)
        entry.step = None if instant else step or None
        entry.series = len(series)
        entry.points = sum(1 for s in series for v in s.values if not math.isnan(v))
        _series_colors(panel, series)
        if not series:
            if entry.queries:
                _no_data(painter, content)
            continue
        if kind == "heatmap":
            _draw_heatmap(painter, content, series, panel, start, end, tz)
        elif kind in ("stat", "singlestat"):
            _draw_stat(painter, content, series, panel)
        elif kind == "gauge":
            _draw_gauge(painter, content, series, panel)
        elif kind in ("bargauge", "piechart"):
            _draw_bargauge(painter, content, series, panel)
        elif kind in ("table", "table-old"):
            _draw_table(painter, content, series, panel)
        else:
            _draw_over_time(painter, content, series, panel, start, end, step or 1.0, tz)
    painter.save(out)
    painter.figure.clear()
    report.query_seconds = querying
    report.seconds = time.perf_counter() - began
    return report


# -- command line --------------------------------------------------------------------------


def _parse_variables(pairs: Sequence[str]) -> dict[str, str | list[str]]:
    chosen: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"--var wants NAME=VALUE, not {pair!r}")
        chosen.setdefault(name, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in chosen.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m observability.render",
        description="Draw a Grafana dashboard to a PNG from a live Prometheus.",
    )
    parser.add_argument("--prometheus", required=True, help="Prometheus's URL")
    parser.add_argument("--dashboard", required=True, type=Path, help="the dashboard's JSON")
    parser.add_argument("--out", required=True, type=Path, help="the PNG to write")
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template variable's value; repeat a name for several values, VALUE $__all for All",
    )
    parser.add_argument(
        "--since",
        default=None,
        help="how far back, such as 15m (default: the dashboard's time range)",
    )
    parser.add_argument(
        "--until", default=None, type=float, help="the end as Unix seconds (default: now)"
    )
    parser.add_argument(
        "--scrape-interval", default="15s", help="the data source's scrape interval (default 15s)"
    )
    parser.add_argument(
        "--rate-interval", default=None, help="$__rate_interval as given instead of computed"
    )
    parser.add_argument(
        "--timeout", default=10.0, type=float, help="seconds to wait for each query"
    )
    parser.add_argument("--expand-rows", action="store_true", help="open collapsed rows")
    parser.add_argument(
        "--require-data", action="store_true", help="fail when a panel shows No data"
    )
    args = parser.parse_args(argv)
    try:
        dashboard = json.loads(args.dashboard.read_text())
        variables = _parse_variables(args.var)
        since = args.since
        if since is None:
            frm = str((dashboard.get("time") or {}).get("from", "now-1h"))
            since = frm.removeprefix("now-") if frm.startswith("now-") else "1h"
        end = args.until if args.until is not None else time.time()
        start = end - parse_duration(since)
        scrape = parse_duration(args.scrape_interval)
        if args.rate_interval:
            parse_duration(args.rate_interval)
    except (OSError, ValueError, argparse.ArgumentTypeError) as error:
        parser.error(str(error))
    try:
        report = render(
            dashboard,
            prometheus_url=args.prometheus,
            start=start,
            end=end,
            out=args.out,
            variables=variables,
            rate_interval=args.rate_interval,
            scrape_interval=scrape,
            timeout=args.timeout,
            expand_rows=args.expand_rows,
        )
    except PrometheusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report)
    if args.require_data and report.empty_panels:
        titles = ", ".join(repr(p.title) for p in report.empty_panels)
        print(f"error: no data in {len(report.empty_panels)} panel(s): {titles}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
