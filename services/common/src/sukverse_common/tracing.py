"""OpenTelemetry traces: off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set, then configured by
the standard `OTEL_*` variables; the messaging spans of the outbox, the relay and the inbox.

A request's trace goes on through its events: the outbox write is a `create` span whose
context travels inside each CloudEvent (the distributed-tracing extension, `traceparent` and
`tracestate`, stored with the event in the outbox row), the relay's publish is a `send` span
in that trace, and each consumer's handling a `process` span in it too (the OpenTelemetry
messaging conventions). Nothing of OpenTelemetry is imported while tracing is off, and every
hook here then costs one test of a module global.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.typedefs import Handler
    from opentelemetry.trace import Span, Tracer

    from sukverse_common.events.envelope import CloudEvent

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
SUPPORTED_PROTOCOLS = ("http/protobuf",)
UNTRACED_PATHS = "/healthz,/readyz,/metrics"  # probes and scrapes: no one's request

_tracer: Tracer | None = None
_receive_spans = False  # aiokafka's instrumentation is on
_server: Any = None  # what serves a request under tracing: see `serve`


def enabled() -> bool:
    return _tracer is not None


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces: an OTLP endpoint, and the SDK not disabled."""
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    disabled = environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    exporter = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    return bool(endpoint) and not disabled and exporter != "none"


def configure(service_name: str, version: str) -> bool:
    """Set up the tracer provider, the OTLP exporter and the instrumentations of aiohttp's
    server and client, SQLAlchemy and aiokafka, if the environment asks for traces.

    The aiohttp server instrumentation's middleware serves the requests whose trace is kept
    (see `_Server`). `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` win over the given
    name; the sampler, the exporter's endpoint, headers, timeout and compression come from
    their own `OTEL_*` variables, and `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` turns
    instrumentations off (`disabled_instrumentations`)."""
    global _tracer
    if _tracer is not None or not wanted():
        return _tracer is not None
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol not in SUPPORTED_PROTOCOLS:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: traces are exported "
            f"as {', '.join(SUPPORTED_PROTOCOLS)} (OTLP over HTTP, port 4318 of a collector)"
        )
    off = disabled_instrumentations()
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes: dict[str, str] = {SERVICE_VERSION: version, "service.namespace": "sukverse"}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = service_name
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; what is given
    # here is merged over them, so a name set in the environment is left out above.
    provider = TracerProvider(
        resource=Resource.create(attributes), id_generator=_preset_id_generator()
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    global _server
    _server = _Server(provider, middleware="aiohttp-server" not in off)
    if "aiohttp-client" not in off:
        AioHttpClientInstrumentor().instrument()
    if "aiokafka" not in off:
        global _receive_spans
        AIOKafkaInstrumentor().instrument()
        _receive_spans = True
    if "sqlalchemy" not in off:
        # The instrumentation declares SQLAlchemy < 2.1 and, without skipping that check,
        # silently instruments nothing on 2.1; what it hooks (engine events) is unchanged.
        # It wraps create_async_engine and create_engine, which the former calls by the name
        # it imported: imported after the wrapping, an async engine got two tracers, every
        # hook ran twice and one span of each pair was never ended. Imported first, once.
        import sqlalchemy.ext.asyncio  # noqa: F401

        SQLAlchemyInstrumentor().instrument(skip_dep_check=True)
        _database_spans_in_kept_traces_only()
    _tracer = trace.get_tracer("sukverse")
    return True


def _database_spans_in_kept_traces_only() -> None:
    """The SQLAlchemy instrumentation makes a span of every statement and of every connection
    taken from the pool, asking the sampler each time: in a dropped trace that is some 50 us
    a statement and 15 us a connection of attributes, statement parsing and spans nobody
    records, and with no trace at all each starts one of its own. A statement or connection
    is traced only inside a recording span, which is where a parent-based sampler (the
    default, and the charts') would keep it anyway.

    It also counts the pool's connections in use and idle, four updates of an OpenTelemetry
    counter a session, for a meter provider this platform never sets (its metrics are
    Prometheus's, `sukverse_db_pool_connections_in_use` among them): those listeners are
    not added."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from sqlalchemy.engine import Engine

    current_span = trace.get_current_span
    statement_span: Any = EngineTracer._before_cur_exec

    def before_cursor_execute(
        tracer: Any, conn: Any, cursor: Any, statement: Any, params: Any, *rest: Any
    ) -> Any:
        if not current_span().is_recording():
            return statement, params
        return statement_span(tracer, conn, cursor, statement, params, *rest)

    EngineTracer._before_cur_exec = before_cursor_execute  # type: ignore[method-assign]

    spanning: Any = Engine.connect  # the instrumentation's wrapper, a `connect` span
    plain = spanning.__wrapped__

    def connect(self: Engine) -> Any:
        if not current_span().is_recording():
            return plain(self)
        return spanning.__get__(self, Engine)()

    Engine.connect = connect  # type: ignore[method-assign]

    register: Any = EngineTracer._register_event_listener
    pool_events = {"connect", "close", "checkin", "checkout"}

    def register_all_but_pool_usage(target: Any, identifier: str, *args: Any, **kw: Any) -> None:
        if identifier not in pool_events:
            register(target, identifier, *args, **kw)

    EngineTracer._register_event_listener = staticmethod(register_all_but_pool_usage)  # type: ignore[method-assign]


# --- the server side of a request -----------------------------------------------------


class _Server:
    """Serves requests under the aiohttp server instrumentation's own middleware when their
    trace is kept, and without it when the sampler drops it.

    That middleware collects the request's attributes and makes a span before the sampler
    is asked, some 40 us a request whether the trace is kept or not: as much as the rest of
    a short request. Asked first, the sampler keeps the middleware's cost to the requests it
    keeps; a dropped request runs in the dropped trace's context (no span), so what it
    causes, its events and calls, is dropped with it. A kept root gets the trace id the
    sampler was asked about (`_preset_id_generator`), so the middleware's own sampling
    agrees."""

    def __init__(self, provider: Any, *, middleware: bool) -> None:
        from opentelemetry import context, trace
        from opentelemetry.instrumentation.aiohttp_server import (
            AioHttpServerInstrumentor,
            create_aiohttp_middleware,
        )
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import ParentBased
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

        # instrument() sets up the middleware's tracer, meters and excluded URLs; uninstrument()
        # takes back only its replacement of web.Application, which would put the middleware
        # in front of every request, kept or not.
        self.middleware: Any = None  # disabled: a kept request is served in its context only
        if middleware:
            instrumentor = AioHttpServerInstrumentor()
            instrumentor.instrument(tracer_provider=provider)
            instrumentor.uninstrument()
            self.middleware = create_aiohttp_middleware(tracer_provider=provider)
        self.sampler = provider.sampler
        # A parent-based sampler (the default, and the charts') follows the caller's flag,
        # and asks its root sampler of a request without one: asked directly here, which
        # spares every dropped request the parent look-up that finds none.
        self.follows_parent = isinstance(self.sampler, ParentBased)
        self.keeps_root = _root_decision(
            self.sampler._root if self.follows_parent else self.sampler
        )
        self.ids = provider.id_generator
        self.new_trace_id = RandomIdGenerator().generate_trace_id
        self.kind = SpanKind.SERVER
        self.span_context, self.non_recording = SpanContext, NonRecordingSpan
        self.unsampled = TraceFlags(TraceFlags.DEFAULT)
        self.attach, self.detach = context.attach, context.detach
        self.in_span = trace.set_span_in_context

    async def serve(self, request: Any, handler: Any) -> Any:
        remote = _remote_parent(request.headers)
        if self.middleware is None:  # no server spans: the caller's context goes on as it is
            return await self._within(remote, request, handler)
        if remote is not None and self.follows_parent:
            trace_id, keep = remote.trace_id, bool(remote.trace_flags.sampled)
        elif remote is None:
            trace_id = self.new_trace_id()
            keep = self.keeps_root(trace_id, request.method)
        else:
            parent = self.in_span(_non_recording(remote))
            trace_id = remote.trace_id
            result = self.sampler.should_sample(parent, trace_id, request.method, self.kind)
            keep = result.decision.is_sampled()
        if keep:
            token = _PRESET_TRACE_ID.set(None if remote else trace_id)
            try:
                return await self.middleware(request, handler)
            finally:
                _PRESET_TRACE_ID.reset(token)
        # The dropped trace's context, current while the request is served, so that what it
        # causes carries the trace on, unsampled; recorded nowhere.
        dropped = self.span_context(
            trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=self.unsampled,
            trace_state=remote.trace_state if remote is not None else None,
        )
        attached = self.attach(self.in_span(self.non_recording(dropped)))
        try:
            return await handler(request)
        finally:
            self.detach(attached)

    async def _within(self, span_context: Any, request: Any, handler: Any) -> Any:
        if span_context is None:
            return await handler(request)
        attached = self.attach(self.in_span(_non_recording(span_context)))
        try:
            return await handler(request)
        finally:
            self.detach(attached)


def _remote_parent(headers: Mapping[str, str]) -> Any:
    """The caller's span context from a W3C `traceparent` (and `tracestate`) header, or None
    without a valid one (then the request starts a trace, as the specification says)."""
    header = headers.get(TRACEPARENT)
    if not header:
        return None
    parts = header.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, trace_hex, span_hex, flags = parts[:4]
    if len(trace_hex) != 32 or len(span_hex) != 16 or len(flags) != 2:
        return None
    if version == "00" and len(parts) != 4:
        return None
    try:
        trace_id, span_id, bits = int(trace_hex, 16), int(span_hex, 16), int(flags, 16)
    except ValueError:
        return None
    if not trace_id or not span_id or any(c in "ABCDEF" for c in trace_hex + span_hex + flags):
        return None  # all zeros, or upper case: invalid
    from opentelemetry.trace import SpanContext, TraceFlags, TraceState

    state = headers.get(TRACESTATE)
    return SpanContext(
        trace_id,
        span_id,
        is_remote=True,
        trace_flags=TraceFlags(bits & TraceFlags.SAMPLED),
        trace_state=TraceState.from_header([state]) if state else None,
    )


def _non_recording(context: Any) -> Any:
    from opentelemetry.trace import NonRecordingSpan

    return NonRecordingSpan(context)


_PRESET_TRACE_ID: ContextVar[int | None] = ContextVar("sukverse_preset_trace_id", default=None)


def _root_decision(sampler: Any) -> Callable[[int, str], bool]:
    """Whether `sampler` keeps a new trace of a request, by id and name. For the ratio
    sampler (the charts') its own rule on its own bound, and for those that keep all or
    none their answer, without the result objects each makes per call: most requests are
    dropped, and each pays this."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, TraceIdRatioBased
    from opentelemetry.trace import SpanKind

    if sampler is ALWAYS_OFF or sampler is ALWAYS_ON:
        keep = sampler is ALWAYS_ON
        return lambda _trace_id, _name: keep
    if type(sampler) is TraceIdRatioBased:
        limit, bound = TraceIdRatioBased.TRACE_ID_LIMIT, sampler.bound
        return lambda trace_id, _name: trace_id & limit < bound
    return lambda trace_id, name: bool(
        sampler.should_sample(None, trace_id, name, SpanKind.SERVER).decision.is_sampled()
    )


def _preset_id_generator() -> Any:
    """Random ids, but for the root span of a request whose trace id was drawn (and
    sampled) before its span was made."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class PresetIds(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            preset = _PRESET_TRACE_ID.get()
            if preset is not None:
                _PRESET_TRACE_ID.set(None)  # the request's root span only
                return preset
            return int(super().generate_trace_id())

    return PresetIds()


def serve(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Serve a request in its trace: see `_Server`. Only with tracing on. (The server's own
    coroutine, returned rather than awaited here: one frame less on every request.)"""
    assert _server is not None
    served: Awaitable[web.StreamResponse] = _server.serve(request, handler)
    return served


INSTRUMENTATIONS = ("aiohttp-server", "aiohttp-client", "sqlalchemy", "aiokafka")
# aiokafka's instrumentation makes a `receive` span of every record a consumer fetches, before
# anything knows whether its trace is kept: on a busy consumer that is most of what tracing
# costs, for spans the `process` span of each event already covers. It is there to turn on.
DEFAULT_DISABLED = "aiokafka"


def disabled_instrumentations(environ: Mapping[str, str] = os.environ) -> frozenset[str]:
    """The instrumentations `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` names (comma-separated;
    `aiokafka` when unset, none when set empty)."""
    names = environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", DEFAULT_DISABLED)
    off = frozenset(name.strip().replace("_", "-") for name in names.split(",") if name.strip())
    unknown = off - set(INSTRUMENTATIONS)
    if unknown:
        raise ValueError(
            f"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS names {', '.join(sorted(unknown))}: the "
            f"instrumentations are {', '.join(INSTRUMENTATIONS)}"
        )
    return off


def shutdown() -> None:
    """Export what is buffered, at exit."""
    if _tracer is None:
        return
    from opentelemetry import trace

    provider: Any = trace.get_tracer_provider()
    provider.shutdown()


def current_ids() -> tuple[str, str] | None:
    """The trace and span id of the current span, as hex, for log lines; None without one."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def untraced() -> AbstractContextManager[object]:
    """The platform's own background work (polling the outbox, recording an inbox batch,
    sweeping, answering probes and scrapes): no spans from the instrumentations, each of
    which would otherwise start a trace of its own. Spans started here with an explicit
    parent (`send`, `process`) are kept, and so is what runs inside them."""
    if _tracer is None:
        return nullcontext()
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()


# --- messaging spans --------------------------------------------------------------------


def _messaging(operation: str, system: str, destination: str, **attributes: Any) -> dict[str, Any]:
    return {
        "messaging.system": system,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
        **{key: value for key, value in attributes.items() if value is not None},
    }


def creating(
    topic: str, *, count: int, system: str
) -> AbstractContextManager[dict[str, str] | None]:
    """A `create` span for events written to the outbox; gives the trace context each
    event carries (its CloudEvents `traceparent` and `tracestate`), or None when off (then
    at the cost of returning a shared no-op: every write of every request comes here)."""
    if _tracer is None:
        return _OFF
    return _creating(topic, count=count, system=system)


_OFF: nullcontext[None] = nullcontext()


@contextmanager
def _creating(topic: str, *, count: int, system: str) -> Iterator[dict[str, str] | None]:
    assert _tracer is not None
    from opentelemetry import propagate, trace

    dropped = _DROPPED.get()
    if dropped is not None:  # handling an event of a dropped trace: these are dropped too
        yield _context_of(dropped)
        return
    carrier: dict[str, str] = {}
    current = trace.get_current_span().get_span_context()
    if current.is_valid and not current.trace_flags.sampled:
        # A trace the sampler dropped: no span, but the events say so, and so their
        # consumers' work is dropped with it rather than starting traces of its own.
        propagate.inject(carrier)
        yield _context_of(carrier)
        return
    attributes = _messaging("create", system, topic, **{"messaging.batch.message_count": count})
    with _tracer.start_as_current_span(
        f"create {topic}", kind=trace.SpanKind.PRODUCER, attributes=attributes
    ):
        propagate.inject(carrier)
        yield _context_of(carrier)


def _context_of(carrier: Mapping[str, Any]) -> dict[str, str] | None:
    return {key: carrier[key] for key in (TRACEPARENT, TRACESTATE) if key in carrier} or None


def sampled(context: Mapping[str, str] | None) -> bool:
    """Whether a carried W3C trace context is valid and of a trace kept by the sampler."""
    parent = context.get(TRACEPARENT) if context else None
    if not parent or not isinstance(parent, str):
        return False
    match = _TRACEPARENT.fullmatch(parent.strip())
    return (
        match is not None
        and match[1] != "ff"
        and (match[1] != "00" or not match[5])
        and match[2] != _ZERO_TRACE
        and match[3] != _ZERO_SPAN
        and bool(int(match[4], 16) & 1)
    )


_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def carried(payload: str) -> dict[str, str] | None:
    """The trace context an event's JSON carries for its publish, or None: none carried, or
    that of a trace the sampler dropped, which a record goes without (but for aiokafka's
    `receive` spans: see `sending`). The JSON is the platform's own (`CloudEvent.to_bytes`,
    compact, string values without escapes in these two), so the attributes are found where
    they are rather than by parsing the whole event; the relay does this for every event."""
    if _tracer is None:
        return None
    at = payload.find(_PARENT_MARKER)
    if at < 0:
        return None
    start = at + len(_PARENT_MARKER)
    end = payload.index('"', start)
    if not _receive_spans and _surely_dropped(payload, start, end):
        return None
    context = {TRACEPARENT: payload[start:end]}
    at = payload.find(_STATE_MARKER)
    if at >= 0:
        start = at + len(_STATE_MARKER)
        context[TRACESTATE] = payload[start : payload.index('"', start)]
    return context


def _surely_dropped(parent: str, start: int = 0, end: int | None = None) -> bool:
    """Whether `parent[start:end]` is a version-00 `traceparent` whose flags say its trace was
    dropped: one look at the last digit, where `sampled` checks it whole. Any other form is
    left to `sampled`, so what this passes over is judged as before."""
    end = len(parent) if end is None else end
    return end - start == _PARENT_LENGTH and parent[start] == "0" and parent[end - 1] in _EVEN


_PARENT_MARKER, _STATE_MARKER = f'"{TRACEPARENT}":"', f'"{TRACESTATE}":"'
_PARENT_LENGTH = 55  # 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>
_EVEN = frozenset("02468ace")  # flags whose lowest bit, `sampled`, is clear


@contextmanager
def sending(
    topic: str, contexts: Iterable[Mapping[str, str] | None], *, system: str
) -> Iterator[list[Mapping[str, str] | None]]:
    """`send` spans for one publish: one in each sampled trace that events of it came from (a
    publish of many requests' events appears in each of their traces), covering the publish.
    Yields, in the order given, the context each event should be sent with: its own trace's
    `send` span, the context it carries when its trace was not sampled, or None."""
    given = list(contexts)
    kept = [sampled(context) for context in given]
    # A dropped trace's context goes with its records only for aiokafka's instrumentation,
    # whose `receive` spans would otherwise start traces of their own.
    unkept: list[Mapping[str, str] | None] = given if _receive_spans else [None] * len(given)
    if _tracer is None or not any(kept):
        yield unkept
        return
    from opentelemetry import propagate, trace

    spans: dict[str, tuple[Span, dict[str, str]]] = {}
    counts = Counter(c[TRACEPARENT] for c, k in zip(given, kept, strict=True) if c and k)
    with ExitStack() as stack:
        for context, keep in zip(given, kept, strict=True):
            if not context or not keep or context[TRACEPARENT] in spans:
                continue
            count = counts[context[TRACEPARENT]]
            span = stack.enter_context(
                _tracer.start_as_current_span(
                    f"send {topic}",
                    context=propagate.extract(context),
                    kind=trace.SpanKind.PRODUCER,
                    attributes=_messaging(
                        "send", system, topic, **{"messaging.batch.message_count": count}
                    ),
                )
            )
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            spans[context[TRACEPARENT]] = (span, carrier)
        # Each span was made current in turn; the publish itself belongs to none of them.
        with _detached():
            yield [
                spans[context[TRACEPARENT]][1] if context and keep else other
                for context, keep, other in zip(given, kept, unkept, strict=True)
            ]


@contextmanager
def _detached() -> Iterator[None]:
    from opentelemetry import context as otel_context

    token = otel_context.attach(otel_context.Context())
    try:
        yield
    finally:
        otel_context.detach(token)


@contextmanager
def processing(
    events: Sequence[CloudEvent], *, consumer: str, system: str
) -> Iterator[list[AbstractContextManager[object]]]:
    """The handling of a batch's events: yields, in their order, the context each event's
    handler runs in. Events of a kept trace run in its `process` span, one for all of its
    events in the batch (as `sending` makes one `send` span a publish): an outbox write of a
    hundred events is handled in one span, not a hundred. An event of a dropped trace runs
    without a span, carrying the trace on to the events it writes (most events come here:
    a look at their flags and a context variable); one without a trace context starts one
    of its own. The spans cover the batch, and a failure of it is recorded in each."""
    if _tracer is None:
        yield [_OFF] * len(events)
        return
    contexts: list[AbstractContextManager[object]] = []
    kept: list[tuple[int, CloudEvent, dict[str, str]]] = []  # at, the event, its context
    for at, event in enumerate(events):
        extra = event.__pydantic_extra__ or {}
        parent = extra.get(TRACEPARENT)
        if isinstance(parent, str) and _surely_dropped(parent):
            contexts.append(_Carrying(extra))
            continue
        carrier = {key: extra[key] for key in (TRACEPARENT, TRACESTATE) if key in extra}
        if carrier and not sampled(carrier):
            contexts.append(_Carrying(carrier))
            continue
        contexts.append(_OFF)  # its span's, below
        kept.append((at, event, carrier))
    if not kept:
        yield contexts
        return
    from opentelemetry import propagate, trace

    from sukverse_common.events.contracts import topic_of

    counts = Counter(carrier[TRACEPARENT] for _, _, carrier in kept if carrier)
    spans: dict[str, Span] = {}
    started: list[Span] = []
    for at, event, carrier in kept:
        key = carrier.get(TRACEPARENT, "")
        span = spans.get(key) if key else None
        if span is None:
            count = counts[key] if key else 1
            topic = topic_of(event.type.split(".")[2])  # io.sukverse.<service>.<event>.v<N>
            one = {
                "messaging.message.id": str(event.id),
                "cloudevents.event_id": str(event.id),
                "cloudevents.event_type": event.type,
            }
            span = _tracer.start_span(
                f"process {topic}",
                context=propagate.extract(carrier),
                kind=trace.SpanKind.CONSUMER,
                attributes=_messaging(
                    "process",
                    system,
                    topic,
                    **{"messaging.consumer.group.name": consumer},
                    **(one if count == 1 else {"messaging.batch.message_count": count}),
                ),
            )
            started.append(span)
            if key:
                spans[key] = span
        contexts[at] = _Current(trace.set_span_in_context(span))
    try:
        yield contexts
    except BaseException as exc:
        from opentelemetry.trace import Status, StatusCode

        for span in started:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        for span in started:
            span.end()


class _Current:
    """Runs a handler in its trace's `process` span (made current, and left open)."""

    __slots__ = ("context", "token")

    def __init__(self, context: Any) -> None:
        self.context = context

    def __enter__(self) -> None:
        from opentelemetry import context

        self.token = context.attach(self.context)

    def __exit__(self, *_: object) -> None:
        from opentelemetry import context

        context.detach(self.token)


# The carried context of the dropped trace whose event is being handled (its CloudEvent's
# extension attributes, of which `creating` takes the trace context's).
_DROPPED: ContextVar[Mapping[str, Any] | None] = ContextVar("sukverse_dropped", default=None)


class _Carrying:
    """Handling an event of a trace the sampler dropped, without a span: events written
    meanwhile carry the dropped trace on (see `creating`). A class rather than a generator
    context manager: it is entered for most events a consumer handles."""

    __slots__ = ("attributes", "token")

    def __init__(self, attributes: Mapping[str, Any]) -> None:
        self.attributes = attributes

    def __enter__(self) -> None:
        self.token = _DROPPED.set(self.attributes)

    def __exit__(self, *_: object) -> None:
        _DROPPED.reset(self.token)


def span(name: str, **attributes: Any) -> AbstractContextManager[object]:
    """An internal span of our own (the operator's reconcile), or nothing when off."""
    if _tracer is None:
        return nullcontext()
    return _tracer.start_as_current_span(
        name, attributes={key: value for key, value in attributes.items() if value is not None}
    )
