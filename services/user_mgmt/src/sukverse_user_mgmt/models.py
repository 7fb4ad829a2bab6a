"""Tables of the user management service."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, MetaData, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from sukverse_common.db import UtcDateTime
from sukverse_common.events.outbox import messaging_tables


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


messaging = messaging_tables(Base.metadata)


class Profile(Base):
    """A user's profile. Identity fields (email, full name, roles) follow the auth service's
    events; the display fields belong to this service. `registered` is false while only a
    roles change has been seen (events of one user may arrive before their registration)."""

    __tablename__ = "profiles"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    registered: Mapped[bool] = mapped_column(Boolean, default=False)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    full_name: Mapped[str | None] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200))
    # Lower-cased display name, for case-insensitive prefix search.
    name_key: Mapped[str | None] = mapped_column(String(200), index=True)
    roles: Mapped[list[str]] = mapped_column(JSON)
    organisation: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(35))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    avatar_url: Mapped[str | None] = mapped_column(String(2048))
    bio: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    role_rows: Mapped[list[ProfileRole]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )


class ProfileRole(Base):
    """One role of a profile, so that a search can filter by role on either database."""

    __tablename__ = "profile_roles"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("profiles.user_id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
