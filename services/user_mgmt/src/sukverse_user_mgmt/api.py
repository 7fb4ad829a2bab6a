"""Routes of the user management service: parse, call one use case, render."""

from __future__ import annotations

from aiohttp import BodyPartReader, StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError

from sukverse_common.api import Page, Routes, link, path_uuid, principal
from sukverse_common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    UnsupportedMediaType,
    ValidationFailed,
)
from sukverse_common.keys import SETTINGS
from sukverse_user_mgmt.imports import TooLarge
from sukverse_user_mgmt.keys import IMPORTS, PROFILES
from sukverse_user_mgmt.schemas import (
    ImportAccepted,
    ImportOut,
    ImportQuery,
    ImportRowOut,
    ImportRowsQuery,
    ProfileOut,
    ProfilePatch,
    ProfilesQuery,
    RolesIn,
)
from sukverse_user_mgmt.settings import UserMgmtSettings

routes = Routes("user_mgmt")


@routes.get("/profiles", query=ProfilesQuery, response=Page[ProfileOut], permission="profiles:read")
async def search_profiles(request: web.Request, query: ProfilesQuery) -> Page[ProfileOut]:
    """Search profiles by email or display-name prefix (case-insensitive) and by role."""
    items, cursor = await request.app[PROFILES].search(
        q=query.q, role=query.role, cursor=query.cursor, limit=query.limit
    )
    return Page[ProfileOut](items=items, next_cursor=cursor)


@routes.get("/profiles/{user_id}", response=ProfileOut, errors=(404,))
async def get_profile(request: web.Request) -> ProfileOut:
    """A profile: one's own, or anyone's with profiles:read."""
    return await request.app[PROFILES].profile(principal(request), path_uuid(request, "user_id"))


@routes.patch("/profiles/{user_id}", body=ProfilePatch, response=ProfileOut, errors=(404,))
async def update_profile(request: web.Request, body: ProfilePatch) -> ProfileOut:
    """Change the display fields of one's own profile, or of anyone's with profiles:write."""
    return await request.app[PROFILES].update_profile(
        principal(request), path_uuid(request, "user_id"), body
    )


@routes.put(
    "/profiles/{user_id}/roles",
    body=RolesIn,
    response=ProfileOut,
    permission="roles:assign",
    errors=(403, 404, 409, 503),
)
async def set_roles(request: web.Request, body: RolesIn) -> ProfileOut:
    """Replace a user's roles; the auth service decides, this service follows. One's own
    roles are a 409, as at the auth service: another administrator changes them."""
    user_id = path_uuid(request, "user_id")
    if principal(request).user_id == user_id:
        raise Conflict("you cannot change your own roles; another administrator can")
    return await request.app[PROFILES].set_roles(user_id, body.roles)


CSV_TYPES = ("text/csv", "application/csv", "text/plain")


async def _csv_body(request: web.Request, limit: int) -> bytes:
    """The CSV file: the body itself, or the multipart field `file`; read no further than
    one byte past the limit."""
    if request.content_type in CSV_TYPES:
        return await _read_capped(request.content, limit)
    if request.content_type == "multipart/form-data":
        data = None
        try:
            async for part in await request.multipart():
                if not isinstance(part, BodyPartReader) or part.name != "file" or data is not None:
                    raise ValidationFailed(
                        "the form has one field, 'file'",
                        errors=[{"field": "file", "reason": "the only field of the form, once"}],
                    )
                data = await _read_capped(part, limit)
        except (ValueError, HttpProcessingError):  # no boundary, or parts that break the rules
            raise BadRequest("the multipart body is malformed") from None
        if data is None:
            raise ValidationFailed(
                "the form has no field 'file'", errors=[{"field": "file", "reason": "missing"}]
            )
        return data
    raise UnsupportedMediaType(
        f"send the file as text/csv, or as the field 'file' of multipart/form-data, "
        f"not {request.content_type!r}"
    )


async def _read_capped(source: StreamReader | BodyPartReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = (
            await source.read_chunk(65536)
            if isinstance(source, BodyPartReader)
            else await source.read(65536)
        )
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise TooLarge(
                f"the file may be at most {limit} bytes",
                errors=[{"field": "file", "reason": "too large"}],
            )
        chunks.append(chunk)


def _settings(request: web.Request) -> UserMgmtSettings:
    settings = request.app[SETTINGS]
    assert isinstance(settings, UserMgmtSettings)
    return settings


def _may_import(request: web.Request) -> None:
    if not principal(request).has("profiles:write"):
        raise Forbidden("importing users needs 'profiles:write'")


CSV_FILE = {"type": "string", "description": "The CSV file, UTF-8, a header row first"}
IMPORT_BODY = {
    **{kind: {"schema": CSV_FILE} for kind in CSV_TYPES},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file"],
            "properties": {"file": {**CSV_FILE, "format": "binary"}},
            "additionalProperties": False,
        },
        "encoding": {"file": {"contentType": "text/csv"}},
    },
}


@routes.post(
    "/imports",
    query=ImportQuery,
    response=ImportAccepted,
    status=202,
    errors=(400, 413, 415, 503),
    content=IMPORT_BODY,
    links={
        "GetImport": link("get_import", id="$response.body#/id"),
        "ListImportRows": link("list_import_rows", id="$response.body#/id"),
    },
)
async def start_import(request: web.Request, query: ImportQuery) -> ImportAccepted:
    """Import users from a CSV file (columns email, full_name, role and optional profile
    fields); `dry_run=true` reports what would happen and changes nothing."""
    _may_import(request)
    data = await _csv_body(request, _settings(request).import_max_bytes)
    return await request.app[IMPORTS].start(principal(request), data, dry_run=query.dry_run)


@routes.get("/imports/{id}", response=ImportOut, errors=(404,))
async def get_import(request: web.Request) -> ImportOut:
    """An import's status, counts, progress and failed rows (to the one who ran it)."""
    _may_import(request)
    return await request.app[IMPORTS].status(principal(request), path_uuid(request))


@routes.get("/imports/{id}/rows", query=ImportRowsQuery, response=Page[ImportRowOut], errors=(404,))
async def list_import_rows(request: web.Request, query: ImportRowsQuery) -> Page[ImportRowOut]:
    """An import's rows in file order, with the set-password tokens of new accounts."""
    _may_import(request)
    items, cursor = await request.app[IMPORTS].rows(
        principal(request),
        path_uuid(request),
        outcome=query.outcome,
        after=int(query.cursor) if query.cursor else None,
        limit=query.limit,
    )
    return Page[ImportRowOut](items=items, next_cursor=cursor)
