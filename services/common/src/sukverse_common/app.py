"""The factory every service builds on: middlewares, health, metrics, docs, lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sukverse_common import db, logs, tracing
from sukverse_common.api import Routes, is_public, mark_public
from sukverse_common.errors import (
    Problem,
    ServiceUnavailable,
    Unauthorized,
    problem_response,
    render_http_exception,
    render_problem,
)
from sukverse_common.events.bus import Bus, InMemoryBus
from sukverse_common.events.inbox import EventConsumer, InboxDispatcher
from sukverse_common.events.outbox import MessagingTables, Outbox, OutboxRelay
from sukverse_common.events.retention import Retention, RetentionSweeper
from sukverse_common.keys import (
    BUS,
    DATABASE,
    METRICS,
    OUTBOX,
    PRINCIPAL,
    REQUEST_ID,
    SETTINGS,
    VERIFIER,
)
from sukverse_common.metrics import Metrics
from sukverse_common.openapi import add_docs_routes, build_openapi
from sukverse_common.security import REVOCATION_TOPIC, TokenVerifier, jwks_loader
from sukverse_common.settings import REVOCATION_SECONDS, ServiceSettings

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_REQUEST_ID_PREFIX = secrets.token_hex(4)
_request_numbers = itertools.count(1)


def _new_request_id() -> str:
    """Unique without a system call: a random prefix per process and a counter."""
    return f"{_REQUEST_ID_PREFIX}-{next(_request_numbers):x}"


CleanupContext = Callable[[web.Application], AsyncIterator[None]]
UNTRACED_ROUTES = frozenset(tracing.UNTRACED_PATHS.split(","))


def _route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def service_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request: an id, a JSON access-log line and metrics per route template; deny by
    default (only routes marked public skip the token check); every error leaves as
    application/problem+json with nothing internal in it; traced, a span (or the dropped
    trace's context) around it all. One middleware, not four: each layer costs on every
    request."""
    route = _route_template(request)
    if tracing.enabled():
        if route in UNTRACED_ROUTES:  # probes and scrapes: no one's trace
            with tracing.untraced():
                return await _serve(request, handler, route)
        return await tracing.serve(request, functools.partial(_serve, handler=handler, route=route))
    return await _serve(request, handler, route)


async def _serve(request: web.Request, handler: Handler, route: str) -> web.StreamResponse:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if VALID_REQUEST_ID.match(incoming) else _new_request_id()
    request[REQUEST_ID] = request_id
    metrics = request.app[METRICS]
    started = time.perf_counter()
    in_flight = metrics.in_flight_of(request.method, route)
    in_flight.inc()
    bound = logs.request_id.set(request_id)
    response: web.StreamResponse | None = None
    try:
        try:
            await _authenticate(request)
            response = await handler(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            response = _problem_for(exc, request)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        in_flight.dec()
        status = response.status if response is not None else 500
        metrics.observe_request(request.method, route, status, elapsed)
        if log.is_enabled_for(logging.INFO):  # the line's fields are not built when it is not
            log.info(
                "request",
                method=request.method,
                route=route,
                path=request.path,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
        logs.request_id.reset(bound)


async def _authenticate(request: web.Request) -> None:
    if request.match_info.http_exception is not None or is_public(request.match_info.handler):
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send an access token as `Authorization: Bearer <token>`")
    request[PRINCIPAL] = await request.app[VERIFIER].verify(token.strip())


def _problem_for(exc: Exception, request: web.Request) -> web.StreamResponse:
    if isinstance(exc, Problem):
        return render_problem(exc, request)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return exc  # a redirect is a response
        max_body = request.app[SETTINGS].max_body_bytes
        return render_http_exception(exc, request, max_body_bytes=max_body)
    if db.unavailable(exc):
        log.warning("dependency unavailable", error=type(exc).__name__)
        return render_problem(ServiceUnavailable("a dependency is unavailable; retry"), request)
    log.error("unhandled error", exc_info=exc)
    return problem_response(
        status=500, type_uri=Problem().type_uri, title=Problem.title, instance=request.path
    )


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = {
        "database": await request.app[DATABASE].ping(),
        "bus": await request.app[BUS].ready(),
    }
    ready = all(checks.values())
    request.app[METRICS].ready.set(1 if ready else 0)
    if ready:
        return web.json_response({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, ok in checks.items() if not ok)
    response = problem_response(
        status=503,
        type_uri=ServiceUnavailable().type_uri,
        title="Not ready",
        detail=f"failing: {failing}",
        instance=request.path,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    version: str,
    routes: Sequence[Routes],
    messaging: MessagingTables,
    migrations: str,
    consumers: Sequence[EventConsumer] = (),
    bus: Bus | None = None,
    verifier: TokenVerifier | None = None,
) -> web.Application:
    """A service's application; its own `create_app` adds domain routes and lifecycles.

    Without a `bus`, the app builds its own from settings (in-process or Kafka), starts it
    after the consumers subscribed and stops it after the relay."""
    app = web.Application(middlewares=[service_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS] = Metrics(settings.service_name)
    app[BUS] = bus if bus is not None else build_bus(settings, app[METRICS])
    app[OUTBOX] = Outbox(messaging.outbox, system=app[BUS].system)
    app[VERIFIER] = verifier or TokenVerifier(
        load_keys=jwks_loader(f"{settings.auth_url.rstrip('/')}/.well-known/jwks.json"),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        min_refresh_seconds=settings.jwks_min_refresh_seconds,
    )
    app.router.add_get("/healthz", mark_public(healthz))
    app.router.add_get("/readyz", mark_public(readyz))
    app.router.add_get("/metrics", mark_public(metrics_endpoint))
    endpoints = [endpoint for table in routes for endpoint in table.endpoints]
    for table in routes:
        table.add_to(app)
    add_docs_routes(
        app, build_openapi(title=title, version=version, endpoints=endpoints), title=title
    )
    app.cleanup_ctx.append(_database_ctx(migrations))
    app.cleanup_ctx.append(_messaging_ctx(messaging, consumers, owns_bus=bus is None))
    return app


# Python collects its youngest generation every 700 net allocations. A batch of events is
# thousands of objects that live until the batch is done and are then freed by reference
# counting; collecting that often walks and promotes them again and again for nothing.
YOUNG_GENERATION_THRESHOLD = 10_000


def freeze_startup_objects() -> None:
    """Leave what start-up allocated out of garbage collection from now on, and collect
    the young generation less often.

    Modules, schemas and compiled statements are about 100,000 objects a service, all kept
    for the life of the process, and every full collection used to walk them: under load
    that came to a fifth of a consumer's CPU. Objects allocated later are collected as
    before, the young ones every `YOUNG_GENERATION_THRESHOLD` allocations (5-9% more
    events through the pipeline). Call once, when the process is ready to serve; the
    collector runs from then on even if it was paused while start-up loaded."""
    gc.enable()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])


def build_bus(settings: ServiceSettings, metrics: Metrics | None = None) -> Bus:
    """The bus the settings choose: in-process, or Kafka (not started) reporting its
    consumer lag in `metrics`. aiokafka is loaded only for the second."""
    if settings.bus != "kafka":
        return InMemoryBus()
    from sukverse_common.events.kafka import KafkaBus

    bus = KafkaBus.from_settings(settings)
    bus.metrics = metrics
    return bus


def _database_ctx(migrations: str) -> CleanupContext:
    async def database(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        url = settings.effective_database_url
        engine = db.create_engine(url, pool_size=settings.database_pool_size, metrics=app[METRICS])
        try:
            if settings.mode == "embedded":
                await db.upgrade(url, migrations)
            elif not await db.schema_is_current(engine, migrations):
                raise db.StaleSchemaError(
                    f"the {settings.service_name} database is not at the latest migration; "
                    f"run `sukverse migrate {settings.service_name}`"
                )
            app[DATABASE] = db.Database(engine)
            yield
        finally:
            await engine.dispose()

    return database


def _messaging_ctx(
    messaging: MessagingTables, consumers: Sequence[EventConsumer], *, owns_bus: bool
) -> CleanupContext:
    async def relay_and_consumers(app: web.Application) -> AsyncIterator[None]:
        settings, bus = app[SETTINGS], app[BUS]
        # Every replica hears of revoked tokens, and of those of the last hour at start.
        bus.listen(
            [REVOCATION_TOPIC], app[VERIFIER].revocations.handle, replay_seconds=REVOCATION_SECONDS
        )
        for consumer in consumers:
            InboxDispatcher(
                consumer=consumer,
                database=app[DATABASE],
                inbox=messaging.inbox,
                outbox=app[OUTBOX],
                bus=bus,
                metrics=app[METRICS],
            ).subscribe()
        if owns_bus:
            await bus.start()
        relay = OutboxRelay(
            outbox=app[OUTBOX],
            database=app[DATABASE],
            bus=bus,
            metrics=app[METRICS],
            poll_seconds=settings.outbox_poll_seconds,
        )
        sweeper = RetentionSweeper(
            tables=messaging,
            database=app[DATABASE],
            retention=Retention(
                outbox=timedelta(hours=settings.outbox_retention_hours),
                inbox=timedelta(hours=settings.inbox_retention_hours),
                every_seconds=settings.retention_sweep_seconds,
            ),
        )
        tasks = [
            asyncio.create_task(relay.run(), name=f"{settings.service_name}-outbox-relay"),
            asyncio.create_task(sweeper.run(), name=f"{settings.service_name}-retention"),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if owns_bus:
            await bus.stop()

    return relay_and_consumers
