"""The OpenAPI 3.1 document generated from the declared routes, and Swagger UI to read it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema
from swagger_ui_bundle import swagger_ui_path

from sukverse_common.api import Endpoint, mark_public

REF = "#/components/schemas/{model}"
PATH_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")
ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing or invalid access token",
    403: "Not allowed for this caller",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Validation failed: `errors` names each field and the reason",
    429: "Too many requests: see Retry-After",
}
DOCS_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script>
</body></html>
"""
# validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io
# from any browser that opens the docs on a host other than localhost.
DOCS_INIT = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout",
  validatorUrl: null});
"""

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem detail.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "reason": {"type": "string"},
                    "code": {"type": "string"},
                },
            },
        },
    },
}


NO_NUL = "^[^\\x00]*$"


class RequestJsonSchema(GenerateJsonSchema):
    """Request strings refuse NUL (RequestSchema's rule): their schemas say so, where a
    pattern of their own does not already."""

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        json_schema = super().str_schema(schema)
        if self.mode == "validation" and "pattern" not in json_schema:
            json_schema["pattern"] = NO_NUL
        return json_schema


def build_openapi(*, title: str, version: str, endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = []
    for endpoint in endpoints:
        if endpoint.body is not None:
            models.append((endpoint.body, "validation"))
        if endpoint.response is not None:
            models.append((endpoint.response, "serialization"))
    refs, defs = (
        models_json_schema(models, ref_template=REF, schema_generator=RequestJsonSchema)
        if models
        else ({}, {})
    )
    schemas = dict(defs.get("$defs", {}))
    schemas["Problem"] = PROBLEM_SCHEMA

    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        path = PATH_PARAM.sub(r"{\1}", endpoint.path)
        operation: dict[str, Any] = {
            "operationId": endpoint.name,
            "summary": endpoint.summary,
            "tags": [endpoint.tag],
            "parameters": _parameters(endpoint),
            "responses": _responses(endpoint, refs),
        }
        if endpoint.public:
            operation["security"] = []
        elif endpoint.permission:
            operation["description"] = f"Requires the permission `{endpoint.permission}`."
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(endpoint.body, "validation")]}},
            }
        elif endpoint.content is not None:
            operation["requestBody"] = {"required": True, "content": endpoint.content}
        paths.setdefault(path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearerAuth": []}],
    }


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in PATH_PARAM.findall(endpoint.path)
    ]
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema(schema_generator=RequestJsonSchema)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    return params


def _responses(endpoint: Endpoint, refs: dict[Any, Any]) -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}
    ok: dict[str, Any] = {"description": "Success"}
    if endpoint.response is not None:
        ok["content"] = {"application/json": {"schema": refs[(endpoint.response, "serialization")]}}
    if endpoint.links:
        ok["links"] = endpoint.links
    responses: dict[str, Any] = {str(endpoint.status): ok}
    for status in endpoint.also:
        responses[str(status)] = ok
    codes = set(endpoint.errors)
    if endpoint.body is not None:
        codes |= {400, 413, 415, 422}
    if endpoint.query is not None:
        codes.add(422)
    if not endpoint.public:
        codes.add(401)
    if endpoint.permission:
        codes.add(403)
    for code in sorted(codes):
        responses[str(code)] = {"description": ERROR_TEXT.get(code, "Error"), "content": problem}
    return responses


def add_docs_routes(app: web.Application, document: dict[str, Any], *, title: str) -> None:
    async def openapi_json(_: web.Request) -> web.Response:
        return web.json_response(document)

    async def docs(_: web.Request) -> web.Response:
        return web.Response(text=DOCS_PAGE.format(title=title), content_type="text/html")

    async def docs_init(_: web.Request) -> web.Response:
        return web.Response(text=DOCS_INIT, content_type="text/javascript")

    async def docs_asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["asset"]
        if name not in DOCS_ASSETS:
            raise web.HTTPNotFound()
        return web.FileResponse(
            Path(str(swagger_ui_path)) / name, headers={"Content-Type": DOCS_ASSETS[name]}
        )

    app.router.add_get("/openapi.json", mark_public(openapi_json))
    app.router.add_get("/docs", mark_public(docs))
    app.router.add_get("/docs/init.js", mark_public(docs_init))
    app.router.add_get("/docs/{asset}", mark_public(docs_asset))
