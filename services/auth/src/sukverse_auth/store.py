"""Queries of the auth service: take a session, return models."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_auth.models import RefreshToken, Role, User, UserRole


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email))


async def user_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def list_users(
    session: AsyncSession, *, email: str | None, after: uuid.UUID | None, limit: int
) -> Sequence[User]:
    query = select(User).order_by(User.id).limit(limit)
    if email is not None:
        query = query.where(User.email == email)
    if after is not None:
        query = query.where(User.id > after)
    return (await session.scalars(query)).all()


async def roles(session: AsyncSession, names: Sequence[str] | None = None) -> Sequence[Role]:
    query = select(Role).order_by(Role.name)
    if names is not None:
        query = query.where(Role.name.in_(names))
    return (await session.scalars(query)).all()


async def role_grants(session: AsyncSession, names: Sequence[str]) -> dict[str, frozenset[str]]:
    return {
        role.name: frozenset(link.permission for link in role.permissions)
        for role in await roles(session, names)
    }


async def count_users_with_role(session: AsyncSession, role: str) -> int:
    return (
        await session.scalar(
            select(func.count()).select_from(UserRole).where(UserRole.role_name == role)
        )
        or 0
    )


async def refresh_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    return await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


async def mark_refresh_token_used(session: AsyncSession, token_id: uuid.UUID, at: datetime) -> bool:
    """Claim a refresh token once; False when another request already used it."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
        .values(used_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_families(
    session: AsyncSession,
    at: datetime,
    *,
    family_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
) -> None:
    query = update(RefreshToken).where(RefreshToken.revoked_at.is_(None)).values(revoked_at=at)
    if family_id is not None:
        query = query.where(RefreshToken.family_id == family_id)
    if user_id is not None:
        query = query.where(RefreshToken.user_id == user_id)
    await session.execute(query)
