"""Pure rules of profiles: what a locale, a time zone and an avatar URL may be."""

from __future__ import annotations

import re
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_NAME = 200
MAX_ORGANISATION = 200
MAX_BIO = 5000
MAX_URL = 2048

# BCP 47 language tags as people write them: a 2-3 letter language, then an optional script
# (4 letters), region (2 letters or 3 digits) and variants; case-insensitive, `-` only.
LOCALE_PATTERN = (
    "^[a-zA-Z]{2,3}(-[a-zA-Z]{4})?(-([a-zA-Z]{2}|[0-9]{3}))?"
    "(-([a-zA-Z0-9]{5,8}|[0-9][a-zA-Z0-9]{3}))*$"
)
_LOCALE = re.compile(LOCALE_PATTERN)


def normalise_locale(value: str) -> str:
    """A BCP 47 tag in its canonical case (`en-GB`, `zh-Hant-TW`), or ValueError."""
    if len(value) > 35 or not _LOCALE.match(value):
        raise ValueError("must be a BCP 47 language tag such as 'en' or 'de-CH'")
    parts = value.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif len(part) == 2 or (len(part) == 3 and part.isdigit()):
            out.append(part.upper())
        else:
            out.append(part.lower())
    return "-".join(out)


def check_time_zone(value: str) -> str:
    """An IANA time zone name (`Europe/Berlin`, `UTC`), or ValueError."""
    if not value or len(value) > 64 or value.startswith(("/", ".")) or ".." in value:
        raise ValueError("must be an IANA time zone such as 'Europe/Berlin'")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as 'Europe/Berlin'") from None
    return value


def check_avatar_url(value: str) -> str:
    """An absolute https URL with a host and no credentials, or ValueError."""
    if len(value) > MAX_URL:
        raise ValueError(f"must be at most {MAX_URL} characters long")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("must be an https URL") from None
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    if any(ch.isspace() for ch in value):
        raise ValueError("must not contain spaces")
    return value
