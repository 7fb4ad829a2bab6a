"""Queries of the user management service: plain functions taking a session."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_user_mgmt.models import Profile, ProfileRole


async def profile(session: AsyncSession, user_id: uuid.UUID) -> Profile | None:
    return await session.get(Profile, user_id)


async def load_profiles(session: AsyncSession, user_ids: Iterable[uuid.UUID]) -> None:
    """Bring these users' profiles, with their roles, into the session in two queries, so
    that `profile` finds each without one of its own. The session's identity map holds
    objects weakly: `session.info` keeps them until the transaction ends."""
    ids = sorted(set(user_ids))
    if ids:
        loaded = (await session.scalars(select(Profile).where(Profile.user_id.in_(ids)))).all()
        session.info["loaded_profiles"] = loaded


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def search(
    session: AsyncSession,
    *,
    q: str | None,
    role: str | None,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Profile]:
    """Profiles whose email or display name starts with `q` (case-insensitively), with
    `role` if given, in user id order after the cursor; one more than `limit`."""
    query = select(Profile).order_by(Profile.user_id).limit(limit + 1)
    if q:
        prefix = _like_prefix(q.lower())
        query = query.where(
            or_(
                Profile.email.like(prefix, escape="\\"),
                Profile.name_key.like(prefix, escape="\\"),
            )
        )
    if role:
        query = query.where(
            Profile.user_id.in_(select(ProfileRole.user_id).where(ProfileRole.role == role))
        )
    if after is not None:
        query = query.where(Profile.user_id > after)
    return (await session.scalars(query)).all()


def set_roles(row: Profile, roles: Sequence[str]) -> bool:
    """Give a profile these roles; whether anything changed."""
    wanted = sorted(set(roles))
    if row.roles == wanted and sorted(r.role for r in row.role_rows) == wanted:
        return False
    row.roles = wanted
    current = {r.role: r for r in row.role_rows}
    row.role_rows = [current.get(role) or ProfileRole(role=role) for role in wanted]
    return True


async def upsert_roles(
    session: AsyncSession, user_id: uuid.UUID, roles: Sequence[str], at: datetime
) -> Profile:
    """Set a user's roles, creating a placeholder profile when the user is not known yet."""
    row = await profile(session, user_id)
    if row is None:
        row = Profile(
            user_id=user_id, registered=False, roles=[], role_rows=[], created_at=at, updated_at=at
        )
        session.add(row)
    if set_roles(row, roles):
        row.updated_at = at
    return row
