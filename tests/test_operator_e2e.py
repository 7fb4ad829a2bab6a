"""The cohort operator end to end: a real kube-apiserver (with the controller manager), the
services as processes of their own on PostgreSQL and Kafka, and the operator as
`sukverse operator` signed in with the token of the chart's ServiceAccount, nothing more.

The samples become Ready with their ids and figures; a change is applied as its difference
alone; a roster edit and students' progress reach the status; deletion archives the workshop
and keeps the learners' records; the operator killed mid-reconcile converges without a
duplicate; a service down is Degraded and recovers; two replicas never both reconcile; and
a cohort of the most students the CRD allows reconciles and deletes."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.cluster import Operator, eventually, install_operator_chart, kubectl
from benchmarks.harness import free_port

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "k8s" / "samples"
ADMIN = {"email": "admin@example.com", "password": "a long admin passphrase for tests"}
PASSWORD = "correct horse battery staple"
OPERATOR_SECRET = "operator-e2e-secret-0123456789abcdef"
MAX_STUDENTS = 5000

pytestmark = pytest.mark.real


# -- the parts -----------------------------------------------------------------------------


def call(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    *,
    form: dict[str, str] | None = None,
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    if form is not None:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        data = urllib.parse.urlencode(form).encode()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@dataclass
class Cluster:
    kubeconfig: Path  # the admin's
    operator_kubeconfig: Path  # the chart's ServiceAccount's token
    urls: dict[str, str]
    services: dict[str, Any]
    operator: Operator
    directory: Path
    extra: list[Operator] = field(default_factory=list)

    def admin_token(self) -> str:
        status, tokens = call("POST", self.urls["auth"] + "/auth/login", ADMIN)
        assert status == 200, tokens
        return str(tokens["access_token"])

    def operator_token(self) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": "operator",
            "client_secret": OPERATOR_SECRET,
        }
        status, grant = call("POST", self.urls["auth"] + "/auth/token", form=form)
        assert status == 200, grant
        return str(grant["access_token"])

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return kubectl(self.kubeconfig, *args, **kwargs)

    def cohort(self, namespace: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            self.kubectl("get", "cohort", "-n", namespace, name, "-o", "json").stdout
        )
        return found

    def wait_phase(
        self, namespace: str, name: str, phase: str = "Ready", timeout: float = 90.0
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            body = self.cohort(namespace, name)
            status = body.get("status") or {}
            generation = body["metadata"]["generation"]
            if status.get("phase") == phase and status.get("observedGeneration") == generation:
                return body
            return None

        try:
            found: dict[str, Any] = eventually(reached, f"{name} {phase}", timeout)
        except AssertionError:
            status = self.cohort(namespace, name).get("status")
            raise AssertionError(
                f"{name} is not {phase}: {status}\n{self.operator.tail()}"
            ) from None
        return found

    def writes(self, key: str, since: int) -> list[int]:
        """The service writes of each reconcile of the cohort `key` logged after line `since`."""
        return [int(line["writes"]) for line in self.operator.reconciles(key, since)]


@pytest.fixture(scope="module")
def cluster(
    helm: Path,
    kubeconfig: Path,
    kafka_server: Any,
    create_database: Callable[[], str],
    module_launch: Callable[..., Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("operator")
    operator_kubeconfig = install_operator_chart(helm, kubeconfig, directory)
    # The API server is the run's: cohorts other tests left (none have finalizers yet) go,
    # so that the operator's work is this module's alone.
    kubectl(kubeconfig, "delete", "cohorts", "--all", "--all-namespaces", "--wait=true")
    common = {
        "SUKVERSE_BUS": "kafka",
        "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS": kafka_server.address,
        "SUKVERSE_KAFKA_TOPIC_PREFIX": f"op{uuid.uuid4().hex[:10]}.",
        "SUKVERSE_KAFKA_PARTITIONS": "1",
        "SUKVERSE_OUTBOX_POLL_SECONDS": "0.1",
        "SUKVERSE_ACCESS_TOKEN_TTL_SECONDS": "3600",
    }
    auth = module_launch(
        "auth",
        {
            **common,
            "SUKVERSE_DATABASE_URL": create_database(),
            "SUKVERSE_ADMIN_EMAIL": ADMIN["email"],
            "SUKVERSE_ADMIN_PASSWORD": ADMIN["password"],
            "SUKVERSE_ARGON2_MEMORY_KIB": "8192",
            "SUKVERSE_ARGON2_TIME_COST": "1",
            "SUKVERSE_LOGIN_ADDRESS_LIMIT": "100000",
            "SUKVERSE_SERVICE_CLIENTS": json.dumps({"operator": OPERATOR_SECRET}),
        },
        migrate=True,
    )
    services = {"auth": auth}
    for name in ("workshop", "quiz", "analytics", "certificate"):
        # The certificate service asks the workshop service of a workshop it has not heard of.
        workshop = (
            {"SUKVERSE_WORKSHOP_URL": services["workshop"].url} if "workshop" in services else {}
        )
        services[name] = module_launch(
            name,
            {
                **common,
                **workshop,
                "SUKVERSE_DATABASE_URL": create_database(),
                "SUKVERSE_AUTH_URL": auth.url,
            },
            migrate=True,
        )
    urls = {name: service.url for name, service in services.items()}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SUKVERSE_")},
        "KUBECONFIG": str(operator_kubeconfig),
        "SUKVERSE_DATA_DIR": str(directory),
        "SUKVERSE_OPERATOR_CLIENT_SECRET": OPERATOR_SECRET,
        "SUKVERSE_SYNC_INTERVAL_SECONDS": "2",
        "SUKVERSE_RETRY_DELAY_SECONDS": "1",
        "SUKVERSE_LOG_LEVEL": "INFO",
        **{f"SUKVERSE_{name.upper()}_URL": url for name, url in urls.items()},
    }
    operator = Operator(env, directory / "operator.log", free_port())
    cluster = Cluster(kubeconfig, operator_kubeconfig, urls, services, operator, directory)
    operator.start()
    yield cluster
    for extra in cluster.extra:
        extra.stop()
    operator.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    return name


def apply(cluster: Cluster, namespace: str, document: Any) -> None:
    text = document if isinstance(document, str) else yaml.safe_dump_all(document)
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=text)


def sample(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((SAMPLES / name).read_text()) if d]


def cohort_of(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in documents if d["kind"] == "SukverseCohort")


# -- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "enrolled", "quizzes", "certificate"),
    [
        ("small-cohort.yaml", 3, 0, False),
        ("quiz-and-certificate.yaml", 2, 1, True),
        ("csv-roster.yaml", None, 0, False),
    ],
)
def test_each_sample_becomes_ready_with_its_ids_and_figures(
    cluster: Cluster,
    namespace: str,
    file: str,
    enrolled: int | None,
    quizzes: int,
    certificate: bool,
) -> None:
    documents = sample(file)
    apply(cluster, namespace, documents)
    name = cohort_of(documents)["metadata"]["name"]
    body = cluster.wait_phase(namespace, name)
    status = body["status"]
    if enrolled is None:  # the roster's rows
        roster = next(d for d in documents if d["kind"] == "ConfigMap")
        enrolled = len(next(iter(roster["data"].values())).strip().splitlines()) - 1
    assert status["enrolled"] == enrolled
    assert len(status["quizIds"]) == quizzes
    assert ("templateId" in status) is certificate
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Degraded"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "Reconciled"
    # The workshop carries the cohort's UID, and analytics knows it.
    token = cluster.operator_token()
    workshop = status["workshopId"]
    found = call(
        "GET",
        f"{cluster.urls['workshop']}/workshops?external_id={body['metadata']['uid']}",
        token=token,
    )[1]
    assert [w["id"] for w in found["items"]] == [workshop]

    def figures() -> Any:
        status, found = call(
            "GET", f"{cluster.urls['analytics']}/analytics/workshops/{workshop}", None, token
        )
        return found if status == 200 and found["enrolled"] == enrolled else None

    assert eventually(figures, "analytics' figures")["title"]
    assert status.get("completed", 0) == 0
    # kubectl shows the printer columns.
    lines = cluster.kubectl("get", "cohorts", "-n", namespace).stdout.splitlines()
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
    assert lines[1].split()[:4] == [name, "True", "Ready", str(enrolled)]
    # The new accounts' set-password tokens are in a Secret the cohort owns.
    secret = json.loads(
        cluster.kubectl(
            "get", "secret", "-n", namespace, f"{name}-invitations", "-o", "json"
        ).stdout
    )
    assert secret["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    assert len(secret["data"]) >= enrolled


def test_a_change_is_applied_as_its_difference_and_nothing_more(
    cluster: Cluster, namespace: str
) -> None:
    documents = sample("quiz-and-certificate.yaml")
    cohort = cohort_of(documents)
    name = cohort["metadata"]["name"]
    apply(cluster, namespace, documents)
    body = cluster.wait_phase(namespace, name)
    key = body["metadata"]["uid"]
    token = cluster.operator_token()
    workshop_id = body["status"]["workshopId"]
    before = call("GET", f"{cluster.urls['workshop']}/workshops/{workshop_id}", None, token)[1]

    # Nothing changed: the timer's full runs write nothing, to the services or the server.
    cluster.kubectl(
        "annotate", "cohort", "-n", namespace, name, "example.com/touched=yes"
    )  # a real update event with the same spec
    since = len(cluster.operator.lines())
    time.sleep(3)
    version = cluster.cohort(namespace, name)["metadata"]["resourceVersion"]
    time.sleep(5)  # two more timer rounds
    assert cluster.cohort(namespace, name)["metadata"]["resourceVersion"] == version
    assert cluster.writes(key, since)  # the update was reconciled in full ...
    assert set(cluster.writes(key, since)) == {0}  # ... and wrote nothing

    # One student added, one removed, a step added, a substep edited, the criteria changed.
    spec = cohort["spec"]
    spec["students"] = [
        spec["students"][0],
        {"email": f"new-{namespace}@example.com", "name": "Barbara Liskov"},
    ]
    spec["workshop"]["steps"].append(
        {"key": "ingress", "title": "Ingress", "substeps": [{"title": "Route traffic in"}]}
    )
    spec["workshop"]["steps"][0]["substeps"][0]["body"] = "A Pod is the smallest deployable unit."
    spec["certificate"]["criteria"]["minCompletionPercent"] = 80
    since = len(cluster.operator.lines())
    apply(cluster, namespace, documents)
    body = cluster.wait_phase(namespace, name)
    # auth: 1 account; workshop: 1 enrollment, 1 withdrawal, 1 patch of the steps;
    # certificate: 1 patch of the template.
    assert cluster.writes(key, since) == [5]
    assert body["status"]["enrolled"] == 2
    after = call("GET", f"{cluster.urls['workshop']}/workshops/{workshop_id}", None, token)[1]
    # The substeps kept their ids (progress stays), the new step has its key.
    assert [s["id"] for s in after["steps"][:3]] == [s["id"] for s in before["steps"]]
    assert after["steps"][0]["substeps"][0]["body"] == "A Pod is the smallest deployable unit."
    assert after["steps"][3]["key"] == "ingress"
    template = call(
        "GET",
        f"{cluster.urls['certificate']}/templates/{body['status']['templateId']}",
        None,
        token,
    )[1]
    assert template["criteria"]["min_completion_percent"] == 80


def test_a_roster_edit_and_students_progress_reach_the_status(
    cluster: Cluster, namespace: str
) -> None:
    documents = sample("csv-roster.yaml")
    name = cohort_of(documents)["metadata"]["name"]
    roster = next(d for d in documents if d["kind"] == "ConfigMap")
    roster_key = next(iter(roster["data"]))
    apply(cluster, namespace, documents)
    body = cluster.wait_phase(namespace, name)
    enrolled = body["status"]["enrolled"]

    roster["data"][roster_key] += "new.student@example.com,New Student\n"
    apply(cluster, namespace, [roster])
    eventually(
        lambda: cluster.cohort(namespace, name).get("status", {}).get("enrolled") == enrolled + 1,
        "the roster's new student enrolled",
    )

    # The new student sets a password with the token from the invitations Secret, then
    # completes every substep; the timer copies analytics' figures into the status.
    secret = json.loads(
        cluster.kubectl(
            "get", "secret", "-n", namespace, f"{name}-invitations", "-o", "json"
        ).stdout
    )
    invitations = [json.loads(base64.b64decode(v)) for v in secret["data"].values()]
    (mine,) = [i for i in invitations if i["email"] == "new.student@example.com"]
    assert "token" in mine and "expiresAt" in mine
    auth = cluster.urls["auth"]
    assert (
        call("POST", f"{auth}/auth/password", {"token": mine["token"], "password": PASSWORD})[0]
        == 204
    )
    student = call(
        "POST", f"{auth}/auth/login", {"email": "new.student@example.com", "password": PASSWORD}
    )[1]["access_token"]
    workshop_id = cluster.cohort(namespace, name)["status"]["workshopId"]
    workshop = call("GET", f"{cluster.urls['workshop']}/workshops/{workshop_id}", None, student)[1]
    for step in workshop["steps"]:
        for substep in step["substeps"]:
            status, _ = call(
                "POST",
                f"{cluster.urls['workshop']}/workshops/{workshop_id}/progress",
                {"substep_id": substep["id"]},
                student,
            )
            assert status == 200
    status = eventually(
        lambda: (
            (s := cluster.cohort(namespace, name).get("status", {})).get("completed") == 1 and s
        ),
        "the completion in the status",
    )
    assert status["completionPercent"] > 0


def test_deleting_archives_the_workshop_and_keeps_the_learners_records(
    cluster: Cluster, namespace: str
) -> None:
    documents = sample("small-cohort.yaml")
    name = cohort_of(documents)["metadata"]["name"]
    apply(cluster, namespace, documents)
    body = cluster.wait_phase(namespace, name)
    assert "sukverse.io/cohort" in body["metadata"]["finalizers"]
    workshop_id = body["status"]["workshopId"]
    cluster.kubectl("delete", "cohort", "-n", namespace, name, "--timeout=60s")
    assert cluster.kubectl("get", "cohort", "-n", namespace, name, check=False).returncode != 0
    admin = cluster.admin_token()
    workshop = call("GET", f"{cluster.urls['workshop']}/workshops/{workshop_id}", None, admin)[1]
    assert workshop["status"] == "archived"
    enrollments = call(
        "GET", f"{cluster.urls['workshop']}/workshops/{workshop_id}/enrollments", None, admin
    )[1]
    assert len(enrollments["items"]) == 3
    # The invitations Secret goes with its owner (the controller manager's collector).
    eventually(
        lambda: (
            cluster.kubectl(
                "get", "secret", "-n", namespace, f"{name}-invitations", check=False
            ).returncode
            != 0
        ),
        "the invitations Secret garbage-collected",
    )
    # And the namespace really deletes.
    cluster.kubectl("delete", "namespace", namespace, "--timeout=90s")


def test_invalid_input_from_a_service_is_degraded_with_its_reason(
    cluster: Cluster, namespace: str
) -> None:
    documents = sample("small-cohort.yaml")
    cohort = cohort_of(documents)
    name = cohort["metadata"]["name"]
    # An instructor email the CRD takes but auth refuses (a special-use domain).
    cohort["spec"]["instructors"] = ["teacher@school.invalid"]
    apply(cluster, namespace, documents)
    body = cluster.wait_phase(namespace, name, "Degraded")
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ChangeRefused"
    assert "auth refused the change" in ready["message"]
    assert "email" in ready["message"]
    events = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
    ).stdout
    assert "ChangeRefused" in events


# Its waits are longer than the suite's 120 s default per test.
@pytest.mark.timeout(600)
def test_killed_mid_reconcile_the_operator_converges_without_a_duplicate(
    cluster: Cluster, namespace: str
) -> None:
    name = "big-enough-to-interrupt"
    students = [{"email": f"kill-{n:04d}@example.com", "name": f"K {n}"} for n in range(400)]
    document = {
        "apiVersion": "sukverse.io/v1alpha1",
        "kind": "SukverseCohort",
        "metadata": {"name": name},
        "spec": {
            "workshop": {
                "title": f"Interrupted {namespace}",
                "steps": [{"title": "S", "substeps": [{"title": "T"}]}],
            },
            "students": students,
        },
    }
    since = len(cluster.operator.lines())
    apply(cluster, namespace, [document])
    eventually(
        lambda: any(
            line.get("event") == "reconciling" for line in cluster.operator.lines()[since:]
        ),
        "the reconcile to start",
    )
    time.sleep(1.0)  # accounts are being made
    cluster.operator.kill()
    cluster.operator.start()
    body = cluster.wait_phase(namespace, name, timeout=180)
    assert body["status"]["enrolled"] == 400
    admin = cluster.admin_token()
    workshops = call("GET", f"{cluster.urls['workshop']}/workshops?limit=200", None, admin)[1]
    titles = [w["title"] for w in workshops["items"] if w["status"] == "active"]
    assert titles.count(f"Interrupted {namespace}") == 1
    enrollments = call(
        "GET",
        f"{cluster.urls['workshop']}/workshops/{body['status']['workshopId']}/enrollments?limit=200",
        None,
        admin,
    )[1]
    assert len({e["user_id"] for e in enrollments["items"]}) == len(enrollments["items"])


def test_a_service_down_is_degraded_then_recovers_without_a_restart(
    cluster: Cluster, namespace: str
) -> None:
    documents = sample("quiz-and-certificate.yaml")
    name = cohort_of(documents)["metadata"]["name"]
    quiz = cluster.services["quiz"]
    quiz.stop()
    try:
        apply(cluster, namespace, documents)
        body = cluster.wait_phase(namespace, name, "Degraded")
        ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "ServiceUnavailable"
        assert "quiz is not reachable" in ready["message"]
    finally:
        quiz.start()
    cluster.wait_phase(namespace, name, timeout=60)


def test_two_replicas_never_reconcile_one_cohort_at_once(cluster: Cluster, namespace: str) -> None:
    second = Operator(cluster.operator.env, cluster.directory / "operator-2.log", free_port())
    cluster.extra.append(second)
    second.start()
    time.sleep(3)  # the peers see each other; one of them pauses
    first_since, second_since = len(cluster.operator.lines()), len(second.lines())
    documents = sample("small-cohort.yaml")
    apply(cluster, namespace, documents)
    body = cluster.wait_phase(namespace, cohort_of(documents)["metadata"]["name"])
    key = body["metadata"]["uid"]

    def reconciled(operator: Operator, since: int) -> int:
        return sum(
            1
            for line in operator.lines()[since:]
            if line.get("event") in {"reconciling", "reconciled"} and line.get("cohort") == key
        )

    counts = [reconciled(cluster.operator, first_since), reconciled(second, second_since)]
    assert sorted(c > 0 for c in counts) == [False, True], counts
    second.stop()
    cluster.extra.remove(second)


# Its waits are longer than the suite's 120 s default per test.
@pytest.mark.timeout(600)
def test_a_cohort_of_the_most_students_reconciles_and_deletes(
    cluster: Cluster, namespace: str
) -> None:
    name = "the-largest"
    document = {
        "apiVersion": "sukverse.io/v1alpha1",
        "kind": "SukverseCohort",
        "metadata": {"name": name},
        "spec": {
            "workshop": {
                "title": "Largest",
                "steps": [{"title": "S", "substeps": [{"title": "T"}]}],
            },
            "students": [
                {"email": f"max-{n:04d}@example.com", "name": f"Student {n:04d}"}
                for n in range(MAX_STUDENTS)
            ],
        },
    }
    apply(cluster, namespace, [document])
    body = cluster.wait_phase(namespace, name, timeout=400)
    assert body["status"]["enrolled"] == MAX_STUDENTS
    annotations = body["metadata"].get("annotations") or {}
    assert sum(len(k) + len(v) for k, v in annotations.items()) < 4096  # a digest, not the spec
    cluster.kubectl("delete", "cohort", "-n", namespace, name, "--timeout=120s")
    assert cluster.kubectl("get", "cohort", "-n", namespace, name, check=False).returncode != 0
