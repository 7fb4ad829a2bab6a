"""Schemathesis hooks of tests/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS): who
the fuzzer calls as.

Every call carries a token from a real login. A token the fuzzer itself revoked (a logout,
a role taken away) is answered 401, which makes Schemathesis log in again and repeat the
call. Changing accounts' roles and status is done as a user administrator who may not
touch administrative accounts (`roles:write` is not theirs), so the fuzzer cannot demote
or disable the administrator it runs as."""

from __future__ import annotations

import os
from typing import Any

import requests
import schemathesis

USER_ADMINISTRATION = ["PUT /users/{id}/roles", "PUT /users/{id}/status"]


def _login(credentials: str) -> str:
    email, _, password = credentials.partition(":")
    response = requests.post(
        f"{os.environ['SUKVERSE_FUZZ_AUTH_URL']}/auth/login",
        json={"email": email, "password": password},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _bearer(case: Any, token: str) -> None:
    case.headers = case.headers or {}
    case.headers["Authorization"] = f"Bearer {token}"


@schemathesis.auth().skip_for(name=USER_ADMINISTRATION)
class Administrator:
    def get(self, case: Any, context: Any) -> str:
        return _login(os.environ["SUKVERSE_FUZZ_ADMIN"])

    def set(self, case: Any, data: str, context: Any) -> None:
        _bearer(case, data)


@schemathesis.auth().apply_to(name=USER_ADMINISTRATION)
class UserAdministrator:
    def get(self, case: Any, context: Any) -> str:
        return _login(os.environ["SUKVERSE_FUZZ_USER_ADMIN"])

    def set(self, case: Any, data: str, context: Any) -> None:
        _bearer(case, data)
