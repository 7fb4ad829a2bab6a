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
        # What model_construct does, without inspecting every field on each call: every
        # value is given, and valid by construction.
        event = cls.__new__(cls)
        object.__setattr__(
            event,
            "__dict__",
            {
                "specversion": "1.0",
                "id": uuid.uuid4(),
                "source": data.source(),
                "type": data.event_type,
                "subject": subject,
                "time": datetime.now(UTC),
                "datacontenttype": "application/json",
                "data": data.model_dump(mode="json"),
            },
        )
        object.__setattr__(event, "__pydantic_fields_set__", set(_FIELDS))
        object.__setattr__(event, "__pydantic_extra__", {})
        object.__setattr__(event, "__pydantic_private__", {"_json": None})
        return event

    @classmethod
    def from_json(cls, raw: str | bytes) -> CloudEvent:
        """Parse a structured-mode event; `to_bytes` then returns the same JSON unchanged."""
        event = cls.model_validate_json(raw)
        event._private()["_json"] = raw.encode() if isinstance(raw, str) else raw
        return event

    def to_bytes(self) -> bytes:
        """The event's JSON, serialized once."""
        private = self._private()
        raw: bytes | None = private["_json"]
        if raw is None:
            raw = private["_json"] = self.__pydantic_serializer__.to_json(self)
        return raw

    def _private(self) -> dict[str, Any]:
        # The private attributes' own dict: reading or setting `_json` as an attribute
        # of a frozen model goes through pydantic's Python-level __getattr__/__setattr__.
        private = self.__pydantic_private__
        assert private is not None
        return private


_FIELDS = frozenset(CloudEvent.model_fields)
