"""Declared routes: schemas in, schemas out, private unless marked public."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Annotated, Any, Generic, TypeVar

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import core_schema

from sukverse_common.errors import (
    MalformedBody,
    NotFound,
    UnsupportedMediaType,
    ValidationFailed,
    field_errors,
)
from sukverse_common.keys import PRINCIPAL, SETTINGS
from sukverse_common.security import Principal

PUBLIC_ATTR = "__sukverse_public__"
JSON = "application/json"

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Handler = Callable[..., Awaitable[Any]]


class Schema(BaseModel):
    """Base of response bodies: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class RequestSchema(Schema):
    """Base of request bodies and queries: also refuses NUL characters in text, which
    PostgreSQL cannot store."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, SecretStr):
        return "\x00" in value.get_secret_value()
    if isinstance(value, list | tuple | set | frozenset):
        return any(_has_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    return value


ExternalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=320),
    AfterValidator(_no_control_characters),
    Field(
        json_schema_extra={"pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]+$"},
        description="A key the creating client chose for the object, unique among its own: "
        "a client that lost the object's id finds it again by this key",
    ),
]
"""A client's own key for an object it creates; the owning service stores it with the
client's subject and lets that client search by it."""


def _without_null(schema: dict[str, Any]) -> None:
    alternatives = schema.pop("anyOf", None)
    if alternatives is None:
        return
    rest = [alternative for alternative in alternatives if alternative != {"type": "null"}]
    if len(rest) == 1:
        schema.update(rest[0])
    else:
        schema["anyOf"] = rest
    schema.pop("default", None)


def unset(**constraints: Any) -> Any:
    """The default of a PATCH field that may be left out but not sent as null
    (`title: Title | None = unset()`): the schema shows no null, and the service refuses
    one naming the field."""
    return Field(default=None, json_schema_extra=_without_null, **constraints)


RoleName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_-]{1,39}$"),
    Field(description="A role's name: a lower-case letter, then 1 to 39 of a-z, 0-9, _ and -"),
]
"""A role's name, as auth stores it and every service that names roles accepts it."""


class Page(Schema, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(errors=[{"field": "cursor", "reason": "not a valid cursor"}])


# White space as both Python's `str.strip` and JSON Schema's (ECMAScript's) `\s` count it,
# so that the schema's pattern and the server agree on every character.
BLANK = (
    "\t\n\v\f\r \x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def _unpadded(value: str) -> str:
    stripped = value.strip(BLANK)
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


class _NotBlank:
    """Text that is not blank, stored without the white space around it (`BLANK`); its
    schema has the pattern that says so, so that generated text agrees with the server."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_unpadded, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        document = dict(handler(schema))
        # Not blank, and no NUL anywhere (RequestSchema's rule, which this pattern takes
        # the place of in the schema).
        document["pattern"] = f"^[^\\x00]*[^{BLANK}\\x00][^\\x00]*$"
        return document


NotBlank = _NotBlank()
"""`Annotated[str, StringConstraints(max_length=200), NotBlank]`: not blank, unpadded."""


IdCursor = Annotated[
    uuid.UUID,
    Field(description="The `next_cursor` of the page before: the id of its last item"),
]
"""The cursor of a page ordered by id: the id it continues after."""


def _whole_number(value: Any) -> Any:
    if type(value) is float and value.is_integer():
        return int(value)
    return value


WholeNumber = BeforeValidator(_whole_number)
"""Read an integer of a request body as JSON Schema has it: a number without a fraction, 5
and 5.0 alike (never `true` or `"5"`). Last in its `Annotated`, after the constraints, so
that the schema keeps them: `Annotated[int, Field(ge=1), WholeNumber]`."""


def time_cursor(at: datetime, row_id: uuid.UUID) -> str:
    """The cursor of a page ordered by (time, id), continuing after this row."""
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def parse_time_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The (time, id) a `time_cursor` continues after; anything else is a 422 on `cursor`."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, row_id = raw.partition("|")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment, uuid.UUID(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _bad_cursor() from None


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    name: str
    summary: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    public: bool
    permission: str | None
    errors: tuple[int, ...]
    tag: str
    # Other success statuses the handler answers with the same body (e.g. 200 for a resumed
    # attempt where a new one is 201).
    also: tuple[int, ...] = ()
    # The OpenAPI request body content of a body the handler reads itself (a form, a file).
    content: dict[str, Any] | None = None
    # OpenAPI links of the success response, by name: `link(operation, param=expression)`.
    links: dict[str, Any] | None = None


def link(operation: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to the operation (its handler's name), each parameter a runtime
    expression such as `$response.body#/id`: where a client (and a fuzzer) finds the ids
    that operation takes."""
    return {"operationId": operation, "parameters": parameters}


def mark_public(handler: Handler) -> Handler:
    setattr(handler, PUBLIC_ATTR, True)
    return handler


def is_public(handler: object) -> bool:
    return bool(getattr(handler, PUBLIC_ATTR, False))


def principal(request: web.Request) -> Principal:
    """The authenticated caller (the auth middleware set it before any private handler)."""
    caller: Principal = request[PRINCIPAL]
    return caller


def client_address(request: web.Request) -> str:
    """The client's address: the peer, or behind trusted proxies (an ingress), the nearest
    address in X-Forwarded-For that is not one of them."""
    peer = request.remote or "unknown"
    trusted = request.app[SETTINGS].trusted_proxies
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _is_trusted(hop, trusted):
            return hop
    return peer


def _is_trusted(address: str, trusted: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def path_uuid(request: web.Request, name: str = "id") -> uuid.UUID:
    """A UUID path parameter; anything else names nothing, so it is a 404."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise NotFound(f"no resource has the id {request.match_info[name]!r}") from None


async def parse_json(request: web.Request, model: type[M]) -> M:
    if request.content_type != JSON:
        raise UnsupportedMediaType(f"send the body as {JSON}, not {request.content_type!r}")
    raw = await request.read()
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise MalformedBody("the body is not valid UTF-8 JSON") from None
        raise ValidationFailed(errors=field_errors(exc)) from None


def parse_query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise ValidationFailed(errors=field_errors(exc)) from None


def render(result: Any, status: int) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if result is None:
        return web.Response(status=204 if status == 200 else status)
    if isinstance(result, BaseModel):
        # Bytes straight from the serializer: a str body would take aiohttp's payload
        # look-up and be encoded again on every response.
        body = result.__pydantic_serializer__.to_json(result)
        return web.Response(body=body, status=status, content_type=JSON)
    raise TypeError(f"a handler returned {type(result).__name__}")


class Routes:
    """A service's routes with what the OpenAPI document says of them."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        public: bool = False,
        permission: str | None = None,
        errors: Sequence[int] = (),
        also: Sequence[int] = (),
        content: dict[str, Any] | None = None,
        links: dict[str, Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            async def endpoint(request: web.Request) -> web.StreamResponse:
                if permission is not None:
                    principal(request).require(permission)
                kwargs: dict[str, Any] = {}
                if body is not None:
                    kwargs["body"] = await parse_json(request, body)
                if query is not None:
                    kwargs["query"] = parse_query(request, query)
                return render(await handler(request, **kwargs), status)

            if public:
                mark_public(endpoint)
            self.endpoints.append(
                Endpoint(
                    method=method,
                    path=path,
                    handler=endpoint,
                    name=handler.__name__,
                    summary=(handler.__doc__ or handler.__name__).strip().splitlines()[0],
                    body=body,
                    query=query,
                    response=response,
                    status=status,
                    public=public,
                    permission=permission,
                    errors=tuple(errors),
                    tag=self.tag,
                    also=tuple(also),
                    content=content,
                    links=links,
                )
            )
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **options)

    def add_to(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)
