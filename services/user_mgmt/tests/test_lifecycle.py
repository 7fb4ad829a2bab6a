"""Health, the OpenAPI document and migrations."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command

from sukverse_common.db import alembic_config
from sukverse_user_mgmt.app import MIGRATIONS
from sukverse_user_mgmt.settings import UserMgmtSettings

ROUTES = {
    ("/profiles", "get"): "200",
    ("/profiles/{user_id}", "get"): "200",
    ("/profiles/{user_id}", "patch"): "200",
    ("/profiles/{user_id}/roles", "put"): "200",
    ("/imports", "post"): "202",
    ("/imports/{id}", "get"): "200",
    ("/imports/{id}/rows", "get"): "200",
}


async def test_health_and_readiness(api: Any) -> None:
    assert (await api.client.get("/healthz")).status == 200
    ready = await api.client.get("/readyz")
    assert (await ready.json())["checks"] == {"database": True, "bus": True}


async def test_openapi_documents_every_route(api: Any) -> None:
    document = await (await api.client.get("/openapi.json")).json()
    operations = {
        (path, method): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    assert set(operations) == set(ROUTES)
    for key, success in ROUTES.items():
        responses = operations[key]["responses"]
        assert {success, "401"} <= set(responses), key
        assert "content" in responses[success], key
    # The import's file, as the body itself or a form's `file`, so Swagger UI can send it.
    body = operations[("/imports", "post")]["requestBody"]["content"]
    assert {"text/csv", "multipart/form-data"} <= set(body)
    assert body["multipart/form-data"]["schema"]["required"] == ["file"]


async def test_migrations_match_the_models(settings: UserMgmtSettings) -> None:
    config = alembic_config(settings.effective_database_url, MIGRATIONS)
    await asyncio.to_thread(command.upgrade, config, "head")
    await asyncio.to_thread(command.check, config)
