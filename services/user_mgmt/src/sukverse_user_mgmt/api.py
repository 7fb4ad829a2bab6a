"""Routes of the user management service: parse, call one use case, render."""

from __future__ import annotations

from aiohttp import web

from sukverse_common.api import Page, Routes, path_uuid, principal
from sukverse_user_mgmt.keys import PROFILES
from sukverse_user_mgmt.schemas import ProfileOut, ProfilePatch, ProfilesQuery, RolesIn

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
    errors=(404, 409, 503),
)
async def set_roles(request: web.Request, body: RolesIn) -> ProfileOut:
    """Replace a user's roles; the auth service decides, this service follows."""
    return await request.app[PROFILES].set_roles(path_uuid(request, "user_id"), body.roles)
