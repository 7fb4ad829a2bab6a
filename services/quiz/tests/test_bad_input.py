"""Bad input gets a 4xx problem naming the field, never a 500 and never a partial write."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest


def fields(problem: dict[str, Any]) -> list[str]:
    return [error["field"] for error in problem.get("errors", [])]


async def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    assert body["status"] == status
    return body


def with_question(body: dict[str, Any], index: int, changes: dict[str, Any]) -> dict[str, Any]:
    body["questions"][index] = {**body["questions"][index], **changes}
    return body


@pytest.mark.parametrize(
    ("top", "index", "changes", "field"),
    [
        ({"title": ""}, None, {}, "title"),
        ({"title": "x" * 201}, None, {}, "title"),
        ({"pass_mark": 101}, None, {}, "pass_mark"),
        ({"pass_mark": -1}, None, {}, "pass_mark"),
        ({"max_attempts": 0}, None, {}, "max_attempts"),
        ({"time_limit_seconds": 0}, None, {}, "time_limit_seconds"),
        ({"grading": "median"}, None, {}, "grading"),
        ({"review": "all"}, None, {}, "review"),
        ({"shuffle_options": "yes"}, None, {}, "shuffle_options"),
        ({"workshop_id": "nope"}, None, {}, "workshop_id"),
        ({"questions": []}, None, {}, "questions"),
        ({"is_public": True}, None, {}, "is_public"),
        ({"title": "a\x00b"}, None, {}, "title"),
        ({"external_id": ""}, None, {}, "external_id"),
        ({"external_id": "x" * 321}, None, {}, "external_id"),
        ({"external_id": "a\nb"}, None, {}, "external_id"),
        ({}, 0, {"kind": "essay"}, "questions.0"),
        ({}, 0, {"points": 0}, "questions.0.single_choice.points"),
        ({}, 0, {"points": "many"}, "questions.0.single_choice.points"),
        (
            {},
            0,
            {"options": [{"text": "a", "correct": True}, {"text": "b", "correct": True}]},
            "questions.0.single_choice",
        ),
        ({}, 0, {"options": [{"text": "a", "correct": True}]}, "questions.0.single_choice.options"),
        ({}, 0, {"prompt": "  "}, "questions.0.single_choice.prompt"),
        ({}, 1, {"options": [{"text": "a"}, {"text": "b"}]}, "questions.1.multiple_choice"),
        ({}, 1, {"partial_credit": "some"}, "questions.1.multiple_choice.partial_credit"),
        ({}, 2, {"answer": "yes"}, "questions.2.true_false.answer"),
        ({}, 3, {"accepted": []}, "questions.3.short_text.accepted"),
        ({}, 3, {"accepted": ["   "]}, "questions.3.short_text"),
        ({}, 4, {"tolerance": -0.1}, "questions.4.numeric.tolerance"),
        ({}, 4, {"value": "pi"}, "questions.4.numeric.value"),
        ({}, 4, {"answer": True}, "questions.4.numeric.answer"),
    ],
)
async def test_invalid_quizzes_name_the_field(
    api: Any, top: dict[str, Any], index: int | None, changes: dict[str, Any], field: str
) -> None:
    owner = api.account("instructor-a", "instructor")
    body = api.quiz_body(**top)
    if index is not None:
        body = with_question(body, index, changes)
    response = await api.client.post("/quizzes", json=body, headers=owner.headers)
    assert field in fields(await problem_of(response, 422))


async def test_oversized_quizzes_are_refused_with_the_limit(api: Any) -> None:
    owner = api.account("instructor-a", "instructor")
    one = {"kind": "true_false", "prompt": "q", "points": 1, "answer": True}
    many = await api.client.post(
        "/quizzes", json=api.quiz_body(questions=[one] * 10_000), headers=owner.headers
    )
    problem = await problem_of(many, 422)
    error = next(e for e in problem["errors"] if e["field"] == "questions")
    assert "200" in error["reason"]
    options = [{"text": f"o{i}", "correct": i == 0} for i in range(10_000)]
    wide = await api.client.post(
        "/quizzes",
        json=with_question(api.quiz_body(), 0, {"options": options}),
        headers=owner.headers,
    )
    problem = await problem_of(wide, 422)
    error = next(e for e in problem["errors"] if e["field"].endswith("options"))
    assert "20" in error["reason"]
    listed = await api.client.get("/quizzes", headers=owner.headers)
    assert all(q["title"] == "Kubernetes basics" for q in (await listed.json())["items"])


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b'{"title": "x", ', "application/json", 400),
        (b"\xff\xfe\x00garbage", "application/json", 400),
        (b'{"title": "caf\xe9"}', "application/json", 400),
        (b"title=x", "application/x-www-form-urlencoded", 415),
        (b"", "application/json", 400),
    ],
)
async def test_malformed_bodies_are_4xx_problems(
    api: Any, data: bytes, content_type: str, status: int
) -> None:
    owner = api.account("instructor-a", "instructor")
    response = await api.client.post(
        "/quizzes", data=io.BytesIO(data), headers={**owner.headers, "Content-Type": content_type}
    )
    await problem_of(response, status)


async def test_unknown_and_malformed_ids_are_404(api: Any) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-a")
    unknown = uuid.uuid4()
    calls = [
        ("GET", f"/quizzes/{unknown}", owner, None),
        ("GET", "/quizzes/not-a-uuid", owner, None),
        ("PATCH", f"/quizzes/{unknown}", owner, {"title": "x"}),
        ("POST", f"/quizzes/{unknown}/attempts", student, None),
        ("GET", f"/quizzes/{unknown}/attempts", owner, None),
        ("GET", f"/attempts/{unknown}", student, None),
        ("GET", "/attempts/123", student, None),
        ("PUT", f"/attempts/{unknown}/answers", student, {"answers": []}),
        ("POST", f"/attempts/{unknown}/submit", student, None),
    ]
    for method, path, caller, body in calls:
        kwargs: dict[str, Any] = {"headers": caller.headers}
        if body is not None:
            kwargs["json"] = body
        await problem_of(await api.client.request(method, path, **kwargs), 404)


async def test_bad_answers_name_the_answer(api: Any) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-bad")
    quiz = await api.create_quiz(owner)
    other_quiz = await api.create_quiz(owner)
    q = {question["kind"]: question for question in quiz["questions"]}
    other = {question["kind"]: question for question in other_quiz["questions"]}
    attempt = await api.start(student, quiz["id"])
    single, multiple = q["single_choice"], q["multiple_choice"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"question_id": q["numeric"]["id"], "text": "three"}, "answers.0.text"),
        ({"question_id": q["numeric"]["id"], "value": True}, "answers.0.value"),
        (
            {"question_id": q["true_false"]["id"], "option_ids": [single["options"][0]["id"]]},
            "answers.0.option_ids",
        ),
        ({"question_id": q["true_false"]["id"], "value": 1}, "answers.0.value"),
        ({"question_id": q["short_text"]["id"], "value": 3}, "answers.0.value"),
        ({"question_id": single["id"], "text": "Pod"}, "answers.0.text"),
        (
            {"question_id": single["id"], "option_ids": [multiple["options"][0]["id"]]},
            "answers.0.option_ids",
        ),
        (
            {"question_id": single["id"], "option_ids": [o["id"] for o in single["options"][:2]]},
            "answers.0.option_ids",
        ),
        (
            {"question_id": multiple["id"], "option_ids": [multiple["options"][0]["id"]] * 2},
            "answers.0.option_ids",
        ),
        (
            {
                "question_id": multiple["id"],
                "option_ids": [other["multiple_choice"]["options"][0]["id"]],
            },
            "answers.0.option_ids",
        ),
        ({"question_id": other["numeric"]["id"], "value": 1}, "answers.0.question_id"),
        ({"question_id": str(uuid.uuid4()), "value": 1}, "answers.0.question_id"),
        ({"question_id": "nope", "value": 1}, "answers.0.question_id"),
        ({"question_id": q["numeric"]["id"], "value": 1, "text": "1"}, "answers.0"),
        ({"question_id": q["numeric"]["id"], "value": "1e999"}, "answers.0.value"),
        ({"question_id": q["numeric"]["id"], "value": 1e300}, "answers.0.value"),
        ({"question_id": q["numeric"]["id"], "value": "3"}, "answers.0.value"),
        ({"question_id": q["short_text"]["id"], "text": "a\x00"}, "answers.0.text"),
        ({"question_id": q["short_text"]["id"], "text": "x" * 1001}, "answers.0.text"),
        ({"question_id": q["short_text"]["id"], "text": "x", "extra": 1}, "answers.0.extra"),
    ]
    url = f"/attempts/{attempt['id']}/answers"
    good = {"question_id": q["true_false"]["id"], "value": True}
    for answer, field in cases:
        response = await api.client.put(
            url, json={"answers": [answer, good]}, headers=student.headers
        )
        problem = await problem_of(response, 422)
        assert any(f.startswith(field) for f in fields(problem)), (answer, problem)
    twice = await api.client.put(url, json={"answers": [good, good]}, headers=student.headers)
    assert fields(await problem_of(twice, 422)) == ["answers.1.question_id"]
    huge = [good] * 10_000
    response = await api.client.put(url, json={"answers": huge}, headers=student.headers)
    problem = await problem_of(response, 422)
    assert any(e["field"] == "answers" and "200" in e["reason"] for e in problem["errors"])
    saved = await api.client.get(f"/attempts/{attempt['id']}", headers=student.headers)
    assert (await saved.json())["answers"] == []  # nothing was written


async def test_clearing_an_answer(api: Any) -> None:
    owner, student = api.account("instructor-a", "instructor"), api.account("student-clear")
    quiz = await api.create_quiz(owner)
    attempt = await api.start(student, quiz["id"])
    tf = quiz["questions"][2]["id"]
    saved = await api.save(student, attempt["id"], [{"question_id": tf, "value": True}])
    assert [a["value"] for a in saved["answers"]] == [True]
    cleared = await api.save(student, attempt["id"], [{"question_id": tf}])
    assert cleared["answers"] == []


async def test_bad_queries_are_422(api: Any) -> None:
    owner = api.account("instructor-a", "instructor")
    for path, field in [
        ("/quizzes?limit=0", "limit"),
        ("/quizzes?limit=1000", "limit"),
        ("/quizzes?cursor=zzz", "cursor"),
        ("/quizzes?workshop_id=nope", "workshop_id"),
        ("/quizzes?bogus=1", "bogus"),
    ]:
        response = await api.client.get(path, headers=owner.headers)
        assert field in fields(await problem_of(response, 422)), path
