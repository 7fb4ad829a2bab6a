"""How an email is compared and stored, one rule for auth and for its clients (the operator
matching a cohort's students to their accounts)."""

from __future__ import annotations

import unicodedata


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively; store them lower-cased and NFKC-normalised."""
    return unicodedata.normalize("NFKC", email).strip().lower()
