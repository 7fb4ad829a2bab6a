"""Use cases of the workshop service: each owns its transaction and writes its events."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, cast

import structlog
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sukverse_common.api import parse_time_cursor, time_cursor
from sukverse_common.db import Database
from sukverse_common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from sukverse_common.events.contracts import (
    EnrollmentCreated,
    EnrollmentWithdrawn,
    EventData,
    StepCompleted,
    SubstepCompleted,
    WorkshopArchived,
    WorkshopCompleted,
    WorkshopCreated,
    WorkshopUpdated,
)
from sukverse_common.events.outbox import Outbox
from sukverse_common.security import Principal
from sukverse_workshop import store
from sukverse_workshop.domain import (
    MAX_REPORTED_ERRORS,
    Tree,
    check_ids,
    check_keys,
    percent,
    plan_steps,
    render_workshop,
    unique,
)
from sukverse_workshop.models import (
    ACTIVE,
    ARCHIVED,
    Enrollment,
    Step,
    Substep,
    Workshop,
)
from sukverse_workshop.schemas import (
    EnrolledItem,
    EnrollmentOut,
    EnrollResult,
    ProgressDetail,
    ProgressSummary,
    StepPatch,
    StepProgress,
    SubstepProgress,
    WorkshopIn,
    WorkshopPatch,
    WorkshopSummary,
    ends_after_start,
)

log = structlog.get_logger(__name__)

ARCHIVED_READ_ONLY = "the workshop is archived: it can be read but not changed"


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime | None) -> datetime | None:
    """A time as stored: in UTC, so a create renders it as every later read does."""
    return None if moment is None else moment.astimezone(UTC)


def _key_taken(external_id: str) -> Conflict:
    return Conflict(
        "you already have an active workshop with this external_id",
        errors=[
            {
                "field": "external_id",
                "reason": f"an active workshop of yours has the external_id {external_id!r}",
            }
        ],
    )


def oversees(caller: Principal) -> bool:
    """Admins and machine clients (the operator) see and manage every workshop."""
    return "admin" in caller.roles or caller.is_machine


@dataclass
class Access:
    """What a caller is to one workshop."""

    workshop: Workshop
    instructor_ids: list[uuid.UUID]
    manages: bool
    enrolled: bool = False


def summary_of(workshop: Workshop, instructor_ids: list[uuid.UUID]) -> WorkshopSummary:
    return WorkshopSummary.model_construct(
        id=workshop.id,
        title=workshop.title,
        description=workshop.description,
        status=cast(Any, workshop.status),
        external_id=workshop.external_id,
        starts_at=workshop.starts_at,
        ends_at=workshop.ends_at,
        instructor_ids=instructor_ids,
        step_count=workshop.step_count,
        substep_count=workshop.substep_count,
        created_at=workshop.created_at,
        updated_at=workshop.updated_at,
        version=workshop.version,
    )


def _enrollment_fields(enrollment: Enrollment, substep_count: int) -> dict[str, Any]:
    return {
        "id": enrollment.id,
        "workshop_id": enrollment.workshop_id,
        "user_id": enrollment.user_id,
        "status": cast(Any, enrollment.status),
        "enrolled_at": enrollment.enrolled_at,
        "withdrawn_at": enrollment.withdrawn_at,
        "substeps_done": enrollment.substeps_done,
        "substep_count": substep_count,
        "percent": percent(enrollment.substeps_done, substep_count),
        "completed_at": enrollment.completed_at,
    }


def enrollment_out(enrollment: Enrollment, substep_count: int) -> EnrollmentOut:
    return EnrollmentOut.model_construct(**_enrollment_fields(enrollment, substep_count))


class WorkshopService:
    def __init__(self, *, database: Database, outbox: Outbox, cache_size: int) -> None:
        self.database = database
        self.outbox = outbox
        self.cache_size = cache_size
        self._bodies: OrderedDict[tuple[uuid.UUID, int], bytes] = OrderedDict()

    # -- the serialised-workshop cache -------------------------------------------------------

    def _cached(self, workshop: Workshop) -> bytes | None:
        key = (workshop.id, workshop.version)
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
        return body

    def _remember(self, workshop: Workshop, body: bytes) -> None:
        if self.cache_size <= 0:
            return
        self._bodies[(workshop.id, workshop.version)] = body
        while len(self._bodies) > self.cache_size:
            self._bodies.popitem(last=False)

    # -- access --------------------------------------------------------------------------------

    async def _access(
        self, session: AsyncSession, workshop: Workshop | None, caller: Principal
    ) -> Access:
        """What the caller is to the workshop; a workshop they may not see is a 404."""
        if workshop is None:
            raise NotFound("no such workshop")
        instructors = await store.instructor_ids(session, workshop.id)
        if oversees(caller) or (caller.user_id is not None and caller.user_id in instructors):
            return Access(workshop, instructors, manages=True)
        if caller.user_id is not None and await store.is_enrolled(
            session, workshop.id, caller.user_id
        ):
            return Access(workshop, instructors, manages=False, enrolled=True)
        raise NotFound("no such workshop")

    async def _managed(
        self, session: AsyncSession, workshop: Workshop | None, caller: Principal
    ) -> Access:
        access = await self._access(session, workshop, caller)
        if not access.manages:
            raise Forbidden("only the workshop's instructors and admins may do this")
        return access

    # -- workshops -----------------------------------------------------------------------------

    async def create(self, caller: Principal, body: WorkshopIn) -> bytes:
        """A new workshop; its `external_id`, if any, is the caller's: a second active
        workshop of the caller with the same one is a 409, and nothing is written."""
        check_keys(body.steps)
        now = _now()
        if body.instructor_ids is None:
            instructors = [caller.user_id] if caller.user_id is not None else []
        else:
            instructors = unique(body.instructor_ids)
            if not oversees(caller) and caller.user_id is not None:
                instructors = unique([*instructors, caller.user_id])
        instructors.sort()
        workshop = Workshop(
            id=uuid.uuid4(),
            title=body.title,
            description=body.description,
            status=ACTIVE,
            version=1,
            step_count=len(body.steps),
            substep_count=sum(len(step.substeps) for step in body.steps),
            created_by=caller.user_id,
            created_at=now,
            updated_at=now,
            external_id=body.external_id,
            external_owner=caller.subject if body.external_id is not None else None,
            starts_at=_utc(body.starts_at),
            ends_at=_utc(body.ends_at),
        )
        tree: Tree = []
        step_rows: list[dict[str, Any]] = []
        substep_rows: list[dict[str, Any]] = []
        for position, step in enumerate(body.steps):
            step_id = uuid.uuid4()
            step_rows.append(
                {
                    "id": step_id,
                    "workshop_id": workshop.id,
                    "position": position,
                    "key": step.key,
                    "title": step.title,
                    "substep_count": len(step.substeps),
                }
            )
            items = []
            for sub_position, sub in enumerate(step.substeps):
                sub_id = uuid.uuid4()
                substep_rows.append(
                    {
                        "id": sub_id,
                        "workshop_id": workshop.id,
                        "step_id": step_id,
                        "position": sub_position,
                        "key": sub.key,
                        "title": sub.title,
                        "body": sub.body,
                        "estimated_minutes": sub.estimated_minutes,
                    }
                )
                items.append(
                    {
                        "id": sub_id,
                        "key": sub.key,
                        "title": sub.title,
                        "body": sub.body,
                        "estimated_minutes": sub.estimated_minutes,
                    }
                )
            tree.append({"id": step_id, "key": step.key, "title": step.title, "substeps": items})
        async with self.database.sessions() as session, session.begin():
            session.add(workshop)
            try:
                await session.flush()
            except IntegrityError:
                if body.external_id is None:
                    raise
                # The unique index of active workshops' keys: a concurrent create won.
                raise _key_taken(body.external_id) from None
            await store.set_instructors(session, workshop.id, instructors)
            await session.execute(insert(Step), step_rows)
            await session.execute(insert(Substep), substep_rows)
            await self.outbox.add(
                session,
                WorkshopCreated(
                    workshop_id=workshop.id,
                    title=workshop.title,
                    instructor_ids=instructors,
                    step_count=workshop.step_count,
                    substep_count=workshop.substep_count,
                    created_by=caller.user_id,
                    created_at=now,
                ),
                subject=str(workshop.id),
            )
        log.info("workshop created", workshop_id=str(workshop.id))
        rendered = render_workshop(workshop, instructors, tree)
        self._remember(workshop, rendered)
        return rendered

    async def get(self, caller: Principal, workshop_id: uuid.UUID) -> bytes:
        """The workshop as JSON, from the cache when this version was rendered before."""
        async with self.database.sessions() as session:
            access = await self._access(session, await store.workshop(session, workshop_id), caller)
            workshop = access.workshop
            cached = self._cached(workshop)
            if cached is not None:
                return cached
            tree = await self._tree(session, workshop_id)
        rendered = render_workshop(workshop, access.instructor_ids, tree)
        self._remember(workshop, rendered)
        return rendered

    async def _tree(self, session: AsyncSession, workshop_id: uuid.UUID) -> Tree:
        """Two queries: the steps in order, then every substep in order."""
        steps = await store.steps(session, workshop_id)
        by_step: dict[uuid.UUID, list[dict[str, Any]]] = {row.id: [] for row in steps}
        for sub_id, step_id, key, title, body, minutes in await store.substeps(
            session, workshop_id
        ):
            by_step[step_id].append(
                {
                    "id": sub_id,
                    "key": key,
                    "title": title,
                    "body": body,
                    "estimated_minutes": minutes,
                }
            )
        return [
            {"id": row.id, "key": row.key, "title": row.title, "substeps": by_step[row.id]}
            for row in steps
        ]

    async def list_workshops(
        self,
        caller: Principal,
        *,
        status: str | None,
        external_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[WorkshopSummary], str | None]:
        """The workshops the caller may see; with an `external_id`, only those the caller
        itself created with it (another client's keys are never matched)."""
        after = parse_time_cursor(cursor)
        async with self.database.sessions() as session:
            if caller.user_id is None and not oversees(caller):
                return [], None
            found = list(
                await store.visible_workshops(
                    session,
                    user_id=caller.user_id,
                    everything=oversees(caller),
                    status=status,
                    external_key=None if external_id is None else (caller.subject, external_id),
                    after=after,
                    limit=limit + 1,
                )
            )
            page = found[:limit]
            instructors = await store.instructors_of(session, [w.id for w in page])
        items = [summary_of(w, instructors[w.id]) for w in page]
        more = len(found) > limit
        return items, time_cursor(page[-1].created_at, page[-1].id) if more else None

    async def update(self, caller: Principal, workshop_id: uuid.UUID, body: WorkshopPatch) -> bytes:
        if body.steps is not None:
            check_keys(body.steps)
        given = body.model_fields_set
        now = _now()
        try:
            async with self.database.sessions() as session, session.begin():
                access = await self._managed(
                    session, await store.lock_workshop(session, workshop_id), caller
                )
                workshop = access.workshop
                if workshop.status == ARCHIVED:
                    raise Conflict(ARCHIVED_READ_ONLY)
                if body.version is not None and body.version != workshop.version:
                    raise Conflict(
                        f"the workshop is at version {workshop.version}, not {body.version}"
                    )
                starts_at = _utc(body.starts_at) if "starts_at" in given else workshop.starts_at
                ends_at = _utc(body.ends_at) if "ends_at" in given else workshop.ends_at
                wrong = ends_after_start(ends_at, starts_at)
                if wrong is not None:
                    raise ValidationFailed(errors=[{"field": "ends_at", "reason": wrong}])
                changed = False
                if (starts_at, ends_at) != (workshop.starts_at, workshop.ends_at):
                    workshop.starts_at, workshop.ends_at, changed = starts_at, ends_at, True
                if body.title is not None and body.title != workshop.title:
                    workshop.title, changed = body.title, True
                if body.description is not None and body.description != workshop.description:
                    workshop.description, changed = body.description, True
                instructors = access.instructor_ids
                if body.instructor_ids is not None:
                    wanted = sorted(unique(body.instructor_ids))
                    if wanted != instructors:
                        await store.set_instructors(session, workshop.id, wanted)
                        instructors, changed = wanted, True
                if body.steps is not None and await self._replace_steps(
                    session, workshop, body.steps, now=now
                ):
                    changed = True
                if changed:
                    workshop.version += 1
                    workshop.updated_at = now
                    await self.outbox.add(
                        session,
                        WorkshopUpdated(
                            workshop_id=workshop.id,
                            title=workshop.title,
                            instructor_ids=instructors,
                            step_count=workshop.step_count,
                            substep_count=workshop.substep_count,
                            updated_by=caller.user_id,
                            updated_at=now,
                        ),
                        subject=str(workshop.id),
                    )
                tree = await self._tree(session, workshop.id)
        except IntegrityError:
            # A student recorded progress on a removed substep while this edit ran.
            raise Conflict(
                "someone recorded progress on a substep this edit removes; reload and retry"
            ) from None
        rendered = render_workshop(workshop, instructors, tree)
        self._remember(workshop, rendered)
        return rendered

    async def _replace_steps(
        self, session: AsyncSession, workshop: Workshop, wanted: list[StepPatch], *, now: datetime
    ) -> bool:
        """Make the workshop's steps the given list; True when anything changed."""
        steps = {step.id: step for step in await store.step_models(session, workshop.id)}
        substeps = {sub.id: sub for sub in await store.substep_models(session, workshop.id)}
        kept_steps, kept_subs = check_ids(wanted, steps, substeps)
        removed_subs = [sid for sid in substeps if sid not in kept_subs]
        removed_steps = [sid for sid in steps if sid not in kept_steps]
        blocked = await store.substeps_with_progress(session, removed_subs)
        if blocked:
            raise Conflict(
                f"{len(blocked)} substep(s) this edit removes have progress recorded; keep them",
                errors=[
                    {"field": "steps", "reason": f"substep {sid} has progress"}
                    for sid in sorted(blocked)[:MAX_REPORTED_ERRORS]
                ],
            )
        old_sizes = {sid: step.substep_count for sid, step in steps.items()}
        with session.no_autoflush:
            plan = plan_steps(workshop.id, wanted, steps, substeps)
            if not (plan.changed or removed_subs or removed_steps):
                return False
            # Lock the enrollments before writing anything, in the order progress takes them.
            enrollments = await store.lock_workshop_enrollments(session, workshop.id)
            before = await store.step_progress_counts(session, workshop.id) if enrollments else {}
        session.add_all(plan.new_steps)
        await session.flush()
        session.add_all(plan.new_substeps)
        await session.flush()
        for sid in removed_subs:
            await session.delete(substeps[sid])
        await session.flush()
        for sid in removed_steps:
            await session.delete(steps[sid])
        await session.flush()
        workshop.step_count = len(wanted)
        workshop.substep_count = sum(len(item.substeps) for item in wanted)
        if plan.moves:
            await store.move_progress(session, plan.moves)
        if enrollments:
            after = await store.step_progress_counts(session, workshop.id) if plan.moves else before
            await self._reconcile(
                session,
                workshop,
                enrollments,
                old_sizes=old_sizes,
                new_sizes={step.id: step.substep_count for step in plan.ordered},
                before=before,
                after=after,
                now=now,
            )
        return True

    async def _reconcile(
        self,
        session: AsyncSession,
        workshop: Workshop,
        enrollments: Sequence[Enrollment],
        *,
        old_sizes: dict[uuid.UUID, int],
        new_sizes: dict[uuid.UUID, int],
        before: dict[uuid.UUID, dict[uuid.UUID, int]],
        after: dict[uuid.UUID, dict[uuid.UUID, int]],
        now: datetime,
    ) -> None:
        """Bring each enrollment's counters in line with a changed structure, and emit the
        step and workshop completions the change itself brought about (a removed last open
        substep completes its step)."""
        for enrollment in enrollments:
            was = before.get(enrollment.id, {})
            now_counts = after.get(enrollment.id, {})
            was_done = {s for s, n in was.items() if n and n == old_sizes.get(s)}
            done = {s for s, n in now_counts.items() if n and n == new_sizes.get(s)}
            enrollment.substeps_done = sum(now_counts.values())
            enrollment.steps_done = len(done)
            for step_id in sorted(done - was_done):
                await self.outbox.add(
                    session,
                    StepCompleted(
                        enrollment_id=enrollment.id,
                        workshop_id=workshop.id,
                        user_id=enrollment.user_id,
                        step_id=step_id,
                        completed_at=now,
                    ),
                    subject=str(enrollment.id),
                )
            complete = enrollment.steps_done == workshop.step_count
            if complete and enrollment.completed_at is None:
                enrollment.completed_at = now
                await self.outbox.add(
                    session,
                    WorkshopCompleted(
                        enrollment_id=enrollment.id,
                        workshop_id=workshop.id,
                        user_id=enrollment.user_id,
                        completed_at=now,
                    ),
                    subject=str(enrollment.id),
                )
            elif not complete:
                enrollment.completed_at = None

    async def delete(self, caller: Principal, workshop_id: uuid.UUID) -> None:
        """Archive a workshop anyone was ever enrolled in; delete one no one ever was.
        Either way consumers hear `workshop.archived` once; archiving again is a no-op."""
        now = _now()
        async with self.database.sessions() as session, session.begin():
            access = await self._managed(
                session, await store.lock_workshop(session, workshop_id), caller
            )
            workshop = access.workshop
            if workshop.status == ARCHIVED:
                return
            if await store.any_enrollment(session, workshop.id):
                workshop.status = ARCHIVED
                workshop.archived_at = now
                workshop.updated_at = now
                workshop.version += 1
            else:
                await session.delete(workshop)
            await self.outbox.add(
                session,
                WorkshopArchived(
                    workshop_id=workshop_id, archived_by=caller.user_id, archived_at=now
                ),
                subject=str(workshop_id),
            )
        log.info("workshop archived", workshop_id=str(workshop_id), status=workshop.status)

    # -- enrollments ---------------------------------------------------------------------------

    async def enroll(
        self, caller: Principal, workshop_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
    ) -> EnrollResult:
        wanted = unique(user_ids)
        now = _now()
        async with self.database.sessions() as session, session.begin():
            access = await self._managed(
                session, await store.lock_workshop(session, workshop_id), caller
            )
            workshop = access.workshop
            if workshop.status == ARCHIVED:
                raise Conflict("the workshop is archived: no new enrollments")
            inserted = await store.add_enrollments(
                session,
                [
                    {
                        "id": uuid.uuid4(),
                        "workshop_id": workshop_id,
                        "user_id": user_id,
                        "status": ACTIVE,
                        "created_at": now,
                        "enrolled_at": now,
                        "enrolled_by": caller.user_id,
                        "substeps_done": 0,
                        "steps_done": 0,
                    }
                    for user_id in wanted
                ],
            )
            rest = [user_id for user_id in wanted if user_id not in inserted]
            reactivated = (
                await store.reactivate(
                    session, workshop_id=workshop_id, user_ids=rest, by=caller.user_id, at=now
                )
                if rest
                else set()
            )
            fresh = inserted | reactivated
            enrollments = {
                e.user_id: e for e in await store.enrollments_of(session, workshop_id, wanted)
            }
            for user_id in wanted:
                if user_id in fresh:
                    enrollment = enrollments[user_id]
                    await self.outbox.add(
                        session,
                        EnrollmentCreated(
                            enrollment_id=enrollment.id,
                            workshop_id=workshop_id,
                            user_id=user_id,
                            enrolled_by=caller.user_id,
                            enrolled_at=now,
                        ),
                        subject=str(enrollment.id),
                    )
        items = [
            EnrolledItem.model_construct(
                **_enrollment_fields(enrollments[user_id], workshop.substep_count),
                created=user_id in fresh,
            )
            for user_id in wanted
        ]
        return EnrollResult.model_construct(items=items, created=len(fresh))

    async def enrollments(
        self,
        caller: Principal,
        workshop_id: uuid.UUID,
        *,
        status: str | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[EnrollmentOut], str | None]:
        after = parse_time_cursor(cursor)
        async with self.database.sessions() as session:
            access = await self._managed(
                session, await store.workshop(session, workshop_id), caller
            )
            found = list(
                await store.enrollment_page(
                    session, workshop_id, status=status, after=after, limit=limit + 1
                )
            )
        page = found[:limit]
        size = access.workshop.substep_count
        more = len(found) > limit
        next_cursor = time_cursor(page[-1].created_at, page[-1].id) if more else None
        return [enrollment_out(e, size) for e in page], next_cursor

    async def withdraw(self, caller: Principal, workshop_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Withdraw a student; their progress is kept. Withdrawing again is a no-op."""
        now = _now()
        async with self.database.sessions() as session, session.begin():
            access = await self._managed(
                session, await store.lock_workshop(session, workshop_id), caller
            )
            if access.workshop.status == ARCHIVED:
                raise Conflict(ARCHIVED_READ_ONLY)
            enrollment_id = await store.withdraw(session, workshop_id, user_id, at=now)
            if enrollment_id is None:
                if await store.enrollment(session, workshop_id, user_id) is None:
                    raise NotFound("this user is not enrolled in this workshop")
                return
            await self.outbox.add(
                session,
                EnrollmentWithdrawn(
                    enrollment_id=enrollment_id,
                    workshop_id=workshop_id,
                    user_id=user_id,
                    withdrawn_by=caller.user_id,
                    withdrawn_at=now,
                ),
                subject=str(enrollment_id),
            )

    # -- progress ------------------------------------------------------------------------------

    async def record(
        self, caller: Principal, workshop_id: uuid.UUID, substep_id: uuid.UUID
    ) -> ProgressSummary:
        """Mark a substep done for the caller; a repeat changes nothing and emits nothing."""
        user_id = caller.user_id
        if user_id is None:
            raise Forbidden("machine clients have no progress of their own")
        now = _now()
        async with self.database.sessions() as session, session.begin():
            state = await store.lock_enrollment(session, workshop_id, user_id)
            if state is None or state.status != ACTIVE:
                await self._not_enrolled(session, workshop_id, caller)
            target = await store.progress_target(session, workshop_id, substep_id)
            assert target is not None  # the enrollment's foreign key keeps the workshop
            if target.status == ARCHIVED:
                raise Conflict("the workshop is archived: progress can no longer be recorded")
            if target.substep_workshop_id != workshop_id:
                reason = (
                    "no such substep"
                    if target.substep_workshop_id is None
                    else "the substep belongs to another workshop"
                )
                raise ValidationFailed(errors=[{"field": "substep_id", "reason": reason}])
            substeps_done, steps_done = state.substeps_done, state.steps_done
            completed_at = state.completed_at
            done_in_step = await store.add_progress(
                session,
                enrollment_id=state.id,
                substep_id=substep_id,
                step_id=target.step_id,
                at=now,
            )
            if done_in_step is not None:
                substeps_done += 1
                step_done = done_in_step == target.step_size
                steps_done += step_done
                finished = step_done and steps_done == target.step_count and completed_at is None
                if finished:
                    completed_at = now
                await store.set_counters(
                    session,
                    state.id,
                    substeps_done=substeps_done,
                    steps_done=steps_done,
                    completed_at=completed_at,
                    at=now,
                )
                await self._progress_events(
                    session,
                    enrollment_id=state.id,
                    workshop_id=workshop_id,
                    user_id=user_id,
                    step_id=target.step_id,
                    substep_id=substep_id,
                    substeps_done=substeps_done,
                    substep_count=target.substep_count,
                    step_done=step_done,
                    finished=finished,
                    now=now,
                )
        return ProgressSummary.model_construct(
            enrollment_id=state.id,
            workshop_id=workshop_id,
            user_id=user_id,
            substeps_done=substeps_done,
            substep_count=target.substep_count,
            percent=percent(substeps_done, target.substep_count),
            completed_steps=steps_done,
            step_count=target.step_count,
            completed=completed_at is not None,
            completed_at=completed_at,
        )

    async def _progress_events(
        self,
        session: AsyncSession,
        *,
        enrollment_id: uuid.UUID,
        workshop_id: uuid.UUID,
        user_id: uuid.UUID,
        step_id: uuid.UUID,
        substep_id: uuid.UUID,
        substeps_done: int,
        substep_count: int,
        step_done: bool,
        finished: bool,
        now: datetime,
    ) -> None:
        subject = str(enrollment_id)
        events: list[tuple[EventData, str]] = [
            (
                SubstepCompleted(
                    enrollment_id=enrollment_id,
                    workshop_id=workshop_id,
                    user_id=user_id,
                    step_id=step_id,
                    substep_id=substep_id,
                    substeps_done=substeps_done,
                    substep_count=substep_count,
                    completed_at=now,
                ),
                subject,
            )
        ]
        if step_done:
            events.append(
                (
                    StepCompleted(
                        enrollment_id=enrollment_id,
                        workshop_id=workshop_id,
                        user_id=user_id,
                        step_id=step_id,
                        completed_at=now,
                    ),
                    subject,
                )
            )
        if finished:
            events.append(
                (
                    WorkshopCompleted(
                        enrollment_id=enrollment_id,
                        workshop_id=workshop_id,
                        user_id=user_id,
                        completed_at=now,
                    ),
                    subject,
                )
            )
        await self.outbox.add_many(session, events)

    async def _not_enrolled(
        self, session: AsyncSession, workshop_id: uuid.UUID, caller: Principal
    ) -> NoReturn:
        await self._access(session, await store.workshop(session, workshop_id), caller)
        raise Forbidden("only students enrolled in this workshop record progress, each their own")

    async def progress(
        self, caller: Principal, workshop_id: uuid.UUID, user_id: uuid.UUID
    ) -> ProgressDetail:
        """One student's progress: for the student, the workshop's instructors and admins."""
        async with self.database.sessions() as session:
            access = await self._access(session, await store.workshop(session, workshop_id), caller)
            if caller.user_id != user_id and not (access.manages and caller.has("progress:read")):
                raise Forbidden("students read only their own progress")
            enrollment = await store.enrollment(session, workshop_id, user_id)
            if enrollment is None:
                raise NotFound("this user is not enrolled in this workshop")
            steps = await store.steps(session, workshop_id)
            substeps = await store.substeps(session, workshop_id)
            done = await store.progress_of(session, enrollment.id)
        by_step: dict[uuid.UUID, list[SubstepProgress]] = {row.id: [] for row in steps}
        for sub in substeps:
            at = done.get(sub.id)
            by_step[sub.step_id].append(
                SubstepProgress.model_construct(id=sub.id, done=at is not None, completed_at=at)
            )
        step_items = []
        for row in steps:
            items = by_step[row.id]
            complete = bool(items) and all(item.done for item in items)
            step_items.append(
                StepProgress.model_construct(
                    id=row.id,
                    completed=complete,
                    completed_at=max(item.completed_at for item in items if item.completed_at)
                    if complete
                    else None,
                    substeps=items,
                )
            )
        workshop = access.workshop
        return ProgressDetail.model_construct(
            enrollment_id=enrollment.id,
            workshop_id=workshop_id,
            user_id=user_id,
            status=cast(Any, enrollment.status),
            substeps_done=enrollment.substeps_done,
            substep_count=workshop.substep_count,
            percent=percent(enrollment.substeps_done, workshop.substep_count),
            completed_steps=enrollment.steps_done,
            step_count=workshop.step_count,
            completed=enrollment.completed_at is not None,
            completed_at=enrollment.completed_at,
            steps=step_items,
        )
