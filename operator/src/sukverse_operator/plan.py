"""The pure reconciler: (desired cohort, observed state of the services) -> actions.

Nothing here does I/O. An action names what it needs from earlier actions of the same plan
by email (a user created first) or by quiz name (a quiz created first); the applier resolves
those names once the earlier actions have run. An empty plan means the services hold the
cohort as it is written.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sukverse_common.emails import normalise_email
from sukverse_operator.spec import Cohort, Quiz, Step, Student, Substep

ENROLL_BATCH = 1000
STUDENT = "student"
INSTRUCTOR = "instructor"


# -- what the services hold ---------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    roles: frozenset[str]


@dataclass(frozen=True)
class Observed:
    """What the services hold of one cohort; `None` where nothing exists yet.

    `users` holds the accounts of the cohort's emails (normalised); `enrollments` maps the
    workshop's enrolled users to their status; `quizzes` maps each quiz name (a quiz's key,
    or its position) to the quiz service's full view of it."""

    users: dict[str, User] = field(default_factory=dict)
    workshop: dict[str, Any] | None = None
    enrollments: dict[uuid.UUID, str] = field(default_factory=dict)
    quizzes: dict[str, dict[str, Any]] = field(default_factory=dict)
    template: dict[str, Any] | None = None
    thresholds: dict[str, Any] | None = None


# -- what to do ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One write to one service."""

    def as_dict(self) -> dict[str, Any]:
        """The action as plain data, for logs and the planner's test cases."""
        return {"action": type(self).__name__, **_plain(asdict(self))}


@dataclass(frozen=True)
class CreateUser(Action):
    """An account without a password; its set-password token goes to the invitations."""

    email: str
    name: str
    role: str


@dataclass(frozen=True)
class SetRoles(Action):
    email: str
    user_id: uuid.UUID
    roles: tuple[str, ...]


@dataclass(frozen=True)
class CreateWorkshop(Action):
    body: dict[str, Any]
    instructors: tuple[str, ...]


@dataclass(frozen=True)
class UpdateWorkshop(Action):
    """A PATCH; `body` holds `steps` only when the steps changed, and `instructors`
    replaces the workshop's instructors when it is not None."""

    workshop_id: uuid.UUID
    body: dict[str, Any]
    instructors: tuple[str, ...] | None


@dataclass(frozen=True)
class Enroll(Action):
    emails: tuple[str, ...]


@dataclass(frozen=True)
class Withdraw(Action):
    user_id: uuid.UUID


@dataclass(frozen=True)
class CreateQuiz(Action):
    name: str
    body: dict[str, Any]


@dataclass(frozen=True)
class UpdateQuiz(Action):
    name: str
    quiz_id: uuid.UUID
    body: dict[str, Any]


@dataclass(frozen=True)
class CreateTemplate(Action):
    """`required_quizzes` are quiz names, turned into ids once those quizzes exist."""

    body: dict[str, Any]
    required_quizzes: tuple[str, ...]


@dataclass(frozen=True)
class UpdateTemplate(Action):
    template_id: uuid.UUID
    body: dict[str, Any]
    required_quizzes: tuple[str, ...]


@dataclass(frozen=True)
class SetThresholds(Action):
    body: dict[str, Any]


@dataclass(frozen=True)
class ArchiveWorkshop(Action):
    workshop_id: uuid.UUID


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- the plan -----------------------------------------------------------------------------


MAX_EXTERNAL_ID = 320


def quiz_external_id(cohort: Cohort, name: str) -> str:
    """A quiz's key: the cohort's and the quiz's name, or their digest where a long
    `namespace/name` (without a cluster) would make it longer than the services take."""
    key = f"{cohort.key}/quiz/{name}"
    if len(key) <= MAX_EXTERNAL_ID:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def plan(cohort: Cohort, students: Sequence[Student], observed: Observed) -> list[Action]:
    """Every write that brings the services to the cohort, in the order they must run."""
    actions: list[Action] = [*_accounts(cohort, students, observed)]
    actions += _workshop(cohort, observed)
    actions += _enrollments(students, observed)
    actions += _quizzes(cohort, observed)
    actions += _template(cohort, observed)
    actions += _thresholds(cohort, observed)
    return actions


def plan_deletion(observed: Observed) -> list[Action]:
    """Deleting a cohort archives its workshop; learners' records stay."""
    workshop = observed.workshop
    if workshop is None or workshop.get("status") == "archived":
        return []
    return [ArchiveWorkshop(uuid.UUID(workshop["id"]))]


def _accounts(cohort: Cohort, students: Sequence[Student], observed: Observed) -> list[Action]:
    actions: list[Action] = []
    instructors = _emails(cohort.spec.instructors)
    for email in instructors:
        user = observed.users.get(email)
        if user is None:
            actions.append(CreateUser(email=email, name=email.split("@")[0], role=INSTRUCTOR))
        elif not user.roles & {INSTRUCTOR, "admin"}:
            roles = tuple(sorted(user.roles | {INSTRUCTOR}))
            actions.append(SetRoles(email=email, user_id=user.id, roles=roles))
    for student in students:
        email = normalise_email(student.email)
        if email not in observed.users and email not in instructors:
            actions.append(CreateUser(email=email, name=student.name.strip(), role=STUDENT))
    return actions


def _emails(emails: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(normalise_email(email) for email in emails))


# -- the workshop -------------------------------------------------------------------------


T = TypeVar("T", Step, Substep)


def _match(desired: Sequence[T], observed: Sequence[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """The observed item each desired one is: the one with its key, or (without a key) the
    keyless one at its position."""
    by_key = {item["key"]: item for item in observed if item.get("key")}
    matched: list[dict[str, Any] | None] = []
    used: set[str] = set()
    for position, item in enumerate(desired):
        found: dict[str, Any] | None = None
        if item.key is not None:
            found = by_key.get(item.key)
        elif position < len(observed) and not observed[position].get("key"):
            found = observed[position]
        if found is not None and found["id"] in used:
            found = None
        if found is not None:
            used.add(found["id"])
        matched.append(found)
    return matched


def _with_id(body: dict[str, Any], observed: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": observed["id"], **body} if observed is not None else body


def _substep_body(substep: Substep) -> dict[str, Any]:
    return {
        "key": substep.key,
        "title": substep.title.strip(),
        "body": substep.body,
        "estimated_minutes": substep.estimated_minutes,
    }


def _desired_steps(steps: Sequence[Step], observed: Sequence[dict[str, Any]]) -> list[Any]:
    result = []
    for step, seen in zip(steps, _match(steps, observed), strict=True):
        seen_substeps = seen["substeps"] if seen is not None else []
        substeps = [
            _with_id(_substep_body(substep), match)
            for substep, match in zip(
                step.substeps, _match(step.substeps, seen_substeps), strict=True
            )
        ]
        body = {"key": step.key, "title": step.title.strip(), "substeps": substeps}
        result.append(_with_id(body, seen))
    return result


def _observed_steps(steps: Sequence[dict[str, Any]]) -> list[Any]:
    return [
        {
            "id": step["id"],
            "key": step.get("key"),
            "title": step["title"],
            "substeps": [
                {
                    "id": substep["id"],
                    "key": substep.get("key"),
                    "title": substep["title"],
                    "body": substep["body"],
                    "estimated_minutes": substep.get("estimated_minutes"),
                }
                for substep in step["substeps"]
            ],
        }
        for step in steps
    ]


def _schedule(cohort: Cohort) -> dict[str, str | None]:
    schedule = cohort.spec.schedule
    if schedule is None:
        return {"starts_at": None, "ends_at": None}
    return {"starts_at": schedule.start.isoformat(), "ends_at": schedule.end.isoformat()}


def _same_time(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    return datetime.fromisoformat(a) == datetime.fromisoformat(b)


def _workshop(cohort: Cohort, observed: Observed) -> list[Action]:
    spec = cohort.spec.workshop
    instructors = tuple(_emails(cohort.spec.instructors))
    workshop = observed.workshop
    if workshop is None or workshop.get("status") == "archived":
        body = {
            "title": spec.title.strip(),
            "description": spec.description,
            "steps": _desired_steps(spec.steps, []),
            "external_id": cohort.key,
            **_schedule(cohort),
        }
        return [CreateWorkshop(body=body, instructors=instructors)]
    patch: dict[str, Any] = {}
    if workshop["title"] != spec.title.strip():
        patch["title"] = spec.title.strip()
    if workshop["description"] != spec.description:
        patch["description"] = spec.description
    for name, value in _schedule(cohort).items():
        if not _same_time(workshop.get(name), value):
            patch[name] = value
    steps = _desired_steps(spec.steps, workshop["steps"])
    if steps != _observed_steps(workshop["steps"]):
        patch["steps"] = steps
    wanted_ids = {observed.users[e].id for e in instructors if e in observed.users}
    have_ids = {uuid.UUID(str(i)) for i in workshop.get("instructor_ids", [])}
    instructors_changed = len(wanted_ids) < len(instructors) or wanted_ids != have_ids
    if not patch and not instructors_changed:
        return []
    return [
        UpdateWorkshop(
            workshop_id=uuid.UUID(workshop["id"]),
            body=patch,
            instructors=instructors if instructors_changed else None,
        )
    ]


# -- enrollments --------------------------------------------------------------------------


def _enrollments(students: Sequence[Student], observed: Observed) -> list[Action]:
    wanted = _emails(student.email for student in students)
    wanted_ids = {observed.users[e].id for e in wanted if e in observed.users}
    to_enroll = [
        email
        for email in wanted
        if email not in observed.users
        or observed.enrollments.get(observed.users[email].id) != "active"
    ]
    actions: list[Action] = [
        Enroll(emails=tuple(to_enroll[i : i + ENROLL_BATCH]))
        for i in range(0, len(to_enroll), ENROLL_BATCH)
    ]
    actions += [
        Withdraw(user_id=user_id)
        for user_id, status in sorted(observed.enrollments.items())
        if status == "active" and user_id not in wanted_ids
    ]
    return actions


# -- quizzes ------------------------------------------------------------------------------

QUIZ_SETTINGS = (
    "title",
    "pass_mark",
    "max_attempts",
    "time_limit_seconds",
    "grading",
    "shuffle_questions",
    "shuffle_options",
    "review",
)


def quiz_body(quiz: Quiz) -> dict[str, Any]:
    """A quiz as the quiz service takes it (without its workshop and key)."""
    return {
        "title": quiz.title.strip(),
        "pass_mark": quiz.pass_mark,
        "max_attempts": quiz.max_attempts,
        "time_limit_seconds": quiz.time_limit_seconds,
        "grading": quiz.grading,
        "shuffle_questions": quiz.shuffle_questions,
        "shuffle_options": quiz.shuffle_options,
        "review": quiz.review,
        "questions": [question.body() for question in quiz.questions],
    }


def _observed_questions(questions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for question in questions:
        item = {k: v for k, v in question.items() if k != "id"}
        if "options" in item:
            item["options"] = [
                {"text": o["text"], "correct": o["correct"]} for o in item["options"]
            ]
        result.append(item)
    return result


def _quizzes(cohort: Cohort, observed: Observed) -> list[Action]:
    actions: list[Action] = []
    for name, quiz in zip(cohort.spec.quiz_keys(), cohort.spec.quizzes, strict=True):
        body = quiz_body(quiz)
        current = observed.quizzes.get(name)
        if current is None:
            body["external_id"] = quiz_external_id(cohort, name)
            actions.append(CreateQuiz(name=name, body=body))
            continue
        patch = {k: body[k] for k in QUIZ_SETTINGS if current.get(k) != body[k]}
        if _observed_questions(current.get("questions", [])) != body["questions"]:
            patch["questions"] = body["questions"]
        if patch:
            actions.append(UpdateQuiz(name=name, quiz_id=uuid.UUID(current["id"]), body=patch))
    return actions


# -- the certificate template and the at-risk thresholds ------------------------------------


def _template(cohort: Cohort, observed: Observed) -> list[Action]:
    certificate = cohort.spec.certificate
    if certificate is None:
        return []
    names = {
        key: name
        for key, name in zip(
            [quiz.key for quiz in cohort.spec.quizzes], cohort.spec.quiz_keys(), strict=True
        )
        if key is not None
    }
    required = tuple(names[key] for key in certificate.criteria.required_quizzes)
    body: dict[str, Any] = {
        "title": certificate.title.strip(),
        "body": certificate.body,
        "criteria": {
            "min_completion_percent": certificate.criteria.min_completion_percent,
            "min_quiz_average": certificate.criteria.min_quiz_average,
        },
    }
    current = observed.template
    if current is None:
        return [CreateTemplate(body={**body, "external_id": cohort.key}, required_quizzes=required)]
    criteria = current["criteria"]
    required_ids = {observed.quizzes[n]["id"] for n in required if n in observed.quizzes}
    same = (
        current["title"] == body["title"]
        and current["body"] == body["body"]
        and criteria["min_completion_percent"] == body["criteria"]["min_completion_percent"]
        and criteria["min_quiz_average"] == body["criteria"]["min_quiz_average"]
        and len(required_ids) == len(required)
        and {str(i) for i in criteria["required_quiz_ids"]} == required_ids
    )
    if same:
        return []
    return [
        UpdateTemplate(template_id=uuid.UUID(current["id"]), body=body, required_quizzes=required)
    ]


THRESHOLD_FIELDS = ("inactive_days", "min_quiz_average")


def _thresholds(cohort: Cohort, observed: Observed) -> list[Action]:
    at_risk = cohort.spec.at_risk
    if at_risk is None:
        return []
    wanted = {
        name: value
        for name, value in (
            ("inactive_days", at_risk.inactive_days),
            ("min_quiz_average", at_risk.min_quiz_average),
        )
        if value is not None
    }
    current = observed.thresholds
    if current is not None:
        overridden = set(current.get("overridden", [])) & set(THRESHOLD_FIELDS)
        if overridden == set(wanted) and all(current[k] == v for k, v in wanted.items()):
            return []
    return [SetThresholds(body={name: wanted.get(name) for name in THRESHOLD_FIELDS})]
