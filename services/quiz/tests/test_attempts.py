"""Attempts through HTTP: scoring of every kind, shuffling, time limits, idempotent submits,
the attempt limit under concurrency, and the events, exactly once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from sukverse_common.events.envelope import CloudEvent

SECRETS = ("kubelet-zanzibar", "64431.5", '"correct"', '"accepted"', '"answer"', '"tolerance"')


def by_kind(quiz: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {question["kind"]: question for question in quiz["questions"]}


def right_answers(quiz: dict[str, Any]) -> list[dict[str, Any]]:
    q = by_kind(quiz)
    return [
        {
            "question_id": q["single_choice"]["id"],
            "option_ids": [q["single_choice"]["options"][0]["id"]],
        },
        {
            "question_id": q["multiple_choice"]["id"],
            "option_ids": [o["id"] for o in q["multiple_choice"]["options"][:2]],
        },
        {"question_id": q["true_false"]["id"], "value": True},
        {"question_id": q["short_text"]["id"], "text": "  The KUBELET-zanzibar "},
        {"question_id": q["numeric"]["id"], "value": 64431.1},
    ]


def assert_no_secrets(payload: Any) -> None:
    text = json.dumps(payload)
    for secret in SECRETS:
        assert secret not in text, f"{secret} leaked in {text[:300]}"


async def test_a_full_attempt_scores_every_kind(api: Any, published: list[CloudEvent]) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-a")
    quiz = await api.create_quiz(owner)
    assert all("id" in q for q in quiz["questions"])
    assert all("id" in o for o in by_kind(quiz)["single_choice"]["options"])
    attempt = await api.start(student, quiz["id"])
    assert attempt["status"] == "in_progress" and attempt["number"] == 1
    saved = await api.save(student, attempt["id"], right_answers(quiz)[:3])
    assert len(saved["answers"]) == 3
    saved = await api.save(student, attempt["id"], right_answers(quiz)[3:])
    assert len(saved["answers"]) == 5  # saving merges per question
    result = await api.submit(student, attempt["id"])
    assert (result["score"], result["max_score"], result["percent"]) == (10, 10, 100)
    assert result["passed"] is True and result["late"] is False
    assert result["grade_percent"] == 100
    assert all(q["correct"] for q in result["questions"])


async def test_partial_and_wrong_answers(api: Any) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-b")
    quiz = await api.create_quiz(owner)
    q = by_kind(quiz)
    options = q["multiple_choice"]["options"]
    attempt = await api.start(student, quiz["id"])
    await api.save(
        student,
        attempt["id"],
        [
            {
                "question_id": q["single_choice"]["id"],
                "option_ids": [q["single_choice"]["options"][1]["id"]],
            },
            {"question_id": q["multiple_choice"]["id"], "option_ids": [options[0]["id"]]},
            {"question_id": q["true_false"]["id"], "value": False},
            {"question_id": q["short_text"]["id"], "text": "kubectl"},
            {"question_id": q["numeric"]["id"], "value": 64432.01},
        ],
    )
    result = await api.submit(student, attempt["id"])
    assert result["score"] == 1  # half of the multiple choice's 2 points
    assert result["percent"] == 10 and result["passed"] is False
    earned = {r["question_id"]: r["earned"] for r in result["questions"]}
    assert earned == {
        q["single_choice"]["id"]: 0,
        q["multiple_choice"]["id"]: 1,
        q["true_false"]["id"]: 0,
        q["short_text"]["id"]: 0,
        q["numeric"]["id"]: 0,
    }


async def test_students_never_see_answers_before_submitting(api: Any) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-c")
    quiz = await api.create_quiz(owner, review="score")
    client = api.client
    seen = [await (await client.get(f"/quizzes/{quiz['id']}", headers=student.headers)).json()]
    seen.append(await (await client.get("/quizzes", headers=student.headers)).json())
    attempt = await api.start(student, quiz["id"])
    seen.append(attempt)
    seen.append(await api.start(student, quiz["id"], status=200))
    seen.append(
        await (await client.get(f"/attempts/{attempt['id']}", headers=student.headers)).json()
    )
    q = by_kind(quiz)
    seen.append(
        await api.save(
            student,
            attempt["id"],
            [{"question_id": q["short_text"]["id"], "text": "wrong"}],
        )
    )
    listed = await client.get(f"/quizzes/{quiz['id']}/attempts", headers=student.headers)
    seen.append(await listed.json())
    for payload in seen:
        assert_no_secrets(payload)
    seen_after = await api.submit(student, attempt["id"])
    assert_no_secrets(seen_after)  # review "score" shows the score, not the answers
    assert seen_after["score"] == 0 and seen_after["questions"] is None
    # The owner sees everything.
    full = await (await client.get(f"/quizzes/{quiz['id']}", headers=owner.headers)).json()
    assert full["view"] == "full" and "kubelet-zanzibar" in json.dumps(full)


async def test_review_none_hides_the_score_from_the_student_only(api: Any) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-d")
    quiz = await api.create_quiz(owner, review="none")
    attempt = await api.start(student, quiz["id"])
    await api.save(student, attempt["id"], right_answers(quiz))
    result = await api.submit(student, attempt["id"])
    assert result["score"] is None and result["passed"] is None and result["questions"] is None
    as_owner = await api.client.get(f"/attempts/{attempt['id']}", headers=owner.headers)
    assert (await as_owner.json())["result"]["score"] == 10


async def test_each_attempt_has_its_own_shuffled_order(api: Any) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-e")
    questions = [
        {
            "kind": "single_choice",
            "prompt": f"Q{i}",
            "points": 1,
            "options": [{"text": f"o{j}", "correct": j == 0} for j in range(8)],
        }
        for i in range(12)
    ]
    quiz = await api.create_quiz(
        owner, questions=questions, shuffle_questions=True, shuffle_options=True, max_attempts=5
    )
    original = [q["id"] for q in quiz["questions"]]
    orders = []
    for _ in range(3):
        attempt = await api.start(student, quiz["id"])
        ids = [q["id"] for q in attempt["questions"]]
        assert sorted(ids) == sorted(original)
        again = await api.client.get(f"/attempts/{attempt['id']}", headers=student.headers)
        assert [q["id"] for q in (await again.json())["questions"]] == ids  # stable
        orders.append((ids, [o["id"] for o in attempt["questions"][0]["options"]]))
        await api.submit(student, attempt["id"])
    assert len({tuple(ids) for ids, _ in orders}) > 1 or orders[0][0] != original
    first_options = [
        o["id"] for o in next(q for q in quiz["questions"] if q["id"] == orders[0][0][0])["options"]
    ]
    assert sorted(orders[0][1]) == sorted(first_options)


async def test_late_submit_counts_only_answers_saved_in_time(
    api: Any, clock: Any, published: list[CloudEvent]
) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-f")
    quiz = await api.create_quiz(owner, time_limit_seconds=60)
    answers = right_answers(quiz)
    attempt = await api.start(student, quiz["id"])
    assert attempt["deadline"] is not None
    await api.save(student, attempt["id"], answers[:2])
    clock.advance(61)  # past the deadline, within the 2 s grace
    await api.save(student, attempt["id"], answers[2:3])
    clock.advance(5)
    refused = await api.client.put(
        f"/attempts/{attempt['id']}/answers", json={"answers": answers[3:]}, headers=student.headers
    )
    assert refused.status == 409
    assert "time is up" in (await refused.json())["detail"]
    expired = await api.client.get(f"/attempts/{attempt['id']}", headers=student.headers)
    assert (await expired.json())["status"] == "expired"
    result = await api.submit(student, attempt["id"])
    assert result["late"] is True
    assert result["score"] == 6  # the three answers saved in time
    events = await api.wait_for(published, lambda e: e.data.get("attempt_id") == attempt["id"], 2)
    assert [e.data.get("late") for e in events] == [True, None]  # submitted, then passed


async def test_submit_in_time_is_not_late(api: Any, clock: Any) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-g")
    quiz = await api.create_quiz(owner, time_limit_seconds=60)
    attempt = await api.start(student, quiz["id"])
    clock.advance(61.5)  # inside the grace
    assert (await api.submit(student, attempt["id"]))["late"] is False


async def test_a_second_submit_returns_the_same_result_and_no_event(
    api: Any, published: list[CloudEvent]
) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-h")
    quiz = await api.create_quiz(owner)
    attempt = await api.start(student, quiz["id"])
    await api.save(student, attempt["id"], right_answers(quiz)[:4])
    results = await asyncio.gather(*(api.submit(student, attempt["id"]) for _ in range(5)))
    assert all(result == results[0] for result in results)
    assert (await api.submit(student, attempt["id"])) == results[0]
    await api.save(student, attempt["id"], right_answers(quiz)[4:], status=409)
    subject = lambda e: e.subject == quiz["id"]  # noqa: E731
    events = await api.wait_for(published, subject, 2)
    assert [e.type for e in events] == [
        "io.sukverse.quiz.attempt.submitted.v1",
        "io.sukverse.quiz.quiz.passed.v1",
    ]
    submitted = events[0].data
    assert submitted["score"] == 8 and submitted["max_score"] == 10 and submitted["passed"]
    assert submitted["user_id"] == str(student.id) and submitted["attempt_number"] == 1


async def test_quiz_passed_only_the_first_time_and_grade_by_method(
    api: Any, published: list[CloudEvent]
) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-i")
    quiz = await api.create_quiz(owner, grading="average", max_attempts=3)
    right = right_answers(quiz)
    for answers in (right, right[:1], right):  # 100, 20, 100 percent
        attempt = await api.start(student, quiz["id"])
        await api.save(student, attempt["id"], answers)
        await api.submit(student, attempt["id"])
    events = await api.wait_for(published, lambda e: e.subject == quiz["id"], 4)
    types = [e.type.split(".")[-2] for e in events]
    assert types == ["submitted", "passed", "submitted", "submitted"]
    grades = [e.data["grade_percent"] for e in events if "grade_percent" in e.data]
    assert grades == [100, 60, 220 / 3] or [round(g, 4) for g in grades] == [100, 60, 73.3333]
    await api.start(student, quiz["id"], status=409)


async def test_latest_grading(api: Any, published: list[CloudEvent]) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-j")
    quiz = await api.create_quiz(owner, grading="latest", max_attempts=2)
    right = right_answers(quiz)
    for answers in (right, right[:1]):
        attempt = await api.start(student, quiz["id"])
        await api.save(student, attempt["id"], answers)
        result = await api.submit(student, attempt["id"])
    assert result["grade_percent"] == 20


async def test_the_attempt_limit_holds_under_concurrent_starts(api: Any) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-k")
    quiz = await api.create_quiz(owner, max_attempts=2)
    url = f"/quizzes/{quiz['id']}/attempts"

    async def start() -> tuple[int, str | None]:
        response = await api.client.post(url, headers=student.headers)
        body = await response.json()
        return response.status, body.get("id")

    first = await asyncio.gather(*(start() for _ in range(10)))
    assert Counter(status for status, _ in first) == {201: 1, 200: 9}
    assert len({attempt_id for _, attempt_id in first}) == 1
    await api.submit(student, first[0][1] or "")
    second = await asyncio.gather(*(start() for _ in range(10)))
    assert Counter(status for status, _ in second) == {201: 1, 200: 9}
    await api.submit(student, second[0][1] or "")
    third = await asyncio.gather(*(start() for _ in range(10)))
    assert Counter(status for status, _ in third) == {409: 10}
    listed = await api.client.get(url, headers=owner.headers)
    assert [a["number"] for a in (await listed.json())["items"]] == [1, 2]


async def test_an_expired_attempt_counts_and_a_new_one_starts(api: Any, clock: Any) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-l")
    quiz = await api.create_quiz(owner, time_limit_seconds=10, max_attempts=2)
    first = await api.start(student, quiz["id"])
    clock.advance(30)
    second = await api.start(student, quiz["id"])
    assert second["number"] == 2 and second["id"] != first["id"]
    clock.advance(30)
    limit = await api.client.post(f"/quizzes/{quiz['id']}/attempts", headers=student.headers)
    assert limit.status == 409
    assert "(2)" in (await limit.json())["detail"]


async def test_patch_refuses_question_changes_once_attempted(api: Any) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-m")
    quiz = await api.create_quiz(owner)
    new_questions = [{"kind": "true_false", "prompt": "New?", "points": 1, "answer": False}]
    url = f"/quizzes/{quiz['id']}"
    changed = await api.client.patch(url, json={"questions": new_questions}, headers=owner.headers)
    assert changed.status == 200
    assert [q["prompt"] for q in (await changed.json())["questions"]] == ["New?"]
    await api.start(student, quiz["id"])
    refused = await api.client.patch(url, json={"questions": new_questions}, headers=owner.headers)
    assert refused.status == 409
    retitled = await api.client.patch(
        url, json={"title": "Renamed", "time_limit_seconds": None}, headers=owner.headers
    )
    assert retitled.status == 200
    assert (await retitled.json())["title"] == "Renamed"


async def test_enrollment_gates_workshop_quizzes(api: Any) -> None:
    owner = api.account("instructor-a", "instructor")
    student = api.account("student-n")
    workshop_id = "7d0c5a56-3b7e-4c7e-9a1c-3d3d3d3d3d3d"
    quiz = await api.create_quiz(owner, workshop_id=workshop_id)
    open_quiz = await api.create_quiz(owner)
    assert (await api.client.get(f"/quizzes/{quiz['id']}", headers=student.headers)).status == 404
    await api.start(student, open_quiz["id"])
    await api.enroll(student, workshop_id, quiz_id=quiz["id"])
    listed = await api.client.get("/quizzes", headers=student.headers)
    assert {q["id"] for q in (await listed.json())["items"]} == {quiz["id"], open_quiz["id"]}
    attempt = await api.start(student, quiz["id"])
    await api.withdraw(student, workshop_id, quiz_id=quiz["id"])
    own = await api.client.get(f"/attempts/{attempt['id']}", headers=student.headers)
    assert own.status == 200  # their own attempt stays theirs
    refused = await api.client.post(f"/quizzes/{quiz['id']}/attempts", headers=student.headers)
    assert refused.status == 404
