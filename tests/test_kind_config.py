"""k8s/kind-cluster.yaml decoded and validated by kind's own code (hack/kind.sh builds it).

kind's loader is internal to its module, so hack/kind.sh builds a checker inside a copy of
kind's source that calls that loader (encoding.Load: strict decoding of the v1alpha4 types)
and then the Cluster's Validate, as `kind create cluster --config FILE` does. No Docker engine
runs here, so `kind create cluster` itself loads the file and then stops at the missing
provider, before its validation: it shows a broken file refused by the real command.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.real, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
KIND_SH = ROOT / "hack" / "kind.sh"
CONFIG = ROOT / "k8s" / "kind-cluster.yaml"


def kind_sh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(KIND_SH), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        env=env,
    )


@pytest.fixture(scope="module", autouse=True)
def _kind_built() -> None:
    built = kind_sh("install")
    assert built.returncode == 0, built.stderr[-3000:]


@pytest.fixture
def variant(tmp_path: Path) -> Callable[[str, str], Path]:
    """The cluster config with one text replaced: a file that differs from it in one way."""

    def write(old: str, new: str) -> Path:
        text = CONFIG.read_text()
        assert old in text
        path = tmp_path / "kind-cluster.yaml"
        path.write_text(text.replace(old, new, 1))
        return path

    return write


def test_the_cluster_config_passes_kinds_loader_and_validation() -> None:
    checked = kind_sh("check", str(CONFIG))
    assert checked.returncode == 0, checked.stderr
    assert 'cluster "sukverse", 1 control-plane, 2 worker, 6 port mappings' in checked.stdout


def test_the_control_plane_publishes_the_six_api_ports_on_loopback() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    (control_plane,) = [node for node in config["nodes"] if node["role"] == "control-plane"]
    mappings = control_plane["extraPortMappings"]
    assert sorted(mapping["hostPort"] for mapping in mappings) == list(range(8000, 8006))
    assert {mapping["listenAddress"] for mapping in mappings} == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        pytest.param(
            "name: sukverse",
            "name: sukverse\nnodeCount: 3",
            "field nodeCount not found in type v1alpha4.Cluster",
            id="unknown-field",
        ),
        pytest.param(
            "  - role: worker",
            "  - role: worker\n    replicas: 2",
            "field replicas not found in type v1alpha4.Node",
            id="unknown-node-field",
        ),
        pytest.param(
            "kind.x-k8s.io/v1alpha4",
            "kind.x-k8s.io/v1alpha3",
            "unknown apiVersion: kind.x-k8s.io/v1alpha3",
            id="old-api-version",
        ),
        pytest.param(
            "apiVersion: kind.x-k8s.io/v1alpha4",
            "apiVersion: kind.x-k8s.io/v1",
            "unknown apiVersion: kind.x-k8s.io/v1",
            id="unknown-api-version",
        ),
        pytest.param("kind: Cluster", "kind: Config", "unknown kind Config", id="wrong-kind"),
        pytest.param(
            "  - role: worker",
            "  - role: node",
            '"node" is not a valid node role',
            id="invalid-role",
        ),
        pytest.param(
            "hostPort: 8001",
            "hostPort: 8000",
            "port mapping with same listen address, port and protocol already configured",
            id="duplicate-host-port",
        ),
        pytest.param(
            "podSubnet: 10.244.0.0/16",
            "podSubnet: 10.244.0.0/33",
            "invalid pod subnet",
            id="invalid-subnet",
        ),
    ],
)
def test_a_broken_config_is_refused_with_kinds_reason(
    variant: Callable[[str, str], Path], old: str, new: str, reason: str
) -> None:
    checked = kind_sh("check", str(variant(old, new)))
    assert checked.returncode == 1
    assert reason in checked.stderr


def test_kind_create_cluster_refuses_a_broken_file_before_any_provider(
    variant: Callable[[str, str], Path],
) -> None:
    # The docker provider, pointed at a socket that does not exist: no cluster can start.
    env = {
        **os.environ,
        "KIND_EXPERIMENTAL_PROVIDER": "docker",
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
    }
    broken = variant("name: sukverse", "name: sukverse\nnodeCount: 3")
    refused = kind_sh("kind", "create", "cluster", "--config", str(broken), env=env)
    assert refused.returncode == 1
    assert "unable to decode config" in refused.stderr
    assert "field nodeCount not found in type v1alpha4.Cluster" in refused.stderr
    # The real file gets past the loader and stops only at the provider.
    provider = kind_sh("kind", "create", "cluster", "--config", str(CONFIG), env=env)
    assert provider.returncode == 1
    assert "failed to get docker info" in provider.stderr
    assert "unable to decode config" not in provider.stderr
