"""The umbrella chart `sukverse` and the service chart, rendered by the real helm: lint, what
each scenario renders (defaults, external Kafka and PostgreSQL, autoscaling, network
policies, the operator off), the Kafka ACLs held to the services' own event consumers, the
generated keys read by the services' own loaders, and the values schema's refusals."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts import (
    CHARTS,
    NAMESPACE,
    RELEASE,
    ROOT,
    SERVICE_CHART,
    SERVICES,
    UMBRELLA,
    container,
    kinds,
    name,
    refused,
    render,
    run,
)

PORTS = dict(zip(SERVICES, range(8000, 8006), strict=True))

pytestmark = pytest.mark.real


PROMETHEUS_RULES = "monitoring.coreos.com/v1/PrometheusRule"


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(deployment).get("env", [])}


def mounted(pod: dict[str, Any]) -> set[tuple[str, str]]:
    """The (Secret, key) pairs of a pod's projected secret volume."""
    return {
        (source["secret"]["name"], item["key"])
        for volume in pod["volumes"]
        if "projected" in volume
        for source in volume["projected"]["sources"]
        for item in source["secret"]["items"]
    }


EXTERNAL = [
    '{"global": {"kafka": {"mode": "external", "external": {"bootstrapServers": '
    '"kafka-0.kafka:9093,kafka-1.kafka:9093", "securityProtocol": "SASL_SSL", '
    '"caSecret": {"name": "kafka-ca"}}}, "postgres": {"mode": "external"}}}',
    *(
        f'{{"{s}": {{"database": {{"existingSecret": "db-{s.replace("_", "-")}"}}, '
        f'"kafka": {{"existingSecret": "kafka-{s.replace("_", "-")}"}}}}}}'
        for s in SERVICES
    ),
]


def test_every_chart_lints_strictly(helm: Path) -> None:
    for args in (
        [str(UMBRELLA)],
        [str(SERVICE_CHART), "-f", str(SERVICE_CHART / "ci" / "lint-values.yaml")],
        [str(CHARTS / "sukverse-operator")],
    ):
        result = run(helm, "lint", "--strict", *args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 chart(s) failed" in result.stdout


def test_the_defaults_render_the_platform_on_strimzi_and_cloudnativepg(helm: Path) -> None:
    documents = render(helm)
    deployments = kinds(documents, "Deployment")
    assert set(deployments) == {*(name(s) for s in SERVICES), f"{RELEASE}-operator"}
    services = kinds(documents, "Service")
    assert {n: s["spec"]["ports"][0]["port"] for n, s in services.items()} == {
        name(s): p for s, p in PORTS.items()
    }
    assert set(kinds(documents, "Cluster")) == {f"{name(s)}-db" for s in SERVICES}
    assert set(kinds(documents, "Kafka")) == {f"{RELEASE}-kafka"}
    (pool,) = kinds(documents, "KafkaNodePool").values()
    assert pool["spec"]["roles"] == ["controller", "broker"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == f"{RELEASE}-kafka"
    assert set(kinds(documents, "KafkaUser")) == {name(s) for s in SERVICES}
    assert set(kinds(documents, "PodDisruptionBudget")) == set(deployments)
    assert not kinds(documents, "HorizontalPodAutoscaler")
    assert not kinds(documents, "NetworkPolicy")
    for service in SERVICES:
        deployment = deployments[name(service)]
        pod = deployment["spec"]["template"]["spec"]
        main = container(deployment)
        assert main["args"] == ["serve", service]
        assert main["ports"][0]["containerPort"] == PORTS[service]
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert main["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert main["resources"]["requests"] and main["resources"]["limits"]["memory"]
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert main["securityContext"]["allowPrivilegeEscalation"] is False
        assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        settings = kinds(documents, "ConfigMap")[name(service)]["data"]
        assert settings["SUKVERSE_MODE"] == "cluster"
        assert settings["SUKVERSE_PORT"] == str(PORTS[service])
        assert settings["SUKVERSE_AUTH_URL"] == f"http://{name('auth')}:8000"
        assert (
            settings["SUKVERSE_KAFKA_BOOTSTRAP_SERVERS"] == f"{RELEASE}-kafka-kafka-bootstrap:9093"
        )
        assert settings["SUKVERSE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert settings["SUKVERSE_KAFKA_SASL_USERNAME"] == name(service)
        assert settings["SUKVERSE_KAFKA_CREATE_TOPICS"] == "false"
        env = env_of(deployment)
        secrets = "/var/run/secrets/sukverse"
        assert env["SUKVERSE_DATABASE_URL_FILE"] == f"{secrets}/{name(service)}-db-app/uri"
        assert env["SUKVERSE_KAFKA_SASL_PASSWORD_FILE"] == f"{secrets}/{name(service)}/password"
        assert (
            env["SUKVERSE_KAFKA_SSL_CAFILE"] == f"{secrets}/{RELEASE}-kafka-cluster-ca-cert/ca.crt"
        )
        assert {(f"{name(service)}-db-app", "uri"), (name(service), "password")} <= mounted(pod)
        assert not any("secretKeyRef" in str(e) for e in main.get("env", []))
    auth = deployments[name("auth")]
    assert mounted(auth["spec"]["template"]["spec"]) >= {
        (f"{RELEASE}-signing-keys", "auth.pem"),
        (f"{RELEASE}-machine-clients", "clients.json"),
        (f"{RELEASE}-admin", "password"),
    }
    auth_settings = kinds(documents, "ConfigMap")[name("auth")]["data"]
    assert auth_settings["SUKVERSE_ADMIN_EMAIL"]
    # Hashing processes as many as the node's CPUs would not fit the pod's memory limit.
    assert auth_settings["SUKVERSE_HASH_WORKERS"] == "2"
    certificate = kinds(documents, "ConfigMap")[name("certificate")]["data"]
    assert certificate["SUKVERSE_PUBLIC_BASE_URL"] == f"http://{name('certificate')}:8005"
    assert env_of(deployments[name("user_mgmt")])["SUKVERSE_AUTH_CLIENT_SECRET_FILE"].endswith(
        f"{RELEASE}-machine-clients/user_mgmt"
    )
    operator = deployments[f"{RELEASE}-operator"]
    assert env_of(operator)["SUKVERSE_QUIZ_URL"] == f"http://{name('quiz')}:8003"
    (secret_volume,) = [v for v in operator["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert secret_volume["secret"]["secretName"] == f"{RELEASE}-machine-clients"
    assert secret_volume["secret"]["items"][0]["key"] == "operator"


def test_migrations_run_before_the_pods_and_never_wait_on_what_the_release_creates(
    helm: Path,
) -> None:
    """A pre-install hook runs before the release's objects exist: while the release's own
    CloudNativePG cluster's Secret does not exist (here, with no cluster to look it up in,
    even on an upgrade) the Job is an ordinary object; with an external database it is a
    pre-install,pre-upgrade hook whose pod needs nothing of the release (no ConfigMap,
    ServiceAccount or Kafka user). The lookup itself is proven on the API server."""
    for upgrade in (False, True):
        plain = kinds(render(helm, upgrade=upgrade), "Job")
        assert len(plain) == len(SERVICES)
        assert all("annotations" not in job["metadata"] for job in plain.values())
    assert set(kinds(render(helm), "Job")) == {f"{name(s)}-migrate-1" for s in SERVICES}
    for documents in (render(helm, *EXTERNAL, upgrade=True), render(helm, *EXTERNAL)):
        jobs = kinds(documents, "Job")
        assert len(jobs) == len(SERVICES)
        for job in jobs.values():
            annotations = job["metadata"]["annotations"]
            assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
            assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
            pod = job["spec"]["template"]["spec"]
            (migrate,) = pod["containers"]
            assert migrate["args"][0] == "migrate"
            assert "envFrom" not in migrate and "serviceAccountName" not in pod
            assert pod["automountServiceAccountToken"] is False
            assert {e["name"] for e in migrate["env"]} == {
                "SUKVERSE_MODE",
                "SUKVERSE_DATA_DIR",
                "SUKVERSE_DATABASE_URL_FILE",
            }
            labels = job["spec"]["template"]["metadata"]["labels"]
            assert labels["app.kubernetes.io/component"] == "migration"
            assert labels["app.kubernetes.io/name"].endswith("-migration")


def test_kafka_acls_allow_exactly_what_each_service_produces_and_consumes(helm: Path) -> None:
    """Held to the code: the contracts' producing services, each event consumer's topics
    and the topics every service listens to."""
    from conftest import consumed_by, listened, producers
    from sukverse_common.events.contracts import topic_of

    producing = producers()
    consumed = {service: consumed_by(service) for service in SERVICES}
    prefix = "t1."
    documents = render(helm, f'{{"global": {{"kafka": {{"topicPrefix": "{prefix}"}}}}}}')
    topics = {t["spec"]["topicName"] for t in kinds(documents, "KafkaTopic").values()}
    assert topics == {f"{prefix}{topic_of(p)}{s}" for p in producing for s in ("", ".dlq")} | {
        prefix + topic for topic in listened()
    }
    for service in SERVICES:
        user = kinds(documents, "KafkaUser")[name(service)]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        granted = {
            (acl["resource"]["type"], acl["resource"]["name"], op)
            for acl in user["spec"]["authorization"]["acls"]
            for op in acl["operations"]
        }
        expected = set()
        if service in producing:
            expected |= {("topic", prefix + topic_of(service), op) for op in ("Write", "Describe")}
        for topic in consumed[service]:
            expected |= {("topic", prefix + topic, op) for op in ("Read", "Describe")}
            expected |= {("topic", f"{prefix}{topic}.dlq", op) for op in ("Write", "Describe")}
        for topic, writer in listened().items():
            expected |= {("topic", prefix + topic, op) for op in ("Read", "Describe")}
            if writer == service:
                expected.add(("topic", prefix + topic, "Write"))
        if consumed[service]:
            expected.add(("group", prefix + service, "Read"))
        assert granted == expected, service
        settings = kinds(documents, "ConfigMap")[name(service)]["data"]
        assert settings["SUKVERSE_KAFKA_TOPIC_PREFIX"] == prefix


def test_tls_client_certificates_replace_scram(helm: Path) -> None:
    documents = render(helm, '{"global": {"kafka": {"strimzi": {"authentication": "tls"}}}}')
    (kafka,) = kinds(documents, "Kafka").values()
    assert kafka["spec"]["kafka"]["listeners"][0]["authentication"]["type"] == "tls"
    deployment = kinds(documents, "Deployment")[name("quiz")]
    env = env_of(deployment)
    assert env["SUKVERSE_KAFKA_SSL_CERTFILE"].endswith(f"/{name('quiz')}/user.crt")
    assert env["SUKVERSE_KAFKA_SSL_KEYFILE"].endswith(f"/{name('quiz')}/user.key")
    assert "SUKVERSE_KAFKA_SASL_PASSWORD_FILE" not in env
    assert (
        kinds(documents, "ConfigMap")[name("quiz")]["data"]["SUKVERSE_KAFKA_SECURITY_PROTOCOL"]
        == "SSL"
    )


def test_external_kafka_and_postgresql_render_no_strimzi_or_cloudnativepg(helm: Path) -> None:
    documents = render(helm, *EXTERNAL)
    for kind in ("Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster"):
        assert not kinds(documents, kind), kind
    for service in SERVICES:
        deployment = kinds(documents, "Deployment")[name(service)]
        settings = kinds(documents, "ConfigMap")[name(service)]["data"]
        assert (
            settings["SUKVERSE_KAFKA_BOOTSTRAP_SERVERS"] == "kafka-0.kafka:9093,kafka-1.kafka:9093"
        )
        assert settings["SUKVERSE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert "SUKVERSE_KAFKA_SASL_USERNAME" not in settings
        dashed = service.replace("_", "-")
        assert mounted(deployment["spec"]["template"]["spec"]) >= {
            (f"db-{dashed}", "uri"),
            (f"kafka-{dashed}", "username"),
            (f"kafka-{dashed}", "password"),
            ("kafka-ca", "ca.crt"),
        }
    missing = refused(helm, *EXTERNAL[:1])
    assert "database.existingSecret is required" in missing


def test_autoscaling_replaces_the_replica_count(helm: Path) -> None:
    documents = render(helm, '{"workshop": {"autoscaling": {"enabled": true, "maxReplicas": 9}}}')
    (hpa,) = kinds(documents, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == name("workshop")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 9)
    deployments = kinds(documents, "Deployment")
    assert "replicas" not in deployments[name("workshop")]["spec"]
    assert deployments[name("quiz")]["spec"]["replicas"] == 2


def test_network_policies_allow_only_what_a_service_needs(helm: Path) -> None:
    on = '{"networkPolicy": {"enabled": true}}'
    documents = render(helm, *(f'{{"{s}": {on}}}' for s in SERVICES))
    policies = kinds(documents, "NetworkPolicy")
    assert set(policies) == {n for s in SERVICES for n in (name(s), f"{name(s)}-migration")}
    # The migration pod may reach its database and DNS alone, made with its Job: an
    # ordinary object beside the first install's Job, a hook before a hook Job.
    migration = policies[f"{name('quiz')}-migration"]
    assert migration["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == (
        "quiz-migration"
    )
    assert "ingress" not in migration["spec"]
    assert "annotations" not in migration["metadata"]
    (db,) = [r for r in migration["spec"]["egress"] if r["ports"][0]["port"] == 5432]
    assert db["to"] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": f"{name('quiz')}-db"}}}]
    hooked = kinds(
        render(helm, *EXTERNAL, *(f'{{"{s}": {on}}}' for s in SERVICES)), "NetworkPolicy"
    )
    annotations = hooked[f"{name('quiz')}-migration"]["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(annotations["helm.sh/hook-weight"]) < 0
    policy = policies[name("analytics")]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "analytics"
    (ingress,) = policy["ingress"]
    assert ingress["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": RELEASE}}}
    ]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    monitored = render(
        helm,
        '{"analytics": {"networkPolicy": {"enabled": true}, "serviceMonitor": {"enabled": true}}}',
    )
    scraped = kinds(monitored, "NetworkPolicy")[name("analytics")]["spec"]["ingress"]
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    assert scraped[1]["from"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": prometheus}}
    ]
    peers = [peer for rule in policy["egress"] for peer in rule["to"]]
    assert {"podSelector": {"matchLabels": {"cnpg.io/cluster": f"{name('analytics')}-db"}}} in peers
    assert {
        "podSelector": {
            "matchLabels": {"strimzi.io/cluster": f"{RELEASE}-kafka", "strimzi.io/kind": "Kafka"}
        }
    } in peers


def test_the_operator_follows_the_services_ports(helm: Path) -> None:
    documents = render(helm, '{"global": {"ports": {"quiz": 9003}}}')
    operator = env_of(kinds(documents, "Deployment")[f"{RELEASE}-operator"])
    assert operator["SUKVERSE_QUIZ_URL"] == f"http://{name('quiz')}:9003"
    assert kinds(documents, "Service")[name("quiz")]["spec"]["ports"][0]["port"] == 9003


def test_the_operator_can_be_left_out(helm: Path) -> None:
    documents = render(helm, '{"operator": {"enabled": false}}')
    assert f"{RELEASE}-operator" not in kinds(documents, "Deployment")
    assert not kinds(documents, "ClusterRole") and not kinds(documents, "ClusterKopfPeering")
    assert kinds(documents, "Secret")[f"{RELEASE}-machine-clients"]


def test_service_monitors_when_asked(helm: Path) -> None:
    documents = render(
        helm, '{"quiz": {"serviceMonitor": {"enabled": true, "labels": {"release": "kps"}}}}'
    )
    (monitor,) = kinds(documents, "ServiceMonitor").values()
    assert monitor["metadata"]["labels"]["release"] == "kps"
    # honorLabels keeps the service's own `service` label, which dashboards and alerts use.
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "honorLabels": True}
    ]
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "quiz"


def test_generated_secrets_are_what_the_services_read(helm: Path, tmp_path: Path) -> None:
    """The keys Helm generates load with auth's and certificate's own loaders, and the
    machine clients' list is auth's setting, each client's secret matching it."""
    from sukverse_auth.settings import AuthSettings
    from sukverse_auth.tokens import SigningKeys
    from sukverse_certificate.badges import BadgeKeys

    secrets = kinds(render(helm), "Secret")

    def data(secret: str, key: str) -> bytes:
        return base64.b64decode(secrets[f"{RELEASE}-{secret}"]["data"][key])

    (tmp_path / "auth.pem").write_bytes(data("signing-keys", "auth.pem"))
    (tmp_path / "certificate.pem").write_bytes(data("signing-keys", "certificate.pem"))
    assert len(SigningKeys.from_file(tmp_path / "auth.pem").jwks()["keys"]) == 1
    assert BadgeKeys.from_file(tmp_path / "certificate.pem").active.is_private
    (tmp_path / "clients.json").write_bytes(data("machine-clients", "clients.json"))
    clients = AuthSettings.model_validate(
        {"service_clients": json.loads((tmp_path / "clients.json").read_text())}
    ).service_clients
    assert set(clients) == {"user_mgmt", "operator"}
    for client in clients:
        assert clients[client].get_secret_value() == data("machine-clients", client).decode()
        assert len(clients[client].get_secret_value()) >= 40
    assert len(data("admin", "password")) >= 24
    again = kinds(render(helm), "Secret")
    assert again[f"{RELEASE}-admin"]["data"] != secrets[f"{RELEASE}-admin"]["data"]


def test_existing_secrets_are_used_and_none_generated(helm: Path) -> None:
    documents = render(
        helm,
        '{"global": {"secrets": {"signingKeys": {"existingSecret": "my-keys"}, '
        '"machineClients": {"existingSecret": "my-clients"}, '
        '"admin": {"existingSecret": "my-admin"}}}}',
    )
    assert not kinds(documents, "Secret")
    auth = kinds(documents, "Deployment")[name("auth")]["spec"]["template"]["spec"]
    assert {("my-keys", "auth.pem"), ("my-clients", "clients.json"), ("my-admin", "password")} <= (
        mounted(auth)
    )
    operator = kinds(documents, "Deployment")[f"{RELEASE}-operator"]["spec"]["template"]["spec"]
    assert [v["secret"]["secretName"] for v in operator["volumes"] if "secret" in v] == [
        "my-clients"
    ]


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    """The charts with the files they link to, to add a dashboard without touching the tree."""
    for part in ("charts", "observability", "crds"):
        shutil.copytree(ROOT / part, tmp_path / part, symlinks=True)
    return tmp_path


def test_dashboards_and_alerts_are_packaged_from_observability(
    helm: Path, chart_copy: Path
) -> None:
    dashboard = {"uid": "sukverse-test", "title": "Test", "panels": []}
    (chart_copy / "observability" / "dashboards" / "platform.json").write_text(
        json.dumps(dashboard)
    )
    documents = render(helm, chart=chart_copy / "charts" / "sukverse", apis=PROMETHEUS_RULES)
    config_map = kinds(documents, "ConfigMap")[f"{RELEASE}-dashboard-platform"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["platform.json"]) == dashboard
    (rule,) = kinds(documents, "PrometheusRule").values()
    # Every rule file, one alert each, in one PrometheusRule; their promtool unit tests
    # (alerts/tests/) are not rules. tests/test_alerts.py checks the rules themselves.
    files = sorted((ROOT / "observability" / "alerts").glob("*.yaml"))
    groups = [group for path in files for group in yaml.safe_load(path.read_text())["groups"]]
    assert groups and rule["spec"]["groups"] == groups
    alerts = [r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert len(alerts) == len(set(alerts)) == len(files)
    off = render(
        helm,
        '{"observability": {"dashboards": {"enabled": false}, "alerts": {"enabled": false}}}',
        chart=chart_copy / "charts" / "sukverse",
        apis=PROMETHEUS_RULES,
    )
    assert not kinds(off, "PrometheusRule")
    # A cluster without the Prometheus operator's API gets no PrometheusRule, which it
    # would refuse, failing the whole release.
    assert not kinds(render(helm), "PrometheusRule")
    assert not [n for n in kinds(off, "ConfigMap") if "dashboard" in n]


def test_notes_tell_how_to_reach_each_api_and_what_to_do_next(helm: Path) -> None:
    result = run(
        helm, "install", RELEASE, str(UMBRELLA), "--namespace", NAMESPACE, "--dry-run=client"
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    for service, port in PORTS.items():
        assert f"service/{name(service)} {port}:{port}" in notes
    assert f"secret -n {NAMESPACE} {RELEASE}-admin" in notes
    assert "kubectl apply -n learn -f k8s/samples/small-cohort.yaml" in notes
    assert (ROOT / "k8s" / "samples" / "small-cohort.yaml").exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ('{"global": {"kafka": {"mode": "kraft"}}}', "/global/kafka/mode': value must be one of"),
        (
            '{"global": {"kafka": {"strimzi": {"authentication": "plain"}}}}',
            "/global/kafka/strimzi/authentication': value must be one of",
        ),
        ('{"global": {"postgres": {"cloudnativepg": {"instances": 0}}}}', "instances': minimum"),
        ('{"global": {"postgres": {"cloudnativepg": {"storage": {"size": "5GB"}}}}}', "size"),
        ('{"global": {"ports": {"auth": 70000}}}', "/global/ports/auth': maximum"),
        ('{"quiz": {"replicas": -1}}', "/replicas': minimum: got -1"),
        ('{"quiz": {"autoscaling": {"targetCPUUtilizationPercentage": 0}}}', "minimum"),
        ('{"quiz": {"settings": {"log_level": "DEBUG"}}}', "log_level"),
        ('{"quiz": {"servce": "quiz"}}', "additional properties 'servce' not allowed"),
        ('{"quiz": {"service": "auth"}}', "/quiz/service"),
        ('{"global": {"kafka": {"external": {"bootstrapServers": "kafka"}}}}', "bootstrapServers"),
        ('{"global": {"secrets": {"admin": {"existingSecret": "Admin_Pw"}}}}', "existingSecret"),
        ('{"operator": {"replicas": "two"}}', "/replicas': got string, want integer"),
        ('{"auth": {"settings": {"ADMIN_PASSWORD": "hunter2"}}}', "invalid propertyName"),
        ('{"quiz": {"settings": {"DATABASE_URL": "postgresql://u:p@h/d"}}}', "propertyName"),
        ('{"quiz": {"resources": {"limits": {"memory": "1ki"}}}}', "memory"),
    ],
)
def test_the_schema_refuses_bad_values_by_field(helm: Path, values: str, message: str) -> None:
    assert message in refused(helm, values)
