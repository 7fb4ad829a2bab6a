"""The UTC timestamp type: SQLite's stored text is what SQLAlchemy's own DATETIME writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from sukverse_common.db import UtcDateTime

DIALECT = sqlite.dialect()


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 25, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 11, 25, 3, 4, 5, 123, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 30, 0, 999999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(99, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_sqlite_stores_a_timestamp_as_its_datetime_type_would_in_utc(moment: datetime) -> None:
    ours = UtcDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    theirs = DateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    assert ours is not None and theirs is not None
    assert ours(moment) == theirs(moment.astimezone(UTC).replace(tzinfo=None))
    assert ours(None) is None


def test_a_naive_timestamp_is_refused() -> None:
    process = UtcDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    assert process is not None
    with pytest.raises(ValueError, match="naive"):
        process(datetime(2026, 11, 25))
