"""The SukverseCohort CRD on the real kube-apiserver: it applies, its samples are created
with their defaults, its rules refuse bad cohorts with their messages, and it is shown
and explained as a user reads it."""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks import cluster

ROOT = Path(__file__).resolve().parent.parent
CRD = ROOT / "crds" / "sukversecohorts.sukverse.io.yaml"
PEERING_CRDS = ROOT / "crds" / "kopf-peering.yaml"
SAMPLES = ROOT / "k8s" / "samples"
DATA = Path(__file__).resolve().parent / "cohort_crd"
CRD_NAME = "crd/sukversecohorts.sukverse.io"
MAX_STUDENTS = 5000

pytestmark = pytest.mark.real


# kubectl from the cache; a test reads its exit code and output itself.
kubectl = functools.partial(cluster.kubectl, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_established(kubeconfig: Path, *names: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        result = kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=5s", *names)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
    ok(result)


@pytest.fixture(scope="module")
def crd(kubeconfig: Path) -> Path:
    """The API server with the cohort CRD applied server-side and established."""
    ok(kubectl(kubeconfig, "apply", "--server-side", "--field-manager=sukverse", "-f", str(CRD)))
    wait_established(kubeconfig, CRD_NAME)
    return kubeconfig


@pytest.fixture
def namespace(crd: Path) -> Iterator[str]:
    """A fresh namespace of the test's own, deleted with what it holds when the test ends."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    ok(kubectl(crd, "create", "namespace", name))
    yield name
    # Its cohorts go with it, so that an operator started later has none of them to do.
    ok(kubectl(crd, "delete", "namespace", name, "--wait=false"))


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def students(count: int) -> list[dict[str, str]]:
    return [
        {"email": f"student-{n:04d}@example.com", "name": f"Student {n:04d}"} for n in range(count)
    ]


def set_path(document: dict[str, Any], path: str, value: object) -> None:
    """Set a field given as `a.b[2].c`."""
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        parts.append(int(index) if index else name)
    node: Any = document
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def expected_with_defaults(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    expected = copy.deepcopy(spec)
    for path, value in load(DATA / "defaults.yaml")[name].items():
        set_path(expected, path, value)
    return expected


def cohort_in(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in documents if d["kind"] == "SukverseCohort")


# -- the definition ------------------------------------------------------------------------


def test_the_crd_applies_server_side_and_is_established(crd: Path) -> None:
    # Applied again by the same manager: nothing conflicts and nothing changes.
    again = ok(
        kubectl(
            crd, "apply", "--server-side", "--field-manager=sukverse", "-f", str(CRD), "-o", "json"
        )
    )
    applied = json.loads(again)
    assert applied["metadata"]["generation"] == 1
    conditions = {c["type"]: c["status"] for c in applied["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert applied["status"]["acceptedNames"]["shortNames"] == ["cohort", "cohorts"]
    assert applied["status"]["acceptedNames"]["categories"] == ["sukverse"]
    resources = ok(kubectl(crd, "api-resources", "--api-group=sukverse.io", "-o", "wide"))
    listed = r"sukversecohorts\s+cohort,cohorts\s+sukverse.io/v1alpha1\s+true\s+SukverseCohort"
    assert re.search(listed, resources)


def test_the_kopf_peering_crds_apply_and_keep_any_status(kubeconfig: Path) -> None:
    ok(kubectl(kubeconfig, "apply", "--server-side", "-f", str(PEERING_CRDS)))
    wait_established(kubeconfig, "crd/kopfpeerings.kopf.dev", "crd/clusterkopfpeerings.kopf.dev")
    peering = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": f"p-{uuid.uuid4().hex[:8]}"},
        "status": {"peer-1": {"priority": 0, "lastseen": "2026-01-01T00:00:00Z", "lifetime": 60}},
    }
    created = json.loads(
        ok(kubectl(kubeconfig, "create", "-f", "-", "-o", "json", stdin=json.dumps(peering)))
    )
    assert created["status"] == peering["status"]
    scopes = ok(kubectl(kubeconfig, "api-resources", "--api-group=kopf.dev", "--no-headers"))
    assert re.search(r"clusterkopfpeerings\s+kopf.dev/v1\s+false\s+ClusterKopfPeering", scopes)
    assert re.search(r"kopfpeerings\s+kopf.dev/v1\s+true\s+KopfPeering", scopes)


# -- samples and defaults ------------------------------------------------------------------


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.yaml")))
def test_a_sample_is_created_and_read_back_with_its_defaults(
    crd: Path, namespace: str, sample: str
) -> None:
    path = SAMPLES / sample
    ok(kubectl(crd, "apply", "-n", namespace, "-f", str(path)))
    read = json.loads(ok(kubectl(crd, "get", "-n", namespace, "-f", str(path), "-o", "json")))
    documents = list(yaml.safe_load_all(path.read_text()))
    items = read["items"] if read["kind"] == "List" else [read]
    assert [i["kind"] for i in items] == [d["kind"] for d in documents]
    written = cohort_in(documents)
    assert cohort_in(items)["spec"] == expected_with_defaults(sample, written["spec"])


def test_a_quiz_and_criteria_left_at_their_defaults_read_back_filled_in(
    crd: Path, namespace: str
) -> None:
    base = load(DATA / "base.yaml")
    created = json.loads(
        ok(kubectl(crd, "create", "-n", namespace, "-f", "-", "-o", "json", stdin=json.dumps(base)))
    )
    assert created["spec"] == expected_with_defaults("base.yaml", base["spec"])


# -- rules ---------------------------------------------------------------------------------

INVALID = yaml.safe_load((DATA / "invalid.yaml").read_text())


@pytest.mark.parametrize("case", INVALID, ids=[case["name"] for case in INVALID])
def test_an_invalid_cohort_is_refused_with_its_message(
    crd: Path, namespace: str, case: dict[str, Any]
) -> None:
    cohort = merge_patch(load(DATA / "base.yaml"), case.get("patch", {}))
    if "students" in case:
        cohort["spec"]["students"] = students(case["students"])
    refused = kubectl(crd, "create", "-n", namespace, "-f", "-", stdin=json.dumps(cohort))
    assert refused.returncode != 0, f"accepted: {case['name']}"
    assert case["message"] in refused.stderr
    assert kubectl(crd, "get", "-n", namespace, "cohort", "base").returncode != 0


def test_the_base_of_the_invalid_cases_is_itself_valid(crd: Path, namespace: str) -> None:
    cohort = json.dumps(load(DATA / "base.yaml"))
    ok(kubectl(crd, "create", "--dry-run=server", "-n", namespace, "-f", "-", stdin=cohort))


# -- size ----------------------------------------------------------------------------------


def test_a_cohort_of_the_most_students_is_accepted(crd: Path, namespace: str) -> None:
    cohort = load(DATA / "base.yaml")
    cohort["metadata"]["name"] = "largest"
    cohort["spec"]["students"] = students(MAX_STUDENTS)
    body = json.dumps(cohort)
    size = f"a cohort of {MAX_STUDENTS} students, {len(body.encode())} bytes"
    # `create`, not client-side `apply`: apply's last-applied annotation would copy the
    # whole object, and annotations are limited to 256 KiB.
    created = kubectl(crd, "create", "-n", namespace, "-f", "-", stdin=body)
    assert created.returncode == 0, f"{size}: {created.stderr}"
    emails = ok(
        kubectl(
            crd,
            "get",
            "-n",
            namespace,
            "cohort",
            "largest",
            "-o",
            "jsonpath={.spec.students[*].email}",
        )
    ).split()
    assert len(emails) == MAX_STUDENTS, size


# -- explain and printer columns ------------------------------------------------------------


def explain(kubeconfig: Path, field: str) -> str:
    """`kubectl explain`, retried while the API server publishes the CRD's OpenAPI."""
    deadline = time.monotonic() + 30
    while True:
        result = kubectl(kubeconfig, "explain", field)
        if result.returncode == 0 or time.monotonic() > deadline:
            return ok(result)
        time.sleep(0.5)


@pytest.mark.parametrize(
    ("field", "taught"),
    [
        (
            "sukversecohort.spec.workshop.steps",
            ["The workshop's steps in order", "key", "substeps"],
        ),
        ("cohort.spec.quizzes.questions.kind", ["one right option (single_choice)", "numeric"]),
        ("cohort.spec.studentsFrom", ["A CSV roster of students", "configMapKeyRef"]),
        ("cohort.status.phase", ["Degraded (a service refused or failed"]),
    ],
)
def test_kubectl_explain_teaches_the_fields(crd: Path, field: str, taught: list[str]) -> None:
    text = " ".join(explain(crd, field).split())
    for words in taught:
        assert words in text, text


def test_kubectl_get_shows_the_status_in_printer_columns(crd: Path, namespace: str) -> None:
    ok(kubectl(crd, "apply", "-n", namespace, "-f", str(SAMPLES / "small-cohort.yaml")))
    status = {
        "status": {
            "observedGeneration": 1,
            "phase": "Ready",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Reconciled",
                    "message": "the workshop, quizzes and enrollments match the spec",
                    "lastTransitionTime": "2026-09-01T09:00:00Z",
                    "observedGeneration": 1,
                }
            ],
            "enrolled": 3,
            "completed": 1,
            "completionPercent": 62.5,
            "atRisk": 1,
            "certificatesIssued": 1,
            "kopf": {"progress": {"reconcile": {"retries": 0, "started": "2026-09-01T09:00:00Z"}}},
        }
    }
    name = "cohort/git-basics-spring"
    ok(
        kubectl(
            crd,
            "patch",
            "-n",
            namespace,
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(status),
        )
    )
    lines = ok(kubectl(crd, "get", "cohorts", "-n", namespace)).splitlines()
    assert lines[0].split() == [
        "NAME",
        "READY",
        "PHASE",
        "ENROLLED",
        "COMPLETION",
        "AT-RISK",
        "CERTIFICATES",
        "AGE",
    ]
    assert lines[1].split()[:7] == ["git-basics-spring", "True", "Ready", "3", "62.5", "1", "1"]
    # Kopf's own bookkeeping is kept as it was written.
    read = json.loads(ok(kubectl(crd, "get", "-n", namespace, name, "-o", "json")))
    assert read["status"]["kopf"] == status["status"]["kopf"]
    # The rest of status is typed: a phase the CRD does not know is refused.
    bogus = json.dumps({"status": {"phase": "Sleeping"}})
    refused = kubectl(
        crd, "patch", "-n", namespace, name, "--subresource=status", "--type=merge", "-p", bogus
    )
    assert refused.returncode != 0
    assert 'Unsupported value: "Sleeping"' in refused.stderr
