"""Request and response bodies of the user management service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from sukverse_common.api import IdCursor, NotBlank, RequestSchema, RoleName, Schema
from sukverse_user_mgmt.domain import (
    AVATAR_URL_PATTERN,
    LOCALE_PATTERN,
    MAX_BIO,
    MAX_NAME,
    MAX_ORGANISATION,
    MAX_URL,
    TIME_ZONES,
    check_avatar_url,
    check_time_zone,
    normalise_locale,
)

DisplayName = Annotated[str, StringConstraints(max_length=MAX_NAME), NotBlank]
Organisation = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_ORGANISATION)]
# The schemas publish what the validators enforce (a pattern or format, the length).
Locale = Annotated[
    str,
    StringConstraints(strip_whitespace=True),
    AfterValidator(normalise_locale),
    Field(
        max_length=35,
        json_schema_extra={"pattern": LOCALE_PATTERN},
        description="A BCP 47 language tag such as en or de-CH, stored in its canonical case",
    ),
]
TimeZone = Annotated[
    str,
    AfterValidator(check_time_zone),
    Field(
        json_schema_extra={"enum": list(TIME_ZONES)},
        description="An IANA time zone name such as Europe/Berlin or UTC",
    ),
]
AvatarUrl = Annotated[
    str,
    AfterValidator(check_avatar_url),
    Field(
        max_length=MAX_URL,
        json_schema_extra={"format": "uri", "pattern": AVATAR_URL_PATTERN},
        description="An absolute https URL without credentials",
    ),
]
Bio = Annotated[str, StringConstraints(max_length=MAX_BIO)]


class ProfileOut(Schema):
    """A profile; `email` and `full_name` are null until the registration event arrives."""

    id: uuid.UUID
    user_id: uuid.UUID
    email: str | None
    full_name: str | None
    display_name: str | None
    roles: list[str]
    organisation: str | None
    locale: str | None
    time_zone: str | None
    avatar_url: str | None
    bio: str | None
    created_at: datetime
    updated_at: datetime


class ProfilePatch(RequestSchema):
    """The display fields to change; a field left out stays, null clears it (but the
    display name, which falls back to the full name)."""

    display_name: DisplayName | None = None
    organisation: Organisation | None = None
    locale: Locale | None = None
    time_zone: TimeZone | None = None
    avatar_url: AvatarUrl | None = None
    bio: Bio | None = None


class ProfilesQuery(RequestSchema):
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)] | None = None
    role: RoleName | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: IdCursor | None = None


class RolesIn(RequestSchema):
    roles: list[RoleName] = Field(max_length=20)


class ImportAccepted(Schema):
    id: uuid.UUID
    status: str


class ImportCounts(Schema):
    created: int
    updated: int
    unchanged: int
    failed: int


class ImportProgress(Schema):
    """Rows done (carried out or failed) of all data rows in the file."""

    done: int
    total: int


class ImportRowOut(Schema):
    """What became of one row; `set_password_token` only for accounts the import created,
    and only in the rows listing to the one who ran it."""

    line: int
    email: str | None
    outcome: str
    reason: str | None
    user_id: uuid.UUID | None
    set_password_token: str | None = None


class ImportOut(Schema):
    """An import: `status` pending, running, done, failed or interrupted; in a dry run the
    counts say what would happen. `stopped_at_line` is the first row not done when it
    stopped early; `errors` are the failed rows (the first thousand)."""

    id: uuid.UUID
    status: str
    dry_run: bool
    counts: ImportCounts
    progress: ImportProgress
    stopped_at_line: int | None
    error: str | None
    errors: list[ImportRowOut]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class ImportQuery(RequestSchema):
    dry_run: bool = False


class ImportRowsQuery(RequestSchema):
    outcome: Literal["pending", "created", "updated", "unchanged", "failed"] | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")] | None = None
