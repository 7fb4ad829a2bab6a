"""Pure rules of identity: the permission catalogue, built-in roles, email and password policy."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

PERMISSIONS: dict[str, str] = {
    "users:read": "Look up user accounts",
    "users:write": "Create accounts for others",
    "users:disable": "Disable and re-enable accounts",
    "roles:read": "List roles and permissions",
    "roles:write": "Define roles",
    "roles:assign": "Change the roles of a user",
    "profiles:read": "Read any profile",
    "profiles:write": "Edit any profile and import users",
    "workshop:read": "Read workshops",
    "workshop:write": "Create and edit workshops",
    "enrollment:read": "Read enrollments",
    "enrollment:write": "Enroll and withdraw students",
    "progress:read": "Read the progress of students",
    "progress:write": "Record one's own progress",
    "quiz:read": "Read quizzes",
    "quiz:write": "Create and edit quizzes",
    "attempt:write": "Attempt quizzes",
    "analytics:read": "Read learning analytics",
    "certificate:read": "Read certificates",
    "certificate:write": "Define templates, issue and revoke certificates",
}

TEACHING = frozenset(
    {
        "users:read",
        "roles:read",
        "profiles:read",
        "workshop:read",
        "workshop:write",
        "enrollment:read",
        "enrollment:write",
        "progress:read",
        "quiz:read",
        "quiz:write",
        "analytics:read",
        "certificate:read",
        "certificate:write",
    }
)

BUILTIN_ROLES: dict[str, tuple[str, frozenset[str]]] = {
    "admin": ("Everything", frozenset(PERMISSIONS)),
    "instructor": ("Teaches workshops", TEACHING),
    "student": (
        "Takes workshops",
        frozenset(
            {"workshop:read", "progress:write", "quiz:read", "attempt:write", "certificate:read"}
        ),
    ),
    # user_mgmt also creates accounts, assigns their roles and imports and edits profiles.
    "service": (
        "Machine clients without a role of their own: the services",
        TEACHING | {"users:write", "roles:assign", "profiles:write"},
    ),
    # What reconciling a SukverseCohort takes: its people, workshop, quizzes and
    # certificate template, and the figures of its status; nothing about roles themselves.
    "operator": (
        "The SukverseCohort operator",
        frozenset(
            {
                "users:read",
                "users:write",
                "roles:assign",
                "workshop:read",
                "workshop:write",
                "enrollment:read",
                "enrollment:write",
                "quiz:read",
                "quiz:write",
                "analytics:read",
                "certificate:write",
            }
        ),
    ),
}
DEFAULT_ROLE = "student"
# Roles holding any of these are given or taken away only by a caller with `roles:write`:
# `roles:assign` alone (the operator, user_mgmt) reaches student and instructor, never
# an administrator's or a machine client's powers.
ADMINISTRATIVE = frozenset(
    {"roles:write", "roles:assign", "users:write", "users:disable", "profiles:write"}
)
# The role of a machine client that the settings give no role of its own.
MACHINE_ROLE = "service"


def scopes_for(roles: Iterable[str], grants: dict[str, frozenset[str]]) -> list[str]:
    """The union of the permissions of the given roles."""
    return sorted({permission for role in roles for permission in grants.get(role, frozenset())})


def password_problems(
    password: str, *, min_length: int, max_length: int, user_inputs: Iterable[str] = ()
) -> str | None:
    """Why a password is refused (OWASP ASVS V2.1), or None when it is acceptable.

    Length counts characters after Unicode normalisation; any character is allowed, spaces
    included, so long passphrases work; common and guessable passwords are refused.
    """
    normalised = unicodedata.normalize("NFKC", password)
    if len(normalised) < min_length:
        return f"must be at least {min_length} characters long"
    if len(normalised) > max_length:
        return f"must be at most {max_length} characters long"
    # zxcvbn's cost grows with length; past 64 characters a passphrase is long enough.
    if len(normalised) <= 64:
        # Its dictionaries take a tenth of a second to load, which only a password pays.
        from zxcvbn import zxcvbn

        strength = zxcvbn(normalised, user_inputs=[value for value in user_inputs if value])
        if strength["score"] < 3:
            warning = strength["feedback"].get("warning") or "it is too easy to guess"
            return f"is too weak: {warning.rstrip('.').lower()}"
    return None
