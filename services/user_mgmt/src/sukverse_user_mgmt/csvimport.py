"""Reading a CSV file of users: encoding, delimiter, header and per-row validation (pure)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email

from sukverse_user_mgmt.domain import (
    MAX_BIO,
    MAX_NAME,
    MAX_ORGANISATION,
    check_avatar_url,
    check_time_zone,
    normalise_locale,
)

REQUIRED = ("email", "full_name")
# Optional columns: the role, and the profile's display fields.
PROFILE_FIELDS = ("display_name", "organisation", "locale", "time_zone", "avatar_url", "bio")
OPTIONAL = ("role", *PROFILE_FIELDS)
ALIASES = {
    "name": "full_name",
    "full name": "full_name",
    "e-mail": "email",
    "timezone": "time_zone",
}
MAX_EMAIL = 320
MAX_LENGTHS = {
    "full_name": MAX_NAME,
    "display_name": MAX_NAME,
    "organisation": MAX_ORGANISATION,
    "bio": MAX_BIO,
    "role": 100,
}
CHECKS: dict[str, Callable[[str], str]] = {
    "locale": normalise_locale,
    "time_zone": check_time_zone,
    "avatar_url": check_avatar_url,
}
DEFAULT_ROLE = "student"


class CsvError(ValueError):
    """The file as a whole cannot be imported; `too_large` when a limit is the reason."""

    def __init__(self, detail: str, *, too_large: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.too_large = too_large


@dataclass
class Row:
    """One data row: `line` is its line in the file (the header is line 1)."""

    line: int
    email: str | None = None
    full_name: str | None = None
    role: str | None = None
    fields: dict[str, str | None] = field(default_factory=dict)
    reason: str | None = None  # why it fails, or None when it is valid


def decode(data: bytes) -> str:
    """UTF-8 text, with or without a byte order mark."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError(
            f"the file is not UTF-8 (invalid byte at offset {exc.start}); save it as UTF-8 CSV"
        ) from None


def delimiter_of(header_line: str) -> str:
    """Comma or semicolon, whichever the header line uses more."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def _column(name: str) -> str:
    key = " ".join(name.strip().lower().split())
    key = ALIASES.get(key, key)
    return key.replace(" ", "_")


def parse(data: bytes, *, known_roles: Collection[str] | None, max_rows: int) -> list[Row]:
    """Every data row of the file, each valid or failed with a reason; the file as a
    whole refused (CsvError) when it cannot be read or is over the row limit.
    `known_roles` None skips the role check (checked later)."""
    text = decode(data)
    if "\x00" in text:
        raise CsvError("the file contains NUL characters; it is not a text CSV file")
    first_line = text.split("\n", 1)[0]
    if not first_line.strip():
        raise CsvError("the file is empty or starts with a blank line; the header comes first")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter_of(first_line))
    try:
        header = [_column(name) for name in next(reader)]
        columns = _check_header(header)
        rows: list[Row] = []
        seen: dict[str, int] = {}
        for record in reader:
            if not any(value.strip() for value in record):
                continue  # blank lines are not rows
            if len(rows) >= max_rows:
                raise CsvError(
                    f"the file has more than {max_rows} rows; split it into smaller files",
                    too_large=True,
                )
            rows.append(_row(reader.line_num, record, columns, known_roles=known_roles, seen=seen))
    except csv.Error as exc:
        raise CsvError(f"line {reader.line_num}: the CSV is malformed ({exc})") from None
    if not rows:
        raise CsvError("the file has a header but no rows")
    return rows


def _check_header(header: list[str]) -> dict[str, int]:
    duplicates = sorted({name for name in header if header.count(name) > 1 and name})
    if duplicates:
        raise CsvError(f"the header names a column twice: {', '.join(duplicates)}")
    unknown = [name for name in header if name and name not in (*REQUIRED, *OPTIONAL)]
    if unknown:
        allowed = ", ".join((*REQUIRED, *OPTIONAL))
        raise CsvError(f"unknown column(s): {', '.join(unknown)}; the columns are {allowed}")
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise CsvError(f"the header lacks the column(s): {', '.join(missing)}")
    return {name: index for index, name in enumerate(header) if name}


def _row(
    line: int,
    record: list[str],
    columns: dict[str, int],
    *,
    known_roles: Collection[str] | None,
    seen: dict[str, int],
) -> Row:
    row = Row(line=line)
    width = max(columns.values()) + 1
    if len(record) > width and any(value.strip() for value in record[width:]):
        row.reason = f"has {len(record)} fields, the header {width}"
        return row

    def value(name: str) -> str:
        index = columns.get(name)
        return record[index].strip() if index is not None and index < len(record) else ""

    raw_email = value("email")
    row.full_name = value("full_name") or None
    row.role = value("role") or DEFAULT_ROLE
    if not raw_email:
        row.reason = "email: missing"
        return row
    if len(raw_email) > MAX_EMAIL:
        row.reason = f"email: too long (at most {MAX_EMAIL} characters)"
        return row
    try:
        row.email = validate_email(raw_email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        row.email = raw_email
        row.reason = f"email: bad email ({exc})"
        return row
    if row.email in seen:
        row.reason = f"email: duplicate in file (first on line {seen[row.email]})"
        return row
    seen[row.email] = line
    if row.full_name is None:
        row.reason = "full_name: missing"
        return row
    for name, limit in MAX_LENGTHS.items():
        if len(value(name)) > limit:
            row.reason = f"{name}: too long (at most {limit} characters)"
            return row
    if known_roles is not None and row.role not in known_roles:
        row.reason = f"role: unknown role {row.role!r}"
        return row
    for name in PROFILE_FIELDS:
        if name not in columns:
            continue
        text = value(name)
        if not text:
            continue  # a blank cell leaves the profile's value as it is
        check = CHECKS.get(name)
        try:
            row.fields[name] = check(text) if check else text
        except ValueError as exc:
            row.reason = f"{name}: {exc}"
            return row
    return row
