"""Routes of the analytics service: parse, call one use case, render."""

from __future__ import annotations

from aiohttp import web

from sukverse_analytics.keys import ANALYTICS
from sukverse_analytics.schemas import (
    AtRiskQuery,
    StudentFigures,
    StudentsQuery,
    ThresholdsIn,
    ThresholdsOut,
    WorkshopFigures,
)
from sukverse_common.api import Page, Routes, path_uuid, principal

routes = Routes("analytics")
READ = "analytics:read"


@routes.get("/analytics/workshops/{id}", response=WorkshopFigures, permission=READ, errors=(404,))
async def workshop_figures(request: web.Request) -> WorkshopFigures:
    """A workshop's figures: enrolment, completion, quiz average and students at risk."""
    return await request.app[ANALYTICS].workshop(principal(request), path_uuid(request))


@routes.get(
    "/analytics/workshops/{id}/students",
    query=StudentsQuery,
    response=Page[StudentFigures],
    permission=READ,
    errors=(404,),
)
async def workshop_students(request: web.Request, query: StudentsQuery) -> Page[StudentFigures]:
    """The enrolled students of a workshop with their progress, quiz average and risk."""
    items, cursor = await request.app[ANALYTICS].students(
        principal(request), path_uuid(request), cursor=query.cursor, limit=query.limit
    )
    return Page[StudentFigures](items=items, next_cursor=cursor)


@routes.get(
    "/analytics/at-risk",
    query=AtRiskQuery,
    response=Page[StudentFigures],
    permission=READ,
    errors=(404,),
)
async def at_risk(request: web.Request, query: AtRiskQuery) -> Page[StudentFigures]:
    """The students of a workshop at risk, each with the reasons a person can act on."""
    items, cursor = await request.app[ANALYTICS].students(
        principal(request),
        query.workshop_id,
        cursor=query.cursor,
        limit=query.limit,
        at_risk_only=True,
    )
    return Page[StudentFigures](items=items, next_cursor=cursor)


@routes.get(
    "/analytics/workshops/{id}/thresholds",
    response=ThresholdsOut,
    permission=READ,
    errors=(404,),
)
async def get_thresholds(request: web.Request) -> ThresholdsOut:
    """The at-risk thresholds in force for a workshop."""
    return await request.app[ANALYTICS].thresholds(principal(request), path_uuid(request))


@routes.put(
    "/analytics/workshops/{id}/thresholds",
    body=ThresholdsIn,
    response=ThresholdsOut,
    permission=READ,
    errors=(404,),
)
async def put_thresholds(request: web.Request, body: ThresholdsIn) -> ThresholdsOut:
    """Set a workshop's own at-risk thresholds (its instructors and admins)."""
    return await request.app[ANALYTICS].set_thresholds(principal(request), path_uuid(request), body)
