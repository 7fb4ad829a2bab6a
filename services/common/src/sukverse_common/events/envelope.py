"""The CloudEvents 1.0 envelope every event travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from sukverse_common.events.contracts import EventData


class CloudEvent(BaseModel):
    """A structured-mode CloudEvent; `id` is the de-duplication key of every consumer."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    source: str
    type: str
    subject: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    _json: bytes | None = PrivateAttr(default=None)

    @classmethod
    def wrap(cls, data: EventData, *, subject: str) -> CloudEvent:
        """The envelope of a contract's data; the data was validated by its contract."""
        # Every field given: model_construct inspects default factories on each call.
        return cls.model_construct(
            specversion="1.0",
            id=uuid.uuid4(),
            source=data.source(),
            type=data.event_type,
            subject=subject,
            time=datetime.now(UTC),
            datacontenttype="application/json",
            data=data.model_dump(mode="json"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> CloudEvent:
        """Parse a structured-mode event; `to_bytes` then returns the same JSON unchanged."""
        event = cls.model_validate_json(raw)
        event._json = raw.encode() if isinstance(raw, str) else raw
        return event

    def to_bytes(self) -> bytes:
        if self._json is None:
            self._json = self.model_dump_json().encode()
        return self._json
