"""Routes of the auth service: parse, call one use case, render."""

from __future__ import annotations

import base64
import uuid
from urllib.parse import unquote_plus

from aiohttp import web

from sukverse_auth.keys import AUTH, SIGNING_KEYS
from sukverse_auth.models import User
from sukverse_auth.schemas import (
    AccessToken,
    CreatedUserOut,
    CreateUserRequest,
    LoginRequest,
    LogoutRequest,
    MeOut,
    PageQuery,
    PasswordTokenOut,
    PermissionOut,
    RefreshRequest,
    RegisterRequest,
    RoleIn,
    RoleOut,
    SetPasswordRequest,
    SetRolesRequest,
    SetStatusRequest,
    TokenPair,
    UserOut,
    UsersQuery,
)
from sukverse_auth.service import ClientAuthFailed
from sukverse_common.api import Page, Routes, client_address, path_uuid, principal
from sukverse_common.errors import BadRequest, Forbidden, Unauthorized, UnsupportedMediaType

routes = Routes("auth")


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        roles=user.role_names,
        active=user.is_active,
        created_at=user.created_at,
    )


@routes.post(
    "/auth/register", body=RegisterRequest, response=UserOut, status=201, public=True, errors=(409,)
)
async def register(request: web.Request, body: RegisterRequest) -> UserOut:
    """Create a student account."""
    user = await request.app[AUTH].register(
        email=body.email, password=body.password.get_secret_value(), full_name=body.full_name
    )
    return user_out(user)


@routes.post("/auth/login", body=LoginRequest, response=TokenPair, public=True, errors=(401, 429))
async def login(request: web.Request, body: LoginRequest) -> TokenPair:
    """Exchange an email and password for an access token and a refresh token."""
    return await request.app[AUTH].login(
        email=body.email, password=body.password.get_secret_value(), address=client_address(request)
    )


@routes.post("/auth/refresh", body=RefreshRequest, response=TokenPair, public=True, errors=(401,))
async def refresh(request: web.Request, body: RefreshRequest) -> TokenPair:
    """Rotate a refresh token into a new pair; a reused one revokes its family."""
    return await request.app[AUTH].refresh(body.refresh_token)


@routes.post("/auth/logout", body=LogoutRequest, status=204)
async def logout(request: web.Request, body: LogoutRequest) -> None:
    """End a session: the refresh token's, or without one the caller's own, or with
    `all_sessions` every session of the caller. Their refresh tokens stop working at once,
    and their access tokens on every service within seconds."""
    caller = principal(request)
    if caller.user_id is None:
        raise Forbidden("machine clients have no sessions")
    await request.app[AUTH].logout(
        caller.user_id,
        refresh_token=body.refresh_token,
        everywhere=body.all_sessions,
        session_id=uuid.UUID(caller.session_id) if caller.session_id else None,
    )


TOKEN_FORM = {
    "application/x-www-form-urlencoded": {
        "schema": {
            "type": "object",
            "required": ["grant_type"],
            "properties": {
                "grant_type": {"type": "string", "enum": ["client_credentials"]},
                "scope": {"type": "string", "description": "Space-separated scopes asked for"},
                "client_id": {"type": "string", "description": "Without HTTP Basic"},
                "client_secret": {
                    "type": "string",
                    "format": "password",
                    "description": "Without HTTP Basic",
                },
            },
        }
    }
}


@routes.post(
    "/auth/token",
    response=AccessToken,
    public=True,
    errors=(400, 401, 415),
    content=TOKEN_FORM,
)
async def token(request: web.Request) -> AccessToken:
    """OAuth 2.0 client-credentials grant for machine clients (RFC 6749 §4.4).

    The form-encoded body carries `grant_type=client_credentials` and an optional `scope`;
    the client authenticates with HTTP Basic, or with `client_id` and `client_secret` in the body.
    """
    if request.content_type != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("send the body as application/x-www-form-urlencoded")
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        raise BadRequest("grant_type must be client_credentials")
    client_id, client_secret = _client_credentials(request, form)
    scope = form.get("scope")
    return await request.app[AUTH].client_credentials(
        client_id=client_id,
        client_secret=client_secret,
        scope=scope if isinstance(scope, str) else None,
    )


def _client_credentials(request: web.Request, form: object) -> tuple[str, str]:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII input
            raise ClientAuthFailed() from None
        # RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined.
        return unquote_plus(client_id), unquote_plus(secret)
    assert hasattr(form, "get")
    client_id, secret = form.get("client_id"), form.get("client_secret")
    if isinstance(client_id, str) and isinstance(secret, str):
        return client_id, secret
    raise ClientAuthFailed()


@routes.get("/auth/me", response=MeOut)
async def me(request: web.Request) -> MeOut:
    """The caller's own account."""
    caller = principal(request)
    if caller.user_id is None:
        raise Forbidden("machine clients have no account")
    user = await request.app[AUTH].user(caller.user_id)
    if not user.is_active:
        raise Unauthorized("the account is disabled")
    return MeOut.model_construct(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        roles=user.role_names,
        active=True,
        created_at=user.created_at,
        scope=sorted(caller.scopes),
    )


@routes.get("/.well-known/jwks.json", public=True)
async def jwks(request: web.Request) -> web.Response:
    """The public keys that verify access tokens."""
    return web.json_response(
        request.app[SIGNING_KEYS].jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


@routes.get("/users", query=UsersQuery, response=Page[UserOut], permission="users:read")
async def list_users(request: web.Request, query: UsersQuery) -> Page[UserOut]:
    """Find accounts, by exact email or all of them a page at a time."""
    users, cursor = await request.app[AUTH].users(
        email=query.email, cursor=query.cursor, limit=query.limit
    )
    return Page[UserOut](items=[user_out(user) for user in users], next_cursor=cursor)


@routes.post(
    "/users",
    body=CreateUserRequest,
    response=CreatedUserOut,
    status=201,
    permission="users:write",
    errors=(403, 409),
)
async def create_user(request: web.Request, body: CreateUserRequest) -> CreatedUserOut:
    """Create an account for someone, without a password: the answer carries the one-time
    token its owner sets a password with (POST /auth/password)."""
    user, token, expires_at = await request.app[AUTH].create_user(
        email=body.email,
        full_name=body.full_name,
        roles=body.roles,
        by=principal(request).user_id,
        grants_any=principal(request).has("roles:write"),
    )
    return CreatedUserOut(
        **user_out(user).model_dump(), set_password_token=token, set_password_expires_at=expires_at
    )


@routes.post(
    "/users/{id}/password-token",
    response=PasswordTokenOut,
    permission="users:write",
    errors=(403, 404, 409),
)
async def reissue_password_token(request: web.Request) -> PasswordTokenOut:
    """A new set-password token for an account that has no password yet, e.g. one an
    interrupted import made; the earlier ones stop working. An account with a password
    is a 409, and one holding an administrative role needs `roles:write`."""
    caller = principal(request)
    token, expires_at = await request.app[AUTH].reissue_password_token(
        path_uuid(request), by=caller.user_id, grants_any=caller.has("roles:write")
    )
    return PasswordTokenOut(set_password_token=token, set_password_expires_at=expires_at)


@routes.post("/auth/password", body=SetPasswordRequest, status=204, public=True, errors=(400,))
async def set_password(request: web.Request, body: SetPasswordRequest) -> None:
    """Set the password of an account created without one, with its one-time token."""
    await request.app[AUTH].set_password(
        token=body.token, password=body.password.get_secret_value()
    )


@routes.get("/users/{id}", response=UserOut, permission="users:read", errors=(404,))
async def get_user(request: web.Request) -> UserOut:
    """One account."""
    return user_out(await request.app[AUTH].user(path_uuid(request)))


@routes.put(
    "/users/{id}/roles",
    body=SetRolesRequest,
    response=UserOut,
    permission="roles:assign",
    errors=(403, 404, 409),
)
async def set_roles(request: web.Request, body: SetRolesRequest) -> UserOut:
    """Replace the roles of an account. Giving or taking away a role with administrative
    permissions needs `roles:write`; changing one's own roles is a 409 (another
    administrator does it), so no one locks themselves out by mistake."""
    user = await request.app[AUTH].set_roles(
        path_uuid(request),
        body.roles,
        by=principal(request).user_id,
        grants_any=principal(request).has("roles:write"),
    )
    return user_out(user)


@routes.put(
    "/users/{id}/status",
    body=SetStatusRequest,
    response=UserOut,
    permission="users:disable",
    errors=(403, 404, 409),
)
async def set_status(request: web.Request, body: SetStatusRequest) -> UserOut:
    """Disable an account or enable it again (admins). A disabled account cannot log in or
    refresh, its sessions end, and `user.status_changed` tells the other services. An
    administrative account needs `roles:write` too; one's own account and the last active
    admin cannot be disabled (409)."""
    user = await request.app[AUTH].set_active(
        path_uuid(request),
        body.active,
        by=principal(request).user_id,
        grants_any=principal(request).has("roles:write"),
    )
    return user_out(user)


@routes.get("/roles", query=PageQuery, response=Page[RoleOut], permission="roles:read")
async def list_roles(request: web.Request, query: PageQuery) -> Page[RoleOut]:
    """Every role with its permissions."""
    roles = [
        r for r in await request.app[AUTH].roles() if query.cursor is None or r.name > query.cursor
    ]
    page = roles[: query.limit]
    more = len(roles) > query.limit
    return Page[RoleOut](items=page, next_cursor=page[-1].name if more else None)


@routes.post(
    "/roles", body=RoleIn, response=RoleOut, status=201, permission="roles:write", errors=(409,)
)
async def create_role(request: web.Request, body: RoleIn) -> RoleOut:
    """Define a role as a set of permissions."""
    return await request.app[AUTH].create_role(body)


@routes.get("/permissions", response=Page[PermissionOut], permission="roles:read")
async def list_permissions(request: web.Request) -> Page[PermissionOut]:
    """The catalogue of permissions roles are made of."""
    return Page[PermissionOut](items=request.app[AUTH].permissions())
