"""skaffold.yaml and the kind setup hold together: skaffold itself cannot be installed here,
so every path, image, chart, values file and port it names is checked against the tree, and
the chart renders with its values into what the kind cluster config publishes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SKAFFOLD = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
KIND = yaml.safe_load((ROOT / "k8s" / "kind-cluster.yaml").read_text())
(RELEASE,) = SKAFFOLD["deploy"]["helm"]["releases"]


def profile(name: str) -> dict[str, Any]:
    (found,) = [p for p in SKAFFOLD["profiles"] if p["name"] == name]
    return dict(found)


def kind_values_files() -> list[str]:
    added = [
        patch["value"]
        for patch in profile("kind")["patches"]
        if patch["path"] == "/deploy/helm/releases/0/valuesFiles/-"
    ]
    return [*RELEASE["valuesFiles"], *added]


def test_everything_skaffold_names_exists() -> None:
    assert SKAFFOLD["apiVersion"].startswith("skaffold/v4")
    (artifact,) = SKAFFOLD["build"]["artifacts"]
    assert (ROOT / artifact["context"] / artifact["docker"]["dockerfile"]).is_file()
    chart = ROOT / RELEASE["chartPath"]
    assert (chart / "Chart.yaml").is_file()
    for values in kind_values_files():
        assert (ROOT / values).is_file(), values
    # The image skaffold builds is the one the chart runs, its tag set from the build.
    chart_values = yaml.safe_load((chart / "values.yaml").read_text())
    assert artifact["image"] == chart_values["global"]["image"]["repository"]
    templates = RELEASE["setValueTemplates"]
    assert templates["global.image.repository"] == "{{.IMAGE_REPO_sukverse}}"
    assert "{{.IMAGE_TAG_sukverse}}" in templates["global.image.tag"]
    assert {p["name"] for p in SKAFFOLD["profiles"]} == {"dev", "kind"}
    assert profile("kind")["activation"] == [{"kubeContext": f"kind-{KIND['name']}"}]


def test_the_kind_setup_script_names_what_exists() -> None:
    script = (ROOT / "hack" / "kind-up.sh").read_text()
    for path in re.findall(r"\$ROOT/([\w./-]+)", script):
        assert (ROOT / path).exists(), path
    assert f"CLUSTER={KIND['name']}" in script
    assert f"NAMESPACE={RELEASE['namespace']}" in script


@pytest.mark.real
def test_the_chart_renders_with_the_kind_values_into_what_kind_publishes(helm: Path) -> None:
    args = [str(helm), "template", RELEASE["name"], str(ROOT / RELEASE["chartPath"])]
    args += ["--namespace", RELEASE["namespace"]]
    for values in kind_values_files():
        args += ["-f", str(ROOT / values)]
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    (control_plane,) = [n for n in KIND["nodes"] if n["role"] == "control-plane"]
    published = {m["containerPort"]: m["hostPort"] for m in control_plane["extraPortMappings"]}
    node_ports = {
        s["spec"]["ports"][0]["nodePort"]: s["spec"]["ports"][0]["port"] for s in services.values()
    }
    # Each API's NodePort is published on the host as the service's own port.
    assert node_ports == published
    forwards = profile("dev")["portForward"]
    assert "portForward" not in SKAFFOLD and "portForward" not in profile("kind")
    for forward in forwards:
        service = services[forward["resourceName"]]
        assert forward["namespace"] == RELEASE["namespace"]
        assert forward["port"] == forward["localPort"] == service["spec"]["ports"][0]["port"]
    assert len(forwards) == len(services)
    deployments = [d for d in documents if d["kind"] == "Deployment"]
    assert {d["spec"]["replicas"] for d in deployments} == {1}
    (pool,) = [d for d in documents if d["kind"] == "KafkaNodePool"]
    assert pool["spec"]["replicas"] == 1
