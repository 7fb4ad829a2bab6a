"""The auth service as this service calls it: a machine client with client credentials."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import structlog

from sukverse_common.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Problem,
    ServiceUnavailable,
    ValidationFailed,
)
from sukverse_user_mgmt.settings import UserMgmtSettings

log = structlog.get_logger(__name__)

# A token is renewed this long before auth says it expires.
EXPIRY_MARGIN_SECONDS = 60.0


class AuthUnavailable(ServiceUnavailable):
    """The auth service did not answer, or this service may not call it."""


class AuthClient:
    """Calls the auth service's API with an access token from the client-credentials grant,
    cached until shortly before it expires and renewed once when auth refuses it."""

    def __init__(self, settings: UserMgmtSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._base = settings.auth_url.rstrip("/")
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def _access_token(self, *, renew: bool = False) -> str:
        async with self._lock:
            if not renew and self._token and time.monotonic() < self._expires_at:
                return self._token
            secret = self._settings.auth_client_secret
            if secret is None:
                raise AuthUnavailable("this service has no client credentials for the auth service")
            form = {
                "grant_type": "client_credentials",
                "client_id": self._settings.auth_client_id,
                "client_secret": secret.get_secret_value(),
            }
            try:
                async with self._session.post(f"{self._base}/auth/token", data=form) as response:
                    if response.status != 200:
                        log.error(
                            "auth refused this service's client credentials", status=response.status
                        )
                        raise AuthUnavailable("the auth service refused this service's credentials")
                    body = await response.json()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise AuthUnavailable("the auth service is not reachable") from exc
            self._token = str(body["access_token"])
            self._expires_at = time.monotonic() + max(
                0.0, float(body["expires_in"]) - EXPIRY_MARGIN_SECONDS
            )
            return self._token

    async def call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """One call to auth: its status and JSON body; 401 renews the token once."""
        for attempt in range(2):
            token = await self._access_token(renew=attempt > 0)
            try:
                async with self._session.request(
                    method,
                    self._base + path,
                    json=json,
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    if response.status == 401 and attempt == 0:
                        continue
                    if response.status >= 500:
                        raise AuthUnavailable(f"the auth service answered {response.status}")
                    body = await response.json(content_type=None)
                    return response.status, body
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise AuthUnavailable("the auth service is not reachable") from exc
        raise AuthUnavailable("the auth service refused this service's token")

    async def set_roles(self, user_id: uuid.UUID, roles: list[str]) -> dict[str, Any]:
        """Replace a user's roles in auth; its refusals become this service's problems."""
        status, body = await self.call("PUT", f"/users/{user_id}/roles", json={"roles": roles})
        if status == 200:
            assert isinstance(body, dict)
            return body
        raise _problem(status, body)

    async def find_user(self, email: str) -> dict[str, Any] | None:
        """The account with this email, or None."""
        status, body = await self.call("GET", "/users", params={"email": email})
        if status != 200:
            raise _problem(status, body)
        items = body.get("items", []) if isinstance(body, dict) else []
        return dict(items[0]) if items else None

    async def create_user(
        self, *, email: str, full_name: str, roles: list[str]
    ) -> dict[str, Any] | None:
        """A new account without a password, with its one-time set-password token; None
        when an account with this email exists already."""
        status, body = await self.call(
            "POST", "/users", json={"email": email, "full_name": full_name, "roles": roles}
        )
        if status == 201:
            assert isinstance(body, dict)
            return body
        if status == 409:
            return None
        raise _problem(status, body)

    async def role_names(self) -> set[str]:
        """Every role the auth service knows."""
        names: set[str] = set()
        cursor: str | None = None
        while True:
            params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
            status, body = await self.call("GET", "/roles", params=params)
            if status != 200:
                raise _problem(status, body)
            names |= {str(item["name"]) for item in body["items"]}
            cursor = body.get("next_cursor")
            if not cursor:
                return names


def _problem(status: int, body: Any) -> Problem:
    """Auth's 4xx answer as the problem this service gives its own caller."""
    detail = body.get("detail") if isinstance(body, dict) else None
    errors = body.get("errors") if isinstance(body, dict) else None
    if status == 404:
        return NotFound(detail or "no such user")
    if status == 409:
        return Conflict(detail or "the auth service refused the change")
    if status == 403:  # e.g. an administrative role, which only roles:write gives or takes
        return Forbidden(detail or "the auth service does not allow this change")
    if status in (400, 422):
        return ValidationFailed(detail, errors=errors)
    log.error("the auth service refused a call", status=status)
    return AuthUnavailable(f"the auth service refused the call ({status})")
