"""The charts' observability, rendered by the real helm: `global.tracing` as the standard
OTEL_* variables of every service and the operator (never the migration Jobs), the OTLP
headers from their Secret alone, the network policies' egress to the collector, the
operator's metrics port and PodMonitor, and the values schema's refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts import (
    NAMESPACE,
    OPERATOR_CHART,
    RELEASE,
    SERVICE_CHART,
    SERVICES,
    UMBRELLA,
    container,
    kinds,
    name,
    refused,
    render,
    run,
    template,
)

OPERATOR = f"{RELEASE}-operator"
PODMONITOR_API = "monitoring.coreos.com/v1/PodMonitor"

COLLECTOR = "http://otel-collector.monitoring:4318"
HEADERS = {"name": "otlp-headers", "key": "api-key"}
TRACING = json.dumps(
    {
        "global": {
            "tracing": {
                "otlpEndpoint": COLLECTOR,
                "headersSecret": HEADERS,
                "resourceAttributes": {"deployment.environment.name": "prod", "team": "a,b=c%"},
            }
        }
    }
)
NETWORK_POLICIES = [f'{{"{s}": {{"networkPolicy": {{"enabled": true}}}}}}' for s in SERVICES]
# External Kafka and PostgreSQL: the migration Jobs are hooks, run before anything else.
EXTERNAL = [
    '{"global": {"kafka": {"mode": "external", "external": {"bootstrapServers": "kafka:9093", '
    '"securityProtocol": "SASL_SSL"}}, "postgres": {"mode": "external"}}}',
    *(
        f'{{"{s}": {{"database": {{"existingSecret": "db-{s.replace("_", "-")}"}}, '
        f'"kafka": {{"existingSecret": "kafka-{s.replace("_", "-")}"}}}}}}'
        for s in SERVICES
    ),
]

pytestmark = pytest.mark.real


def otel(variables: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in variables.items() if k.startswith("OTEL_")}


def env(workload: dict[str, Any]) -> dict[str, Any]:
    """A container's env by name: the value, or the valueFrom reference."""
    return {
        e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload).get("env", [])
    }


def expected(deployment: str, **extra: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
        "OTEL_RESOURCE_ATTRIBUTES": (
            f"deployment.environment.name=prod,k8s.deployment.name={deployment},"
            f"k8s.namespace.name={NAMESPACE},team=a%2Cb%3Dc%25"
        ),
        **extra,
    }


SECRET_REF = {"secretKeyRef": HEADERS}


def test_with_tracing_off_nothing_otel_is_rendered(helm: Path) -> None:
    everything = [
        *NETWORK_POLICIES,
        '{"operator": {"podMonitor": {"enabled": true}}}',
        '{"global": {"tracing": {"headersSecret": {"name": "otlp-headers"}}}}',
    ]
    for sets in ([], everything, EXTERNAL):
        rendered = template(helm, *sets, apis=PODMONITOR_API)
        assert "OTEL_" not in rendered
        assert "otlp-headers" not in rendered
    assert "OTEL_" not in template(helm, chart=OPERATOR_CHART)
    lint_values = ["-f", str(SERVICE_CHART / "ci" / "lint-values.yaml")]
    result = run(helm, "template", RELEASE, str(SERVICE_CHART), *lint_values)
    assert result.returncode == 0, result.stderr
    assert "OTEL_" not in result.stdout


def test_with_tracing_on_every_service_and_the_operator_get_exactly_the_otel_variables(
    helm: Path,
) -> None:
    documents = render(helm, TRACING)
    config_maps = kinds(documents, "ConfigMap")
    deployments = kinds(documents, "Deployment")
    for service in SERVICES:
        assert otel(config_maps[name(service)]["data"]) == expected(name(service)), service
        # The ConfigMap's settings are the pod's environment; only the headers are its own.
        assert otel(env(deployments[name(service)])) == {"OTEL_EXPORTER_OTLP_HEADERS": SECRET_REF}
        assert container(deployments[name(service)])["envFrom"] == [
            {"configMapRef": {"name": name(service)}}
        ]
    assert otel(env(deployments[OPERATOR])) == expected(
        OPERATOR, OTEL_EXPORTER_OTLP_HEADERS=SECRET_REF
    )
    # The service's name is left to the code (`workshop`, `operator`, ...).
    assert "OTEL_SERVICE_NAME" not in json.dumps(documents)


def test_the_variables_are_what_the_opentelemetry_sdk_reads(
    helm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rendered sampler and resource attributes, as the SDK parses them: the encoded
    attribute value comes back as written in the values."""
    from opentelemetry.sdk.resources import OTELResourceDetector
    from opentelemetry.sdk.trace import TracerProvider

    from sukverse_common import tracing

    settings = kinds(render(helm, TRACING), "ConfigMap")[name("quiz")]["data"]
    for key, value in otel(settings).items():
        monkeypatch.setenv(key, value)
    assert tracing.wanted()
    assert dict(OTELResourceDetector().detect().attributes) == {
        "deployment.environment.name": "prod",
        "team": "a,b=c%",
        "k8s.namespace.name": NAMESPACE,
        "k8s.deployment.name": name("quiz"),
    }
    sampler = TracerProvider().sampler.get_description()
    assert sampler.startswith("ParentBased{root:TraceIdRatioBased{0.01}")


RATIO = "parentbased_traceidratio"


@pytest.mark.parametrize(
    ("tracing", "sampler"),
    [
        ({"samplerArg": 1}, {"OTEL_TRACES_SAMPLER": RATIO, "OTEL_TRACES_SAMPLER_ARG": "1"}),
        ({"samplerArg": 0.25}, {"OTEL_TRACES_SAMPLER": RATIO, "OTEL_TRACES_SAMPLER_ARG": "0.25"}),
        ({"samplerArg": 0}, {"OTEL_TRACES_SAMPLER": RATIO, "OTEL_TRACES_SAMPLER_ARG": "0"}),
        (
            {"sampler": "traceidratio", "samplerArg": "1.0"},
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.0"},
        ),
        ({"sampler": "always_on"}, {"OTEL_TRACES_SAMPLER": "always_on"}),
        ({"sampler": "parentbased_always_off"}, {"OTEL_TRACES_SAMPLER": "parentbased_always_off"}),
    ],
)
def test_the_sampler_argument_goes_with_the_ratio_samplers_alone(
    helm: Path, tracing: dict[str, Any], sampler: dict[str, str]
) -> None:
    values = json.dumps({"global": {"tracing": {"otlpEndpoint": COLLECTOR, **tracing}}})
    documents = render(helm, values)
    for variables in (
        kinds(documents, "ConfigMap")[name("workshop")]["data"],
        env(kinds(documents, "Deployment")[OPERATOR]),
    ):
        assert {k: v for k, v in variables.items() if "SAMPLER" in k} == sampler


def test_the_charts_alone_default_as_the_umbrella_does(helm: Path) -> None:
    """The service and operator charts on their own fall back to the umbrella's defaults."""
    umbrella = yaml.safe_load((UMBRELLA / "values.yaml").read_text())["global"]["tracing"]
    defaults = {
        "OTEL_TRACES_SAMPLER": umbrella["sampler"],
        "OTEL_TRACES_SAMPLER_ARG": umbrella["samplerArg"],
    }
    only_endpoint = json.dumps({"global": {"tracing": {"otlpEndpoint": COLLECTOR}}})
    service = render(
        helm,
        '{"service": "workshop", "database": {"existingSecret": "db"}}',
        only_endpoint,
        chart=SERVICE_CHART,
    )
    settings = otel(kinds(service, "ConfigMap")[name("workshop")]["data"])
    assert {k: settings[k] for k in defaults} == defaults
    assert settings["OTEL_RESOURCE_ATTRIBUTES"] == (
        f"k8s.deployment.name={name('workshop')},k8s.namespace.name={NAMESPACE}"
    )
    (operator,) = kinds(render(helm, only_endpoint, chart=OPERATOR_CHART), "Deployment").values()
    variables = otel(env(operator))
    assert {k: variables[k] for k in defaults} == defaults
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in variables


def test_the_otlp_headers_come_from_their_secret_and_never_a_config_map(helm: Path) -> None:
    documents = render(helm, TRACING)
    for config_map in kinds(documents, "ConfigMap").values():
        assert "OTEL_EXPORTER_OTLP_HEADERS" not in (config_map.get("data") or {})
        assert HEADERS["name"] not in json.dumps(config_map)
    for deployment in kinds(documents, "Deployment").values():
        (headers,) = [
            e for e in container(deployment)["env"] if e["name"] == "OTEL_EXPORTER_OTLP_HEADERS"
        ]
        assert headers == {"name": "OTEL_EXPORTER_OTLP_HEADERS", "valueFrom": SECRET_REF}
    # Without a Secret, no headers at all.
    plain = render(helm, json.dumps({"global": {"tracing": {"otlpEndpoint": COLLECTOR}}}))
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in json.dumps(plain)
    assert "secretKeyRef" not in json.dumps(plain)


def test_the_migration_jobs_get_no_tracing(helm: Path) -> None:
    for documents in (
        render(helm, TRACING, *NETWORK_POLICIES),
        render(helm, *EXTERNAL, TRACING, *NETWORK_POLICIES),
    ):
        jobs = kinds(documents, "Job")
        assert len(jobs) == len(SERVICES)
        for job in jobs.values():
            assert not otel(env(job))
            assert "OTEL_" not in json.dumps(job)
        for service in SERVICES:
            migration = kinds(documents, "NetworkPolicy")[f"{name(service)}-migration"]
            ports = [p["port"] for rule in migration["spec"]["egress"] for p in rule["ports"]]
            assert 4318 not in ports


def egress(documents: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = kinds(documents, "NetworkPolicy")[name(service)]["spec"]["egress"]
    return rules


def test_network_policies_let_the_pods_reach_the_collector_only_with_tracing_on(
    helm: Path,
) -> None:
    peers = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "opentelemetry-collector"}},
        }
    ]
    off = render(helm, *NETWORK_POLICIES)
    on = render(
        helm,
        *NETWORK_POLICIES,
        TRACING,
        json.dumps({"global": {"tracing": {"egressTo": peers}}}),
    )
    to_collector = {"to": peers, "ports": [{"port": 4318, "protocol": "TCP"}]}
    for service in SERVICES:
        assert to_collector not in egress(off, service)
        # Exactly one more rule than without tracing: the collector's.
        assert egress(on, service) == [*egress(off, service), to_collector], service
    # Peers listed nowhere: the collector's port, anywhere; a URL without a port: its
    # scheme's.
    for endpoint, port in (
        (COLLECTOR, 4318),
        ("https://otlp.example.com", 443),
        ("http://otel-collector/", 80),
        ("https://otlp.example.com:4443/otlp", 4443),
    ):
        documents = render(
            helm,
            *NETWORK_POLICIES,
            json.dumps({"global": {"tracing": {"otlpEndpoint": endpoint}}}),
        )
        for service in SERVICES:
            assert egress(documents, service) == [
                *egress(off, service),
                {"ports": [{"port": port, "protocol": "TCP"}]},
            ], (endpoint, service)
    # Tracing on and no network policy asked for: none rendered.
    assert not kinds(render(helm, TRACING), "NetworkPolicy")


def test_the_operator_serves_metrics_on_its_port_and_is_scraped_when_asked(
    helm: Path,
) -> None:
    def operator(*sets: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        documents = render(helm, *sets, chart=OPERATOR_CHART, apis=PODMONITOR_API)
        (deployment,) = kinds(documents, "Deployment").values()
        return deployment, list(kinds(documents, "PodMonitor").values())

    deployment, monitors = operator()
    main = container(deployment)
    assert "--metrics=0.0.0.0:8081" in main["args"]
    assert {"name": "metrics", "containerPort": 8081, "protocol": "TCP"} in main["ports"]
    assert not monitors

    deployment, monitors = operator(
        '{"metrics": {"port": 9464}}',
        '{"podMonitor": {"enabled": true, "interval": "15s", "labels": {"release": "kps"}}}',
    )
    main = container(deployment)
    assert [a for a in main["args"] if a.startswith("--metrics")] == ["--metrics=0.0.0.0:9464"]
    assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in main["ports"]
    (monitor,) = monitors
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"] == deployment["spec"]["selector"]
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s"}
    ]

    deployment, monitors = operator('{"metrics": {"enabled": false}}')
    main = container(deployment)
    assert not [a for a in main["args"] if a.startswith("--metrics")]
    assert [p["name"] for p in main["ports"]] == ["health"]
    assert not monitors

    alone = refused(
        helm,
        '{"metrics": {"enabled": false}, "podMonitor": {"enabled": true}}',
        chart=OPERATOR_CHART,
    )
    assert "podMonitor.enabled needs metrics.enabled" in alone
    clash = refused(helm, '{"metrics": {"port": 8080}}', chart=OPERATOR_CHART)
    assert "metrics.port must differ from healthPort" in clash


def test_the_umbrella_passes_the_podmonitor_switch_to_the_operator(helm: Path) -> None:
    """As each service's `serviceMonitor`, the operator's `podMonitor` is asked for by name."""
    assert not kinds(render(helm, apis=PODMONITOR_API), "PodMonitor")
    documents = render(
        helm,
        '{"operator": {"podMonitor": {"enabled": true, "labels": {"release": "kps"}}}}',
    )
    (monitor,) = kinds(documents, "PodMonitor").values()
    operator = kinds(documents, "Deployment")[OPERATOR]
    assert monitor["metadata"]["name"] == OPERATOR
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"] == operator["spec"]["selector"]
    assert "--metrics=0.0.0.0:8081" in container(operator)["args"]
    assert not kinds(
        render(helm, '{"operator": {"enabled": false, "podMonitor": {"enabled": true}}}'),
        "PodMonitor",
    )


def test_the_charts_lint_strictly_with_tracing_on(helm: Path) -> None:
    tracing = [
        "--set-json",
        TRACING,
        "--set-json",
        '{"global": {"tracing": {"egressTo": [{"namespaceSelector": {}}]}}}',
    ]
    for args in (
        [str(UMBRELLA), *tracing, "--set-json", NETWORK_POLICIES[0]],
        [
            str(UMBRELLA),
            *tracing,
            "--set-json",
            '{"operator": {"podMonitor": {"enabled": true}}}',
        ],
        [
            str(SERVICE_CHART),
            "-f",
            str(SERVICE_CHART / "ci" / "lint-values.yaml"),
            *tracing,
            "--set-json",
            '{"networkPolicy": {"enabled": true}}',
        ],
        [str(OPERATOR_CHART), *tracing, "--set-json", '{"podMonitor": {"enabled": true}}'],
    ):
        result = run(helm, "lint", "--strict", *args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 chart(s) failed" in result.stdout


def test_the_tracing_schema_is_the_same_in_the_umbrella_and_the_operator_chart() -> None:
    """The operator chart checks `global.tracing` on its own as the umbrella does."""

    def tracing(chart: Path) -> Any:
        schema = json.loads((chart / "values.schema.json").read_text())
        return schema["properties"]["global"]["properties"]["tracing"]

    assert tracing(UMBRELLA) == tracing(OPERATOR_CHART)


def tracing_values(**tracing: Any) -> str:
    return json.dumps({"global": {"tracing": tracing}})


ENDPOINT = "/global/tracing/otlpEndpoint"


@pytest.mark.parametrize(
    ("chart", "values", "field"),
    [
        (UMBRELLA, tracing_values(otlpEndpoint="otel-collector:4318"), ENDPOINT),
        (UMBRELLA, tracing_values(otlpEndpoint="grpc://collector:4317"), ENDPOINT),
        (UMBRELLA, tracing_values(otlpEndpoint="http://collector:65536"), ENDPOINT),
        (UMBRELLA, tracing_values(otlpEndpoint="http://user@collector:4318"), ENDPOINT),
        (OPERATOR_CHART, tracing_values(otlpEndpoint="collector"), ENDPOINT),
        (UMBRELLA, tracing_values(sampler="jaeger_remote"), "/global/tracing/sampler"),
        (UMBRELLA, tracing_values(samplerArg="1.5"), "/global/tracing/samplerArg"),
        (UMBRELLA, tracing_values(samplerArg=-0.1), "/global/tracing/samplerArg"),
        (
            UMBRELLA,
            tracing_values(headersSecret={"name": "OTLP_Headers"}),
            "/global/tracing/headersSecret/name",
        ),
        # helm names the key, not where it is, for a property name.
        (UMBRELLA, tracing_values(resourceAttributes={"a,b": "c"}), "invalid propertyName 'a,b'"),
        (
            UMBRELLA,
            tracing_values(endpoint="http://collector:4318"),
            "additional properties 'endpoint' not allowed",
        ),
        (UMBRELLA, '{"operator": {"metrics": {"port": 70000}}}', "/metrics/port': maximum"),
        (OPERATOR_CHART, '{"metrics": {"port": 0}}', "/metrics/port': minimum"),
        (OPERATOR_CHART, '{"metrics": {"port": "8081"}}', "/metrics/port': got string"),
        (OPERATOR_CHART, '{"metrics": {"enabled": "yes"}}', "/metrics/enabled"),
        (OPERATOR_CHART, '{"podMonitor": {"interval": "30"}}', "/podMonitor/interval"),
        (OPERATOR_CHART, '{"podMonitor": {"labels": {"a": 1}}}', "/podMonitor/labels/a"),
    ],
)
def test_the_schema_refuses_bad_values_by_field(
    helm: Path, chart: Path, values: str, field: str
) -> None:
    error = refused(helm, values, chart=chart)
    assert "values don't meet the specifications of the schema" in error
    assert field in error
