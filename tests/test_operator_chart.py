"""The operator's Helm chart, rendered by the real helm: lint, each scenario's objects and
permissions, the values schema's refusals, and the CRDs it ships being those of crds/."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "sukverse-operator"

pytestmark = pytest.mark.real


def run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, check=False, timeout=120
    )


def render(helm: Path, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "ops", str(CHART), "--namespace", "sukverse-system"]
    for item in sets:
        args += ["--set-json", item]
    result = run(helm, *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def by_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """Each (group, resource, verb) a role grants."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


NAMESPACED = {
    *(("sukverse.io", "sukversecohorts", v) for v in ("get", "list", "watch", "patch", "update")),
    *(("sukverse.io", "sukversecohorts/status", v) for v in ("get", "patch", "update")),
    ("sukverse.io", "sukversecohorts/finalizers", "update"),
    *(("", "configmaps", v) for v in ("get", "list", "watch")),
    ("", "secrets", "create"),
    ("", "secrets", "patch"),
    ("", "events", "create"),
    ("", "events", "patch"),
    ("events.k8s.io", "events", "create"),
    ("events.k8s.io", "events", "patch"),
    *(("kopf.dev", "kopfpeerings", v) for v in ("get", "list", "watch", "patch")),
}
CLUSTER = {
    *(("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}


def test_the_chart_lints_strictly(helm: Path) -> None:
    result = run(helm, "lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_by_default_it_watches_every_namespace_with_least_privilege(helm: Path) -> None:
    documents = render(helm)
    (deployment,) = by_kind(documents, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == [
        "operator",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--metrics=0.0.0.0:8081",
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SUKVERSE_OPERATOR_CLIENT_SECRET_FILE"] == (
        "/var/run/secrets/sukverse/operator/client-secret"
    )
    assert "SUKVERSE_OPERATOR_CLIENT_SECRET" not in env  # never the secret itself
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["serviceAccountName"] == "ops-sukverse-operator"
    (secret,) = [v for v in pod["volumes"] if "secret" in v]
    assert secret["secret"]["secretName"] == "sukverse-operator-client"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"

    (role,) = by_kind(documents, "ClusterRole")
    kopf_cluster = {("kopf.dev", "clusterkopfpeerings", v) for v in ("get", "list", "watch")}
    assert rules_of(role) == CLUSTER | NAMESPACED | kopf_cluster | {
        ("kopf.dev", "clusterkopfpeerings", "patch")
    }
    # Nothing deletes, and nothing reads Secrets it did not write by listing them.
    assert not {r for r in rules_of(role) if r[2] in {"delete", "deletecollection", "*"}}
    assert ("", "secrets", "list") not in rules_of(role)
    (binding,) = by_kind(documents, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ops-sukverse-operator", "namespace": "sukverse-system"}
    ]
    assert not by_kind(documents, "Role")
    (peering,) = by_kind(documents, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "sukverse-operator"
    (budget,) = by_kind(documents, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1


def test_watching_some_namespaces_grants_roles_there_alone(helm: Path) -> None:
    documents = render(helm, 'watchNamespaces=["team-a","team-b"]')
    (deployment,) = by_kind(documents, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-2:] == ["--namespace=team-a", "--namespace=team-b"]
    (cluster,) = by_kind(documents, "ClusterRole")
    assert rules_of(cluster) == CLUSTER
    roles = by_kind(documents, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(rules_of(r) == NAMESPACED for r in roles)
    bindings = by_kind(documents, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    peerings = by_kind(documents, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert not by_kind(documents, "ClusterKopfPeering")


def test_rbac_peering_and_budget_can_be_left_to_the_platform_team(helm: Path) -> None:
    documents = render(
        helm,
        "rbac.create=false",
        "peering.create=false",
        "podDisruptionBudget.enabled=false",
        'serviceAccount={"create":false,"name":"their-operator"}',
    )
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == ["Deployment"]
    pod = documents[0]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "their-operator"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('replicas="two"', "replicas"),
        ('image={"repository":"","pullPolicy":"Always"}', "repository"),
        ('image={"repository":"x","pullPolicy":"Sometimes"}', "pullPolicy"),
        ("clientSecret.existingSecret=null", "existingSecret"),
        ("healthPort=70000", "healthPort"),
        ('unknownSetting="x"', "unknownSetting"),
    ],
)
def test_the_values_schema_refuses_bad_values_by_name(helm: Path, value: str, message: str) -> None:
    result = run(helm, "template", "ops", str(CHART), "--set-json", value)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_the_chart_ships_the_crds_of_crds_dir_unchanged(helm: Path) -> None:
    result = run(helm, "show", "crds", str(CHART))
    assert result.returncode == 0, result.stderr
    shipped = sorted((d["metadata"]["name"], d) for d in yaml.safe_load_all(result.stdout) if d)
    ours = sorted(
        (d["metadata"]["name"], d)
        for path in sorted((ROOT / "crds").glob("*.yaml"))
        for d in yaml.safe_load_all(path.read_text())
        if d
    )
    assert [name for name, _ in shipped] == [
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
        "sukversecohorts.sukverse.io",
    ]
    assert shipped == ours
