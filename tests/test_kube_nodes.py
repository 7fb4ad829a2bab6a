"""The chart tests' cluster (the `kube_nodes` fixture): the real third-party CRDs are
established with the versions the charts use and validate what they are given, and
workloads get Pods on kwok's fake Nodes that become Ready or complete."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

import pytest

from benchmarks import cluster

# The fixture's first use may install the CRDs (about 2 min with empty Maven and Go caches).
pytestmark = [pytest.mark.real, pytest.mark.timeout(600)]

kubectl = functools.partial(cluster.kubectl, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def namespace(kube_nodes_namespace: str) -> str:
    return kube_nodes_namespace


@pytest.mark.parametrize(
    ("crd", "kind", "version"),
    [
        ("kafkas.kafka.strimzi.io", "Kafka", "v1"),
        ("kafkanodepools.kafka.strimzi.io", "KafkaNodePool", "v1"),
        ("kafkatopics.kafka.strimzi.io", "KafkaTopic", "v1"),
        ("kafkausers.kafka.strimzi.io", "KafkaUser", "v1"),
        ("clusters.postgresql.cnpg.io", "Cluster", "v1"),
        ("servicemonitors.monitoring.coreos.com", "ServiceMonitor", "v1"),
        ("prometheusrules.monitoring.coreos.com", "PrometheusRule", "v1"),
    ],
)
def test_the_third_party_crds_are_established_and_serve_their_version(
    kube_nodes: Path, crd: str, kind: str, version: str
) -> None:
    got = json.loads(ok(kubectl(kube_nodes, "get", "crd", crd, "-o", "json")))
    conditions = {c["type"]: c["status"] for c in got["status"]["conditions"]}
    assert conditions.get("Established") == "True", conditions
    assert got["spec"]["names"]["kind"] == kind
    served = {v["name"]: v for v in got["spec"]["versions"] if v["served"]}
    assert version in served, sorted(served)
    assert served[version]["storage"] is True
    # The API server serves the kind under that version.
    group = crd.split(".", 1)[1]
    resources = ok(kubectl(kube_nodes, "api-resources", f"--api-group={group}", "-o", "name"))
    assert crd in resources.split()


def kafka(listener_type: str) -> str:
    return json.dumps(
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "Kafka",
            "metadata": {"name": "bus", "annotations": {"strimzi.io/node-pools": "enabled"}},
            "spec": {
                "kafka": {
                    "listeners": [
                        {"name": "plain", "port": 9092, "type": listener_type, "tls": False}
                    ]
                }
            },
        }
    )


def test_strimzis_own_schema_refuses_an_invalid_kafka(kube_nodes: Path, namespace: str) -> None:
    # The same Kafka with a listener type Strimzi knows is accepted, so the refusal is the type's.
    create = ("create", "-n", namespace, "--dry-run=server", "-f", "-")
    ok(kubectl(kube_nodes, *create, stdin=kafka("internal")))
    refused = kubectl(kube_nodes, *create, stdin=kafka("carrier-pigeon"))
    assert refused.returncode != 0
    assert 'spec.kafka.listeners[0].type: Unsupported value: "carrier-pigeon"' in refused.stderr


def test_a_deployment_and_a_job_run_on_the_kwok_nodes(kube_nodes: Path, namespace: str) -> None:
    container = {
        "name": "web",
        "image": "registry.invalid/web:1",
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [container]},
            },
        },
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "migrate", "image": "registry.invalid/migrate:1"}],
                }
            }
        },
    }
    for manifest in (deployment, job):
        ok(kubectl(kube_nodes, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest)))
    wait = ("wait", "-n", namespace, "--timeout=90s")
    ok(kubectl(kube_nodes, *wait, "--for=condition=Available", "deployment/web"))
    ok(kubectl(kube_nodes, *wait, "--for=condition=Complete", "job/migrate"))
    pods = json.loads(
        ok(kubectl(kube_nodes, "get", "pods", "-n", namespace, "-l", "app=web", "-o", "json"))
    )
    assert len(pods["items"]) == 2
    for pod in pods["items"]:
        assert pod["spec"]["nodeName"].startswith("kwok-node-")
        assert pod["status"]["phase"] == "Running"
    # The Service's endpoints follow the Ready Pods (the EndpointSlice controller runs).
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    ok(kubectl(kube_nodes, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(service)))
    ok(
        kubectl(
            kube_nodes,
            *wait,
            "--for=jsonpath={.endpoints[1].conditions.ready}=true",
            "endpointslice",
            "-l",
            "kubernetes.io/service-name=web",
        )
    )
