"""Routes of the workshop service: parse, call one use case, render."""

from __future__ import annotations

from aiohttp import web

from sukverse_common.api import JSON, Page, Routes, link, path_uuid, principal
from sukverse_workshop.keys import WORKSHOPS
from sukverse_workshop.schemas import (
    EnrollmentOut,
    EnrollmentsQuery,
    EnrollRequest,
    EnrollResult,
    ProgressDetail,
    ProgressIn,
    ProgressSummary,
    WorkshopIn,
    WorkshopOut,
    WorkshopPatch,
    WorkshopsQuery,
    WorkshopSummary,
)

routes = Routes("workshop")


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON)


@routes.post(
    "/workshops",
    body=WorkshopIn,
    response=WorkshopOut,
    status=201,
    permission="workshop:write",
    errors=(409,),
)
async def create_workshop(request: web.Request, body: WorkshopIn) -> web.Response:
    """Create a workshop with its steps and substeps; every step and substep gets an id.

    An `external_id` names at most one active workshop of the caller: a second create
    with it is a 409 naming `external_id`, and `GET /workshops?external_id=` finds the
    first."""
    return _json(await request.app[WORKSHOPS].create(principal(request), body), status=201)


@routes.get(
    "/workshops", query=WorkshopsQuery, response=Page[WorkshopSummary], permission="workshop:read"
)
async def list_workshops(request: web.Request, query: WorkshopsQuery) -> Page[WorkshopSummary]:
    """The workshops the caller may see, newest first: all for admins, those taught for
    instructors, those enrolled in for students (without their steps). `external_id`
    keeps those the caller created with that key."""
    items, cursor = await request.app[WORKSHOPS].list_workshops(
        principal(request),
        status=query.status,
        external_id=query.external_id,
        cursor=query.cursor,
        limit=query.limit,
    )
    return Page[WorkshopSummary].model_construct(items=items, next_cursor=cursor)


@routes.get("/workshops/{id}", response=WorkshopOut, permission="workshop:read", errors=(404,))
async def get_workshop(request: web.Request) -> web.Response:
    """One workshop with its steps and substeps in order."""
    return _json(await request.app[WORKSHOPS].get(principal(request), path_uuid(request)))


@routes.patch(
    "/workshops/{id}",
    body=WorkshopPatch,
    response=WorkshopOut,
    permission="workshop:write",
    errors=(403, 404, 409),
)
async def update_workshop(request: web.Request, body: WorkshopPatch) -> web.Response:
    """Change a workshop: title, description, schedule, instructors, and/or the whole list
    of steps.

    Removing a substep someone has progress on is a 409; ids of steps or substeps that are
    not this workshop's are a 422 naming the field. No change, no new version, no event."""
    service = request.app[WORKSHOPS]
    return _json(await service.update(principal(request), path_uuid(request), body))


@routes.delete("/workshops/{id}", status=204, permission="workshop:write", errors=(403, 404))
async def delete_workshop(request: web.Request) -> None:
    """Archive a workshop (or delete it when no one was ever enrolled); again is a no-op."""
    await request.app[WORKSHOPS].delete(principal(request), path_uuid(request))


@routes.post(
    "/workshops/{id}/enrollments",
    body=EnrollRequest,
    response=EnrollResult,
    permission="enrollment:write",
    errors=(403, 404, 409),
    links={
        "ReadProgress": link(
            "read_progress", id="$request.path.id", user_id="$request.body#/user_ids/0"
        ),
        "ListEnrollments": link("list_enrollments", id="$request.path.id"),
    },
)
async def enroll(request: web.Request, body: EnrollRequest) -> EnrollResult:
    """Enroll up to 1,000 users at once; those already enrolled stay as they are, withdrawn
    ones are enrolled again. User ids are opaque references to the auth service."""
    return await request.app[WORKSHOPS].enroll(
        principal(request), path_uuid(request), body.user_ids
    )


@routes.get(
    "/workshops/{id}/enrollments",
    query=EnrollmentsQuery,
    response=Page[EnrollmentOut],
    permission="enrollment:read",
    errors=(403, 404),
)
async def list_enrollments(request: web.Request, query: EnrollmentsQuery) -> Page[EnrollmentOut]:
    """The workshop's enrollments with each student's progress, in enrollment order."""
    items, cursor = await request.app[WORKSHOPS].enrollments(
        principal(request),
        path_uuid(request),
        status=query.status,
        cursor=query.cursor,
        limit=query.limit,
    )
    return Page[EnrollmentOut].model_construct(items=items, next_cursor=cursor)


@routes.delete(
    "/workshops/{id}/enrollments/{user_id}",
    status=204,
    permission="enrollment:write",
    errors=(403, 404, 409),
)
async def withdraw(request: web.Request) -> None:
    """Withdraw a student; their progress is kept. Withdrawing again is a no-op."""
    await request.app[WORKSHOPS].withdraw(
        principal(request), path_uuid(request), path_uuid(request, "user_id")
    )


@routes.post(
    "/workshops/{id}/progress",
    body=ProgressIn,
    response=ProgressSummary,
    permission="progress:write",
    errors=(403, 404, 409),
)
async def record_progress(request: web.Request, body: ProgressIn) -> ProgressSummary:
    """Mark a substep done for the caller (an enrolled student); repeating it is harmless."""
    return await request.app[WORKSHOPS].record(
        principal(request), path_uuid(request), body.substep_id
    )


@routes.get(
    "/workshops/{id}/progress/{user_id}",
    response=ProgressDetail,
    permission="workshop:read",
    errors=(403, 404),
)
async def read_progress(request: web.Request) -> ProgressDetail:
    """A student's progress per step and substep (`me` for the caller's own): for the
    student, the workshop's instructors and admins."""
    caller = principal(request)
    if request.match_info["user_id"] == "me" and caller.user_id is not None:
        user_id = caller.user_id
    else:
        user_id = path_uuid(request, "user_id")
    return await request.app[WORKSHOPS].progress(caller, path_uuid(request), user_id)
