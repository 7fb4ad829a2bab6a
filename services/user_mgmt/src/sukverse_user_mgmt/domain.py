"""Pure rules of profiles: what a locale, a time zone and an avatar URL may be."""

from __future__ import annotations

import re
from urllib.parse import urlsplit
from zoneinfo import available_timezones

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


TIME_ZONES = tuple(sorted(available_timezones()))
"""The IANA time zone names this machine's time zone database knows, which the API lists."""


def check_time_zone(value: str) -> str:
    """An IANA time zone name (`Europe/Berlin`, `UTC`), or ValueError."""
    if value not in _TIME_ZONE_SET:
        raise ValueError("must be an IANA time zone such as 'Europe/Berlin'")
    return value


_TIME_ZONE_SET = frozenset(TIME_ZONES)


_PCT = "%[0-9A-Fa-f]{2}"
AVATAR_URL_PATTERN = (
    f"^https://(?:[A-Za-z0-9._~!$&'()*+,;=-]|{_PCT})+(?::[0-9]*)?"
    f"(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|{_PCT})*)?$"
)
"""An https URI as RFC 3986 has it, without user information or a fragment: the schema
publishes this pattern, and the service checks it."""
AVATAR_URL = re.compile(AVATAR_URL_PATTERN)


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
    if not AVATAR_URL.fullmatch(value):
        raise ValueError(
            "must be an https URI (RFC 3986): a host, an optional port and path, no fragment; "
            "percent-encode other characters"
        )
    return value
