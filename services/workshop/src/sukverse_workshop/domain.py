"""Pure rules of workshops: progress percentages, the JSON of a workshop, and what a new
list of steps does to the existing ones."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from sukverse_common.errors import ValidationFailed
from sukverse_workshop.models import Step, Substep, Workshop
from sukverse_workshop.schemas import StepIn, StepPatch

MAX_REPORTED_ERRORS = 20


def percent(done: int, total: int) -> float:
    return round(100.0 * done / total, 1) if total else 0.0


def unique(ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(ids))


Tree = list[dict[str, Any]]
"""A workshop's steps, each with its substeps, in order, as JSON-ready dicts."""


def render_workshop(workshop: Workshop, instructor_ids: list[uuid.UUID], tree: Tree) -> bytes:
    """The body of GET /workshops/{id} (the WorkshopOut schema), serialised in one pass:
    a 2,000-substep workshop is too big to build as models on every read."""
    document = {
        "id": workshop.id,
        "title": workshop.title,
        "description": workshop.description,
        "status": workshop.status,
        "external_id": workshop.external_id,
        "starts_at": workshop.starts_at,
        "ends_at": workshop.ends_at,
        "instructor_ids": instructor_ids,
        "step_count": workshop.step_count,
        "substep_count": workshop.substep_count,
        "created_at": workshop.created_at,
        "updated_at": workshop.updated_at,
        "version": workshop.version,
        "steps": tree,
    }
    return orjson.dumps(document, default=str, option=orjson.OPT_UTC_Z)


@dataclass
class Plan:
    """What a new `steps` list does to a workshop: its steps in order, what is new, which
    substeps move to another step, and whether anything kept was edited or moved."""

    ordered: list[Step] = field(default_factory=list)
    new_steps: list[Step] = field(default_factory=list)
    new_substeps: list[Substep] = field(default_factory=list)
    moves: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    changed: bool = False


def check_keys(steps: Sequence[StepIn | StepPatch]) -> None:
    """A 422 naming each step key another step has, and each substep key another substep
    of the same step has."""
    errors: list[dict[str, str]] = []
    step_keys: set[str] = set()
    for i, step in enumerate(steps):
        if step.key is not None:
            if step.key in step_keys:
                errors.append({"field": f"steps.{i}.key", "reason": "another step has this key"})
            step_keys.add(step.key)
        substep_keys: set[str] = set()
        for j, sub in enumerate(step.substeps):
            if sub.key is None:
                continue
            if sub.key in substep_keys:
                errors.append(
                    {
                        "field": f"steps.{i}.substeps.{j}.key",
                        "reason": "another substep of this step has this key",
                    }
                )
            substep_keys.add(sub.key)
    if errors:
        raise ValidationFailed(errors=errors[:MAX_REPORTED_ERRORS])


def check_ids(
    wanted: list[StepPatch], steps: dict[uuid.UUID, Step], substeps: dict[uuid.UUID, Substep]
) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """The step and substep ids the list keeps; a 422 naming each id that is not one of
    this workshop's, or that appears twice."""
    errors: list[dict[str, str]] = []
    kept_steps: set[uuid.UUID] = set()
    kept_subs: set[uuid.UUID] = set()
    for i, given in enumerate(wanted):
        if given.id is not None:
            if given.id not in steps:
                errors.append({"field": f"steps.{i}.id", "reason": "not a step of this workshop"})
            elif given.id in kept_steps:
                errors.append({"field": f"steps.{i}.id", "reason": "appears more than once"})
            kept_steps.add(given.id)
        for j, given_sub in enumerate(given.substeps):
            if given_sub.id is None:
                continue
            name = f"steps.{i}.substeps.{j}.id"
            if given_sub.id not in substeps:
                errors.append({"field": name, "reason": "not a substep of this workshop"})
            elif given_sub.id in kept_subs:
                errors.append({"field": name, "reason": "appears more than once"})
            kept_subs.add(given_sub.id)
    if errors:
        raise ValidationFailed(errors=errors[:MAX_REPORTED_ERRORS])
    return kept_steps, kept_subs


def plan_steps(
    workshop_id: uuid.UUID,
    wanted: list[StepPatch],
    steps: dict[uuid.UUID, Step],
    substeps: dict[uuid.UUID, Substep],
) -> Plan:
    """Apply the list to the loaded steps and substeps in memory (nothing is written)."""
    plan = Plan()
    for position, item in enumerate(wanted):
        if item.id is None:
            step = Step(
                id=uuid.uuid4(),
                workshop_id=workshop_id,
                position=position,
                key=item.key,
                title=item.title,
                substep_count=len(item.substeps),
            )
            plan.new_steps.append(step)
            plan.changed = True
        else:
            step = steps[item.id]
            wanted_step = (position, item.key, item.title, len(item.substeps))
            if (step.position, step.key, step.title, step.substep_count) != wanted_step:
                step.position, step.key, step.title, step.substep_count = wanted_step
                plan.changed = True
        plan.ordered.append(step)
        for sub_position, sub_item in enumerate(item.substeps):
            if sub_item.id is None:
                plan.new_substeps.append(
                    Substep(
                        id=uuid.uuid4(),
                        workshop_id=workshop_id,
                        step_id=step.id,
                        position=sub_position,
                        key=sub_item.key,
                        title=sub_item.title,
                        body=sub_item.body,
                        estimated_minutes=sub_item.estimated_minutes,
                    )
                )
                plan.changed = True
                continue
            sub = substeps[sub_item.id]
            old = (sub.step_id, sub.position, sub.key, sub.title, sub.body, sub.estimated_minutes)
            new = (
                step.id,
                sub_position,
                sub_item.key,
                sub_item.title,
                sub_item.body,
                sub_item.estimated_minutes,
            )
            if old != new:
                if sub.step_id != step.id:
                    plan.moves[sub.id] = step.id
                sub.step_id, sub.position, sub.key = step.id, sub_position, sub_item.key
                sub.title, sub.body = sub_item.title, sub_item.body
                sub.estimated_minutes = sub_item.estimated_minutes
                plan.changed = True
    return plan
