"""The OpenAPI document states the request rules every service shares."""

from __future__ import annotations

import re

from aiohttp import web
from pydantic import SecretStr

from sukverse_common.api import RequestSchema, Routes, Schema
from sukverse_common.openapi import NO_NUL, build_openapi


class NoteIn(RequestSchema):
    text: str
    secret: SecretStr
    code: str = "x"


class NoteOut(Schema):
    text: str


class NotesQuery(RequestSchema):
    q: str | None = None


routes = Routes("notes")


@routes.post("/notes", body=NoteIn, response=NoteOut, status=201)
async def create_note(_request: web.Request, body: NoteIn) -> NoteOut:
    """Create a note."""
    return NoteOut(text=body.text)


@routes.get("/notes", query=NotesQuery, response=NoteOut)
async def find_note(_request: web.Request, query: NotesQuery) -> NoteOut:
    """Find a note."""
    return NoteOut(text=query.q or "")


def test_request_strings_publish_the_no_nul_rule_and_responses_do_not() -> None:
    document = build_openapi(title="notes", version="1", endpoints=routes.endpoints)
    schemas = document["components"]["schemas"]
    for field in ("text", "secret", "code"):
        assert schemas["NoteIn"]["properties"][field]["pattern"] == NO_NUL, field
    assert "pattern" not in schemas["NoteOut"]["properties"]["text"]
    (query,) = document["paths"]["/notes"]["get"]["parameters"]
    assert {"type": "string", "pattern": NO_NUL} in query["schema"]["anyOf"]
    assert re.match(NO_NUL, "a normal note") and not re.match(NO_NUL, "nul\x00here")
