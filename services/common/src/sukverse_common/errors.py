"""Domain errors and their RFC 9457 problem+json rendering."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web
from pydantic import ValidationError

PROBLEM_BASE = "https://sukverse.io/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(Exception):  # noqa: N818 - a Problem is what the client receives
    """An error that reaches the client as a problem body with a stable `type`."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self, detail: str | None = None, *, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = errors
        self.headers: dict[str, str] = {}

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.slug


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad request"


class MalformedBody(Problem):
    status, slug, title = 400, "malformed-body", "The body is not valid JSON"


class ValidationFailed(Problem):
    status, slug, title = 422, "validation", "The request is not valid"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = 'Bearer realm="sukverse"'


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class TooManyRequests(Problem):
    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int) -> None:
        super().__init__(detail)
        self.headers["Retry-After"] = str(max(1, retry_after))


class ServiceUnavailable(Problem):
    status, slug, title = 503, "unavailable", "Service temporarily unavailable"


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as `{field, reason}` pairs a client can show next to its inputs."""
    errors = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        errors.append({"field": field, "reason": error["msg"], "code": error["type"]})
    return errors


def problem_response(
    *,
    status: int,
    type_uri: str,
    title: str,
    detail: str | None = None,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"type": type_uri, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def render_problem(problem: Problem, request: web.Request) -> web.Response:
    return problem_response(
        status=problem.status,
        type_uri=problem.type_uri,
        title=problem.title,
        detail=problem.detail,
        instance=request.path,
        errors=problem.errors,
        headers=problem.headers,
    )


def render_http_exception(
    exc: web.HTTPException, request: web.Request, *, max_body_bytes: int
) -> web.Response:
    """aiohttp's own 4xx (unknown route, wrong method, body too large) as problem bodies."""
    slug = exc.reason.lower().replace(" ", "-")
    headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
    detail = None
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        detail = f"the body may be at most {max_body_bytes} bytes"
    return problem_response(
        status=exc.status,
        type_uri=PROBLEM_BASE + slug,
        title=exc.reason,
        detail=detail,
        instance=request.path,
        headers=headers,
    )
