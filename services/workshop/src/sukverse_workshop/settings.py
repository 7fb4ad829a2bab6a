"""Settings of the workshop service."""

from __future__ import annotations

from pydantic import Field

from sukverse_common.settings import ServiceSettings


class WorkshopSettings(ServiceSettings):
    service_name: str = "workshop"
    port: int = 8002
    # A 200-step x 10-substep workshop with real bodies fits, so the size limits a client
    # meets are the validation errors (422) that name the field, not a bare 413.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Serialised workshops kept in memory, keyed by (id, version).
    workshop_cache_entries: int = Field(default=256, ge=0)
