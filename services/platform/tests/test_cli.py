"""`sukverse up` as a user runs it: starts, serves, stops on Ctrl-C, and keeps its data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import Platform, call
from sukverse_platform.registry import DEFAULT_PORT_BASE, SERVICES

PASSWORD = "correct horse battery staple"


def test_up_serves_stops_cleanly_on_ctrl_c_and_keeps_data(platform: Platform) -> None:
    platform.start()
    status, _ = call(
        "POST",
        f"{platform.url}/auth/register",
        {"email": "up@example.com", "password": PASSWORD, "full_name": "Up"},
    )
    assert status == 201
    code, output = platform.interrupt()
    assert code == 0, output
    assert "admin@sukverse.localhost" in output  # the generated admin was shown
    assert '"event": "stopping"' in output
    assert "Traceback" not in output
    assert sorted(p.name for p in platform.data_dir.glob("*.db")) == sorted(
        f"{name}.db" for name in SERVICES
    )

    platform.start()
    status, pair = call(
        "POST", f"{platform.url}/auth/login", {"email": "up@example.com", "password": PASSWORD}
    )
    assert status == 200 and pair["access_token"]
    code, output = platform.interrupt()
    assert code == 0
    assert "admin@sukverse.localhost" not in output  # shown once only


def test_bad_settings_stop_with_a_clear_message(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SUKVERSE_DATA_DIR": str(tmp_path),
        "SUKVERSE_LOG_LEVEL": "INFO",
        "SUKVERSE_MAX_BODY_BYTES": "ten",
    }
    result = subprocess.run(
        [sys.executable, "-m", "sukverse_platform", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "max_body_bytes" in result.stderr


def test_up_carries_events_between_services_in_process(platform: Platform) -> None:
    admin = {"email": "root@example.com", "password": "a long admin passphrase for tests"}
    platform.env = {
        "SUKVERSE_ADMIN_EMAIL": admin["email"],
        "SUKVERSE_ADMIN_PASSWORD": admin["password"],
    }
    platform.start()
    student = {"email": "learner@example.com", "password": PASSWORD}
    status, user = call("POST", f"{platform.url}/auth/register", {**student, "full_name": "L"})
    assert status == 201
    root = call("POST", f"{platform.url}/auth/login", admin)[1]["access_token"]
    learner = call("POST", f"{platform.url}/auth/login", student)[1]["access_token"]
    workshops, quizzes = platform.service_url("workshop"), platform.service_url("quiz")
    body = {"title": "W", "steps": [{"title": "S", "substeps": [{"title": "T"}]}]}
    status, workshop = call("POST", f"{workshops}/workshops", body, root)
    assert status == 201
    quiz_body = {
        "title": "Q",
        "workshop_id": workshop["id"],
        "pass_mark": 50,
        "max_attempts": 1,
        "grading": "highest",
        "questions": [{"kind": "true_false", "prompt": "Yes?", "points": 1, "answer": True}],
    }
    status, quiz = call("POST", f"{quizzes}/quizzes", quiz_body, root)
    assert status == 201
    attempts = f"{quizzes}/quizzes/{quiz['id']}/attempts"
    assert call("POST", attempts, None, learner)[0] == 404  # not enrolled yet

    enrolled = {"user_ids": [user["id"]]}
    assert (
        call("POST", f"{workshops}/workshops/{workshop['id']}/enrollments", enrolled, root)[0]
        == 200
    )
    # The quiz service learns of the enrollment from the workshop's event, in process.
    deadline = time.monotonic() + 10
    while (status := call("POST", attempts, None, learner)[0]) == 404:
        assert time.monotonic() < deadline, "the enrollment did not reach the quiz service"
        time.sleep(0.05)
    assert status == 201
    code, output = platform.interrupt()
    assert code == 0 and "Traceback" not in output


def test_up_provisions_its_machine_clients(platform: Platform) -> None:
    """The embedded platform gives user_mgmt and the operator client credentials of their
    own, kept in the data directory (0600) across restarts: a CSV import works under
    `sukverse up` with no configuration, and the operator's secret gets its token."""
    admin = {"email": "root@example.com", "password": "a long admin passphrase for tests"}
    platform.env = {
        "SUKVERSE_ADMIN_EMAIL": admin["email"],
        "SUKVERSE_ADMIN_PASSWORD": admin["password"],
    }
    platform.start()
    clients_file = platform.data_dir / "clients.json"
    assert clients_file.stat().st_mode & 0o777 == 0o600
    clients = json.loads(clients_file.read_text())
    assert sorted(clients) == ["operator", "user_mgmt"]
    root = call("POST", f"{platform.url}/auth/login", admin)[1]["access_token"]
    csv = "email,full_name\nimported@example.com,Imported Learner\n"
    request = urllib.request.Request(
        f"{platform.service_url('user_mgmt')}/imports",
        data=csv.encode(),
        method="POST",
        headers={"Content-Type": "text/csv", "Authorization": f"Bearer {root}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        accepted = json.loads(response.read())
    assert response.status == 202, accepted
    deadline = time.monotonic() + 20
    while True:
        status, report = call(
            "GET", f"{platform.service_url('user_mgmt')}/imports/{accepted['id']}", token=root
        )
        assert status == 200, report
        if report["status"] not in {"pending", "running"}:
            break
        assert time.monotonic() < deadline, report
        time.sleep(0.1)
    assert report["status"] == "done", report
    assert report["counts"]["created"] == 1, report
    code, output = platform.interrupt()
    assert code == 0, output

    platform.start()
    assert json.loads(clients_file.read_text()) == clients  # kept, not regenerated
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": "operator",
            "client_secret": clients["operator"],
        }
    ).encode()
    request = urllib.request.Request(f"{platform.url}/auth/token", data=form)
    with urllib.request.urlopen(request, timeout=10) as response:
        grant = json.loads(response.read())
    assert "workshop:write" in grant["scope"].split()
    assert "roles:write" not in grant["scope"].split()
    code, output = platform.interrupt()
    assert code == 0
    assert clients["operator"] not in output and clients["user_mgmt"] not in output


SAMPLES = Path(__file__).resolve().parents[3] / "k8s" / "samples"


def sukverse(platform: Platform, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """A `sukverse` command against the platform, as its user runs it on the same machine:
    the services' URLs and the data directory (where `up` keeps the operator's secret)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SUKVERSE_")},
        "SUKVERSE_DATA_DIR": str(platform.data_dir),
        **{f"SUKVERSE_{name.upper()}_URL": platform.service_url(name) for name in SERVICES},
    }
    return subprocess.run(
        [sys.executable, "-m", "sukverse_platform", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cohorts_apply_reapply_get_and_delete_without_kubernetes(platform: Platform) -> None:
    admin = {"email": "root@example.com", "password": "a long admin passphrase for tests"}
    platform.env = {
        "SUKVERSE_ADMIN_EMAIL": admin["email"],
        "SUKVERSE_ADMIN_PASSWORD": admin["password"],
    }
    platform.start()
    files = [SAMPLES / name for name in ("small-cohort.yaml", "quiz-and-certificate.yaml")]
    files.append(SAMPLES / "csv-roster.yaml")
    first = sukverse(platform, "apply", *(arg for f in files for arg in ("-f", str(f))))
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    applied = [line for line in lines if line.startswith("sukversecohort")]
    assert len(applied) == 3, first.stdout
    assert all("configured" in line and line.endswith(": Ready") for line in applied)
    invitations = platform.data_dir / "cohorts" / "default" / "git-basics-spring.invitations.json"
    assert invitations.stat().st_mode & 0o777 == 0o600
    assert len(json.loads(invitations.read_text())) == 3

    again = sukverse(platform, "apply", "-f", str(files[0]))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == (
        "sukversecohort.sukverse.io/git-basics-spring unchanged (0 writes): Ready"
    )

    table = sukverse(platform, "get", "cohorts")
    assert table.returncode == 0, table.stderr
    rows = [row.split() for row in table.stdout.splitlines()]
    assert rows[0] == [
        "NAMESPACE",
        "NAME",
        "READY",
        "PHASE",
        "ENROLLED",
        "COMPLETION",
        "AT-RISK",
        "CERTIFICATES",
    ]
    by_name = {row[1]: row for row in rows[1:]}
    assert by_name["git-basics-spring"][2:5] == ["True", "Ready", "3"]
    assert by_name["kubernetes-fundamentals-autumn"][2:5] == ["True", "Ready", "2"]

    status = json.loads(
        (platform.data_dir / "cohorts" / "default" / "git-basics-spring.cohort.json").read_text()
    )["status"]
    gone = sukverse(platform, "delete", "-f", str(files[0]))
    assert gone.returncode == 0, gone.stderr
    assert "git-basics-spring deleted" in gone.stdout
    root = call("POST", f"{platform.url}/auth/login", admin)[1]["access_token"]
    workshop = call(
        "GET", f"{platform.service_url('workshop')}/workshops/{status['workshopId']}", token=root
    )[1]
    assert workshop["status"] == "archived"
    enrollments = call(
        "GET",
        f"{platform.service_url('workshop')}/workshops/{status['workshopId']}/enrollments",
        token=root,
    )[1]
    assert len(enrollments["items"]) == 3  # the learners' records stay
    rows = sukverse(platform, "get", "cohorts").stdout.splitlines()
    assert not any("git-basics-spring" in row for row in rows)

    no_students = (
        "apiVersion: sukverse.io/v1alpha1\nkind: SukverseCohort\nmetadata: {name: empty}\n"
        "spec: {workshop: {title: W, steps: [{title: S, substeps: [{title: T}]}]}}\n"
    )
    bad = sukverse(platform, "apply", "-f", "-", stdin=no_students)
    assert bad.returncode == 1
    assert "SukverseCohort empty" in bad.stderr
    assert "a cohort needs students, studentsFrom, or both" in bad.stderr
    code, output = platform.interrupt()
    assert code == 0, output


def test_the_readmes_first_hour_runs_as_written(platform: Platform, tmp_path: Path) -> None:
    """The README's walk, from sign-up to a verified certificate, against `sukverse up`:
    only its ports are moved to this test's free ones."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## Calling the API", 1)[1]
    script = section.split("```sh\n", 1)[1].split("\n```", 1)[0]
    for port in range(DEFAULT_PORT_BASE, DEFAULT_PORT_BASE + len(SERVICES)):
        moved = platform.port_base + port - DEFAULT_PORT_BASE
        script = script.replace(f"127.0.0.1:{port}", f"127.0.0.1:{moved}")
    admin = {"SUKVERSE_ADMIN_EMAIL": "root@example.com", "SUKVERSE_ADMIN_PASSWORD": PASSWORD}
    platform.env = admin
    platform.start()
    result = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-euo", "pipefail", "-c", script],
        env={
            **os.environ,
            "ADMIN_EMAIL": admin["SUKVERSE_ADMIN_EMAIL"],
            "ADMIN_PASSWORD": PASSWORD,
            "SUKVERSE_DATA_DIR": str(platform.data_dir),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    me, progress, submitted, verified = (json.loads(line) for line in lines[:4])
    assert me["email"] == "ada@example.com" and me["roles"] == ["student"]
    assert progress["completed"] is True
    assert submitted["passed"] is True
    assert verified["status"] == "valid" and verified["name"] == "Ada Lovelace"
    assert lines[4] == "the logged-out token on the workshop service: 401"
    assert lines[5] == "Bearer"
    assert (tmp_path / "certificate.pdf").read_bytes().startswith(b"%PDF-")
    code, _ = platform.interrupt()
    assert code == 0


def test_every_link_of_the_readme_resolves_in_the_repository() -> None:
    """A fresh clone carries what its README links to (the design, the charts, the samples)."""
    import re

    root = Path(__file__).resolve().parents[3]
    readme = (root / "README.md").read_text()
    links = {
        target.split("#", 1)[0]
        for target in re.findall(r"\]\(([^)\s]+)\)", readme)
        if not re.match(r"^[a-z]+:", target) and not target.startswith("#")
    }
    assert "docs/DESIGN.md" in links
    missing = sorted(link for link in links if not (root / link).exists())
    assert not missing
    assert all((root / link).resolve().is_relative_to(root) for link in links)


def test_the_command_resumes_the_collector_it_pauses_for_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sukverse` pauses garbage collection while its modules load; a command that serves
    nothing turns it back on once its arguments are read, and a service once it is ready
    (`freeze_startup_objects`, held by the up tests above)."""
    import gc

    from sukverse_common.app import freeze_startup_objects
    from sukverse_platform import main

    monkeypatch.setenv("SUKVERSE_DATA_DIR", str(tmp_path))
    thresholds = gc.get_threshold()
    try:
        assert main(["migrate", "workshop"]) == 0
        assert gc.isenabled()
        gc.disable()
        freeze_startup_objects()
        assert gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
        gc.set_threshold(*thresholds)
