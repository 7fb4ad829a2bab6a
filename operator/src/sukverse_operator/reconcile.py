"""One reconcile of a cohort: observe, plan, apply, and the status that results.

Kopf's handlers and `sukverse apply` both call `reconcile`; they differ only in where the
spec comes from, where invitations go and where the status is kept.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from sukverse_common.emails import normalise_email
from sukverse_operator import plan as planning
from sukverse_operator.plan import (
    Action,
    ArchiveWorkshop,
    CreateQuiz,
    CreateTemplate,
    CreateUser,
    CreateWorkshop,
    Enroll,
    SetRoles,
    SetThresholds,
    UpdateQuiz,
    UpdateTemplate,
    UpdateWorkshop,
    User,
    Withdraw,
)
from sukverse_operator.services import RUN_WRITES, RefusedError, ServiceError, Services, gather
from sukverse_operator.spec import Cohort, Student

log = structlog.get_logger("sukverse.operator")


@dataclass(frozen=True)
class Invitation:
    """A new account's one-time set-password token (its owner sends it with a password to
    POST /auth/password): a secret, kept out of status and logs."""

    user_id: uuid.UUID
    email: str
    token: str = field(repr=False)
    expires_at: str = ""


Invite = Callable[[list[Invitation]], Awaitable[None]]


@dataclass
class Outcome:
    """What one reconcile did and found."""

    writes: int = 0
    refusals: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    workshop_id: uuid.UUID | None = None
    quiz_ids: dict[str, str] = field(default_factory=dict)
    template_id: uuid.UUID | None = None
    enrolled: int = 0
    figures: dict[str, Any] | None = None


class Applier:
    """Runs a plan's actions in order, resolving the names they leave open."""

    def __init__(self, services: Services, cohort: Cohort, observed: planning.Observed) -> None:
        self.services = services
        self.cohort = cohort
        self.users: dict[str, User] = dict(observed.users)
        self.workshop_id = uuid.UUID(observed.workshop["id"]) if observed.workshop else None
        self.quiz_ids = {name: str(quiz["id"]) for name, quiz in observed.quizzes.items()}
        self.template_id = (
            uuid.UUID(observed.template["id"]) if observed.template is not None else None
        )
        self.enrolled = {u for u, status in observed.enrollments.items() if status == "active"}
        self.outcome = Outcome()
        self.invitations: list[Invitation] = []

    def refused(self, refusal: RefusedError, what: str) -> None:
        log.warning(
            "a service refused a change",
            cohort=self.cohort.key,
            action=what,
            service=refusal.service,
            status=refusal.status,
            detail=refusal.detail,
        )
        self.outcome.refusals.append(refusal.message)

    def ids(self, emails: Sequence[str]) -> list[uuid.UUID]:
        return [self.users[e].id for e in emails if e in self.users]

    async def run(self, actions: Sequence[Action], invite: Invite) -> Outcome:
        accounts = [a for a in actions if isinstance(a, CreateUser | SetRoles)]
        try:
            # A service failing cancels the rest; the tokens of the accounts made by then
            # are kept all the same (a new account's token is shown once).
            async with asyncio.TaskGroup() as group:
                for account in accounts:
                    group.create_task(self.account(account))
        except* ServiceError as failures:
            raise failures.exceptions[0] from None
        finally:
            if self.invitations:
                await invite(self.invitations)
        rest = [a for a in actions if not isinstance(a, CreateUser | SetRoles)]
        for step in rest:
            if not isinstance(step, Withdraw):
                await self.apply(step)
        await gather(self.withdraw(a) for a in rest if isinstance(a, Withdraw))
        self.outcome.workshop_id = self.workshop_id
        self.outcome.quiz_ids = dict(self.quiz_ids)
        self.outcome.template_id = self.template_id
        self.outcome.enrolled = len(self.enrolled)
        return self.outcome

    async def account(self, action: CreateUser | SetRoles) -> None:
        services = self.services
        if isinstance(action, SetRoles):
            try:
                await services.ok(
                    "auth",
                    "PUT",
                    f"/users/{action.user_id}/roles",
                    json={"roles": list(action.roles)},
                )
            except RefusedError as refusal:
                self.refused(refusal, f"give {action.email} the instructor role")
            return
        body = {"email": action.email, "full_name": action.name, "roles": [action.role]}
        status, created = await services.call("auth", "POST", "/users", json=body)
        if status == 409:  # made meanwhile by someone else: use it
            user = await services.user(action.email)
            if user is not None:
                self.users[action.email] = user
                services.remember(user)
                return
        if status >= 400:
            self.refused(
                RefusedError("auth", status, created), f"create the account of {action.email}"
            )
            return
        user = User(uuid.UUID(created["id"]), action.email, frozenset(created["roles"]))
        self.users[action.email] = user
        services.remember(user)
        token, expires_at = created["set_password_token"], created["set_password_expires_at"]
        self.invitations.append(Invitation(user.id, action.email, token, str(expires_at)))

    async def apply(self, action: Action) -> None:
        try:
            await self._apply(action)
        except RefusedError as refusal:
            self.refused(refusal, type(action).__name__)

    async def _apply(self, action: Action) -> None:
        services = self.services
        if isinstance(action, CreateWorkshop):
            body = {**action.body, "instructor_ids": [str(i) for i in self.ids(action.instructors)]}
            status, created = await services.call("workshop", "POST", "/workshops", json=body)
            if status == 409:  # created by a run that stopped before it could record it
                found = await services.pages(
                    "workshop", "/workshops", {"external_id": self.cohort.key, "status": "active"}
                )
                if found:
                    self.workshop_id = uuid.UUID(found[0]["id"])
                    return
            if status >= 400:
                raise RefusedError("workshop", status, created)
            self.workshop_id = uuid.UUID(created["id"])
            return
        if isinstance(action, UpdateWorkshop):
            body = dict(action.body)
            if action.instructors is not None:
                body["instructor_ids"] = [str(i) for i in self.ids(action.instructors)]
            path = f"/workshops/{action.workshop_id}"
            try:
                await services.ok("workshop", "PATCH", path, json=body)
            except RefusedError as refusal:
                if "steps" not in body or refusal.status != 409:
                    raise
                self.refused(refusal, "change the workshop's steps")
                body.pop("steps")
                if body:  # the rest of the change still applies
                    await services.ok("workshop", "PATCH", path, json=body)
            return
        if self.workshop_id is None:
            self.outcome.refusals.append(
                f"{type(action).__name__} waits for the workshop, which could not be created"
            )
            return
        workshop = self.workshop_id
        if isinstance(action, Enroll):
            ids = self.ids(action.emails)
            if ids:
                await services.ok(
                    "workshop",
                    "POST",
                    f"/workshops/{workshop}/enrollments",
                    json={"user_ids": [str(i) for i in ids]},
                )
                self.enrolled |= set(ids)
        elif isinstance(action, CreateQuiz):
            body = {**action.body, "workshop_id": str(workshop)}
            status, created = await services.call("quiz", "POST", "/quizzes", json=body)
            if status == 409:
                found = await services.pages(
                    "quiz",
                    "/quizzes",
                    {"workshop_id": str(workshop), "external_id": body["external_id"]},
                )
                if found:
                    self.quiz_ids[action.name] = str(found[0]["id"])
                    return
            if status >= 400:
                raise RefusedError("quiz", status, created)
            self.quiz_ids[action.name] = str(created["id"])
        elif isinstance(action, UpdateQuiz):
            path = f"/quizzes/{action.quiz_id}"
            try:
                await services.ok("quiz", "PATCH", path, json=action.body)
            except RefusedError as refusal:
                if "questions" not in action.body or refusal.status != 409:
                    raise
                self.refused(refusal, f"change the questions of quiz {action.name}")
                rest = {k: v for k, v in action.body.items() if k != "questions"}
                if rest:
                    await services.ok("quiz", "PATCH", path, json=rest)
        elif isinstance(action, CreateTemplate | UpdateTemplate):
            missing = [n for n in action.required_quizzes if n not in self.quiz_ids]
            if missing:
                self.outcome.refusals.append(
                    f"the certificate waits for quizzes that could not be made: {missing}"
                )
                return
            criteria = {
                **action.body["criteria"],
                "required_quiz_ids": [self.quiz_ids[n] for n in action.required_quizzes],
            }
            body = {**action.body, "criteria": criteria}
            if isinstance(action, UpdateTemplate):
                await services.ok(
                    "certificate", "PATCH", f"/templates/{action.template_id}", json=body
                )
            else:
                body = {**body, "workshop_id": str(workshop)}
                status, created = await services.call(
                    "certificate", "POST", "/templates", json=body
                )
                if status == 409:  # made by a run that stopped before it could record it
                    found = await services.pages(
                        "certificate",
                        "/templates",
                        {"workshop_id": str(workshop), "external_id": self.cohort.key},
                    )
                    if found:
                        self.template_id = uuid.UUID(found[0]["id"])
                        return
                if status >= 400:
                    raise RefusedError("certificate", status, created)
                self.template_id = uuid.UUID(created["id"])
        elif isinstance(action, SetThresholds):
            path = f"/analytics/workshops/{workshop}/thresholds"
            status, answer = await services.call("analytics", "PUT", path, json=action.body)
            if status == 404:
                self.outcome.pending.append("analytics has not yet heard of the workshop")
            elif status >= 400:
                raise RefusedError("analytics", status, answer)
        elif isinstance(action, ArchiveWorkshop):
            await services.ok("workshop", "DELETE", f"/workshops/{action.workshop_id}")

    async def withdraw(self, action: Withdraw) -> None:
        try:
            await self.services.ok(
                "workshop", "DELETE", f"/workshops/{self.workshop_id}/enrollments/{action.user_id}"
            )
            self.enrolled.discard(action.user_id)
        except RefusedError as refusal:
            self.refused(refusal, f"withdraw {action.user_id}")


async def reconcile(
    cohort: Cohort, students: Sequence[Student], services: Services, invite: Invite
) -> Outcome:
    """Bring the services to the cohort; a run with nothing to change writes nothing."""
    writes = [0]
    RUN_WRITES.set(writes)
    emails = [normalise_email(s.email) for s in students]
    observed = await services.observe(cohort, emails)
    actions = planning.plan(cohort, students, observed)
    if actions:
        log.info(
            "reconciling",
            cohort=cohort.key,
            actions=len(actions),
            kinds=sorted({type(a).__name__ for a in actions}),
        )
    outcome = await Applier(services, cohort, observed).run(actions, invite)
    outcome.writes = writes[0]
    if outcome.workshop_id is not None:
        outcome.figures = await services.figures(outcome.workshop_id)
    return outcome


async def archive(cohort: Cohort, services: Services) -> int:
    """Archive the cohort's workshop (learner records stay); the writes it took."""
    observed = await services.observe(cohort, [])
    actions = planning.plan_deletion(observed)
    applier = Applier(services, cohort, observed)
    for action in actions:
        await applier._apply(action)
    return len(actions)


# -- status ---------------------------------------------------------------------------------


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def figures_status(figures: dict[str, Any] | None) -> dict[str, Any]:
    if figures is None:
        return {}
    return {
        "completed": int(figures["completed"]),
        "completionPercent": round(float(figures["completion_percent"]), 1),
        "atRisk": int(figures["at_risk"]),
        "certificatesIssued": int(figures["certificates_issued"]),
    }


def condition(
    kind: str, status: bool, reason: str, message: str, generation: int
) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message[:32768],
        "observedGeneration": generation,
    }


def desired_status(
    cohort: Cohort,
    outcome: Outcome | None,
    *,
    error: str | None = None,
    reason: str = "ServiceUnavailable",
) -> dict[str, Any]:
    """The status a reconcile's outcome gives (without times): phase and conditions, ids and
    figures. `error` is why the run could not finish (a service down: `reason`)."""
    generation = cohort.generation
    status: dict[str, Any] = {"observedGeneration": generation}
    problems = [*(outcome.refusals if outcome else []), *([error] if error else [])]
    pending = outcome.pending if outcome else []
    if problems:
        phase, reason = "Degraded", reason if error else "ChangeRefused"
        message = "; ".join(problems)
    elif pending:
        phase, reason, message = "Provisioning", "Provisioning", "; ".join(pending)
    else:
        phase, reason, message = "Ready", "Reconciled", "the services hold the cohort as written"
    status["phase"] = phase
    status["conditions"] = [
        condition("Ready", phase == "Ready", reason, message, generation),
        condition("Progressing", phase == "Provisioning", reason, message, generation),
        condition("Degraded", phase == "Degraded", reason, message, generation),
    ]
    if outcome is not None:
        if outcome.workshop_id is not None:
            status["workshopId"] = str(outcome.workshop_id)
        status["quizIds"] = dict(outcome.quiz_ids)
        if outcome.template_id is not None:
            status["templateId"] = str(outcome.template_id)
        status["enrolled"] = outcome.enrolled
        status.update(figures_status(outcome.figures))
    return status


def merged(previous: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The status patch that takes `previous` to `wanted`, keeping each condition's
    lastTransitionTime while its status stays; None when nothing would change."""
    if error_free_equal(previous, wanted):
        return None
    stamp = now()
    old = {c.get("type"): c for c in previous.get("conditions") or []}
    conditions = []
    for item in wanted.get("conditions", []):
        before = old.get(item["type"])
        same = before is not None and before.get("status") == item["status"]
        transition = before.get("lastTransitionTime") if same and before else None
        conditions.append({**item, "lastTransitionTime": transition or stamp})
    patch = {**wanted, "lastSyncTime": stamp}
    if "conditions" in wanted:
        patch["conditions"] = conditions
    return patch


def error_free_equal(previous: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether `previous` already says all that `wanted` says (times aside)."""
    for name, value in wanted.items():
        if name == "conditions":
            old = {c.get("type"): c for c in previous.get("conditions") or []}
            for item in value:
                before = old.get(item["type"]) or {}
                if any(before.get(k) != v for k, v in item.items()):
                    return False
        elif previous.get(name) != value:
            return False
    return True
