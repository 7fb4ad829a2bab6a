"""The services as the operator calls them: REST with a client-credentials token.

`observe` reads what the services hold of a cohort; `call` is the one way anything is
written. A service's 4xx is a `RefusedError` carrying its field and reason; a service that does
not answer (or answers 5xx) is `UnavailableError`, which the caller retries later.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

import aiohttp

from sukverse_common.emails import normalise_email
from sukverse_operator.plan import Observed, User, quiz_external_id
from sukverse_operator.settings import OperatorSettings
from sukverse_operator.spec import Cohort

T = TypeVar("T")
# The writes of the reconcile running in this task (and the tasks it starts): cohorts
# reconciled at once share one client, and each counts its own.
RUN_WRITES: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "run_writes", default=None
)
EXPIRY_MARGIN_SECONDS = 60.0
PAGE = 200


class ServiceError(Exception):
    def __init__(self, service: str, message: str) -> None:
        super().__init__(message)
        self.service = service
        self.message = message


class UnavailableError(ServiceError):
    """The service did not answer, answered 5xx, or refused the operator's credentials."""


class RefusedError(ServiceError):
    """A 4xx from a service, with what it said about which field."""

    def __init__(self, service: str, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else None
        errors = body.get("errors") if isinstance(body, dict) else None
        reasons = [
            f"{e.get('field')}: {e.get('reason')}" for e in errors or [] if isinstance(e, dict)
        ]
        text = detail or (body.get("title") if isinstance(body, dict) else None) or str(status)
        if reasons:
            text = f"{text} ({'; '.join(reasons)})"
        super().__init__(service, f"{service} refused the change: {text}")
        self.status = status
        self.detail = detail
        self.errors = errors or []


class Services:
    """One client of all the services, sharing one token and one connection pool."""

    def __init__(self, settings: OperatorSettings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.session = session
        self.urls = {
            "auth": settings.auth_url.rstrip("/"),
            "workshop": settings.workshop_url.rstrip("/"),
            "quiz": settings.quiz_url.rstrip("/"),
            "analytics": settings.analytics_url.rstrip("/"),
            "certificate": settings.certificate_url.rstrip("/"),
        }
        self.writes: Counter[str] = Counter()
        self._token: str | None = None
        self._expires_at = 0.0
        self._token_lock = asyncio.Lock()
        self._limit = asyncio.Semaphore(settings.concurrency)
        self._user_ids: dict[str, uuid.UUID] = {}

    async def _access_token(self, *, renew: bool) -> str:
        async with self._token_lock:
            if not renew and self._token and time.monotonic() < self._expires_at:
                return self._token
            secret = self.settings.operator_client_secret
            if secret is None:
                raise UnavailableError(
                    "auth",
                    "no client secret for the operator (set SUKVERSE_OPERATOR_CLIENT_SECRET, "
                    "or run against `make run`, which provisions one)",
                )
            form = {
                "grant_type": "client_credentials",
                "client_id": self.settings.operator_client_id,
                "client_secret": secret.get_secret_value(),
            }
            try:
                async with self.session.post(
                    self.urls["auth"] + "/auth/token", data=form
                ) as response:
                    body = await response.json(content_type=None)
                    if response.status != 200:
                        raise UnavailableError(
                            "auth", f"auth refused the operator's credentials ({response.status})"
                        )
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise UnavailableError("auth", f"auth is not reachable: {_reason(exc)}") from exc
            self._token = str(body["access_token"])
            self._expires_at = time.monotonic() + max(
                0.0, float(body["expires_in"]) - EXPIRY_MARGIN_SECONDS
            )
            return self._token

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One call; its status and JSON body. A 401 renews the token once."""
        async with self._limit:
            for attempt in range(2):
                token = await self._access_token(renew=attempt > 0)
                try:
                    async with self.session.request(
                        method,
                        self.urls[service] + path,
                        json=json,
                        params=params,
                        headers={"Authorization": f"Bearer {token}"},
                    ) as response:
                        if response.status == 401:
                            if attempt == 0:
                                continue  # a token revoked or expired early: renew it once
                            raise UnavailableError(
                                service, f"{service} refused the operator's token"
                            )
                        if method != "GET":
                            self.writes[service] += 1
                            run = RUN_WRITES.get()
                            if run is not None:
                                run[0] += 1
                        if response.status >= 500:
                            raise UnavailableError(
                                service, f"{service} answered {response.status} to {method}"
                            )
                        body = await response.json(content_type=None)
                        return response.status, body
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    raise UnavailableError(
                        service, f"{service} is not reachable: {_reason(exc)}"
                    ) from exc
            raise AssertionError("unreachable: the second attempt returns or raises")

    async def ok(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        """A call that must succeed: its body, or `RefusedError`."""
        status, body = await self.call(service, method, path, **kwargs)
        if status >= 400:
            raise RefusedError(service, status, body)
        return body

    async def pages(self, service: str, path: str, params: dict[str, str]) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
            body = await self.ok(service, "GET", path, params=query)
            items += body["items"]
            cursor = body.get("next_cursor")
            if not cursor:
                return items

    # -- observing ---------------------------------------------------------------------------

    async def user(self, email: str) -> User | None:
        items = (await self.ok("auth", "GET", "/users", params={"email": email}))["items"]
        if not items:
            return None
        found = items[0]
        return User(
            uuid.UUID(found["id"]), normalise_email(found["email"]), frozenset(found["roles"])
        )

    async def users(self, emails: Iterable[str], *, instructors: set[str]) -> dict[str, User]:
        """The accounts of these emails. A student's account id is remembered once seen
        (ids never change), so a cohort re-read asks auth only about its instructors and
        the students it has not seen yet."""
        wanted = list(dict.fromkeys(normalise_email(e) for e in emails))
        known = {
            email: User(self._user_ids[email], email, frozenset())
            for email in wanted
            if email in self._user_ids and email not in instructors
        }
        found = await gather(self.user(email) for email in wanted if email not in known)
        for user in found:
            if user is not None:
                known[user.email] = user
                self._user_ids[user.email] = user.id
        return known

    def remember(self, user: User) -> None:
        self._user_ids[user.email] = user.id

    async def observe(self, cohort: Cohort, emails: Iterable[str]) -> Observed:
        instructors = {normalise_email(e) for e in cohort.spec.instructors}
        users = await self.users([*instructors, *emails], instructors=instructors)
        found = await self.pages(
            "workshop", "/workshops", {"external_id": cohort.key, "status": "active"}
        )
        if not found:
            return Observed(users=users)
        workshop = await self.ok("workshop", "GET", f"/workshops/{found[0]['id']}")
        workshop_id = workshop["id"]
        enrollments, quizzes, templates, thresholds = await asyncio.gather(
            self.pages("workshop", f"/workshops/{workshop_id}/enrollments", {}),
            self.pages("quiz", "/quizzes", {"workshop_id": workshop_id}),
            self.pages(
                "certificate", "/templates", {"workshop_id": workshop_id, "external_id": cohort.key}
            ),
            self.thresholds(uuid.UUID(workshop_id)),
        )
        names = {quiz_external_id(cohort, name): name for name in cohort.spec.quiz_keys()}
        ours = {names[q["external_id"]]: q["id"] for q in quizzes if q.get("external_id") in names}
        full = await gather(self.ok("quiz", "GET", f"/quizzes/{i}") for i in ours.values())
        return Observed(
            users=users,
            workshop=workshop,
            enrollments={uuid.UUID(e["user_id"]): e["status"] for e in enrollments},
            quizzes=dict(zip(ours, full, strict=True)),
            template=templates[0] if templates else None,
            thresholds=thresholds,
        )

    async def thresholds(self, workshop_id: uuid.UUID) -> dict[str, Any] | None:
        """A workshop's at-risk thresholds; None until analytics has heard of it."""
        status, body = await self.call(
            "analytics", "GET", f"/analytics/workshops/{workshop_id}/thresholds"
        )
        if status == 404:
            return None
        if status >= 400:
            raise RefusedError("analytics", status, body)
        return dict(body)

    async def figures(self, workshop_id: uuid.UUID) -> dict[str, Any] | None:
        """A workshop's figures; None until analytics has heard of it."""
        status, body = await self.call("analytics", "GET", f"/analytics/workshops/{workshop_id}")
        if status == 404:
            return None
        if status >= 400:
            raise RefusedError("analytics", status, body)
        return dict(body)


async def gather(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Run calls at once (each call waits for a place under the client's limit)."""
    return list(await asyncio.gather(*calls))


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
