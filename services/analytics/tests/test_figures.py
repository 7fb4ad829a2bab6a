"""Figures and at-risk lists from a known cohort, checked against hand-computed values;
the same events duplicated, shuffled or replayed into a fresh database give the same."""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from sukverse_common.events.bus import Message
from sukverse_common.events.contracts import (
    CertificateIssued,
    CertificateRevoked,
    EnrollmentCreated,
    EnrollmentWithdrawn,
    EventData,
    QuizAttemptSubmitted,
    QuizPassed,
    StepCompleted,
    SubstepCompleted,
    WorkshopArchived,
    WorkshopCompleted,
    WorkshopCreated,
    WorkshopUpdated,
)
from sukverse_common.events.envelope import CloudEvent
from sukverse_common.events.kafka import KafkaBus

Event = tuple[EventData, str]


class Cohort:
    """A workshop of 2 steps x 2 substeps and its students' events, built by hand:

    - A completes everything and grades 80 and 90 at two quizzes;
    - B does 2 of 4 substeps, fails quiz 1 (40) then passes it (70);
    - C does 1 of 4 substeps and fails quiz 1 three times (20, 30, 30 by highest grading);
    - D enrolls and does nothing; E enrolls and withdraws;
    - A's certificate is issued; B's is issued, then revoked; C's revocation comes before
      its issue: one certificate is in force.
    The clock reads `start + 10 days`: D has been idle 10 days, the others at most 2.
    """

    def __init__(self, instructor_id: uuid.UUID, start: datetime) -> None:
        self.start = start
        self.workshop_id = uuid.uuid4()
        self.quiz_1, self.quiz_2 = uuid.uuid4(), uuid.uuid4()
        self.steps = [uuid.uuid4(), uuid.uuid4()]
        self.substeps = [uuid.uuid4() for _ in range(4)]
        self.users = {name: uuid.uuid4() for name in "ABCDE"}
        self.enrollments = {name: uuid.uuid4() for name in "ABCDE"}
        self.events: list[Event] = []
        w = self.workshop_id
        self.events.append(
            (
                WorkshopCreated(
                    workshop_id=w,
                    title="Draft",
                    instructor_ids=[],
                    step_count=1,
                    substep_count=1,
                    created_by=None,
                    created_at=start,
                ),
                str(w),
            )
        )
        self.events.append(
            (
                WorkshopUpdated(
                    workshop_id=w,
                    title="Kubernetes operators",
                    instructor_ids=[instructor_id],
                    step_count=2,
                    substep_count=4,
                    updated_by=None,
                    updated_at=start + timedelta(minutes=1),
                ),
                str(w),
            )
        )
        for name in "ABCDE":
            self.enroll(name, start + timedelta(minutes=2))
        self.withdraw("E", start + timedelta(days=1))
        day = timedelta(days=1)
        for done in range(1, 5):
            self.substep("A", done, start + day * (5 + done))
        self.step("A", 0, start + day * 7)
        self.step("A", 1, start + day * 9)
        self.completed("A", start + day * 9)
        self.substep("B", 1, start + day * 2)
        self.substep("B", 2, start + day * 3)
        self.substep("C", 1, start + day * 4)
        self.attempt("A", self.quiz_1, 1, percent=80, grade=80, at=start + day * 8)
        self.attempt("A", self.quiz_2, 1, percent=90, grade=90, at=start + day * 8.5)
        self.attempt("B", self.quiz_1, 1, percent=40, grade=40, at=start + day * 6)
        self.attempt("B", self.quiz_1, 2, percent=70, grade=70, at=start + day * 8)
        self.attempt("C", self.quiz_1, 1, percent=20, grade=20, at=start + day * 7)
        self.attempt("C", self.quiz_1, 2, percent=30, grade=30, at=start + day * 8)
        self.attempt("C", self.quiz_1, 3, percent=10, grade=30, at=start + day * 9)
        self.certificates = {name: uuid.uuid4() for name in "ABC"}
        self.issue("A", start + day * 9)
        self.issue("B", start + day * 8)
        self.revoke("B", start + day * 9)
        self.revoke("C", start + day * 9)
        self.issue("C", start + day * 8)

    def enroll(self, name: str, at: datetime) -> None:
        data = EnrollmentCreated(
            enrollment_id=self.enrollments[name],
            workshop_id=self.workshop_id,
            user_id=self.users[name],
            enrolled_by=None,
            enrolled_at=at,
        )
        self.events.append((data, str(data.enrollment_id)))

    def withdraw(self, name: str, at: datetime) -> None:
        data = EnrollmentWithdrawn(
            enrollment_id=self.enrollments[name],
            workshop_id=self.workshop_id,
            user_id=self.users[name],
            withdrawn_by=None,
            withdrawn_at=at,
        )
        self.events.append((data, str(data.enrollment_id)))

    def substep(self, name: str, done: int, at: datetime) -> None:
        data = SubstepCompleted(
            enrollment_id=self.enrollments[name],
            workshop_id=self.workshop_id,
            user_id=self.users[name],
            step_id=self.steps[(done - 1) // 2],
            substep_id=self.substeps[done - 1],
            substeps_done=done,
            substep_count=4,
            completed_at=at,
        )
        self.events.append((data, str(data.enrollment_id)))

    def step(self, name: str, index: int, at: datetime) -> None:
        data = StepCompleted(
            enrollment_id=self.enrollments[name],
            workshop_id=self.workshop_id,
            user_id=self.users[name],
            step_id=self.steps[index],
            completed_at=at,
        )
        self.events.append((data, str(data.enrollment_id)))

    def completed(self, name: str, at: datetime) -> None:
        data = WorkshopCompleted(
            enrollment_id=self.enrollments[name],
            workshop_id=self.workshop_id,
            user_id=self.users[name],
            completed_at=at,
        )
        self.events.append((data, str(data.enrollment_id)))

    def attempt(
        self,
        name: str,
        quiz_id: uuid.UUID,
        number: int,
        *,
        percent: float,
        grade: float,
        at: datetime,
    ) -> None:
        passed = percent >= 60
        submitted = QuizAttemptSubmitted(
            attempt_id=uuid.uuid4(),
            quiz_id=quiz_id,
            workshop_id=self.workshop_id,
            user_id=self.users[name],
            attempt_number=number,
            score=percent / 10,
            max_score=10,
            percent=percent,
            passed=passed,
            late=False,
            grade_percent=grade,
            submitted_at=at,
        )
        self.events.append((submitted, str(quiz_id)))
        if passed:
            first = QuizPassed(
                quiz_id=quiz_id,
                workshop_id=self.workshop_id,
                user_id=self.users[name],
                attempt_id=submitted.attempt_id,
                percent=percent,
                passed_at=at,
            )
            self.events.append((first, str(quiz_id)))

    def issue(self, name: str, at: datetime) -> None:
        data = CertificateIssued(
            certificate_id=self.certificates[name],
            template_id=self.workshop_id,
            workshop_id=self.workshop_id,
            user_id=self.users[name],
            verification_code=f"CODE-{name}",
            issued_at=at,
        )
        self.events.append((data, str(data.certificate_id)))

    def revoke(self, name: str, at: datetime) -> None:
        data = CertificateRevoked(
            certificate_id=self.certificates[name],
            workshop_id=self.workshop_id,
            user_id=self.users[name],
            reason="issued in error",
            revoked_by=None,
            revoked_at=at,
        )
        self.events.append((data, str(data.certificate_id)))

    def envelopes(self) -> list[CloudEvent]:
        """Each event in a fixed envelope, so that resending one is a true duplicate."""
        return [CloudEvent.wrap(data, subject=key) for data, key in self.events]


EXPECTED_FIGURES = {
    "title": "Kubernetes operators",
    "archived": False,
    "enrolled": 4,
    "completed": 1,
    "completion_percent": 43.75,  # (100 + 50 + 25 + 0) / 4
    "completion_histogram": [1, 0, 1, 0, 0, 1, 0, 0, 0, 1],
    "average_quiz_score": 67.5,  # (80 + 90 + 70 + 30) / 4
    "at_risk": 2,  # C (quiz average, failures) and D (inactive, behind)
    "median_percent": 37.5,
    "certificates_issued": 1,  # A's; B's is revoked, C's revoked before it was issued
}


def cohort_for(service: Any) -> Cohort:
    instructor = service.account("analytics-instructor", "instructor")
    return Cohort(instructor.id, service.clock.now - timedelta(days=10))


async def test_figures_match_hand_computed_values(service: Any) -> None:
    cohort = cohort_for(service)
    await service.publish(cohort.events)
    figures = await service.figures(cohort.workshop_id)
    assert figures == {"workshop_id": str(cohort.workshop_id), **EXPECTED_FIGURES}

    students = {row["user_id"]: row for row in await service.students(cohort.workshop_id)}
    by_name = {name: students.get(str(user)) for name, user in cohort.users.items()}
    assert by_name["E"] is None  # withdrawn
    a, b, c, d = (by_name[name] for name in "ABCD")
    assert a is not None and b is not None and c is not None and d is not None
    assert (a["percent"], a["completed"], a["quiz_average"], a["risk"]) == (100, True, 85, "none")
    assert (b["percent"], b["quiz_average"], b["failed_attempts"], b["risk"]) == (50, 70, 1, "none")
    assert (c["percent"], c["quiz_average"], c["failed_attempts"]) == (25, 30, 3)
    assert c["risk"] == "high"
    assert [reason["code"] for reason in c["reasons"]] == ["low_quiz_average", "repeated_failures"]
    assert d["risk"] == "high"
    assert [reason["code"] for reason in d["reasons"]] == ["inactive", "behind_pace"]
    assert "no activity for 9 days" in d["reasons"][0]["message"]  # 9 days 23:58
    assert "37.5 points behind" in d["reasons"][1]["message"]
    assert datetime.fromisoformat(b["last_activity"]) == cohort.start + timedelta(days=8)
    assert datetime.fromisoformat(d["last_activity"]) == cohort.start + timedelta(minutes=2)

    at_risk = await service.get(f"/analytics/at-risk?workshop_id={cohort.workshop_id}")
    assert {row["user_id"] for row in at_risk["items"]} == {
        str(cohort.users["C"]),
        str(cohort.users["D"]),
    }


async def test_thresholds_per_workshop_change_who_is_at_risk(service: Any) -> None:
    cohort = cohort_for(service)
    await service.publish(cohort.events)
    path = f"/analytics/workshops/{cohort.workshop_id}/thresholds"
    defaults = await service.get(path)
    assert defaults == {
        "workshop_id": str(cohort.workshop_id),
        "inactive_days": 7,
        "behind_pace_points": 25,
        "min_quiz_average": 60,
        "max_failed_attempts": 3,
        "overridden": [],
    }
    instructor = service.account("analytics-instructor", "instructor")
    body = {"inactive_days": 30, "behind_pace_points": 40, "max_failed_attempts": 4}
    response = await service.client.put(path, json=body, headers=instructor.headers)
    assert response.status == 200, await response.text()
    assert (await response.json())["overridden"] == [
        "inactive_days",
        "behind_pace_points",
        "max_failed_attempts",
    ]
    # D is neither idle long enough nor far enough behind; C keeps a low quiz average.
    figures = await service.figures(cohort.workshop_id)
    assert figures["at_risk"] == 1
    at_risk = await service.get(f"/analytics/at-risk?workshop_id={cohort.workshop_id}")
    [c] = at_risk["items"]
    assert (c["user_id"], c["risk"]) == (str(cohort.users["C"]), "medium")
    assert [reason["code"] for reason in c["reasons"]] == ["low_quiz_average"]
    # Time passes: 40 days after the start, B, C and D have been idle over 30 days; A
    # completed the workshop and is at no risk.
    service.clock.advance(days=30)
    assert (await service.figures(cohort.workshop_id))["at_risk"] == 3
    # Back to the defaults.
    response = await service.client.put(path, json={}, headers=instructor.headers)
    assert (await response.json())["overridden"] == []


async def test_duplicates_and_any_order_give_the_same_figures(make_service: Any) -> None:
    first = await make_service()
    cohort = cohort_for(first)
    envelopes = cohort.envelopes()
    await first.publish(envelopes)
    expected = await first.figures(cohort.workshop_id)
    expected_students = await first.students(cohort.workshop_id)
    assert expected == {"workshop_id": str(cohort.workshop_id), **EXPECTED_FIGURES}

    # Every event again, twice over: the inbox has seen their ids.
    await first.publish(envelopes + envelopes[::-1])
    assert await first.figures(cohort.workshop_id) == expected
    assert await first.students(cohort.workshop_id) == expected_students

    # A fresh database gets the same events shuffled, with duplicates mixed in.
    second = await make_service()
    shuffled = envelopes + random.Random(5).sample(envelopes, 12)
    random.Random(7).shuffle(shuffled)
    await second.publish(shuffled)
    assert await second.figures(cohort.workshop_id) == expected
    assert await second.students(cohort.workshop_id) == expected_students


async def test_gauges_per_workshop_without_students(service: Any) -> None:
    cohort = cohort_for(service)
    await service.publish(cohort.events)
    label = f'workshop_id="{cohort.workshop_id}"'
    expected = {
        "sukverse_workshop_enrolled": 4,
        "sukverse_workshop_completion_percent": 43.75,
        "sukverse_workshop_average_quiz_score": 67.5,
        "sukverse_workshop_at_risk": 2,
        "sukverse_workshop_certificates_issued": 1,
    }
    deadline = time.monotonic() + 10
    while True:  # a scrape reuses gauges read in the last half second
        text = await (await service.client.get("/metrics")).text()
        values = {
            name: float(value)
            for name, value in re.findall(
                rf"^(sukverse_workshop_\w+)\{{{label}\}} (\S+)$", text, flags=re.M
            )
        }
        if values == expected:
            break
        assert time.monotonic() < deadline, values
        await asyncio.sleep(0.1)
    for user in cohort.users.values():
        assert str(user) not in text


async def test_archiving_is_kept_whatever_arrives_after(service: Any) -> None:
    cohort = cohort_for(service)
    archived = WorkshopArchived(
        workshop_id=cohort.workshop_id,
        archived_by=None,
        archived_at=cohort.start + timedelta(days=20),
    )
    # The archive arrives first; the workshop's description and progress come after it.
    await service.publish([(archived, str(cohort.workshop_id)), *cohort.events])
    figures = await service.figures(cohort.workshop_id)
    assert figures == {
        "workshop_id": str(cohort.workshop_id),
        **EXPECTED_FIGURES,
        "archived": True,
    }


@pytest.mark.real
async def test_rebuilt_from_the_topics_from_offset_zero_the_figures_are_the_same(
    launch: Callable[..., Any],
    new_database: Callable[[], Awaitable[str]],
    kafka_server: Any,
    identity: Any,
) -> None:
    """The events are on Kafka before the service starts: `sukverse serve analytics` on an
    empty database reads the topics from offset zero and arrives at the figures live
    handling gives (the expectations above), duplicates included."""
    prefix = f"r{uuid.uuid4().hex[:10]}."
    history = KafkaBus(bootstrap_servers=kafka_server.address, topic_prefix=prefix)

    async def ignore(_: Sequence[CloudEvent]) -> None:
        return None

    topics = ["sukverse.workshop", "sukverse.quiz", "sukverse.certificate"]
    history.subscribe("history", topics, ignore)
    await history.start()
    instructor = identity.account("analytics-instructor", "instructor")
    cohort = Cohort(instructor.id, datetime.now(UTC) - timedelta(days=10))
    envelopes = cohort.envelopes()
    try:
        for envelope in envelopes + envelopes[:5]:
            topic = f"sukverse.{envelope.type.split('.')[2]}"
            await history.publish([Message(topic, envelope.subject or "", envelope)])
    finally:
        await history.stop()

    analytics = launch(
        "analytics",
        {
            "SUKVERSE_MODE": "cluster",
            "SUKVERSE_AUTH_URL": identity.url,
            "SUKVERSE_BUS": "kafka",
            "SUKVERSE_KAFKA_BOOTSTRAP_SERVERS": kafka_server.address,
            "SUKVERSE_KAFKA_TOPIC_PREFIX": prefix,
            "SUKVERSE_DATABASE_URL": await new_database(),
        },
        migrate=True,
    )
    admin = identity.account("admin", "admin")
    expected = {"workshop_id": str(cohort.workshop_id), **EXPECTED_FIGURES}
    async with aiohttp.ClientSession(analytics.url, headers=admin.headers) as http:
        deadline = time.monotonic() + 60
        while True:
            async with http.get(f"/analytics/workshops/{cohort.workshop_id}") as response:
                figures = await response.json() if response.status == 200 else None
            if figures == expected:
                break
            assert time.monotonic() < deadline, figures
            await asyncio.sleep(0.2)
        async with http.get(f"/analytics/at-risk?workshop_id={cohort.workshop_id}") as response:
            at_risk = await response.json()
    assert {(row["user_id"], row["risk"]) for row in at_risk["items"]} == {
        (str(cohort.users["C"]), "high"),
        (str(cohort.users["D"]), "high"),
    }


async def test_a_certificate_counts_once_however_often_its_events_come(service: Any) -> None:
    """Events of one certificate told again under new ids (a producer's retry, a replay
    after the inbox was emptied) move the count no further than the first time."""
    cohort = cohort_for(service)
    await service.publish(cohort.events)
    again = [
        (data.model_copy(), key)
        for data, key in cohort.events
        if isinstance(data, CertificateIssued | CertificateRevoked)
    ]
    await service.publish(again + again[::-1])
    assert (await service.figures(cohort.workshop_id))["certificates_issued"] == 1
    later = CertificateIssued(
        certificate_id=uuid.uuid4(),
        template_id=cohort.workshop_id,
        workshop_id=cohort.workshop_id,
        user_id=cohort.users["D"],
        verification_code="CODE-D",
        issued_at=cohort.start + timedelta(days=10),
    )
    await service.publish([(later, str(later.certificate_id))] * 2)
    assert (await service.figures(cohort.workshop_id))["certificates_issued"] == 2


async def test_figures_count_at_risk_as_the_list_does_at_every_threshold(service: Any) -> None:
    """The figures judge only the students who may be at risk; at thresholds set exactly
    on students' own figures, and a thousandth either side, they count those the
    at-risk list shows, and the median is the students' median."""
    instructor = service.account("analytics-instructor", "instructor")
    rng = random.Random(11)
    workshop_id, start = uuid.uuid4(), service.clock.now - timedelta(days=20)
    created = WorkshopCreated(
        workshop_id=workshop_id,
        title="Thresholds",
        instructor_ids=[instructor.id],
        step_count=1,
        substep_count=997,
        created_by=None,
        created_at=start,
    )
    events: list[Event] = [(created, str(workshop_id))]
    step = uuid.uuid4()
    for n in range(31):
        user_id, enrollment_id = uuid.uuid4(), uuid.uuid4()
        at = start + timedelta(hours=rng.randrange(20 * 24))
        enrolled = EnrollmentCreated(
            enrollment_id=enrollment_id,
            workshop_id=workshop_id,
            user_id=user_id,
            enrolled_by=None,
            enrolled_at=start,
        )
        done = SubstepCompleted(
            enrollment_id=enrollment_id,
            workshop_id=workshop_id,
            user_id=user_id,
            step_id=step,
            substep_id=uuid.uuid4(),
            substeps_done=rng.choice([1, 3, 499, 500, 996, 997]) if n % 4 else rng.randrange(998),
            substep_count=997,
            completed_at=at,
        )
        events += [(enrolled, str(enrollment_id)), (done, str(enrollment_id))]
        for number in range(1, rng.randrange(5)):
            grade = rng.choice([33.333, 59.999, 60.0, 60.001, rng.uniform(0, 100)])
            attempt = QuizAttemptSubmitted(
                attempt_id=uuid.uuid4(),
                quiz_id=uuid.uuid4(),
                workshop_id=workshop_id,
                user_id=user_id,
                attempt_number=number,
                score=grade / 10,
                max_score=10,
                percent=grade,
                passed=grade >= 60,
                late=False,
                grade_percent=grade,
                submitted_at=at,
            )
            events.append((attempt, str(attempt.quiz_id)))
    await service.publish(events)
    students = await service.students(workshop_id)
    percents = sorted(row["percent"] for row in students if row["percent"] < 100)
    averages = sorted(row["quiz_average"] for row in students if row["quiz_average"] is not None)
    path = f"/analytics/workshops/{workshop_id}/thresholds"
    checked = 0
    for _ in range(6):
        figures = await service.figures(workshop_id)
        assert figures["median_percent"] == statistics.median(row["percent"] for row in students)
        gap = round(figures["median_percent"] - rng.choice(percents), 3)
        body = {
            "inactive_days": rng.randrange(1, 20),
            "behind_pace_points": max(0.001, gap + rng.choice([-0.001, 0, 0.001])),
            "min_quiz_average": rng.choice(averages) + rng.choice([-0.001, 0, 0.001]),
            "max_failed_attempts": rng.randrange(1, 4),
        }
        response = await service.client.put(path, json=body, headers=instructor.headers)
        assert response.status == 200, await response.text()
        listed = await service.get(f"/analytics/at-risk?workshop_id={workshop_id}&limit=500")
        at_risk = (await service.figures(workshop_id))["at_risk"]
        assert at_risk == len(listed["items"]), body
        checked += 0 < at_risk < len(students)
    assert checked >= 3  # the thresholds cut through the cohort, not around it
