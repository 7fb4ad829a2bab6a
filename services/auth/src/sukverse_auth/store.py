"""Queries of the auth service: take a session, return models."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_auth.models import RefreshToken, Role, RolePermission, User, UserRole


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email))


async def user_by_id(
    session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False
) -> User | None:
    return await session.get(User, user_id, with_for_update=for_update)


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


async def all_grants(session: AsyncSession) -> dict[str, frozenset[str]]:
    """Every role's permissions, in one query."""
    grants: dict[str, set[str]] = {}
    rows = await session.execute(select(RolePermission.role_name, RolePermission.permission))
    for role, permission in rows:
        grants.setdefault(role, set()).add(permission)
    return {role: frozenset(permissions) for role, permissions in grants.items()}


@dataclass(frozen=True)
class Credentials:
    """What a login needs of an account, read in one query."""

    id: uuid.UUID
    password_hash: str
    is_active: bool
    failed_logins: int
    locked_until: datetime | None
    token_generation: int
    roles: list[str]


# A login's two statements, built once on the tables and run with parameters: built for
# each login on the mapped classes, they cost a third more of the event loop's time.
_users, _user_roles = cast(Table, User.__table__), cast(Table, UserRole.__table__)
_CREDENTIALS = (
    select(
        _users.c.id,
        _users.c.password_hash,
        _users.c.is_active,
        _users.c.failed_logins,
        _users.c.locked_until,
        _users.c.token_generation,
        _user_roles.c.role_name,
    )
    .select_from(_users.outerjoin(_user_roles, _user_roles.c.user_id == _users.c.id))
    .where(_users.c.email == bindparam("email"))
    .order_by(_user_roles.c.role_name)
)
_NEW_REFRESH_TOKEN = insert(cast(Table, RefreshToken.__table__))


async def credentials(session: AsyncSession, email: str) -> Credentials | None:
    rows = (await session.execute(_CREDENTIALS, {"email": email})).all()
    if not rows:
        return None
    first = rows[0]
    return Credentials(
        id=first.id,
        password_hash=first.password_hash,
        is_active=first.is_active,
        failed_logins=first.failed_logins,
        locked_until=first.locked_until,
        token_generation=first.token_generation,
        roles=[row.role_name for row in rows if row.role_name is not None],
    )


async def count_users_with_role(session: AsyncSession, role: str) -> int:
    """The active accounts holding a role (a disabled admin administers nothing)."""
    return (
        await session.scalar(
            select(func.count())
            .select_from(UserRole)
            .join(User, User.id == UserRole.user_id)
            .where(UserRole.role_name == role, User.is_active.is_(True))
        )
        or 0
    )


async def refresh_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    return await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


async def mark_refresh_token_used(session: AsyncSession, token_id: uuid.UUID, at: datetime) -> bool:
    """Claim a refresh token once, while it is neither revoked nor expired; False when
    another request used it or it was revoked meanwhile."""
    result = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == token_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > at,
        )
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


async def next_token_generation(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Move the user's token generation on, in one atomic statement; the new one."""
    generation = await session.scalar(
        update(User)
        .where(User.id == user_id)
        .values(token_generation=User.token_generation + 1)
        .returning(User.token_generation)
    )
    assert generation is not None, f"no user {user_id}"
    return int(generation)


async def update_user(session: AsyncSession, user_id: uuid.UUID, **values: object) -> None:
    await session.execute(update(User).where(User.id == user_id).values(**values))


async def add_refresh_token(
    session: AsyncSession,
    *,
    token_hash: str,
    family_id: uuid.UUID,
    user_id: uuid.UUID,
    issued_at: datetime,
    family_started_at: datetime,
    expires_at: datetime,
) -> None:
    await session.execute(
        _NEW_REFRESH_TOKEN,
        {
            "id": uuid.uuid4(),
            "token_hash": token_hash,
            "family_id": family_id,
            "user_id": user_id,
            "issued_at": issued_at,
            "family_started_at": family_started_at,
            "expires_at": expires_at,
        },
    )


async def count_failed_login(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Add one failed login, atomically; return the count."""
    count = await session.scalar(
        update(User)
        .where(User.id == user_id)
        .values(failed_logins=User.failed_logins + 1)
        .returning(User.failed_logins)
    )
    return count or 0


async def lock_role_holders(session: AsyncSession, role: str) -> Sequence[uuid.UUID]:
    """The active holders of a role, locked until the transaction ends (PostgreSQL)."""
    query = (
        select(UserRole.user_id)
        .join(User, User.id == UserRole.user_id)
        .where(UserRole.role_name == role, User.is_active.is_(True))
        .with_for_update()
    )
    return (await session.scalars(query)).all()
