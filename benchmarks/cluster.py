"""The operator's side of the real tier, shared by its end-to-end tests and its benchmark:
kubectl, the operator's chart installed as a platform team would (but its Deployment, which
no kubelet runs here), its ServiceAccount's token, and `sukverse operator` as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("SUKVERSE_CACHE", Path.home() / ".cache/sukverse"))
OPERATOR_NAMESPACE = "sukverse-system"
RELEASE = "ops"
SERVICE_ACCOUNT = f"{RELEASE}-sukverse-operator"


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(CACHE / "bin" / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args[:4])}: {result.stderr}")
    return result


def eventually(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """The first truthy answer of `check`, polled every 0.2 s."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def install_operator_chart(helm: Path, kubeconfig: Path, directory: Path) -> Path:
    """Install the CRDs and what the operator's chart renders but its Deployment (again on
    an API server that has them); a kubeconfig (in `directory`) signed in with a token of the
    chart's ServiceAccount."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(namespace))
    rendered = subprocess.run(
        [
            str(helm),
            "template",
            RELEASE,
            str(ROOT / "charts" / "sukverse-operator"),
            "--namespace",
            OPERATOR_NAMESPACE,
            "--include-crds",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if rendered.returncode != 0:
        raise AssertionError(f"helm template: {rendered.stderr}")
    documents = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    crds = [d for d in documents if d["kind"] == "CustomResourceDefinition"]
    rest = [d for d in documents if d["kind"] not in {"CustomResourceDefinition", "Deployment"}]
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(crds))
    for crd in crds:
        name = crd["metadata"]["name"]
        kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=30s", f"crd/{name}")
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(rest))
    token = kubectl(
        kubeconfig,
        "create",
        "token",
        SERVICE_ACCOUNT,
        "-n",
        OPERATOR_NAMESPACE,
        "--duration=6h",
    ).stdout.strip()
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"] = [{"name": "operator", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "operator"
    path = directory / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def apiserver_requests(
    kubeconfig: Path, *, resource: str | None = None, verbs: Iterable[str] | None = None
) -> float:
    """Requests the API server has answered since it started (its own counter), of one
    resource and some verbs when given."""
    text = kubectl(kubeconfig, "get", "--raw", "/metrics").stdout
    wanted = {v.upper() for v in verbs} if verbs else None
    total = 0.0
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels, value = line.rsplit(" ", 1)
        pairs = dict(
            item.split("=", 1) for item in labels[len("apiserver_request_total{") : -1].split(",")
        )
        if resource is not None and pairs.get("resource", "").strip('"') != resource:
            continue
        if wanted is not None and pairs.get("verb", "").strip('"') not in wanted:
            continue
        total += float(value)
    return total


@dataclass
class Operator:
    """`sukverse operator` as a process of its own, logging JSON lines to a file."""

    env: dict[str, str]
    log_path: Path
    port: int
    metrics_port: int | None = None  # serve /metrics there
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        metrics = [] if self.metrics_port is None else [f"--metrics=127.0.0.1:{self.metrics_port}"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sukverse_platform",
                    "operator",
                    f"--liveness=http://127.0.0.1:{self.port}/healthz",
                    *metrics,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

        def alive() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise AssertionError(f"the operator exited:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return True
            except (urllib.error.URLError, OSError):
                return False

        eventually(alive, "the operator's liveness endpoint", timeout=60)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def lines(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def reconciles(self, key: str, since: int = 0) -> list[dict[str, Any]]:
        """The `reconciled` lines of the cohort `key` after line `since`."""
        return [
            line
            for line in self.lines()[since:]
            if line.get("event") == "reconciled" and line.get("cohort") == key
        ]

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]
