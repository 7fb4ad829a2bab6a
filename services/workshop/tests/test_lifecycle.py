"""Health, the OpenAPI document, migrations, restarts, and the read path's speed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from alembic import command

from sukverse_common.db import alembic_config
from sukverse_workshop.app import MIGRATIONS, create_app
from sukverse_workshop.keys import WORKSHOPS
from sukverse_workshop.settings import WorkshopSettings

WorkshopApi = Any

ROUTES = {
    ("/workshops", "post"): {"201", "400", "401", "403", "409", "413", "415", "422"},
    ("/workshops", "get"): {"200", "401", "403", "422"},
    ("/workshops/{id}", "get"): {"200", "401", "403", "404"},
    ("/workshops/{id}", "patch"): {"200", "400", "401", "403", "404", "409", "413", "415", "422"},
    ("/workshops/{id}", "delete"): {"204", "401", "403", "404"},
    ("/workshops/{id}/enrollments", "post"): {
        "200",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "422",
    },
    ("/workshops/{id}/enrollments", "get"): {"200", "401", "403", "404", "422"},
    ("/workshops/{id}/enrollments/{user_id}", "delete"): {"204", "401", "403", "404", "409"},
    ("/workshops/{id}/progress", "post"): {
        "200",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "422",
    },
    ("/workshops/{id}/progress/{user_id}", "get"): {"200", "401", "403", "404"},
}


async def test_openapi_documents_every_route_with_schemas_and_errors(client: Any) -> None:
    document = await (await client.get("/openapi.json")).json()
    paths = document["paths"]
    found = {(path, method) for path, ops in paths.items() for method in ops}
    assert found == set(ROUTES)
    for (path, method), codes in ROUTES.items():
        assert set(paths[path][method]["responses"]) == codes, (path, method)
    schemas = document["components"]["schemas"]
    created = paths["/workshops"]["post"]
    body_ref = created["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    workshop_in = schemas[body_ref.rsplit("/", 1)[1]]
    assert workshop_in["properties"]["steps"]["maxItems"] == 500
    assert workshop_in["properties"]["steps"]["minItems"] == 1
    out_ref = created["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    assert "steps" in schemas[out_ref.rsplit("/", 1)[1]]["properties"]
    params = {p["name"] for p in paths["/workshops/{id}/enrollments"]["get"]["parameters"]}
    assert params == {"id", "limit", "cursor", "status"}
    params = {p["name"] for p in paths["/workshops"]["get"]["parameters"]}
    assert params == {"limit", "cursor", "status", "external_id"}
    assert "external_id" in workshop_in["properties"]
    assert "external_id" not in schemas["WorkshopPatch"]["properties"]


async def test_health_and_metrics(client: Any) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await (await client.get("/readyz")).json()
    assert ready["checks"] == {"database": True, "bus": True}
    metrics = await (await client.get("/metrics")).text()
    assert "sukverse_outbox_backlog" in metrics


async def test_migrations_match_the_models(settings: WorkshopSettings) -> None:
    config = alembic_config(settings.effective_database_url, MIGRATIONS)
    await asyncio.to_thread(command.upgrade, config, "head")
    await asyncio.to_thread(command.check, config)


async def test_cluster_mode_refuses_a_stale_schema(tmp_path: Path) -> None:
    from aiohttp import web

    settings = WorkshopSettings(
        data_dir=tmp_path, mode="cluster", database_url=f"sqlite:///{tmp_path / 'empty.db'}"
    )
    runner = web.AppRunner(create_app(settings))
    try:
        with pytest.raises(RuntimeError, match="sukverse migrate workshop"):
            await runner.setup()
    finally:
        await runner.cleanup()


async def test_a_restart_keeps_workshops_and_progress(
    settings: WorkshopSettings, aiohttp_client: Any, people: Any
) -> None:
    first = await aiohttp_client(create_app(settings))
    created = await first.post(
        "/workshops",
        json={"title": "Kept", "steps": [{"title": "S", "substeps": [{"title": "x"}]}]},
        headers=people.instructor.headers,
    )
    workshop = await created.json()
    await first.post(
        f"/workshops/{workshop['id']}/enrollments",
        json={"user_ids": [str(people.student.id)]},
        headers=people.instructor.headers,
    )
    await first.post(
        f"/workshops/{workshop['id']}/progress",
        json={"substep_id": workshop["steps"][0]["substeps"][0]["id"]},
        headers=people.student.headers,
    )
    await first.close()
    second = await aiohttp_client(create_app(settings))
    progress = await second.get(
        f"/workshops/{workshop['id']}/progress/{people.student.id}",
        headers=people.student.headers,
    )
    assert (await progress.json())["completed"] is True


async def test_a_200_by_10_workshop_reads_the_same_from_the_cache_and_after_an_edit(
    api: WorkshopApi,
) -> None:
    """GET /workshops/{id} of 2,000 substeps answers from the (id, version) cache with the
    same body a miss renders, and an edit is never hidden by it. (Its speed is measured in
    benchmarks/workshop.py.)"""
    body = api.body(steps=200, substeps=10)
    for step in body["steps"]:
        for sub in step["substeps"]:
            sub["body"] = "Markdown text of a substep. " * 20
    created = await api.create(body=body)
    url = f"/workshops/{created['id']}"
    headers = api.people.student.headers
    await api.enroll(created["id"], api.people.student.id)
    service = api.client.app[WORKSHOPS]

    async def read() -> bytes:
        response = await api.client.get(url, headers=headers)
        assert response.status == 200
        return await response.read()

    missed = await read()
    assert len(missed) > 1_000_000
    assert len(service._bodies) == 1
    assert await read() == missed
    service._bodies.clear()
    assert await read() == missed

    edited = await api.client.patch(
        url, json={"title": "A long workshop, edited"}, headers=api.people.instructor.headers
    )
    assert edited.status == 200, await edited.text()
    after = json.loads(await read())
    assert after["title"] == "A long workshop, edited"
    assert after["version"] == created["version"] + 1
    assert len(after["steps"]) == 200
