"""The umbrella chart on a real API server with the real Strimzi, CloudNativePG and
Prometheus-operator CRDs, kube-controller-manager, kube-scheduler and kwok's simulated nodes
(the `kube_nodes` fixture): every scenario's objects pass the server's own validation, and
`helm install --wait`, `helm upgrade` and `helm uninstall` go through as on a cluster, the
migration hooks completing before the Deployments roll. Nothing runs inside those pods: kwok
marks them Running and Ready (and a Job's pods Succeeded)."""

from __future__ import annotations

import base64
import functools
import json
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks import cluster

ROOT = Path(__file__).resolve().parent.parent
UMBRELLA = ROOT / "charts" / "sukverse"
SERVICES = ["auth", "user_mgmt", "workshop", "quiz", "analytics", "certificate"]

pytestmark = pytest.mark.real

kubectl = functools.partial(cluster.kubectl, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def run_helm(binary: Path, kubeconfig: Path, *args: str, timeout: float = 600) -> str:
    return ok(
        subprocess.run(
            [str(binary), "--kubeconfig", str(kubeconfig), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    )


@pytest.fixture
def namespace(kube_nodes_namespace: str) -> str:
    return kube_nodes_namespace


SCENARIOS = {
    "defaults": [],
    "tls-users": ['{"global": {"kafka": {"strimzi": {"authentication": "tls"}}}}'],
    "external": [
        '{"global": {"kafka": {"mode": "external", "external": {"bootstrapServers": "k:9093",'
        ' "caSecret": {"name": "kafka-ca"}}}, "postgres": {"mode": "external"}}}',
        *(
            f'{{"{s}": {{"database": {{"existingSecret": "db-{s.replace("_", "-")}"}}, '
            f'"kafka": {{"existingSecret": "kafka-{s.replace("_", "-")}"}}}}}}'
            for s in SERVICES
        ),
    ],
    "everything-on": [
        *(
            f'{{"{s}": {{"networkPolicy": {{"enabled": true}}, "serviceMonitor": '
            f'{{"enabled": true}}, "autoscaling": {{"enabled": true}}}}}}'
            for s in SERVICES
        ),
        '{"global": {"postgres": {"cloudnativepg": {"monitoring": true}}}}',
    ],
    "operator-off": ['{"operator": {"enabled": false}}'],
}


@pytest.mark.timeout(300)  # the first use of kube_nodes starts its control plane
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_rendered_object_passes_the_servers_validation(
    helm: Path, kube_nodes: Path, namespace: str, scenario: str
) -> None:
    args = ["template", "sukverse", str(UMBRELLA), "--namespace", namespace]
    # The server serves the Prometheus operator's API, as `helm install` would find.
    args += ["--include-crds", "--api-versions", "monitoring.coreos.com/v1/PrometheusRule"]
    for item in SCENARIOS[scenario]:
        args += ["--set-json", item]
    rendered = run_helm(helm, kube_nodes, *args)
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {d["kind"] for d in documents}
    crds = [d for d in documents if d["kind"] == "CustomResourceDefinition"]
    if crds:
        ok(kubectl(kube_nodes, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(crds)))
    rest = [d for d in documents if d["kind"] != "CustomResourceDefinition"]
    result = kubectl(
        kube_nodes,
        "apply",
        "--server-side",
        "--dry-run=server",
        "--namespace",
        namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump_all(rest),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("(server dry run)") == len(rest)
    if scenario == "defaults":
        assert {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster"} <= kinds
        assert {"PrometheusRule", "Job", "Deployment", "PodDisruptionBudget"} <= kinds
    if scenario == "everything-on":
        assert {"NetworkPolicy", "ServiceMonitor", "HorizontalPodAutoscaler"} <= kinds


def test_a_broken_strimzi_object_is_refused_by_the_real_schema(
    kube_nodes: Path, namespace: str
) -> None:
    """The check above could only fail if the schemas were real: a KafkaUser ACL with the
    singular `operation` of the old v1beta2 API is refused by Strimzi's v1 schema."""
    user = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": {"name": "old", "labels": {"strimzi.io/cluster": "k"}},
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {
                "type": "simple",
                "acls": [{"resource": {"type": "topic", "name": "t"}, "operation": "Read"}],
            },
        },
    }
    result = kubectl(
        kube_nodes,
        "apply",
        "--server-side",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=json.dumps(user),
    )
    assert result.returncode != 0
    assert "operation" in result.stderr


def test_the_migration_is_a_hook_once_its_database_secret_exists(
    helm: Path, kube_nodes: Path, namespace: str
) -> None:
    """With the release's own CloudNativePG clusters, the Job is a hook only when the chart
    finds the cluster's `<cluster>-app` Secret on the server (lookup), as on every upgrade
    after the first install; before that it would wait for a Secret that no hook creates."""

    def jobs() -> tuple[set[str], set[str]]:
        out = run_helm(
            helm,
            kube_nodes,
            *("install", "sukverse", str(UMBRELLA), "--namespace", namespace),
            "--dry-run=server",
        )
        manifest, hooks = out.split("MANIFEST:", 1)[1], out.split("MANIFEST:", 1)[0]
        found = [
            {d["metadata"]["name"] for d in yaml.safe_load_all(part) if d and d["kind"] == "Job"}
            for part in (hooks.split("HOOKS:", 1)[-1], manifest.split("NOTES:", 1)[0])
        ]
        return found[0], found[1]

    names = {f"sukverse-{s.replace('_', '-')}-migrate-1" for s in SERVICES}
    assert jobs() == (set(), names)
    ok(
        kubectl(
            kube_nodes,
            *("create", "secret", "generic", "sukverse-quiz-db-app", "-n", namespace),
            "--from-literal=uri=postgresql://quiz:pw@sukverse-quiz-db-rw:5432/quiz",
        )
    )
    assert jobs() == ({"sukverse-quiz-migrate-1"}, names - {"sukverse-quiz-migrate-1"})


def resources(kubeconfig: Path, namespace: str, kinds: str) -> list[dict[str, Any]]:
    listed = json.loads(ok(kubectl(kubeconfig, "get", kinds, "-n", namespace, "-o", "json")))
    return list(listed["items"])


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def job_completions(kubeconfig: Path, namespace: str) -> dict[str, datetime]:
    """When each Job completed, from the job controller's events (a hook Job itself is
    deleted by Helm once it succeeded)."""
    events = json.loads(
        ok(
            kubectl(
                kubeconfig,
                "get",
                "events",
                "-n",
                namespace,
                "--field-selector",
                "involvedObject.kind=Job,reason=Completed",
                "-o",
                "json",
            )
        )
    )["items"]
    return {
        e["involvedObject"]["name"]: stamp(e.get("lastTimestamp") or e["eventTime"]) for e in events
    }


@pytest.mark.timeout(1500)
def test_install_upgrade_and_uninstall_go_through_on_a_cluster(
    helm: Path, kube_nodes: Path, namespace: str
) -> None:
    """External PostgreSQL (its Secrets made first, as a platform team would), Strimzi Kafka:
    the migration hooks complete before any Deployment exists, the Deployments become
    available, an upgrade runs the hooks again and keeps every generated secret, and an
    uninstall leaves nothing of the release."""
    for service in SERVICES:
        dashed = service.replace("_", "-")
        ok(
            kubectl(
                kube_nodes,
                "create",
                "secret",
                "generic",
                f"db-{dashed}",
                "-n",
                namespace,
                f"--from-literal=uri=postgresql://{service}:pw@pg.example:5432/{service}",
            )
        )
    values = ['{"global": {"postgres": {"mode": "external"}}}'] + [
        f'{{"{s}": {{"database": {{"existingSecret": "db-{s.replace("_", "-")}"}}, '
        '"replicas": 2, "serviceMonitor": {"enabled": true}}}'
        for s in SERVICES
    ]
    common = ["--namespace", namespace, "--wait", "--timeout", "10m"]
    sets = [arg for item in values for arg in ("--set-json", item)]
    run_helm(helm, kube_nodes, "install", "sukverse", str(UMBRELLA), *common, *sets)

    deployments = {
        d["metadata"]["name"]: d for d in resources(kube_nodes, namespace, "deployments")
    }
    assert set(deployments) == {
        *(f"sukverse-{s.replace('_', '-')}" for s in SERVICES),
        "sukverse-operator",
    }
    for deployment in deployments.values():
        status = deployment["status"]
        assert status.get("availableReplicas") == deployment["spec"]["replicas"], status
    completed = job_completions(kube_nodes, namespace)
    for service in SERVICES:
        job = f"sukverse-{service.replace('_', '-')}-migrate-1"
        created = stamp(
            deployments[f"sukverse-{service.replace('_', '-')}"]["metadata"]["creationTimestamp"]
        )
        assert job in completed, sorted(completed)
        assert completed[job] <= created, (job, completed[job], created)
    assert not resources(kube_nodes, namespace, "jobs"), "succeeded hooks are deleted"
    secrets = {
        s["metadata"]["name"]: s["data"]
        for s in resources(kube_nodes, namespace, "secrets")
        if s["metadata"]["name"].startswith("sukverse-")
    }
    assert {"sukverse-signing-keys", "sukverse-machine-clients", "sukverse-admin"} <= set(secrets)
    assert len(resources(kube_nodes, namespace, "kafkausers.kafka.strimzi.io")) == len(SERVICES)
    assert len(resources(kube_nodes, namespace, "servicemonitors.monitoring.coreos.com")) == 6

    changed = [
        '{"workshop": {"replicas": 3, "settings": {"LOG_LEVEL": "DEBUG"}}}',
        '{"global": {"kafka": {"strimzi": {"topics": {"partitions": 6}}}}}',
    ]
    sets += [arg for item in changed for arg in ("--set-json", item)]
    run_helm(helm, kube_nodes, "upgrade", "sukverse", str(UMBRELLA), *common, *sets)
    workshop = json.loads(
        ok(
            kubectl(
                kube_nodes, "get", "deployment", "sukverse-workshop", "-n", namespace, "-o", "json"
            )
        )
    )
    assert workshop["status"].get("availableReplicas") == 3
    assert workshop["status"]["observedGeneration"] == workshop["metadata"]["generation"] == 2
    completed = job_completions(kube_nodes, namespace)
    assert {f"sukverse-{s.replace('_', '-')}-migrate-2" for s in SERVICES} <= set(completed)
    topics = resources(kube_nodes, namespace, "kafkatopics.kafka.strimzi.io")
    assert {t["spec"]["partitions"] for t in topics} == {6}
    after = {
        s["metadata"]["name"]: s["data"]
        for s in resources(kube_nodes, namespace, "secrets")
        if s["metadata"]["name"] in secrets
    }
    assert after == secrets, "generated keys and client secrets survive an upgrade"
    password = base64.b64decode(after["sukverse-admin"]["password"])
    assert len(password) >= 24

    run_helm(helm, kube_nodes, "uninstall", "sukverse", "--namespace", namespace, "--wait")
    left = resources(
        kube_nodes,
        namespace,
        "deployments,services,configmaps,serviceaccounts,poddisruptionbudgets,jobs,"
        "kafkas.kafka.strimzi.io,kafkanodepools.kafka.strimzi.io,kafkatopics.kafka.strimzi.io,"
        "kafkausers.kafka.strimzi.io,servicemonitors.monitoring.coreos.com,"
        "prometheusrules.monitoring.coreos.com",
    )
    ours = [
        o
        for o in left
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == "sukverse"
    ]
    assert not ours, [f"{o['kind']}/{o['metadata']['name']}" for o in ours]
    remaining = {s["metadata"]["name"] for s in resources(kube_nodes, namespace, "secrets")}
    assert not remaining & set(secrets)
    assert not json.loads(
        ok(
            kubectl(
                kube_nodes,
                "get",
                "clusterroles",
                "-l",
                "app.kubernetes.io/instance=sukverse",
                "-o",
                "json",
            )
        )
    )["items"]
