"""The real kube-apiserver from hack/: a CRD applies, its resources validate and round-trip."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import pytest

from benchmarks import cluster

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.real


# kubectl from the cache; a test reads its exit code and output itself.
kubectl = functools.partial(cluster.kubectl, check=False)


def widget(name: str, spec: dict[str, object]) -> str:
    return json.dumps(
        {
            "apiVersion": "smoke.sukverse.io/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }
    )


def test_a_crd_is_served_and_its_schema_enforced(kubeconfig: Path) -> None:
    applied = kubectl(kubeconfig, "apply", "-f", str(HERE / "kube" / "widget-crd.yaml"))
    assert applied.returncode == 0, applied.stderr
    deadline = time.monotonic() + 30
    while True:
        established = kubectl(
            kubeconfig,
            "wait",
            "--for=condition=Established",
            "--timeout=5s",
            "crd/widgets.smoke.sukverse.io",
        )
        if established.returncode == 0 or time.monotonic() > deadline:
            break
    assert established.returncode == 0, established.stderr

    created = kubectl(
        kubeconfig, "apply", "-f", "-", stdin=widget("w1", {"size": 3, "colour": "red"})
    )
    assert created.returncode == 0, created.stderr
    read = kubectl(kubeconfig, "get", "widget", "w1", "-n", "default", "-o", "json")
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["spec"] == {"size": 3, "colour": "red"}

    refused = kubectl(
        kubeconfig, "apply", "-f", "-", stdin=widget("w2", {"size": 99, "colour": "blue"})
    )
    assert refused.returncode != 0
    assert "spec.size" in refused.stderr and "spec.colour" in refused.stderr
    missing = kubectl(kubeconfig, "get", "widget", "w2", "-n", "default")
    assert missing.returncode != 0
