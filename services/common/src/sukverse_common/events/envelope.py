"""The CloudEvents 1.0 envelope every event travels in."""

from __future__ import annotations

import os
import time as clock
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sukverse_common.events.contracts import EventData


class CloudEvent(BaseModel):
    """A structured-mode CloudEvent; `id` is the de-duplication key of every consumer."""

    # The event's JSON once made or read, in a slot rather than a private attribute: a
    # model with private attributes runs Python code to set them up on every validation.
    # A copy leaves the slot empty, so it never carries the JSON of the event it came from.
    __slots__ = ("_raw",)
    if TYPE_CHECKING:
        _raw: bytes

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID = Field(default_factory=lambda: new_ids(1)[0])
    source: str
    type: str
    subject: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        data: EventData,
        *,
        subject: str,
        time: datetime | None = None,
        id: uuid.UUID | None = None,  # the CloudEvents attribute
        trace: dict[str, str] | None = None,
    ) -> CloudEvent:
        """The envelope of a contract's data, serialized at once, as it is made to be sent;
        the data was validated by its contract.

        `time` is when it happened (UTC, now by default): one outbox write's events share it.
        `id` is a new one by default (`new_ids` makes many at once). `trace` is the context
        of the trace it happened in: the extension attributes `traceparent` and `tracestate`
        of CloudEvents' distributed-tracing extension."""
        # What model_construct does, without inspecting every field on each call: every
        # value is given, and valid by construction.
        event = cls.__new__(cls)
        object.__setattr__(
            event,
            "__dict__",
            {
                "specversion": "1.0",
                "id": new_ids(1)[0] if id is None else id,
                "source": data.source(),
                "type": data.event_type,
                "subject": subject,
                "time": datetime.now(UTC) if time is None else time,
                "datacontenttype": "application/json",
                "data": data.model_dump(mode="json"),
            },
        )
        object.__setattr__(event, "__pydantic_fields_set__", set(_FIELDS))
        object.__setattr__(event, "__pydantic_extra__", {} if trace is None else dict(trace))
        object.__setattr__(event, "__pydantic_private__", None)
        object.__setattr__(event, "_raw", cls.__pydantic_serializer__.to_json(event))
        return event

    @classmethod
    def from_json(cls, raw: str | bytes) -> CloudEvent:
        """Parse a structured-mode event; `to_bytes` then returns the same JSON unchanged."""
        event = cls.model_validate_json(raw)
        object.__setattr__(event, "_raw", raw.encode() if isinstance(raw, str) else raw)
        return event

    def to_bytes(self) -> bytes:
        """The event's JSON, serialized once."""
        try:
            # Read through the slot itself: an empty slot read as an attribute falls back
            # to pydantic's `__getattr__`, which costs more than the read.
            raw: bytes = _RAW.__get__(self)
        except AttributeError:
            raw = self.__pydantic_serializer__.to_json(self)
            object.__setattr__(self, "_raw", raw)
        return raw


def new_ids(count: int) -> list[uuid.UUID]:
    """`count` time-ordered UUIDs (version 7, RFC 9562): the Unix time in milliseconds, then
    74 random bits, from one read of the system's random source.

    Ids that begin with the time keep every consumer's inbox key growing at its end, where
    random ones would land all over an index that holds days of events."""
    fixed = (clock.time_ns() // 1_000_000) << 80 | 7 << 76 | 2 << 62  # time, version, variant
    random = os.urandom(10 * count)
    ids = []
    for at in range(0, 10 * count, 10):
        bits = int.from_bytes(random[at : at + 10])  # 80: 12 for rand_a, 62 for rand_b
        ids.append(uuid.UUID(int=fixed | (bits >> 68) << 64 | bits & _RAND_B))
    return ids


_RAND_B = (1 << 62) - 1
_FIELDS = frozenset(CloudEvent.model_fields)
_RAW = CloudEvent.__dict__["_raw"]
