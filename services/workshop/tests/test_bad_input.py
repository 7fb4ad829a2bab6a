"""Bad input gets a 4xx problem naming the field, never a 500 and never a partial write."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest

WorkshopApi = Any


def _steps(count: int, substeps: int = 1) -> list[dict[str, Any]]:
    return [
        {"title": f"S{i}", "substeps": [{"title": "x", "body": ""}] * substeps}
        for i in range(count)
    ]


def _with(change: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"title": "T", "description": "", "steps": _steps(1, 1)}
    body.update(change)
    return body


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (_with({"steps": []}), "steps", "at least 1"),
        (_with({"steps": [{"title": "Empty", "substeps": []}]}), "steps.0.substeps", "at least 1"),
        (_with({"steps": _steps(10_000)}), "steps", "at most 500"),
        (_with({"steps": _steps(1, 51)}), "steps.0.substeps", "at most 50"),
        (_with({"steps": _steps(500, 11)}), "steps", "at most 5000 substeps"),
        (_with({"title": "   "}), "title", "must not be blank"),
        (_with({"title": "x" * 201}), "title", "at most 200"),
        (_with({"title": "nul\x00"}), "title", "NUL"),
        (
            _with({"steps": [{"title": "S", "substeps": [{"title": "x", "body": "a\x00b"}]}]}),
            "steps.0.substeps.0.body",
            "NUL",
        ),
        (
            _with(
                {"steps": [{"title": "S", "substeps": [{"title": "x", "estimated_minutes": -1}]}]}
            ),
            "steps.0.substeps.0.estimated_minutes",
            "greater than or equal",
        ),
        (
            _with(
                {"steps": [{"title": "S", "substeps": [{"title": "x", "estimated_minutes": "5m"}]}]}
            ),
            "steps.0.substeps.0.estimated_minutes",
            "integer",
        ),
        # Strict JSON types: a boolean or a numeric string is no integer.
        *(
            (
                _with(
                    {
                        "steps": [
                            {"title": "S", "substeps": [{"title": "x", "estimated_minutes": v}]}
                        ]
                    }
                ),
                "steps.0.substeps.0.estimated_minutes",
                "integer",
            )
            for v in (True, False, "7")
        ),
        (_with({"title": 7}), "title", "string"),
        (_with({"owner": "me"}), "owner", "Extra"),
        (_with({"instructor_ids": ["not-a-uuid"]}), "instructor_ids.0", "UUID"),
        ({"steps": _steps(1)}, "title", "required"),
    ],
)
async def test_invalid_workshops_are_refused_naming_the_field(
    api: WorkshopApi, body: dict[str, Any], field: str, reason: str
) -> None:
    response = await api.client.post(
        "/workshops",
        data=io.BytesIO(json.dumps(body).encode()),
        headers={**api.people.instructor.headers, "Content-Type": "application/json"},
    )
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"
    errors = (await response.json())["errors"]
    assert any(e["field"] == field and reason in e["reason"] for e in errors), errors
    listed = await (await api.client.get("/workshops", headers=api.people.admin.headers)).json()
    assert listed["items"] == []


async def test_a_big_but_valid_workshop_fits_the_body_limit(api: WorkshopApi) -> None:
    body = _with({"steps": _steps(200, 10)})
    for step in body["steps"]:
        step["substeps"] = [{"title": "x", "body": "y" * 3000} for _ in range(10)]
    assert len(json.dumps(body)) > 6_000_000
    created = await api.create(body=body)
    assert created["substep_count"] == 2000


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b'{"title": "T", ', "application/json", 400),
        (b"\xff\xfe\x00garbage", "application/json", 400),
        ('{"title": "\udcff"}'.encode("utf-8", "surrogatepass"), "application/json", 400),
        (b'{"title": "caf\xe9"}', "application/json", 400),
        (b"title=T", "application/x-www-form-urlencoded", 415),
        (b"", "application/json", 400),
        (b"x" * (8 * 1024 * 1024 + 1), "application/json", 413),
    ],
)
async def test_malformed_bodies_are_4xx_problems(
    api: WorkshopApi, data: bytes, content_type: str, status: int
) -> None:
    response = await api.client.post(
        "/workshops",
        data=io.BytesIO(data),
        headers={**api.people.instructor.headers, "Content-Type": content_type},
    )
    assert response.status == status
    assert response.content_type == "application/problem+json"


async def test_enrollment_batches_are_limited(api: WorkshopApi) -> None:
    created = await api.create()
    url = f"/workshops/{created['id']}/enrollments"
    headers = api.people.instructor.headers
    too_many = await api.client.post(
        url, json={"user_ids": [str(uuid.uuid4()) for _ in range(1001)]}, headers=headers
    )
    assert too_many.status == 422
    errors = (await too_many.json())["errors"]
    assert errors[0]["field"] == "user_ids" and "at most 1000" in errors[0]["reason"]
    for body, field in (
        ({"user_ids": []}, "user_ids"),
        ({"user_ids": ["nope"]}, "user_ids.0"),
        ({"users": []}, "user_ids"),
    ):
        response = await api.client.post(url, json=body, headers=headers)
        assert response.status == 422
        assert field in [e["field"] for e in (await response.json())["errors"]]
    exactly = await api.client.post(
        url, json={"user_ids": [str(uuid.uuid4()) for _ in range(1000)]}, headers=headers
    )
    assert exactly.status == 200
    assert (await exactly.json())["created"] == 1000


async def test_unknown_and_malformed_ids_are_404(api: WorkshopApi) -> None:
    people = api.people
    created = await api.create()
    await api.enroll(created["id"], people.student.id)
    headers = people.admin.headers
    missing = f"/workshops/{uuid.uuid4()}"
    calls = [
        api.client.get(missing, headers=headers),
        api.client.get("/workshops/not-a-uuid", headers=headers),
        api.client.patch(missing, json={"title": "x"}, headers=headers),
        api.client.delete(missing, headers=headers),
        api.client.get(f"{missing}/enrollments", headers=headers),
        api.client.post(
            f"{missing}/enrollments", json={"user_ids": [str(uuid.uuid4())]}, headers=headers
        ),
        api.client.delete(f"{missing}/enrollments/{people.student.id}", headers=headers),
        api.client.delete(f"/workshops/{created['id']}/enrollments/zzz", headers=headers),
        api.client.get(f"{missing}/progress/{people.student.id}", headers=headers),
        api.client.get(f"/workshops/{created['id']}/progress/{uuid.uuid4()}", headers=headers),
    ]
    statuses = [(await call).status for call in calls]
    assert statuses == [404] * len(calls)


async def test_bad_queries_and_progress_bodies_are_422(api: WorkshopApi) -> None:
    people = api.people
    created = await api.create()
    await api.enroll(created["id"], people.student.id)
    headers = people.instructor.headers
    for query, field in (
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=201", "limit"),
        ("cursor=%00", "cursor"),
        ("status=gone", "status"),
        ("cursor=abc", "cursor"),
        ("external_id=", "external_id"),
        ("external_id=a%0Ab", "external_id"),
    ):
        response = await api.client.get(f"/workshops?{query}", headers=headers)
        assert response.status == 422, query
        assert (await response.json())["errors"][0]["field"] == field
    for body, field in (
        ({"substep_id": "x"}, "substep_id"),
        ({}, "substep_id"),
        ({"substep_id": str(uuid.uuid4()), "extra": 1}, "extra"),
    ):
        response = await api.client.post(
            f"/workshops/{created['id']}/progress", json=body, headers=people.student.headers
        )
        assert response.status == 422
        assert field in [e["field"] for e in (await response.json())["errors"]]


async def test_bad_patches_change_nothing(api: WorkshopApi) -> None:
    created = await api.create()
    url = f"/workshops/{created['id']}"
    headers = api.people.instructor.headers
    bodies: list[dict[str, Any]] = [
        {"steps": []},
        {"steps": _steps(10_000)},
        {"title": ""},
        {"version": 0},
        {"steps": [{"id": "nope", "title": "x", "substeps": [{"title": "y"}]}]},
        {"external_id": "mine"},
        {"starts_at": "2027-01-01T00:00:00"},
        {"ends_at": "2027-01-01T00:00:00Z", "starts_at": "2027-01-02T00:00:00Z"},
        {"steps": [{"key": "UPPER", "title": "x", "substeps": [{"title": "y"}]}]},
        {
            "steps": [
                {"key": "same", "title": "x", "substeps": [{"title": "y"}]},
                {"key": "same", "title": "z", "substeps": [{"title": "y"}]},
            ]
        },
    ]
    for body in bodies:
        response = await api.client.patch(
            url,
            data=io.BytesIO(json.dumps(body).encode()),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert response.status == 422, body
    read = await (await api.client.get(url, headers=headers)).json()
    assert read == created
    assert await api.settle() == ["workshop.created"]
