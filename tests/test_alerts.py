"""The Prometheus alert rules of observability/alerts: one rule a file, each with a severity,
a summary, a description and a runbook in docs/runbooks, over the metrics the platform
exports only, valid for promtool and held to its unit tests in observability/alerts/tests."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import hack

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "observability" / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.yaml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*.test.yaml"))
RUNBOOKS = ROOT / "docs" / "runbooks"
RUNBOOK_BASE = "https://github.com/sukverse/sukverse/blob/main/docs/runbooks/"
SEVERITIES = {"critical", "warning", "info"}

# What the services and the operator export (each series also carries the job, instance
# and namespace Prometheus gives it), and Prometheus's own `up`: a rule over any other name
# would never fire.
METRICS = {
    "up",
    "sukverse_http_requests_total",
    "sukverse_http_request_duration_seconds_bucket",
    "sukverse_outbox_backlog",
    "sukverse_outbox_oldest_age_seconds",
    "sukverse_events_published_total",
    "sukverse_events_handled_total",
    "sukverse_event_handler_errors_total",
    "sukverse_kafka_consumer_lag",
    "sukverse_ready",
    "sukverse_workshop_enrolled",
    "sukverse_workshop_at_risk",
    "sukverse_operator_cohorts",
    "sukverse_operator_reconciles_total",
    "sukverse_operator_reconcile_errors_total",
}

# PromQL's words that are neither metrics nor functions.
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "offset", "bool"}
KEYWORDS |= {"group_left", "group_right", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: what is left of it without strings, label
    matchers, ranges, grouping clauses and numbers, less functions and keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w:])\d[\w.]*", " ", text)  # numbers and durations: 0.05, 10m
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        word = match.group()
        if word.lower() in KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue  # a keyword, a function or an aggregation
        names.add(word)
    return names


def rules_of(path: Path) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def promtool() -> str:
    """Debian's promtool, installed with the prometheus package by hack/prometheus.sh."""
    hack("prometheus.sh", "install")
    return "/usr/bin/promtool"


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, check=False, cwd=ROOT, timeout=120
    )


def test_metric_names_are_read_from_an_expression() -> None:
    expr = (
        'sum by (namespace, service) (rate(sukverse_http_requests_total{status=~"5.."}[5m]))'
        " / on (namespace) group_left max(up offset 1h30m) > 0.05 and"
        " deriv(sum(sukverse_kafka_consumer_lag)[10m:1m]) >= 1e3"
    )
    assert metric_names(expr) == {
        "sukverse_http_requests_total",
        "up",
        "sukverse_kafka_consumer_lag",
    }


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_a_rule_file_holds_one_alert_and_has_its_unit_tests(path: Path) -> None:
    rules = rules_of(path)
    assert len(rules) == 1, f"{path.name} holds {len(rules)} rules"
    assert "alert" in rules[0]
    assert (ALERTS / "tests" / f"{path.stem}.test.yaml").is_file()


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_a_unit_test_file_sees_its_alert_fire_and_not_fire(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    assert document["rule_files"] == [f"../{path.name.removesuffix('.test.yaml')}.yaml"]
    (rule,) = rules_of(path.parent / document["rule_files"][0])
    cases = [
        case
        for test in document["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == rule["alert"]
    ]
    assert [case for case in cases if case.get("exp_alerts")], "no case where it fires"
    assert [case for case in cases if not case.get("exp_alerts")], "no case where it does not"


def test_alert_and_group_names_are_unique() -> None:
    # The chart puts every file's groups into one PrometheusRule: one rule file for
    # Prometheus, where a group name may appear once.
    groups = [g["name"] for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]]
    alerts = [rule["alert"] for path in RULE_FILES for rule in rules_of(path)]
    assert len(groups) == len(set(groups)) and len(alerts) == len(set(alerts))


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_a_rule_has_severity_annotations_and_a_runbook(path: Path) -> None:
    (rule,) = rules_of(path)
    assert rule["labels"]["severity"] in SEVERITIES
    assert "for" in rule, "a `for:` that a test can shorten"
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert "$labels" in annotations["description"] or "$value" in annotations["description"]
    url = annotations["runbook_url"]
    assert url == f"{RUNBOOK_BASE}{rule['alert']}.md"
    runbook = RUNBOOKS / url.removeprefix(RUNBOOK_BASE)
    assert runbook.is_file(), f"no runbook {runbook.relative_to(ROOT)}"
    assert runbook.read_text().startswith(f"# {rule['alert']}\n")


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_a_rule_reads_known_metrics_by_namespace(path: Path) -> None:
    (rule,) = rules_of(path)
    names = metric_names(rule["expr"])
    assert names and names <= METRICS, f"unknown metrics: {sorted(names - METRICS)}"
    # Releases in different namespaces alert apart.
    for labels in re.findall(r"\bby\s*\(([^)]*)\)", rule["expr"]):
        assert "namespace" in labels.replace(" ", "").split(","), labels


def test_every_runbook_has_its_rule() -> None:
    alerts = {rule["alert"] for path in RULE_FILES for rule in rules_of(path)}
    assert {p.stem for p in RUNBOOKS.glob("*.md")} == alerts


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_checks_the_rule_file(promtool: str, path: Path) -> None:
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rules found" in result.stdout


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(promtool: str, path: Path) -> None:
    result = run(promtool, "test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
