"""The platform's observability on real backends: all six services as processes on
PostgreSQL and Kafka, and the cohort operator on a real API server, exporting traces to a
real Jaeger v2 and scraped by a real Prometheus that loads the alert rules of
`observability/alerts`.

A journey runs (accounts, a workshop, a quiz, a certificate, progress, a cohort); then one
progress write is one trace from the REST call through the outbox, the relay and Kafka to
the handling in analytics and certificate; every panel of every dashboard has data and is
drawn; every alert rule evaluates; and the Kafka broker stopped while events are committed
makes the outbox-age alert fire, and its return the consumer-lag alert."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.cluster import Operator, eventually, install_operator_chart, kubectl
from benchmarks.harness import free_port
from conftest import call, ok
from observability.render import render

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "observability" / "dashboards").glob("*.json"))
RULES = sorted((ROOT / "observability" / "alerts").glob("*.yaml"))
ADMIN = {"email": "admin@example.com", "password": "a long admin passphrase for tests"}
PASSWORD = "correct horse battery staple"
OPERATOR_SECRET = "operator-observability-secret-0123456789"
SERVICES = ("auth", "user_mgmt", "workshop", "quiz", "analytics", "certificate")
SCRAPE_SECONDS = 1
# Where the pictures of the journey's dashboards go besides the test's own directory, when
# set: `SUKVERSE_DASHBOARD_PICTURES=docs/dashboards` refreshes the committed ones.
PICTURES = os.environ.get("SUKVERSE_DASHBOARD_PICTURES")

pytestmark = [pytest.mark.real, pytest.mark.timeout(600)]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def promql(prometheus: str, query: str) -> list[dict[str, Any]]:
    answer = get_json(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': query})}")
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def shortened(rule_file: Path) -> str:
    """The rule file with every `for:` made short, so that a test sees an alert fire within
    seconds of its condition holding; expressions and thresholds stay as written."""
    document = yaml.safe_load(rule_file.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "2s"
    return yaml.safe_dump(document)


@dataclass
class Platform:
    urls: dict[str, str]
    services: dict[str, Any]
    prometheus: str
    jaeger: Any
    kafka: Any
    directory: Path
    operator: Operator
    kubeconfig: Path
    started: float  # when Prometheus began to scrape
    ids: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def platform(
    helm: Path,
    kubeconfig: Path,
    kafka_server: Any,
    jaeger: Any,
    create_database: Callable[[], str],
    module_launch: Callable[..., Any],
    module_prometheus: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    directory = tmp_path_factory.mktemp("observability")
    tracing = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        # Every instrumentation, aiokafka's (off by default) too; every trace kept.
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
        "SUKVERSE_LOG_LEVEL": "INFO",
    }
    common = {
        **tracing,
        "SUKVERSE_BUS": "kafka",
        "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS": kafka_server.address,
        "SUKVERSE_KAFKA_TOPIC_PREFIX": f"ob{uuid.uuid4().hex[:10]}.",
        "SUKVERSE_OUTBOX_POLL_SECONDS": "0.2",
        "SUKVERSE_ACCESS_TOKEN_TTL_SECONDS": "3600",
    }
    auth = module_launch(
        "auth",
        {
            **common,
            "SUKVERSE_DATABASE_URL": create_database(),
            "SUKVERSE_ADMIN_EMAIL": ADMIN["email"],
            "SUKVERSE_ADMIN_PASSWORD": ADMIN["password"],
            "SUKVERSE_ARGON2_MEMORY_KIB": "8192",
            "SUKVERSE_ARGON2_TIME_COST": "1",
            "SUKVERSE_LOGIN_ADDRESS_LIMIT": "100000",
            "SUKVERSE_SERVICE_CLIENTS": json.dumps(
                {"operator": OPERATOR_SECRET, "user_mgmt": OPERATOR_SECRET}
            ),
        },
        migrate=True,
    )
    services = {"auth": auth}
    for name in SERVICES[1:]:
        own = {"SUKVERSE_AUTH_CLIENT_SECRET": OPERATOR_SECRET} if name == "user_mgmt" else {}
        services[name] = module_launch(
            name,
            {
                **common,
                **own,
                "SUKVERSE_DATABASE_URL": create_database(),
                "SUKVERSE_AUTH_URL": auth.url,
            },
            migrate=True,
        )
    urls = {name: service.url for name, service in services.items()}

    operator_kubeconfig = install_operator_chart(helm, kubeconfig, directory)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SUKVERSE_", "OTEL_"))},
        **tracing,
        "KUBECONFIG": str(operator_kubeconfig),
        "SUKVERSE_DATA_DIR": str(directory),
        "SUKVERSE_OPERATOR_CLIENT_SECRET": OPERATOR_SECRET,
        "SUKVERSE_SYNC_INTERVAL_SECONDS": "2",
        "SUKVERSE_RETRY_DELAY_SECONDS": "1",
        **{f"SUKVERSE_{name.upper()}_URL": url for name, url in urls.items()},
    }
    operator = Operator(env, directory / "operator.log", free_port(), metrics_port=free_port())
    operator.start()

    rules = directory / "rules"
    rules.mkdir()
    for rule_file in RULES:
        (rules / rule_file.name).write_text(shortened(rule_file))
    jobs = {
        f"sukverse-{name.replace('_', '-')}": service.url.removeprefix("http://")
        for name, service in services.items()
    }
    jobs["sukverse-operator"] = f"127.0.0.1:{operator.metrics_port}"
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_SECONDS}s",
            "evaluation_interval": f"{SCRAPE_SECONDS}s",
        },
        "rule_files": [str(rules / "*.yaml")],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in jobs.items()
        ],
    }
    url = module_prometheus(yaml.safe_dump(config))
    platform = Platform(
        urls, services, url, jaeger, kafka_server, directory, operator, kubeconfig, time.time()
    )
    try:
        journey(platform)
        yield platform
    finally:
        # The cohorts go while their operator runs, which removes its finalizer.
        kubectl(kubeconfig, "delete", "namespace", "obs-cohorts", "--timeout=90s", check=False)
        operator.stop()


def journey(platform: Platform) -> None:
    """Accounts, a workshop with a quiz and a certificate, students' progress to a
    certificate, and a cohort through the operator: data for every panel."""
    urls, ids, tokens = platform.urls, platform.ids, platform.tokens
    admin = ok("POST", urls["auth"] + "/auth/login", ADMIN)["access_token"]

    def account(name: str, *roles: str) -> tuple[str, str]:
        email = f"{name}-{secrets.token_hex(3)}@example.com"
        user = ok(
            "POST",
            urls["auth"] + "/auth/register",
            {"email": email, "password": PASSWORD, "full_name": name.title()},
        )
        if roles:
            ok("PUT", f"{urls['auth']}/users/{user['id']}/roles", {"roles": list(roles)}, admin)
        token = ok("POST", urls["auth"] + "/auth/login", {"email": email, "password": PASSWORD})
        return user["id"], token["access_token"]

    _, teacher = account("grace", "instructor", "student")
    students = {name: account(name) for name in ("ada", "bob", "cyd")}
    workshop = ok(
        "POST",
        urls["workshop"] + "/workshops",
        {
            "title": "Kubernetes from scratch",
            "steps": [
                {"title": "Control plane", "substeps": [{"title": "etcd", "body": "Start it."}]},
                {
                    "title": "Workloads",
                    "substeps": [
                        {"title": "A pod", "body": "`kubectl run`"},
                        {"title": "A service", "body": "`kubectl expose`"},
                    ],
                },
            ],
        },
        teacher,
    )
    workshop_id = workshop["id"]
    substeps = [sub["id"] for step in workshop["steps"] for sub in step["substeps"]]
    ok(
        "POST",
        f"{urls['workshop']}/workshops/{workshop_id}/enrollments",
        {"user_ids": [user_id for user_id, _ in students.values()]},
        teacher,
    )
    quiz = ok(
        "POST",
        urls["quiz"] + "/quizzes",
        {
            "title": "Check",
            "workshop_id": workshop_id,
            "pass_mark": 60,
            "max_attempts": 2,
            "grading": "highest",
            "questions": [
                {"kind": "true_false", "prompt": "etcd holds state.", "points": 1, "answer": True}
            ],
        },
        teacher,
    )
    ok(
        "POST",
        urls["certificate"] + "/templates",
        {
            "workshop_id": workshop_id,
            "title": "Certificate of {workshop}",
            "body": "**{name}** completed *{workshop}* on {date}.",
            "criteria": {"min_completion_percent": 100, "required_quiz_ids": [quiz["id"]]},
        },
        teacher,
    )
    # Ada does everything and passes; Bob does one substep and fails the quiz; Cyd nothing.
    for name, done, answer in (("ada", 3, True), ("bob", 1, False)):
        token = students[name][1]
        for substep in substeps[:done]:
            ok(
                "POST",
                f"{urls['workshop']}/workshops/{workshop_id}/progress",
                {"substep_id": substep},
                token,
            )
        attempt = ok("POST", f"{urls['quiz']}/quizzes/{quiz['id']}/attempts", None, token)
        question = attempt["questions"][0]["id"]
        ok(
            "PUT",
            f"{urls['quiz']}/attempts/{attempt['id']}/answers",
            {"answers": [{"question_id": question, "value": answer}]},
            token,
        )
        ok("POST", f"{urls['quiz']}/attempts/{attempt['id']}/submit", None, token)
    # A few refusals, as clients make them: a 404 and a 422 in the request metrics.
    assert call("GET", f"{urls['workshop']}/workshops/{uuid.uuid4()}", token=teacher)[0] == 404
    assert call("POST", urls["workshop"] + "/workshops", {"title": ""}, teacher)[0] == 422

    def certified() -> Any:
        path = f"/certificates?workshop_id={workshop_id}"
        return ok("GET", urls["certificate"] + path, None, teacher)["items"] or None

    eventually(certified, "Ada's certificate", timeout=60)

    # A cohort through the operator: its reconcile is a trace and its metrics have data.
    kubectl(platform.kubeconfig, "create", "namespace", "obs-cohorts")
    sample = (ROOT / "k8s" / "samples" / "small-cohort.yaml").read_text()
    kubectl(
        platform.kubeconfig, "apply", "--server-side", "-n", "obs-cohorts", "-f", "-", stdin=sample
    )

    def cohort_ready() -> bool:
        body = json.loads(
            kubectl(platform.kubeconfig, "get", "cohorts", "-n", "obs-cohorts", "-o", "json").stdout
        )
        return all((c.get("status") or {}).get("phase") == "Ready" for c in body["items"])

    eventually(cohort_ready, "the sample cohort Ready", timeout=90)
    ids.update(workshop=workshop_id, substeps=substeps, quiz=quiz["id"])
    tokens.update(teacher=teacher, bob=students["bob"][1], cyd=students["cyd"][1], admin=admin)

    # Prometheus has scraped every target after all of that.
    def scraped() -> bool:
        up = promql(platform.prometheus, "up == 1")
        return len(up) == len(SERVICES) + 1

    eventually(scraped, "every target up in Prometheus", timeout=60)
    time.sleep(6 * SCRAPE_SECONDS)  # a few scrapes after the journey, for rates over it


# -- traces ---------------------------------------------------------------------------------


def jaeger_trace(platform: Platform, trace_id: str) -> dict[str, Any] | None:
    try:
        answer = get_json(f"{platform.jaeger.query_url}/api/traces/{trace_id}")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise
    found: list[dict[str, Any]] = answer.get("data") or []
    return found[0] if found else None


def spans_of(trace: dict[str, Any]) -> list[tuple[str, str, str, str | None]]:
    """(service, operation, span id, parent span id) of every span."""
    processes = {key: value["serviceName"] for key, value in trace["processes"].items()}
    found = []
    for span in trace["spans"]:
        parents = [r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
        found.append(
            (
                processes[span["processID"]],
                span["operationName"],
                span["spanID"],
                parents[0] if parents else None,
            )
        )
    return found


def test_one_progress_write_is_one_trace_through_the_outbox_kafka_and_its_consumers(
    platform: Platform,
) -> None:
    trace_id = secrets.token_hex(16)
    caller_span = secrets.token_hex(8)
    ok(
        "POST",
        f"{platform.urls['workshop']}/workshops/{platform.ids['workshop']}/progress",
        {"substep_id": platform.ids["substeps"][1]},
        platform.tokens["bob"],
        traceparent=f"00-{trace_id}-{caller_span}-01",
    )
    wanted = {
        ("workshop", "POST /workshops/{id}/progress"),
        ("workshop", "create sukverse.workshop"),
        ("workshop", "send sukverse.workshop"),
        ("analytics", "process sukverse.workshop"),
        ("certificate", "process sukverse.workshop"),
    }

    def complete() -> list[tuple[str, str, str, str | None]] | None:
        trace = jaeger_trace(platform, trace_id)
        if trace is None:
            return None
        spans = spans_of(trace)
        return spans if wanted <= {(service, name) for service, name, _, _ in spans} else None

    try:
        spans = eventually(complete, "the whole trace in Jaeger", timeout=60)
    except AssertionError:
        trace = jaeger_trace(platform, trace_id)
        seen = sorted({(s, n) for s, n, _, _ in spans_of(trace)}) if trace else "no trace"
        raise AssertionError(f"the trace misses spans; it has {seen}") from None
    by_name = {(service, name): (span, parent) for service, name, span, parent in spans}
    request, request_parent = by_name[("workshop", "POST /workshops/{id}/progress")]
    create, create_parent = by_name[("workshop", "create sukverse.workshop")]
    send, send_parent = by_name[("workshop", "send sukverse.workshop")]
    assert request_parent == caller_span  # the caller's context was taken up
    assert create_parent == request  # the outbox write happens inside the request
    assert send_parent == create  # the relay's publish joins the request's trace
    for consumer in ("analytics", "certificate"):
        _, parent = by_name[(consumer, "process sukverse.workshop")]
        assert parent == create, f"{consumer}'s handling is not a child of the event's creation"
    # The outbox row itself is written inside the create span: an INSERT of the workshop's.
    inserts = [
        name
        for service, name, _, parent in spans
        if service == "workshop" and parent == create and name.startswith("INSERT")
    ]
    assert inserts, f"no INSERT under the create span: {sorted(n for _, n, _, _ in spans)}"
    # Each consumer's Kafka client (aiokafka's instrumentation) received the record in the
    # trace too, under the send: the record carries the send's context in its headers.
    for consumer in ("analytics", "certificate"):
        received = [
            name
            for service, name, _, parent in spans
            if service == consumer and name.endswith(" receive") and parent == send
        ]
        assert received, f"{consumer} has no receive span under the send"


def test_a_trace_the_caller_dropped_is_dropped_whole(platform: Platform) -> None:
    """A caller's unsampled context is followed: no span of the request, its event or its
    consumers reaches Jaeger, while the write itself goes through."""
    dropped = secrets.token_hex(16)
    kept = secrets.token_hex(16)
    workshop = f"{platform.urls['workshop']}/workshops/{platform.ids['workshop']}"
    # Cyd's first two substeps: each a new completion, with its events.
    for substep, trace_id, flags in ((0, dropped, "00"), (1, kept, "01")):
        ok(
            "POST",
            f"{workshop}/progress",
            {"substep_id": platform.ids["substeps"][substep]},
            platform.tokens["cyd"],
            traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-{flags}",
        )

    def consumed() -> bool:
        # The kept trace's consumers exported theirs; the dropped one's went the same way.
        trace = jaeger_trace(platform, kept)
        services = {service for service, *_ in spans_of(trace)} if trace else set()
        return {"workshop", "analytics", "certificate"} <= services

    eventually(consumed, "the kept trace with its consumers", timeout=60)
    assert jaeger_trace(platform, dropped) is None


def test_the_request_log_line_carries_the_trace_and_span_ids(platform: Platform) -> None:
    trace_id = secrets.token_hex(16)
    ok(
        "GET",
        f"{platform.urls['workshop']}/workshops/{platform.ids['workshop']}",
        None,
        platform.tokens["teacher"],
        traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-01",
    )
    log_path: Path = platform.services["workshop"].log_path

    def logged() -> dict[str, Any] | None:
        for line in log_path.read_text(errors="replace").splitlines():
            if trace_id in line:
                entry: dict[str, Any] = json.loads(line)
                return entry
        return None

    entry = eventually(logged, "the request's log line", timeout=10)
    assert entry["event"] == "request" and entry["route"] == "/workshops/{id}"
    assert entry["trace_id"] == trace_id
    assert re.fullmatch(r"[0-9a-f]{16}", entry["span_id"])
    assert entry["request_id"]


def test_a_cohort_reconcile_is_a_trace_reaching_the_services(platform: Platform) -> None:
    query = urllib.parse.urlencode(
        {"service": "operator", "operation": "reconcile SukverseCohort", "limit": "20"}
    )

    def traced() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = get_json(f"{platform.jaeger.query_url}/api/traces?{query}")[
            "data"
        ]
        reaching = [
            trace
            for trace in found
            if {"workshop", "auth"} <= {service for service, *_ in spans_of(trace)}
        ]
        return reaching or None

    traces = eventually(traced, "a reconcile trace with the services' spans", timeout=60)
    spans = spans_of(traces[0])
    assert ("workshop", "POST /workshops") in {(s, n) for s, n, _, _ in spans}


# -- metrics, dashboards and alerts -----------------------------------------------------------


def test_every_target_passes_promtool_check_metrics(platform: Platform) -> None:
    import subprocess

    promtool = "/usr/bin/promtool"
    targets = [*platform.urls.values(), f"http://127.0.0.1:{platform.operator.metrics_port}"]
    for target in targets:
        with urllib.request.urlopen(target + "/metrics", timeout=10) as response:
            text = response.read()
        checked = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, check=False
        )
        assert checked.returncode == 0, f"{target}: {checked.stdout!r} {checked.stderr!r}"
        # No label holds a user id or a raw path: routes are templates, ids only workshops'.
        for line in text.decode().splitlines():
            if line.startswith("#"):
                continue
            assert "user_id" not in line, line
            for route in re.findall(r'route="([^"]*)"', line):
                assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", route), line


def draw(platform: Platform, dashboard: Path, *outputs: Path) -> None:
    """Draw the dashboard over everything Prometheus scraped; no panel may be empty."""
    model = json.loads(dashboard.read_text())
    end = time.time()
    for out in outputs:
        out.parent.mkdir(parents=True, exist_ok=True)
        report = render(
            model,
            prometheus_url=platform.prometheus,
            start=platform.started,
            end=end,
            out=out,
            scrape_interval=SCRAPE_SECONDS,
        )
        empty = [
            (panel.title, panel.queries)
            for panel in report.panels
            if panel.type not in ("row", "text") and panel.series == 0
        ]
        assert not empty, f"panels without data: {empty}"
        assert out.stat().st_size > 10_000


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda path: path.stem)
def test_every_panel_of_the_dashboard_has_data_and_is_drawn(
    platform: Platform, dashboard: Path
) -> None:
    draw(platform, dashboard, platform.directory / f"{dashboard.stem}.png")


def test_every_alert_rule_is_loaded_and_evaluates(platform: Platform) -> None:
    names = {
        rule["alert"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }

    def evaluated() -> list[dict[str, Any]] | None:
        groups = get_json(platform.prometheus + "/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        done = all(rule.get("lastEvaluation", "").startswith("20") for rule in rules)
        return rules if done and len(rules) == len(names) else None

    rules = eventually(evaluated, "every rule evaluated", timeout=30)
    assert {rule["name"] for rule in rules} == names
    broken = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert not broken
    # On a healthy platform after a journey, nothing fires.
    firing = [rule["name"] for rule in rules if rule["state"] == "firing"]
    assert not firing, firing


def alert_fired(platform: Platform, name: str) -> bool:
    found = promql(platform.prometheus, f'ALERTS{{alertname="{name}",alertstate="firing"}}')
    return bool(found)


def test_the_broker_stopped_fires_the_outbox_alert_and_its_return_the_lag_alert(
    platform: Platform,
) -> None:
    urls, teacher = platform.urls, platform.tokens["teacher"]
    # A workshop of its own takes the burst, so the journey's figures stay as they were.
    load = ok(
        "POST",
        urls["workshop"] + "/workshops",
        {"title": "Load", "steps": [{"title": "s", "substeps": [{"title": "t", "body": "."}]}]},
        teacher,
    )
    platform.kafka.stop()
    try:
        # Enrollments keep being accepted while the broker is away: 10,000 events wait in
        # the workshop's outbox.
        for _ in range(10):
            ok(
                "POST",
                f"{urls['workshop']}/workshops/{load['id']}/enrollments",
                {"user_ids": [str(uuid.uuid4()) for _ in range(1000)]},
                teacher,
            )
        eventually(
            lambda: alert_fired(platform, "SukverseOutboxStalled"),
            "SukverseOutboxStalled firing",
            timeout=240,
        )
        assert not alert_fired(platform, "SukverseConsumerLagGrowing")
    finally:
        platform.kafka.start()
    # The backlog reaches the consumers all at once: they fall behind, then catch up.
    eventually(
        lambda: (
            alert_fired(platform, "SukverseConsumerLagGrowing")
            or promql(
                platform.prometheus,
                'max_over_time(ALERTS{alertname="SukverseConsumerLagGrowing",'
                'alertstate="firing"}[5m])',
            )
        ),
        "SukverseConsumerLagGrowing firing",
        timeout=180,
    )

    def drained() -> bool:
        backlog = promql(platform.prometheus, 'sukverse_outbox_backlog{service="workshop"}')
        lag = promql(platform.prometheus, "sum(sukverse_kafka_consumer_lag)")
        return float(backlog[0]["value"][1]) == 0 and float(lag[0]["value"][1]) == 0

    eventually(drained, "the outbox drained and the consumers caught up", timeout=180)


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda path: path.stem)
def test_the_dashboards_draw_the_whole_run_with_its_outage(
    platform: Platform, dashboard: Path
) -> None:
    """After the outage: the pictures of the whole run (the committed ones, when asked)."""
    outputs = [platform.directory / f"{dashboard.stem}-run.png"]
    if PICTURES:
        outputs.append(ROOT / PICTURES / f"{dashboard.stem}.png")
    draw(platform, dashboard, *outputs)
