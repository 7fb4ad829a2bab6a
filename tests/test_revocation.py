"""Revocation takes effect on every service: right after a logout, a role taken away and an
account disabled, the access tokens they cover are refused by workshop and quiz within 2
seconds on the embedded platform (`sukverse up`, one process, the in-process bus) and within
5 on the real tier (each service its own process, PostgreSQL and Kafka). The embedded one
still refuses them after a restart, from its outbox."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from conftest import Platform, Server, call

ADMIN = {"email": "root@example.com", "password": "a long admin passphrase for tests"}
PASSWORD = "correct horse battery staple"
WITHIN = {"embedded": 2.0, "real": 5.0}

pytestmark = pytest.mark.timeout(180)


class Services:
    def __init__(self, auth: str, workshop: str, quiz: str) -> None:
        self.auth, self.workshop, self.quiz = auth, workshop, quiz

    def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        status, pair = call(
            "POST", f"{self.auth}/auth/login", {"email": email, "password": password}
        )
        assert status == 200, pair
        return dict(pair)

    def works(self, token: str) -> bool:
        """Whether workshop and quiz both take the token (200), or both refuse it (401)."""
        statuses = {
            call("GET", f"{self.workshop}/workshops", token=token)[0],
            call("GET", f"{self.quiz}/quizzes", token=token)[0],
        }
        assert statuses in ({200}, {401}, {200, 401}), statuses
        return statuses == {200}

    def refused_after(self, token: str, within: float) -> float:
        """Seconds until both services refuse the token (failing after `within`)."""
        started = time.monotonic()
        while True:
            statuses = {
                call("GET", f"{self.workshop}/workshops", token=token)[0],
                call("GET", f"{self.quiz}/quizzes", token=token)[0],
            }
            elapsed = time.monotonic() - started
            if statuses == {401}:
                return elapsed
            assert elapsed < within, f"still {statuses} after {elapsed:.2f} s"
            time.sleep(0.02)


def revoke_each_way(services: Services, within: float) -> dict[str, float]:
    """Log out, take a role away, disable: the tokens each covers are refused by workshop and
    quiz within `within` seconds, and those it does not cover go on working."""
    admin = services.login(ADMIN["email"], ADMIN["password"])["access_token"]
    people = {}
    for name in ("leaver", "demoted", "disabled"):
        email = f"{name}-{uuid.uuid4().hex[:6]}@example.com"
        status, user = call(
            "POST",
            f"{services.auth}/auth/register",
            {"email": email, "password": PASSWORD, "full_name": name.title()},
        )
        assert status == 201, user
        people[name] = (user["id"], email)
    demoted_id = people["demoted"][0]
    status, _ = call(
        "PUT", f"{services.auth}/users/{demoted_id}/roles", {"roles": ["instructor"]}, admin
    )
    assert status == 200
    took: dict[str, float] = {}

    leaving, staying = services.login(people["leaver"][1]), services.login(people["leaver"][1])
    assert services.works(leaving["access_token"])
    status, _ = call("POST", f"{services.auth}/auth/logout", {}, leaving["access_token"])
    assert status == 204
    took["logout"] = services.refused_after(leaving["access_token"], within)
    assert services.works(staying["access_token"])  # another session of the same user

    demoted = services.login(people["demoted"][1])["access_token"]
    assert services.works(demoted)
    status, _ = call(
        "PUT", f"{services.auth}/users/{demoted_id}/roles", {"roles": ["student"]}, admin
    )
    assert status == 200
    took["role taken away"] = services.refused_after(demoted, within)
    assert services.works(services.login(people["demoted"][1])["access_token"])

    disabled = services.login(people["disabled"][1])["access_token"]
    assert services.works(disabled)
    status, _ = call(
        "PUT", f"{services.auth}/users/{people['disabled'][0]}/status", {"active": False}, admin
    )
    assert status == 200
    took["disabled"] = services.refused_after(disabled, within)
    assert services.works(admin)
    return took


def test_revocations_reach_workshop_and_quiz_on_the_embedded_platform(platform: Platform) -> None:
    platform.env = {
        "SUKVERSE_ADMIN_EMAIL": ADMIN["email"],
        "SUKVERSE_ADMIN_PASSWORD": ADMIN["password"],
    }
    platform.start()
    services = Services(
        platform.url, platform.service_url("workshop"), platform.service_url("quiz")
    )
    email = f"restart-{uuid.uuid4().hex[:6]}@example.com"
    status, _ = call(
        "POST",
        f"{platform.url}/auth/register",
        {"email": email, "password": PASSWORD, "full_name": "Restart"},
    )
    assert status == 201
    ended = services.login(email)["access_token"]
    assert call("POST", f"{platform.url}/auth/logout", {}, ended)[0] == 204

    took = revoke_each_way(services, WITHIN["embedded"])
    print(f"embedded: refused after {took}")

    # A restart forgets nothing: the relay replays the outbox's last hour to the verifiers.
    code, output = platform.interrupt()
    assert code == 0, output
    platform.start()
    assert not services.works(ended)


@pytest.mark.real
async def test_revocations_reach_workshop_and_quiz_on_the_real_tier(
    launch: Callable[..., Any],
    new_database: Callable[[], Awaitable[str]],
    kafka_server: Server,
) -> None:
    bus = {
        "SUKVERSE_BUS": "kafka",
        "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS": kafka_server.address,
        "SUKVERSE_KAFKA_TOPIC_PREFIX": f"r{uuid.uuid4().hex[:10]}.",
    }
    auth = launch(
        "auth",
        {
            **bus,
            "SUKVERSE_DATABASE_URL": await new_database(),
            "SUKVERSE_ADMIN_EMAIL": ADMIN["email"],
            "SUKVERSE_ADMIN_PASSWORD": ADMIN["password"],
            "SUKVERSE_ARGON2_MEMORY_KIB": "8192",
            "SUKVERSE_ARGON2_TIME_COST": "1",
        },
    )
    cluster = {**bus, "SUKVERSE_MODE": "cluster", "SUKVERSE_AUTH_URL": auth.url}
    workshop = launch(
        "workshop", {**cluster, "SUKVERSE_DATABASE_URL": await new_database()}, migrate=True
    )
    quiz = launch("quiz", {**cluster, "SUKVERSE_DATABASE_URL": await new_database()}, migrate=True)
    took = revoke_each_way(Services(auth.url, workshop.url, quiz.url), WITHIN["real"])
    print(f"real: refused after {took}")
