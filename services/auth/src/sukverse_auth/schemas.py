"""Request and response bodies of the auth service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import EmailStr, Field, SecretStr, StringConstraints

from sukverse_auth.domain import PERMISSIONS
from sukverse_common.api import IdCursor, NotBlank, RequestSchema, RoleName, Schema

FullName = Annotated[str, StringConstraints(max_length=200), NotBlank]
Password = Annotated[SecretStr, Field(min_length=1, max_length=4096)]
# A password being set: the schema states the least any deployment accepts (8), the
# service then checks its own minimum and refuses common and guessable ones.
NewPassword = Annotated[
    SecretStr,
    Field(
        min_length=8,
        max_length=4096,
        description="At least 8 characters (a deployment may ask more); not a common password",
    ),
]


class RegisterRequest(RequestSchema):
    email: EmailStr = Field(max_length=320)
    password: NewPassword
    full_name: FullName


class CreateUserRequest(RequestSchema):
    """An account an administrator or a service creates for someone, without a password."""

    email: EmailStr = Field(max_length=320)
    full_name: FullName
    roles: list[RoleName] = Field(default_factory=lambda: ["student"], min_length=1, max_length=20)


class SetPasswordRequest(RequestSchema):
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    password: NewPassword


class LoginRequest(RequestSchema):
    email: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    password: Password


class RefreshRequest(RequestSchema):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class LogoutRequest(RequestSchema):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    all_sessions: bool = False


class TokenPair(Schema):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class AccessToken(Schema):
    """An OAuth 2.0 client-credentials grant: an access token only, no refresh token."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str


class UserOut(Schema):
    id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]
    active: bool = Field(description="false once an admin disabled the account")
    created_at: datetime


class SetStatusRequest(RequestSchema):
    active: bool = Field(description="false disables the account and ends its sessions")


class PasswordTokenOut(Schema):
    """A one-time token that sets an account's first password (POST /auth/password)."""

    set_password_token: str
    set_password_expires_at: datetime


class CreatedUserOut(UserOut):
    """A new account and the one-time token its owner sets a password with."""

    set_password_token: str
    set_password_expires_at: datetime


class MeOut(UserOut):
    scope: list[str]


class UsersQuery(RequestSchema):
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: IdCursor | None = None


class PageQuery(RequestSchema):
    limit: int = Field(default=100, ge=1, le=200)
    cursor: str | None = None


Permission = Annotated[
    str, Field(json_schema_extra={"enum": sorted(PERMISSIONS)}, description="See GET /permissions")
]


class RoleIn(RequestSchema):
    name: RoleName
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    permissions: list[Permission] = Field(max_length=100)


class RoleOut(Schema):
    name: str
    description: str
    builtin: bool
    permissions: list[str]


class PermissionOut(Schema):
    name: str
    description: str


class SetRolesRequest(RequestSchema):
    roles: list[RoleName] = Field(max_length=20)
