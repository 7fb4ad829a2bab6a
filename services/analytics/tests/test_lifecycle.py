"""Health, the OpenAPI document, and migrations that match the models."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command

from sukverse_analytics.app import MIGRATIONS
from sukverse_analytics.settings import AnalyticsSettings
from sukverse_common.db import alembic_config

ROUTES = {
    ("/analytics/workshops/{id}", "get"),
    ("/analytics/workshops/{id}/students", "get"),
    ("/analytics/at-risk", "get"),
    ("/analytics/workshops/{id}/thresholds", "get"),
    ("/analytics/workshops/{id}/thresholds", "put"),
}


async def test_health_and_readiness(service: Any) -> None:
    assert (await service.client.get("/healthz")).status == 200
    ready = await service.client.get("/readyz")
    assert (await ready.json())["checks"] == {"database": True, "bus": True}


async def test_openapi_documents_every_route(service: Any) -> None:
    document = await (await service.client.get("/openapi.json")).json()
    operations = {
        (path, method): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    assert set(operations) == ROUTES
    for key, operation in operations.items():
        assert {"200", "401", "403", "404"} <= set(operation["responses"]), key


async def test_migrations_match_the_models(database_url: str, tmp_path: Path) -> None:
    settings = AnalyticsSettings(data_dir=tmp_path, database_url=database_url)
    config = alembic_config(settings.effective_database_url, MIGRATIONS)
    await asyncio.to_thread(command.upgrade, config, "head")
    await asyncio.to_thread(command.check, config)
