"""The pure planner, case by case from the YAML files in plan_cases/.

A case names a cohort (a sample from k8s/samples, or a spec of its own) and what the
services hold: `nothing`, or `converged` (what they would hold once the cohort is applied,
built here from the cohort itself) with `edits` made to the spec afterwards and `observed`
changes on top. `actions` lists the plan's actions in order, each a subset of what the
action carries; `count` says how many actions of a kind there are where listing them all
would say nothing more."""

from __future__ import annotations

import copy
import itertools
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from sukverse_common.emails import normalise_email
from sukverse_operator.plan import (
    Enroll,
    Observed,
    User,
    _desired_steps,
    plan,
    plan_deletion,
    quiz_body,
)
from sukverse_operator.spec import Cohort, RosterError, parse_roster, roster

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted((Path(__file__).parent / "plan_cases").glob("*.yaml"))


def cases() -> list[Any]:
    found = []
    for path in CASES:
        for case in yaml.safe_load(path.read_text()):
            found.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return found


def set_path(document: Any, path: str, value: Any, separator: str = ".") -> None:
    """`a.b.0.c = value`; a value of `~delete` removes the field, `~append` with `value`
    under it appends to a list."""
    parts = [int(p) if p.isdigit() else p for p in path.split(separator)]
    node = document
    for part in parts[:-1]:
        node = node[part]
    last = parts[-1]
    if isinstance(value, dict) and "~append" in value:
        node[last].append(value["~append"])
    elif value == "~delete":
        del node[last]
    else:
        node[last] = value


def cohort_of(case: dict[str, Any]) -> dict[str, Any]:
    if "sample" in case:
        document = yaml.safe_load((ROOT / "k8s" / "samples" / case["sample"]).read_text())
    else:
        document = {"metadata": {"name": "case", "namespace": "ns"}, "spec": case["spec"]}
    document.setdefault("metadata", {})["uid"] = "3f0c9a62-2f1e-4a2c-9a59-0c2d0b2f0001"
    return document


class Ids:
    """Stable ids, one per name."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.counter = itertools.count(1)

    def __call__(self, name: str) -> str:
        if name not in self.ids:
            self.ids[name] = str(uuid.UUID(int=next(self.counter)))
        return self.ids[name]


def converged(cohort: Cohort, ids: Ids) -> dict[str, Any]:
    """What the services hold once `cohort` is applied, as the planner reads it."""
    spec = cohort.spec
    students = roster(spec, [])
    instructors = [normalise_email(e) for e in spec.instructors]
    users = {
        normalise_email(s.email): {"id": ids(normalise_email(s.email)), "roles": ["student"]}
        for s in students
    }
    users |= {e: {"id": ids(e), "roles": ["instructor"]} for e in instructors}
    steps = _desired_steps(spec.workshop.steps, [])
    for n, step in enumerate(steps):
        step["id"] = ids(f"step {n}")
        for m, substep in enumerate(step["substeps"]):
            substep["id"] = ids(f"substep {n}.{m}")
    schedule = spec.schedule
    workshop = {
        "id": ids("workshop"),
        "status": "active",
        "title": spec.workshop.title,
        "description": spec.workshop.description,
        "starts_at": schedule.start.isoformat() if schedule else None,
        "ends_at": schedule.end.isoformat() if schedule else None,
        "steps": steps,
        "instructor_ids": [ids(e) for e in instructors],
    }
    quizzes = {}
    for name, quiz in zip(spec.quiz_keys(), spec.quizzes, strict=True):
        body = quiz_body(quiz)
        body["questions"] = [
            {"id": ids(f"question {name}.{n}"), **q} for n, q in enumerate(body["questions"])
        ]
        quizzes[name] = {"id": ids(f"quiz {name}"), **body}
    template = None
    if spec.certificate is not None:
        criteria = spec.certificate.criteria
        template = {
            "id": ids("template"),
            "title": spec.certificate.title,
            "body": spec.certificate.body,
            "criteria": {
                "min_completion_percent": criteria.min_completion_percent,
                "min_quiz_average": criteria.min_quiz_average,
                "required_quiz_ids": [ids(f"quiz {k}") for k in criteria.required_quizzes],
            },
        }
    thresholds = None
    if spec.at_risk is not None:
        values = {
            "inactive_days": spec.at_risk.inactive_days,
            "min_quiz_average": spec.at_risk.min_quiz_average,
        }
        thresholds = {
            **{k: v if v is not None else 1 for k, v in values.items()},
            "overridden": [k for k, v in values.items() if v is not None],
        }
    return {
        "users": users,
        "workshop": workshop,
        "enrollments": {users[normalise_email(s.email)]["id"]: "active" for s in students},
        "quizzes": quizzes,
        "template": template,
        "thresholds": thresholds,
    }


def observed_of(state: dict[str, Any]) -> Observed:
    return Observed(
        users={
            email: User(uuid.UUID(u["id"]), email, frozenset(u["roles"]))
            for email, u in state["users"].items()
        },
        workshop=state["workshop"],
        enrollments={uuid.UUID(k): v for k, v in state["enrollments"].items()},
        quizzes=state["quizzes"],
        template=state["template"],
        thresholds=state["thresholds"],
    )


def named(value: Any, ids: Ids) -> Any:
    """`<name>` anywhere in a case is the id the services gave `name` (an email, `workshop`,
    `step 0`, `substep 0.1`, `quiz KEY`, `template`)."""
    if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
        return ids(value[1:-1])
    if isinstance(value, str) and "<" in value:
        return re.sub(r"<([^<>]+)>", lambda m: ids(m.group(1)), value)
    if isinstance(value, dict):
        return {named(k, ids): named(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [named(v, ids) for v in value]
    return value


def is_subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and is_subset(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(is_subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


@pytest.mark.parametrize("case", cases())
def test_plan(case: dict[str, Any]) -> None:
    document = cohort_of(case)
    ids = Ids()
    state: dict[str, Any] = {
        "users": {},
        "workshop": None,
        "enrollments": {},
        "quizzes": {},
        "template": None,
        "thresholds": None,
    }
    if case.get("services", "nothing") == "converged":
        state = converged(Cohort.from_body(document), ids)
    document = copy.deepcopy(document)
    for path, value in (case.get("edits") or {}).items():
        set_path(document["spec"], path, value)
    # The services' paths are split at `/` (emails and ids hold dots).
    for path, value in (case.get("observed") or {}).items():
        set_path(state, named(path, ids), named(value, ids), separator="/")
    cohort = Cohort.from_body(document)
    actions = [a.as_dict() for a in plan(cohort, roster(cohort.spec, []), observed_of(state))]
    if case.get("deletion"):
        actions = [a.as_dict() for a in plan_deletion(observed_of(state))]
    kinds = [a["action"] for a in actions]
    expected = named(case["actions"], ids)
    if isinstance(expected, dict):  # counts by kind
        assert {k: kinds.count(k) for k in set(kinds)} == expected, actions
        return
    assert kinds == [e["action"] for e in expected], actions
    for want, got in zip(expected, actions, strict=True):
        assert is_subset(want, got), f"expected {want}\n     got {got}"


def test_more_students_than_one_call_takes_are_enrolled_in_batches() -> None:
    students = [{"email": f"s{n}@example.com", "name": f"S {n}"} for n in range(2500)]
    spec = {"workshop": {"title": "W", "steps": [{"title": "S", "substeps": [{"title": "T"}]}]}}
    cohort = Cohort.from_body({"metadata": {"name": "big"}, "spec": {**spec, "students": students}})
    assert cohort.key == "default/big"  # without a cluster, the key is namespace/name
    actions = plan(cohort, roster(cohort.spec, []), Observed())
    enrolls = [len(a.emails) for a in actions if isinstance(a, Enroll)]
    assert enrolls == [1000, 1000, 500]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mail,name\na@example.com,A\n", "the first line must name the columns email and name"),
        ("email,name\na@example.com,\n", "line 2: String should have at least 1 character"),
    ],
)
def test_a_roster_that_cannot_be_read_says_where(text: str, message: str) -> None:
    with pytest.raises(RosterError, match=message):
        parse_roster(text, source="ConfigMap roster")


def test_a_roster_reads_its_columns_in_any_order_and_skips_blank_lines() -> None:
    found = parse_roster("Name,Email,team\nAda,ada@example.com,x\n,,\n", source="r")
    assert [(s.email, s.name) for s in found] == [("ada@example.com", "Ada")]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"students": []}, "workshop"),
        (
            {"workshop": {"title": "W", "steps": [{"title": "S", "substeps": [{"title": "T"}]}]}},
            "a cohort needs students, studentsFrom, or both",
        ),
    ],
)
def test_a_cohort_file_is_checked_as_the_api_server_would(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Cohort.from_body({"metadata": {"name": "c"}, "spec": spec})
