"""The contracts: a versioned pydantic model for the `data` of every event, in one place."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class EventData(BaseModel):
    """Base of every contract; `event_type` is `io.sukverse.<service>.<event>.v<N>`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    aggregate_type: ClassVar[str]

    @classmethod
    def service(cls) -> str:
        return cls.event_type.split(".")[2]

    @classmethod
    def source(cls) -> str:
        return f"/sukverse/{cls.service()}"

    @classmethod
    def topic(cls) -> str:
        return topic_of(cls.service())


def topic_of(service: str) -> str:
    """One topic per producing service."""
    return f"sukverse.{service}"


# -- auth ---------------------------------------------------------------------------------


class UserRegistered(EventData):
    event_type = "io.sukverse.auth.user.registered.v1"
    aggregate_type = "user"

    user_id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]
    registered_at: datetime


class UserRolesChanged(EventData):
    event_type = "io.sukverse.auth.user.roles_changed.v1"
    aggregate_type = "user"

    user_id: uuid.UUID
    roles: list[str]
    previous_roles: list[str]
    changed_by: uuid.UUID | None


CONTRACTS: dict[str, type[EventData]] = {
    contract.event_type: contract for contract in (UserRegistered, UserRolesChanged)
}
