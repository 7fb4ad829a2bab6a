"""The SukverseCohort resource as the operator reads it: the spec, its roster, its key.

The CRD in crds/ is the one source of truth of the resource's shape and rules; these models
read what the API server has already validated, and check the same rules again where the
cohort comes from a file (`sukverse apply`) with no API server in between.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from sukverse_common.emails import normalise_email

GROUP = "sukverse.io"
VERSION = "v1alpha1"
PLURAL = "sukversecohorts"
KIND = "SukverseCohort"
FINALIZER = "sukverse.io/cohort"
MAX_STUDENTS = 5000


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Substep(Model):
    key: str | None = None
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=20_000)
    estimated_minutes: int | None = Field(default=None, ge=0, le=10_000)


class Step(Model):
    key: str | None = None
    title: str = Field(min_length=1, max_length=200)
    substeps: list[Substep] = Field(min_length=1, max_length=50)


def _unique_keys(items: list[Any], what: str) -> None:
    keys = [item.key for item in items if item.key is not None]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"{what} keys must be unique: {', '.join(duplicates)}")


class Workshop(Model):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    steps: list[Step] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _keys(self) -> Self:
        _unique_keys(self.steps, "step")
        for step in self.steps:
            _unique_keys(step.substeps, "substep")
        return self


class Option(Model):
    text: str = Field(min_length=1, max_length=1000)
    correct: bool = False


QuestionKind = Literal["single_choice", "multiple_choice", "true_false", "short_text", "numeric"]


class Question(Model):
    kind: QuestionKind
    prompt: str = Field(min_length=1, max_length=5000)
    points: float = Field(default=1.0, gt=0, le=1000)
    options: list[Option] | None = Field(default=None, min_length=2, max_length=20)
    partial_credit: Literal["all_or_nothing", "partial"] | None = None
    answer: bool | None = None
    accepted: list[str] | None = Field(default=None, min_length=1, max_length=50)
    value: float | None = None
    tolerance: float | None = Field(default=None, ge=0)

    def body(self) -> dict[str, Any]:
        """The question as the quiz service takes it."""
        body: dict[str, Any] = {"kind": self.kind, "prompt": self.prompt, "points": self.points}
        if self.kind in ("single_choice", "multiple_choice"):
            body["options"] = [{"text": o.text, "correct": o.correct} for o in self.options or []]
        if self.kind == "multiple_choice":
            body["partial_credit"] = self.partial_credit or "all_or_nothing"
        if self.kind == "true_false":
            body["answer"] = self.answer
        if self.kind == "short_text":
            body["accepted"] = list(self.accepted or [])
        if self.kind == "numeric":
            body["value"] = self.value
            body["tolerance"] = self.tolerance or 0.0
        return body


class Quiz(Model):
    key: str | None = None
    title: str = Field(min_length=1, max_length=200)
    pass_mark: float = Field(default=50.0, ge=0, le=100)
    max_attempts: int = Field(default=1, ge=1, le=100)
    time_limit_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    grading: Literal["highest", "latest", "average"] = "highest"
    shuffle_questions: bool = False
    shuffle_options: bool = False
    review: Literal["none", "score", "answers"] = "score"
    questions: list[Question] = Field(min_length=1, max_length=200)


class Schedule(Model):
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("schedule.end must be after schedule.start")
        return self


class Student(Model):
    email: str = Field(min_length=3, max_length=254)
    name: str = Field(min_length=1, max_length=200)


class ConfigMapKeyRef(Model):
    name: str = Field(min_length=1, max_length=253)
    key: str = Field(default="students.csv", min_length=1, max_length=253)


class StudentsFrom(Model):
    config_map_key_ref: ConfigMapKeyRef


class Criteria(Model):
    min_completion_percent: float = Field(default=100.0, ge=0, le=100)
    min_quiz_average: float | None = Field(default=None, ge=0, le=100)
    required_quizzes: list[str] = Field(default_factory=list, max_length=20)


class Certificate(Model):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=10_000)
    criteria: Criteria = Field(default_factory=Criteria)


class AtRisk(Model):
    inactive_days: int | None = Field(default=None, ge=1, le=365)
    min_quiz_average: float | None = Field(default=None, ge=0, le=100)


class CohortSpec(Model):
    workshop: Workshop
    quizzes: list[Quiz] = Field(default_factory=list, max_length=20)
    schedule: Schedule | None = None
    instructors: list[str] = Field(default_factory=list, max_length=50)
    students: list[Student] | None = Field(default=None, max_length=MAX_STUDENTS)
    students_from: StudentsFrom | None = None
    certificate: Certificate | None = None
    at_risk: AtRisk | None = None

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.students is None and self.students_from is None:
            raise ValueError("a cohort needs students, studentsFrom, or both")
        _unique_keys(self.quizzes, "quiz")
        if self.certificate is not None:
            keys = {quiz.key for quiz in self.quizzes}
            missing = [k for k in self.certificate.criteria.required_quizzes if k not in keys]
            if missing:
                raise ValueError(f"certificate.criteria.requiredQuizzes names no quiz: {missing}")
        return self

    def quiz_keys(self) -> list[str]:
        """Each quiz's name: its key, or its position."""
        return [quiz.key or str(position) for position, quiz in enumerate(self.quizzes)]


class RosterError(ValueError):
    """A CSV roster that cannot be read; says which line and why."""


def parse_roster(text: str, *, source: str) -> list[Student]:
    """The students of a CSV roster with an `email,name` header (extra columns ignored)."""
    reader = csv.DictReader(io.StringIO(text))
    fields = {name.strip().lower() for name in reader.fieldnames or []}
    if not {"email", "name"} <= fields:
        raise RosterError(f"{source}: the first line must name the columns email and name")
    students: list[Student] = []
    for line, row in enumerate(reader, start=2):
        values = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not any(values.values()):
            continue
        try:
            students.append(Student(email=values["email"], name=values["name"]))
        except ValueError as exc:
            reason = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
            raise RosterError(f"{source} line {line}: {reason}") from None
        if len(students) > MAX_STUDENTS:
            raise RosterError(f"{source}: more than {MAX_STUDENTS} students")
    return students


def roster(spec: CohortSpec, csv_students: list[Student]) -> list[Student]:
    """Every student of the cohort, by email: inline ones first, then the CSV's; an email
    given twice is one student (the first name wins)."""
    seen: dict[str, Student] = {}
    for student in [*(spec.students or []), *csv_students]:
        seen.setdefault(normalise_email(student.email), student)
    return list(seen.values())


class Cohort(BaseModel):
    """A cohort to reconcile: where it lives, the key its objects carry, and its spec."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    name: str
    key: str
    generation: int = 1
    spec: CohortSpec

    @classmethod
    def from_body(cls, body: dict[str, Any], *, key: str | None = None) -> Cohort:
        """From a resource's body; the key is its UID in a cluster, `namespace/name` without."""
        metadata = body.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        name = metadata.get("name") or ""
        if not name:
            raise ValueError("metadata.name is required")
        return cls(
            namespace=namespace,
            name=name,
            key=key or metadata.get("uid") or f"{namespace}/{name}",
            generation=int(metadata.get("generation") or 1),
            spec=CohortSpec.model_validate(body.get("spec") or {}),
        )
