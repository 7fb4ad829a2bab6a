"""Use cases of the user management service: each owns its transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sukverse_common.db import Database
from sukverse_common.errors import Forbidden, NotFound
from sukverse_common.security import Principal
from sukverse_user_mgmt import store
from sukverse_user_mgmt.authclient import AuthClient
from sukverse_user_mgmt.models import Profile
from sukverse_user_mgmt.schemas import ProfileOut, ProfilePatch

NO_PROFILE = "no such profile"


def utc_now() -> datetime:
    return datetime.now(UTC)


# Anyone's profile takes the permission, whoever asks: a machine client's role grants it
# (`service` does, the operator's does not), being a machine client does not.
def may_see(caller: Principal, user_id: uuid.UUID) -> bool:
    return caller.user_id == user_id or caller.has("profiles:read")


def may_change(caller: Principal, user_id: uuid.UUID) -> bool:
    return caller.user_id == user_id or caller.has("profiles:write")


def profile_out(row: Profile) -> ProfileOut:
    return ProfileOut(
        id=row.user_id,
        user_id=row.user_id,
        email=row.email,
        full_name=row.full_name,
        display_name=row.display_name,
        roles=list(row.roles),
        organisation=row.organisation,
        locale=row.locale,
        time_zone=row.time_zone,
        avatar_url=row.avatar_url,
        bio=row.bio,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ProfileService:
    """Profiles: read, edit, search, and role changes forwarded to the auth service."""

    def __init__(self, *, database: Database, auth: AuthClient) -> None:
        self.database = database
        self.auth = auth

    async def profile(self, caller: Principal, user_id: uuid.UUID) -> ProfileOut:
        """One's own profile, or anyone's with profiles:read."""
        if not may_see(caller, user_id):
            raise NotFound(NO_PROFILE)
        async with self.database.sessions() as session:
            row = await store.profile(session, user_id)
            if row is None:
                raise NotFound(NO_PROFILE)
            return profile_out(row)

    async def update_profile(
        self, caller: Principal, user_id: uuid.UUID, patch: ProfilePatch
    ) -> ProfileOut:
        """Change display fields: one's own, or anyone's with profiles:write."""
        if not may_see(caller, user_id):
            raise NotFound(NO_PROFILE)
        if not may_change(caller, user_id):
            raise Forbidden("changing another user's profile needs 'profiles:write'")
        changes = patch.model_dump(exclude_unset=True)
        async with self.database.sessions() as session, session.begin():
            row = await store.profile(session, user_id)
            if row is None:
                raise NotFound(NO_PROFILE)
            if "display_name" in changes and changes["display_name"] is None:
                changes["display_name"] = row.full_name
            changed = False
            for field, value in changes.items():
                if getattr(row, field) != value:
                    setattr(row, field, value)
                    changed = True
            if changed:
                row.name_key = row.display_name.lower() if row.display_name else None
                row.updated_at = utc_now()
            return profile_out(row)

    async def search(
        self, *, q: str | None, role: str | None, cursor: uuid.UUID | None, limit: int
    ) -> tuple[list[ProfileOut], str | None]:
        """Profiles by email or display-name prefix (case-insensitive) and role."""
        async with self.database.sessions() as session:
            rows = await store.search(session, q=q, role=role, after=cursor, limit=limit)
            page = [profile_out(row) for row in rows[:limit]]
        more = len(rows) > limit
        return page, str(page[-1].user_id) if more and page else None

    async def set_roles(self, user_id: uuid.UUID, roles: list[str]) -> ProfileOut:
        """Replace a user's roles in the auth service (the source of truth), then here,
        so that the caller reads its own write before the event arrives."""
        user = await self.auth.set_roles(user_id, roles)
        async with self.database.sessions() as session, session.begin():
            row = await store.upsert_roles(session, user_id, user["roles"], utc_now())
            await session.flush()
            return profile_out(row)
