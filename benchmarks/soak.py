"""The whole journey in a loop across the six services, with every service's memory and
open file descriptors sampled as it runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks.real_tier import ADMIN, Api, Cluster, JourneyError

SAMPLE_SECONDS = 10  # how often memory and descriptors are read
QUESTIONS = (("etcd keeps the cluster's state", True), ("a pod is a VM", False))


@dataclass
class Sample:
    at: float  # minutes from the start of the soak
    rss_mb: dict[str, float]
    fds: dict[str, int]


@dataclass
class Soak:
    minutes: float
    journeys: int
    requests: int
    errors: list[str]
    launched: Sample
    samples: list[Sample]
    latencies_ms: list[float]


async def soak(cluster: Cluster, *, minutes: float, concurrency: int = 4) -> Soak:
    """The journey in a loop, `concurrency` students at a time, each a new account:
    register, log in, get enrolled, do every substep, pass the quiz, wait for the
    certificate, fetch its credential, its status list and its verification, read the
    analytics, log out. Memory and descriptors of every service are read every SAMPLE_SECONDS."""

    def sample(at: float) -> Sample:
        return Sample(
            at,
            {name: service.rss_mb() for name, service in cluster.services.items()},
            {name: service.fds() for name, service in cluster.services.items()},
        )

    launched = sample(0.0)
    counts = {"requests": 0, "journeys": 0}
    errors: list[str] = []
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as http:
        api = _CountingApi(http, cluster, counts, latencies)
        admin = await api.login(**ADMIN)
        steps = [
            {"title": f"Step {s}", "substeps": [{"title": f"Substep {s}.{n}"} for n in range(2)]}
            for s in range(2)
        ]
        workshop = await api.call(
            "workshop", "POST", "/workshops", {"title": "Soak", "steps": steps}, admin, status=201
        )
        workshop_id = workshop["id"]
        substeps = [sub["id"] for step in workshop["steps"] for sub in step["substeps"]]
        quiz = await api.call(
            "quiz",
            "POST",
            "/quizzes",
            {
                "title": "Basics",
                "workshop_id": workshop_id,
                "pass_mark": 50,
                "max_attempts": 3,
                "questions": [
                    {"kind": "true_false", "prompt": prompt, "points": 1, "answer": answer}
                    for prompt, answer in QUESTIONS
                ],
            },
            admin,
            status=201,
        )
        template = {
            "workshop_id": workshop_id,
            "title": "Certificate of {workshop}",
            "body": "{name} completed {workshop} on {date}.",
            "criteria": {"min_completion_percent": 100, "required_quiz_ids": [quiz["id"]]},
        }
        await api.until(
            lambda: api.call("certificate", "POST", "/templates", template, admin, status=201),
            "the certificate service to learn of the workshop",
        )
        await api.until(
            lambda: api.call(
                "analytics", "GET", f"/analytics/workshops/{workshop_id}", None, admin
            ),
            "analytics to learn of the workshop",
        )
        truth = dict(QUESTIONS)
        numbers = iter(range(10**9))
        # The instructor logs in again well before the access token's 15 minutes are up,
        # as any client that outlives one token does.
        admin_since = time.monotonic()

        async def admin_token() -> str:
            nonlocal admin, admin_since
            if time.monotonic() - admin_since > 300:
                admin, admin_since = await api.login(**ADMIN), time.monotonic()
            return admin

        async def journey() -> None:
            user_id, token = await api.student(next(numbers), "soak")
            await api.call(
                "workshop",
                "POST",
                f"/workshops/{workshop_id}/enrollments",
                {"user_ids": [user_id]},
                await admin_token(),
            )
            for substep in substeps:
                await api.call(
                    "workshop",
                    "POST",
                    f"/workshops/{workshop_id}/progress",
                    {"substep_id": substep},
                    token,
                )
            await api.until(
                lambda: api.call("quiz", "GET", f"/quizzes/{quiz['id']}", None, token),
                "the quiz service to learn of the enrollment",
            )
            attempt = await api.call(
                "quiz", "POST", f"/quizzes/{quiz['id']}/attempts", None, token, status=201
            )
            answers = [
                {"question_id": q["id"], "value": truth[q["prompt"]]} for q in attempt["questions"]
            ]
            await api.call(
                "quiz", "PUT", f"/attempts/{attempt['id']}/answers", {"answers": answers}, token
            )
            result = await api.call(
                "quiz", "POST", f"/attempts/{attempt['id']}/submit", None, token
            )
            if not result["passed"]:
                raise JourneyError(f"the quiz was failed with every answer right: {result}")
            certificates = await api.until(
                lambda: _items(api.call("certificate", "GET", "/certificates", None, token)),
                "the certificate",
            )
            certificate_id = certificates[0]["id"]
            await api.call(
                "certificate", "GET", f"/certificates/{certificate_id}/credential", None, token
            )
            code = certificates[0]["verification_code"]
            verified = await api.call("certificate", "GET", f"/verify/{code}")
            if verified["status"] != "valid":
                raise JourneyError(f"the certificate verifies as {verified}")
            await api.call("certificate", "GET", "/status-lists/1")
            figures = f"/analytics/workshops/{workshop_id}"
            await api.call("analytics", "GET", figures, None, await admin_token())
            await api.call("auth", "GET", "/auth/me", None, token)
            await api.call("auth", "POST", "/auth/logout", {}, token, status=204)
            await api.call("auth", "GET", "/auth/me", None, token, status=401)
            counts["journeys"] += 1

        started = time.monotonic()
        end = started + minutes * 60
        samples: list[Sample] = []

        async def loop() -> None:
            while time.monotonic() < end:
                try:
                    await journey()
                except (JourneyError, RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(repr(exc)[:300])

        async def sampler() -> None:
            while time.monotonic() < end:
                samples.append(sample((time.monotonic() - started) / 60))
                await asyncio.sleep(SAMPLE_SECONDS)
            samples.append(sample((time.monotonic() - started) / 60))

        await asyncio.gather(sampler(), *(loop() for _ in range(concurrency)))
    return Soak(
        minutes=minutes,
        journeys=counts["journeys"],
        requests=counts["requests"],
        errors=errors,
        launched=launched,
        samples=samples,
        latencies_ms=latencies,
    )


async def _items(call: Awaitable[Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await call)["items"]
    return items


class _CountingApi(Api):
    def __init__(
        self,
        http: aiohttp.ClientSession,
        cluster: Cluster,
        counts: dict[str, int],
        latencies: list[float],
    ) -> None:
        super().__init__(http, cluster)
        self.counts, self.latencies = counts, latencies

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        self.counts["requests"] += 1
        started = time.perf_counter()
        try:
            return await super().call(*args, **kwargs)
        finally:
            self.latencies.append((time.perf_counter() - started) * 1000)
