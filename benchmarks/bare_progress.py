"""The same-work baseline server: a bare aiohttp handler with raw asyncpg, no Sukverse code,
doing per POST /workshops/{id}/progress the PostgreSQL transaction the workshop service does.

The same statements in the same order on the service's migrated schema: lock the enrollment
`FOR UPDATE`, read the target, insert the progress row and count the step's progress in one
statement, update the counters, add the 1-3 outbox rows (JSON CloudEvents) in one call as
the service's `Outbox.add_many` does (one execute, or one executemany), commit. The bearer
token is not verified: its payload's `sub` is read, as a verified token's would be.
A pool of the service's size (10, overflowing to 20)."""

from __future__ import annotations

import base64
import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

POOL_MIN, POOL_MAX = 10, 20
SOURCE, TOPIC = "/sukverse/workshop", "sukverse.workshop"
PREFIX = "io.sukverse.workshop."

LOCK = """
SELECT id, status, substeps_done, steps_done, completed_at FROM enrollments
WHERE workshop_id = $1 AND user_id = $2 FOR UPDATE
"""
TARGET = """
SELECT w.status, w.step_count, w.substep_count, s.workshop_id, s.step_id,
       st.substep_count AS step_size
FROM workshops AS w
LEFT OUTER JOIN substeps AS s ON s.id = $2
LEFT OUTER JOIN steps AS st ON st.id = s.step_id
WHERE w.id = $1
"""
ADD_AND_COUNT = """
WITH added AS (
    INSERT INTO progress (enrollment_id, substep_id, step_id, completed_at)
    VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING substep_id
)
SELECT (SELECT count(*) FROM added) AS added,
       (SELECT count(*) FROM progress WHERE enrollment_id = $1 AND step_id = $3) AS before
"""
COUNTERS = """
UPDATE enrollments SET substeps_done = $2, steps_done = $3, completed_at = $4,
       last_activity_at = $5
WHERE id = $1
"""
OUTBOX = """
INSERT INTO outbox (event_id, topic, aggregate_type, aggregate_id, event_type, payload, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""


def when(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def event(kind: str, subject: str, at: datetime, data: dict[str, Any]) -> list[Any]:
    """An outbox row: a structured-mode CloudEvent serialized to JSON, as the service stores."""
    event_id = uuid.uuid4()
    event_type = f"{PREFIX}{kind}.v1"
    payload = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": SOURCE,
        "type": event_type,
        "subject": subject,
        "time": when(at),
        "datacontenttype": "application/json",
        "data": data,
    }
    text = json.dumps(payload, separators=(",", ":"))
    return [event_id, TOPIC, "enrollment", subject, event_type, text, at]


def user_of(request: web.Request) -> uuid.UUID:
    """The token's subject, unverified: the service checks the signature, this does not."""
    token = request.headers["Authorization"].removeprefix("Bearer ")
    encoded = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    return uuid.UUID(claims["sub"])


def problem(status: int, detail: str) -> web.Response:
    return web.json_response(
        {"status": status, "detail": detail}, status=status, content_type="application/problem+json"
    )


async def record(request: web.Request) -> web.Response:
    workshop_id = uuid.UUID(request.match_info["workshop_id"])
    user_id = user_of(request)
    substep_id = uuid.UUID((await request.json())["substep_id"])
    now = datetime.now(UTC)
    pool: asyncpg.Pool = request.app["pool"]
    async with pool.acquire() as conn, conn.transaction():
        state = await conn.fetchrow(LOCK, workshop_id, user_id)
        if state is None or state["status"] != "active":
            return problem(403, "only students enrolled in this workshop record progress")
        target = await conn.fetchrow(TARGET, workshop_id, substep_id)
        if target["status"] == "archived":
            return problem(409, "the workshop is archived")
        if target["workshop_id"] != workshop_id:
            return problem(422, "substep_id: no such substep")
        enrollment_id, step_id = state["id"], target["step_id"]
        substeps_done, steps_done = state["substeps_done"], state["steps_done"]
        completed_at = state["completed_at"]
        added, before = await conn.fetchrow(ADD_AND_COUNT, enrollment_id, substep_id, step_id, now)
        if added:
            substeps_done += 1
            step_done = before + 1 == target["step_size"]
            steps_done += step_done
            finished = step_done and steps_done == target["step_count"] and completed_at is None
            if finished:
                completed_at = now
            await conn.execute(
                COUNTERS, enrollment_id, substeps_done, steps_done, completed_at, now
            )
            subject = str(enrollment_id)
            common = {
                "enrollment_id": subject,
                "workshop_id": str(workshop_id),
                "user_id": str(user_id),
            }
            rows = [
                event(
                    "substep.completed",
                    subject,
                    now,
                    {
                        **common,
                        "step_id": str(step_id),
                        "substep_id": str(substep_id),
                        "substeps_done": substeps_done,
                        "substep_count": target["substep_count"],
                        "completed_at": when(now),
                    },
                )
            ]
            if step_done:
                data = {**common, "step_id": str(step_id), "completed_at": when(now)}
                rows.append(event("step.completed", subject, now, data))
            if finished:
                data = {**common, "completed_at": when(now)}
                rows.append(event("workshop.completed", subject, now, data))
            if len(rows) == 1:
                await conn.execute(OUTBOX, *rows[0])
            else:
                await conn.executemany(OUTBOX, rows)
    total = target["substep_count"]
    return web.json_response(
        {
            "enrollment_id": str(state["id"]),
            "workshop_id": str(workshop_id),
            "user_id": str(user_id),
            "substeps_done": substeps_done,
            "substep_count": total,
            "percent": round(100.0 * substeps_done / total, 1) if total else 0.0,
            "completed_steps": steps_done,
            "step_count": target["step_count"],
            "completed": completed_at is not None,
            "completed_at": when(completed_at) if completed_at is not None else None,
        }
    )


async def ready(_: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def main() -> None:
    port, dsn = int(sys.argv[1]), sys.argv[2]

    async def pool(app: web.Application) -> Any:
        app["pool"] = await asyncpg.create_pool(dsn, min_size=POOL_MIN, max_size=POOL_MAX)
        yield
        await app["pool"].close()

    app = web.Application()
    app.cleanup_ctx.append(pool)
    app.router.add_get("/", ready)
    app.router.add_post("/workshops/{workshop_id}/progress", record)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
