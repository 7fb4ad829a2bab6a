"""What the chart tests share: the charts, and helm's rendering of them as documents."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHARTS = ROOT / "charts"
UMBRELLA = CHARTS / "sukverse"
SERVICE_CHART = CHARTS / "sukverse-service"
OPERATOR_CHART = CHARTS / "sukverse-operator"
SERVICES = ["auth", "user_mgmt", "workshop", "quiz", "analytics", "certificate"]
RELEASE, NAMESPACE = "sukverse", "learn"


def run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, check=False, timeout=120
    )


def template(
    helm: Path, *sets: str, chart: Path = UMBRELLA, upgrade: bool = False, apis: str = ""
) -> str:
    """`helm template` of the chart with the `--set-json` values given; its output."""
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
    if upgrade:
        args.append("--is-upgrade")
    if apis:
        args += ["--api-versions", apis]
    for item in sets:
        args += ["--set-json", item]
    result = run(helm, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(
    helm: Path, *sets: str, chart: Path = UMBRELLA, upgrade: bool = False, apis: str = ""
) -> list[dict[str, Any]]:
    """The documents `template` renders."""
    rendered = template(helm, *sets, chart=chart, upgrade=upgrade, apis=apis)
    return [d for d in yaml.safe_load_all(rendered) if d]


def refused(helm: Path, *sets: str, chart: Path = UMBRELLA) -> str:
    """helm's error for values the chart must refuse."""
    args = ["template", RELEASE, str(chart)]
    for item in sets:
        args += ["--set-json", item]
    result = run(helm, *args)
    assert result.returncode != 0, "the values were accepted"
    return result.stderr


def kinds(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def name(service: str) -> str:
    return f"{RELEASE}-{service.replace('_', '-')}"


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (first,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(first)
