"""What the user management service consumes: the auth service's registrations and role
changes, kept as profiles whatever order they arrive in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_common.events.contracts import EventData, UserRegistered, UserRolesChanged
from sukverse_common.events.inbox import EventConsumer, EventContext
from sukverse_user_mgmt import store
from sukverse_user_mgmt.models import Profile

consumer = EventConsumer("user_mgmt")


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@consumer.before_handlers
async def load_profiles(session: AsyncSession, batch: Sequence[EventData]) -> None:
    """The batch's profiles in one read, rather than one (and one for roles) per event."""
    await store.load_profiles(
        session,
        (data.user_id for data in batch if isinstance(data, UserRegistered | UserRolesChanged)),
    )


@consumer.on(UserRegistered)
async def user_registered(ctx: EventContext, data: UserRegistered) -> None:
    """Create the profile; when a roles change got here first, its roles are newer than
    the registration's and stay."""
    now = datetime.now(UTC)
    row = await store.profile(ctx.session, data.user_id)
    if row is None:
        row = Profile(
            user_id=data.user_id,
            roles=[],
            role_rows=[],
            created_at=_utc(data.registered_at),
            updated_at=now,
        )
        ctx.session.add(row)
        store.set_roles(row, data.roles)
    elif row.registered:
        return
    row.registered = True
    row.email = data.email
    row.full_name = data.full_name
    if row.display_name is None:
        row.display_name = data.full_name
        row.name_key = data.full_name.lower()
    row.created_at = min(row.created_at, _utc(data.registered_at))
    row.updated_at = now


@consumer.on(UserRolesChanged)
async def user_roles_changed(ctx: EventContext, data: UserRolesChanged) -> None:
    """One user's events stay in order on their topic, so the latest change wins."""
    await store.upsert_roles(ctx.session, data.user_id, data.roles, datetime.now(UTC))
