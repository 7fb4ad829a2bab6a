"""Every service's published contract, fuzzed: Schemathesis (pinned in the lock) runs every
check against each service's /openapi.json, on the embedded platform (`sukverse up`) and on
the real tier (each service its own process, PostgreSQL and Kafka), and finds nothing.

Stateful runs follow the documents' OpenAPI links. What a check cannot judge of one
operation is said in tests/schemathesis/schemathesis.toml, operation by operation, with
the reason; who the fuzzer calls as is in tests/schemathesis/hooks.py. Before the run the
test makes what no operation of a service makes itself (a workshop a student finished, so
that analytics has figures and a certificate exists)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import Platform, Server, ok

HERE = Path(__file__).resolve().parent / "schemathesis"
SERVICES = ("auth", "user_mgmt", "workshop", "quiz", "analytics", "certificate")
ADMIN = ("root@example.com", "a long admin passphrase for tests")
USER_ADMIN = ("accounts@example.com", "correct horse battery staple")
STUDENT = ("fuzz-student@example.com", "correct horse battery staple")
# The fuzzer logs in often and tries wrong passwords: no limit may lock it out.
LIMITS = {
    "SUKVERSE_ADMIN_EMAIL": ADMIN[0],
    "SUKVERSE_ADMIN_PASSWORD": ADMIN[1],
    "SUKVERSE_LOGIN_ADDRESS_LIMIT": "1000000",
    "SUKVERSE_LOGIN_MAX_FAILURES": "1000000",
    "SUKVERSE_ARGON2_MEMORY_KIB": "8192",
    "SUKVERSE_ARGON2_TIME_COST": "1",
    "SUKVERSE_LOG_LEVEL": "WARNING",
}

pytestmark = pytest.mark.timeout(900)


def until(fetch: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + 30
    while not (found := fetch()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


def login(auth: str, who: tuple[str, str]) -> str:
    return str(
        ok("POST", f"{auth}/auth/login", {"email": who[0], "password": who[1]})["access_token"]
    )


def prepare(url: Mapping[str, str]) -> dict[str, str]:
    """The accounts the fuzzer calls as, and the data it cannot make; the environment that
    names them to the hooks and the configuration."""
    auth = url["auth"]
    admin = login(auth, ADMIN)
    permissions = ["users:read", "users:write", "users:disable", "roles:assign"]
    ok("POST", f"{auth}/roles", {"name": "accounts", "permissions": permissions}, admin)
    ids = {}
    for name, (email, password) in (("accounts", USER_ADMIN), ("student", STUDENT)):
        body = {"email": email, "password": password, "full_name": name.title()}
        ids[name] = ok("POST", f"{auth}/auth/register", body)["id"]
    ok("PUT", f"{auth}/users/{ids['accounts']}/roles", {"roles": ["accounts"]}, admin)

    body = {"title": "Fuzzed", "steps": [{"title": "One", "substeps": [{"title": "Only"}]}]}
    workshop = ok("POST", f"{url['workshop']}/workshops", body, admin)
    ok(
        "POST",
        f"{url['workshop']}/workshops/{workshop['id']}/enrollments",
        {"user_ids": [ids["student"]]},
        admin,
    )
    substep = workshop["steps"][0]["substeps"][0]["id"]
    student = login(auth, STUDENT)
    progress = f"{url['workshop']}/workshops/{workshop['id']}/progress"
    ok("POST", progress, {"substep_id": substep}, student)
    template = {"workshop_id": workshop["id"], "title": "Done", "body": "{name} did {workshop}"}
    ok("POST", f"{url['certificate']}/templates", template, admin)
    until(
        lambda: ok("GET", f"{url['certificate']}/certificates", token=admin)["items"],
        "the certificate",
    )
    until(
        lambda: ok("GET", f"{url['analytics']}/analytics/workshops/{workshop['id']}", token=admin)[
            "completed"
        ],
        "analytics to count the completion",
    )
    keys = ok("GET", f"{url['certificate']}/.well-known/jwks.json")["keys"]
    return {
        "SCHEMATHESIS_HOOKS": str(HERE / "hooks.py"),
        "SUKVERSE_FUZZ_AUTH_URL": auth,
        "SUKVERSE_FUZZ_ADMIN": ":".join(ADMIN),
        "SUKVERSE_FUZZ_USER_ADMIN": ":".join(USER_ADMIN),
        "SUKVERSE_FUZZ_WORKSHOP": workshop["id"],
        "SUKVERSE_FUZZ_KID": keys[0]["kid"].rsplit("/", 1)[-1],  # the key's URL ends in it
    }


def fuzz(
    tier: str, url: Mapping[str, str], env: Mapping[str, str], reports: Path
) -> dict[str, Any]:
    """Run Schemathesis against every service; each one's totals, also written to
    $CONTRACT_TOTALS_DIR/<tier>.json when that names a directory (the reliability
    report reads them there)."""
    totals = {}
    for service in SERVICES:
        report = reports / f"{service}.json"
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "--config-file",
                str(HERE / "schemathesis.toml"),
                "run",
                f"{url[service]}/openapi.json",
                "--report-json-path",
                str(report),
                "--no-color",
            ],
            env={**os.environ, **env},
            cwd=reports,  # where it keeps what `st replay` needs
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, (
            f"{service}:\n{result.stdout[-20000:]}{result.stderr[-3000:]}"
        )
        document = json.loads(report.read_text())
        assert document["failures"] == [], (service, document["failures"])
        assert document["errors"] == [], (service, document["errors"])
        # Every phase ran (the examples phase has no examples to run), and the fuzzer's
        # logins held: a run refused everywhere would pass on 401s alone.
        assert {name: phase["status"] for name, phase in document["phases"].items()} == {
            "examples": "skip",
            "coverage": "success",
            "fuzzing": "success",
            "stateful": "success",
        }, service
        assert not document["auth"]["reauth_broke"], service
        totals[service] = {
            "operations": document["operations"]["tested"],
            "test_cases": document["test_cases"]["generated"],
            "failures": document["test_cases"]["with_failures"],
        }
        assert totals[service]["operations"] == document["operations"]["total"], service
    print(json.dumps(totals, indent=2))
    if keep := os.environ.get("CONTRACT_TOTALS_DIR"):
        (Path(keep) / f"{tier}.json").write_text(json.dumps(totals, indent=2))
    return totals


def test_every_contract_holds_under_fuzzing_on_the_embedded_platform(
    platform: Platform, tmp_path: Path
) -> None:
    platform.env = LIMITS
    platform.start()
    url = {name: platform.service_url(name) for name in SERVICES}
    fuzz("embedded", url, prepare(url), tmp_path)


@pytest.mark.real
async def test_every_contract_holds_under_fuzzing_on_the_real_tier(
    launch: Callable[..., Any],
    new_database: Callable[[], Awaitable[str]],
    kafka_server: Server,
    tmp_path: Path,
) -> None:
    bus = {
        "SUKVERSE_BUS": "kafka",
        "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS": kafka_server.address,
        "SUKVERSE_KAFKA_TOPIC_PREFIX": f"s{uuid.uuid4().hex[:10]}.",
    }
    client = {"user_mgmt": "user-mgmt-client-secret-0123456789"}  # user_mgmt calls auth
    auth = launch(
        "auth",
        {
            **bus,
            **LIMITS,
            "SUKVERSE_DATABASE_URL": await new_database(),
            "SUKVERSE_SERVICE_CLIENTS": json.dumps(client),
        },
    )
    url = {"auth": auth.url}
    cluster = {**bus, "SUKVERSE_MODE": "cluster", "SUKVERSE_AUTH_URL": auth.url}
    for name in SERVICES[1:]:
        own = {
            "user_mgmt": {
                "SUKVERSE_AUTH_CLIENT_ID": "user_mgmt",
                "SUKVERSE_AUTH_CLIENT_SECRET": client["user_mgmt"],
            },
            "certificate": {"SUKVERSE_WORKSHOP_URL": url.get("workshop", "")},
        }.get(name, {})
        settings = {**cluster, **own, "SUKVERSE_DATABASE_URL": await new_database()}
        url[name] = launch(name, settings, migrate=True).url
    fuzz("real", url, prepare(url), tmp_path)
