"""The baseline server: bare aiohttp JSON handlers (a GET, and a POST of a JSON body).

With `--libraries` it first imports the libraries every service is built on, as a service
starting on its embedded database does (it migrates, so Alembic too): the start-up floor
of any service made of them."""

from __future__ import annotations

import functools
import importlib
import json
import sys

from aiohttp import web

ME = {  # the shape and size of an `/auth/me` answer
    "id": "0b7e2b8a-2f9f-4a43-9d8e-1f2b3c4d5e6f",
    "email": "bench0@example.com",
    "full_name": "B 0",
    "roles": ["student"],
    "active": True,
    "created_at": "2026-12-06T16:23:33.479486Z",
    "scope": ["attempt:write", "certificate:read", "progress:write", "quiz:read", "workshop:read"],
}


COMPACT = functools.partial(json.dumps, separators=(",", ":"))


async def hello(_: web.Request) -> web.Response:
    return web.json_response(ME, dumps=COMPACT)


async def record(request: web.Request) -> web.Response:
    """The write baseline: read a JSON body, answer with JSON."""
    body = await request.json()
    return web.json_response({"substep_id": body["substep_id"], "done": True})


LIBRARIES = (
    "sqlalchemy.ext.asyncio",
    "aiosqlite",
    "alembic.command",
    "alembic.script",
    "pydantic_settings",
    "prometheus_client",
    "joserfc.jwt",
    "structlog",
)


def main() -> None:
    if "--libraries" in sys.argv[2:]:
        for name in LIBRARIES:
            importlib.import_module(name)
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_post("/", record)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
