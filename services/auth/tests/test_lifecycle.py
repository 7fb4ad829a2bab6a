"""Health, readiness, metrics, the OpenAPI document and docs, migrations, and restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic import command

from sukverse_auth.app import MIGRATIONS, create_app
from sukverse_auth.settings import AuthSettings
from sukverse_common.db import alembic_config


async def test_health_readiness_and_metrics(client: Any, api: Any) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"database": True, "bus": True}
    await api.register("m@example.com")
    metrics = await (await client.get("/metrics")).text()
    assert (
        'sukverse_http_requests_total{method="POST",route="/auth/register",service="auth",'
        'status="201"} 1.0' in metrics
    )
    assert "sukverse_http_request_duration_seconds_bucket" in metrics
    assert "sukverse_outbox_backlog" in metrics


async def test_openapi_lists_every_route_with_schemas_and_security(client: Any) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    form = document["paths"]["/auth/token"]["post"]["requestBody"]["content"]
    grant = form["application/x-www-form-urlencoded"]["schema"]
    assert grant["properties"]["grant_type"]["enum"] == ["client_credentials"]
    paths = document["paths"]
    expected = {
        ("/auth/register", "post"),
        ("/auth/login", "post"),
        ("/auth/refresh", "post"),
        ("/auth/logout", "post"),
        ("/auth/token", "post"),
        ("/auth/me", "get"),
        ("/.well-known/jwks.json", "get"),
        ("/users", "get"),
        ("/users", "post"),
        ("/auth/password", "post"),
        ("/users/{id}", "get"),
        ("/users/{id}/roles", "put"),
        ("/users/{id}/status", "put"),
        ("/users/{id}/password-token", "post"),
        ("/roles", "get"),
        ("/roles", "post"),
        ("/permissions", "get"),
    }
    assert {(path, method) for path, ops in paths.items() for method in ops} == expected
    login = paths["/auth/login"]["post"]
    assert login["security"] == []
    assert set(login["responses"]) >= {"200", "401", "422", "429"}
    schema_ref = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref.rsplit("/", 1)[1] in document["components"]["schemas"]
    assert "security" not in paths["/users"]["get"]
    assert "403" in paths["/users"]["get"]["responses"]


async def test_docs_are_served_with_their_assets(client: Any) -> None:
    page = await client.get("/docs")
    assert page.status == 200
    html = await page.text()
    assert "/docs/swagger-ui-bundle.js" in html and "http" not in html.split("<body>")[1]
    bundle = await client.get("/docs/swagger-ui-bundle.js")
    assert bundle.status == 200
    assert len(await bundle.read()) > 100_000
    assert (await client.get("/docs/..%2Fpyproject.toml")).status == 404
    init = await (await client.get("/docs/init.js")).text()
    assert "validatorUrl: null" in init and "http" not in init


async def test_a_restart_keeps_accounts_and_keys(
    settings: AuthSettings, aiohttp_client: Any
) -> None:
    first = await aiohttp_client(create_app(settings))
    response = await first.post(
        "/auth/register",
        json={
            "email": "keep@example.com",
            "password": "correct horse battery staple",
            "full_name": "Keep",
        },
    )
    assert response.status == 201
    login = await first.post(
        "/auth/login",
        json={"email": "keep@example.com", "password": "correct horse battery staple"},
    )
    token = (await login.json())["access_token"]
    await first.close()

    second = await aiohttp_client(create_app(settings))
    me = await second.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200
    assert (await me.json())["email"] == "keep@example.com"


async def test_migrations_match_the_models(settings: AuthSettings) -> None:
    config = alembic_config(settings.effective_database_url, MIGRATIONS)
    await asyncio.to_thread(command.upgrade, config, "head")
    await asyncio.to_thread(command.check, config)


async def test_the_refresh_token_migration_dates_each_family_from_its_first_token(
    settings: AuthSettings,
) -> None:
    """Tokens made before the session lifetime existed get their family's first issue time,
    so a session refreshed for months does not start counting again from the upgrade."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import column, insert, select, table

    from sukverse_auth.models import RefreshToken, User
    from sukverse_common.db import create_engine

    config = alembic_config(settings.effective_database_url, MIGRATIONS)
    await asyncio.to_thread(command.upgrade, config, "0c2ca3d85a21")
    engine = create_engine(settings.effective_database_url)
    user, family, first = uuid.uuid4(), uuid.uuid4(), datetime(2026, 9, 1, tzinfo=UTC)
    try:
        async with engine.begin() as conn:
            names = ("id", "email", "full_name", "password_hash", "is_active")
            names += ("failed_logins", "created_at", "updated_at")
            users = table(  # the columns of that revision only
                "users", *(column(name, User.__table__.c[name].type) for name in names)
            )
            await conn.execute(
                insert(users).values(
                    id=user,
                    email="old@example.com",
                    full_name="Old",
                    password_hash="x",
                    is_active=True,
                    failed_logins=0,
                    created_at=first,
                    updated_at=first,
                )
            )
            for days in (0, 20, 40):  # the columns of that revision only
                issued = first + timedelta(days=days)
                await conn.execute(
                    insert(RefreshToken).values(
                        id=uuid.uuid4(),
                        token_hash=f"{days:064d}",
                        family_id=family,
                        user_id=user,
                        issued_at=issued,
                        expires_at=issued + timedelta(days=30),
                    )
                )
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as conn:
            started = (await conn.execute(select(RefreshToken.family_started_at))).scalars()
            assert set(started) == {first}
    finally:
        await engine.dispose()


async def test_cluster_mode_refuses_a_stale_schema(tmp_path: Path) -> None:
    from aiohttp import web

    key = tmp_path / "keys.json"
    AuthSettings(data_dir=tmp_path)  # defaults only
    settings = AuthSettings(
        data_dir=tmp_path,
        mode="cluster",
        signing_key_file=key,
        database_url=f"sqlite:///{tmp_path / 'empty.db'}",
    )
    runner = web.AppRunner(create_app(settings))
    try:
        with pytest.raises(RuntimeError, match="sukverse migrate auth"):
            await runner.setup()
    finally:
        await runner.cleanup()
